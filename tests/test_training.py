"""A tiny but real pre-train + fine-tune run; ensemble shapes, σ, path awareness after training.
The tests that train (pre-train, fine-tune, CV) are marked ``slow``."""

import json

import numpy as np
import pytest
import torch

from alem.ensemble import Ensemble
from alem.graphs import GraphSettings
from alem.hops import load_training_hops
from alem.hops.fidelity import counts_by_fidelity
from alem.metrics import fit_sigma_scale
from alem.model_dir import Calibration, Combination, EnsembleRecipe
from alem.training.cv import cross_validate, grouped_folds
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet, new_barrier_model, train_ensemble, train_member
from alem.training.pretrain import masked_property_loss
from tests._factories import rocksalt_hop


def test_masked_property_loss_ignores_missing():
    pred = torch.tensor([[1.0, 5.0], [2.0, 7.0]])
    target = torch.tensor([[0.0, float("nan")], [2.0, float("nan")]])
    assert masked_property_loss(pred, target).item() == pytest.approx(0.5)


@pytest.mark.slow
def test_pretraining_lowers_loss_and_writes_card(tiny_pretrained):
    out, card = tiny_pretrained
    losses = [h["train_loss"] for h in card["history"]]
    assert losses[-1] < losses[0]
    saved = json.loads((out / "model_card.json").read_text())
    for key in ("data_sha256", "epochs", "validation_mae", "wall_time_s", "device", "git_commit"):
        assert key in saved
    # 40 structures, 10 % held out: 4 validation structures, each property they carry scored
    assert saved["n_validation"] == 4
    validation_mae = saved["validation_mae"]
    assert validation_mae and set(validation_mae) <= {"bg", "fe", "gv", "ebg", "ph", "dc", "pz"}
    assert all(np.isfinite(v) and v > 0 for v in validation_mae.values())
    assert validation_mae == card["history"][-1]["val_mae"]


@pytest.fixture(scope="module")
def small_hops():
    hops = load_training_hops()
    # 24 small literature hops plus two hops in one synthetic host
    small = sorted(hops, key=lambda h: len(h.initial))[:24]
    return small


@pytest.mark.slow
@pytest.mark.parametrize("freeze", ["frozen", "none"])
def test_finetuning_lowers_loss(tiny_pretrained, small_hops, freeze):
    pretrained = Pretrained.load(tiny_pretrained[0])
    config = FinetuneConfig(freeze=freeze, epochs=25, l1_warmup_epochs=25, bootstrap=False, dropout=0.0)
    training_set = TrainingSet.prepare(small_hops, pretrained, config, torch.device("cpu"))
    model = new_barrier_model(pretrained, config, pretrained.backbone_config, training_set.settings)
    losses = train_member(model, training_set.items(), config, seed=0, device=torch.device("cpu"))
    assert losses[-1] < 0.7 * losses[0]
    if freeze == "frozen":
        before = {k: v.clone() for k, v in pretrained.state.items()}
        assert all(torch.equal(model.backbone.state_dict()[k], before[k]) for k in before)


@pytest.mark.slow
def test_ensemble_save_load_predict_and_path_awareness(tiny_pretrained, small_hops, tmp_path):
    near, far = rocksalt_hop("near", barrier_ev=0.3, neighbor_rank=0), rocksalt_hop("far", barrier_ev=1.5, neighbor_rank=1)
    hops = small_hops + [near, far] * 3
    config = FinetuneConfig(freeze="frozen", epochs=40, l1_warmup_epochs=10)
    recipe = EnsembleRecipe(n_members=3, finetune=config, pretrained_path=str(tiny_pretrained[0]))
    path = train_ensemble(hops, tmp_path / "ens", recipe, Combination(calibration=Calibration(sigma_scale=1.3)), progress=False)
    ensemble = Ensemble.load(path)
    assert ensemble.sigma_scale == pytest.approx(1.3)
    prediction = ensemble.predict([near, far] + small_hops[:4])
    assert prediction.member_ev.shape == (3, 6)
    assert prediction.mean_ev.shape == prediction.std_ev.shape == prediction.prob_good.shape == (6,)
    assert np.all(prediction.std_ev > 0) and np.all((prediction.prob_good >= 0) & (prediction.prob_good <= 1))
    # two hops in one host: different predictions, in the order of their training labels
    assert prediction.mean_ev[0] < prediction.mean_ev[1] - 0.1
    card = json.loads((path / "model_card.json").read_text())
    assert card["n_members"] == 3 and card["n_training_hops"] == len(hops)
    # the card lists the functionals it learned from (the synthetic hops carry no fidelity)
    assert card["training_fidelities"] == counts_by_fidelity(h.provenance.fidelity for h in hops)
    assert card["training_fidelities"]["unknown"] == 6 and sum(card["training_fidelities"].values()) == len(hops)
    # the recipe's descriptor set is recorded, so the model reads back the numbers it learned from
    assert card["graph_settings"] == GraphSettings(descriptor_set=config.descriptor_set).as_dict()
    assert card["graph_settings"]["descriptor_set"] == "v2" and ensemble.settings.n_descriptors == 37


def test_grouped_folds_keep_compounds_together(small_hops):
    groups = [h.group for h in small_hops]
    folds = grouped_folds(groups, 4, seed=0)
    for group in set(groups):
        assert len(set(folds[[g == group for g in groups]])) == 1
    assert set(folds) == {0, 1, 2, 3}


@pytest.mark.slow
def test_cross_validation_gives_out_of_fold_predictions(tiny_pretrained, small_hops):
    pretrained = Pretrained.load(tiny_pretrained[0])
    config = FinetuneConfig(freeze="frozen", epochs=10)
    training_set = TrainingSet.prepare(small_hops, pretrained, config, torch.device("cpu"))
    result = cross_validate(small_hops, training_set, config, n_members=2, n_folds=3)
    metrics, scale = result.metrics()
    assert result.member_location_ev.shape == (2, len(small_hops))
    # every hop was predicted (by the models of the fold that held it out)
    assert np.all(result.member_scale_ev > 0) and len(set(result.folds)) == 3
    mean, raw_sigma = result.ensemble()
    assert result.y_ev == pytest.approx([h.barrier_ev for h in small_hops])
    assert scale == pytest.approx(fit_sigma_scale(result.y_ev, mean, raw_sigma))
    assert metrics["n"] == len(small_hops) and metrics["sigma_scale"] == scale
    assert metrics["mae_ev"] == pytest.approx(np.mean(np.abs(mean - result.y_ev)))
    assert metrics["mean_sigma_ev"] == pytest.approx(np.mean(scale * raw_sigma))
    for key in ("r2", "coverage_68", "coverage_95", "nll", "nll_uncalibrated", "spearman_sigma_abs_err"):
        assert np.isfinite(metrics[key]), key
