"""The models that ship in models/: they load, predict what they predicted when trained, and are
consistent with their cards. Nothing here passes --model: this is what `alem predict` uses right
after cloning."""

import json

import numpy as np
import pytest
import torch

from alem import REPO_ROOT
from alem.ensemble import Ensemble
from alem.hops import load_training_hops
from alem.model_dir import OOF_FILENAME, REFERENCE_FILENAME, default_pretrained_path
from alem.training.finetune import Pretrained

ENSEMBLE_DIR = REPO_ROOT / "models" / "ensemble"
#: Same code, same weights, same CPU arithmetic: anything beyond float noise is a changed model
#: (descriptor, graph or combination code drifting under a shipped checkpoint).
REPRODUCTION_TOLERANCE_EV = 1e-4


@pytest.fixture(scope="module")
def shipped():
    return Ensemble.load()  # no path: the default every command uses


@pytest.fixture(scope="module")
def reference():
    return json.loads((ENSEMBLE_DIR / REFERENCE_FILENAME).read_text())


@pytest.fixture(scope="module")
def reference_prediction(shipped, reference):
    by_id = {h.hop_id: h for h in load_training_hops()}
    hops = [by_id[i] for i in reference["hop_ids"]]
    return hops, shipped.predict(hops, device="cpu")


def test_shipped_ensemble_reproduces_its_reference_predictions(shipped, reference, reference_prediction):
    assert shipped.path == ENSEMBLE_DIR
    _, prediction = reference_prediction
    np.testing.assert_allclose(prediction.mean_ev, reference["mean_ev"], atol=REPRODUCTION_TOLERANCE_EV)
    np.testing.assert_allclose(prediction.std_ev, reference["std_ev"], atol=REPRODUCTION_TOLERANCE_EV)


def test_shipped_ensemble_agrees_with_its_out_of_fold_record(shipped, reference_prediction):
    # The shipped model was trained on these hops; the out-of-fold models were not. A model that
    # loads wrongly (weights, stacking, descriptors) predicts its own training hops worse than
    # models that never saw them; a right one does better, within a small slack.
    hops, prediction = reference_prediction
    oof = np.load(ENSEMBLE_DIR / OOF_FILENAME)
    index = {h: k for k, h in enumerate(oof["hop_id"])}
    rows = [index[h.hop_id] for h in hops]
    y = np.array([h.barrier_ev for h in hops])
    np.testing.assert_allclose(oof["y"][rows], y)
    shipped_mae = np.abs(prediction.mean_ev - y).mean()
    oof_mae = np.abs(oof["mean"][rows] - y).mean()
    assert shipped_mae <= oof_mae + 0.05
    assert (prediction.std_ev > 0).all() and (prediction.prob_good >= 0).all() and (prediction.prob_good <= 1).all()


def test_shipped_card_matches_the_files(shipped):
    card = shipped.card
    json.dumps(card, allow_nan=False)  # strict JSON: a campaign's store registers the card as it is
    oof = np.load(ENSEMBLE_DIR / OOF_FILENAME)
    assert card["cv_metrics"]["n"] == len(oof["y"]) == card["n_training_hops"]
    assert card["cv_metrics"]["mae_ev"] == pytest.approx(np.abs(oof["mean"] - oof["y"]).mean(), abs=1e-9)
    assert len(shipped.members) == card["n_members"]
    if card.get("stack"):
        assert len(shipped.structure.components) == len(card["stack"]["components"])
        assert sum(card["stack"]["weights"]) == pytest.approx(1.0)


def test_shipped_members_carry_the_shipped_pretrained_backbone(shipped):
    pretrained = Pretrained.load(default_pretrained_path())
    assert shipped.card["pretrained_backbone"] == "pretrained"
    assert shipped.settings.n_images == pretrained.graph_settings.n_images
    if shipped.card["finetune_config"]["freeze"] == "frozen":
        for member in shipped.members:
            for name, value in member.backbone.state_dict().items():
                torch.testing.assert_close(value, pretrained.state[name], msg=f"backbone weight {name} differs")


def test_shipped_fidelity_aware_path_reproduces_its_reference_predictions(shipped):
    from alem.hops.fidelity import CheapBarrier
    from alem.model_dir import FIDELITY_REFERENCE_FILENAME

    reference = json.loads((ENSEMBLE_DIR / FIDELITY_REFERENCE_FILENAME).read_text())
    by_id = {h.hop_id: h for h in load_training_hops()}
    hops = [by_id[i] for i in reference["hop_ids"]]
    cheap = {k: CheapBarrier(**v) for k, v in reference["cheap_barriers"].items()}
    prediction = shipped.predict(hops, cheap_barriers=cheap, device="cpu")
    assert prediction.used_cheap_barrier.tolist() == reference["used_cheap_barrier"]
    assert any(reference["used_cheap_barrier"]) and not all(reference["used_cheap_barrier"])
    np.testing.assert_allclose(prediction.mean_ev, reference["mean_ev"], atol=REPRODUCTION_TOLERANCE_EV)
    np.testing.assert_allclose(prediction.std_ev, reference["std_ev"], atol=REPRODUCTION_TOLERANCE_EV)
