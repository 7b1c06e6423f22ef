"""Model cards are typed (alem.model_dir) and every card written so far still loads, unchanged."""

import json
from pathlib import Path

import pytest

from alem import REPO_ROOT
from alem.errors import AlemError
from alem.graphs import GraphSettings
from alem.model_dir import (
    CARD_FILENAME,
    BackboneCard,
    Combination,
    EnsembleRecipe,
    FinetuneConfig,
    ModelCard,
    ModelError,
    ModelNotFoundError,
    TreeSpec,
    default_ensemble_path,
    default_pretrained_path,
)
from alem.nn.backbone import BackboneConfig

SHIPPED_ENSEMBLE = REPO_ROOT / "models" / "ensemble"
SHIPPED_BACKBONE = REPO_ROOT / "models" / "pretrained"


def test_default_paths_are_the_shipped_models():
    assert default_ensemble_path() == SHIPPED_ENSEMBLE
    assert default_pretrained_path() == SHIPPED_BACKBONE


def test_the_shipped_ensemble_card_loads_typed_and_round_trips_key_for_key():
    raw = json.loads((SHIPPED_ENSEMBLE / CARD_FILENAME).read_text())
    card = ModelCard.load(SHIPPED_ENSEMBLE)
    assert card.as_dict() == raw
    assert card.n_members == raw["n_members"] == 5
    assert card.sigma_scale == raw["calibration"]["sigma_scale"]
    assert card.stack.components == ["gnn", "extra_trees", "svr_backbone"]
    assert sum(card.stack.weights) == pytest.approx(1.0)
    assert card.cv_metrics["mae_ev"] == raw["cv_metrics"]["mae_ev"]
    assert card.freeze == raw["finetune_config"]["freeze"]


def test_the_shipped_backbone_card_loads_and_round_trips():
    raw = json.loads((SHIPPED_BACKBONE / CARD_FILENAME).read_text())
    card = BackboneCard.load(SHIPPED_BACKBONE)
    assert card.as_dict() == raw
    assert card.kind == "alem-pretrained-backbone" and set(card.validation_mae) == set(raw["validation_mae"])


def test_an_older_card_without_stack_cv_or_calibration_loads_and_keeps_unknown_keys(tmp_path):
    """A card as the first fine-tuning code wrote it: GNN members only, no CV, a key alem no longer knows."""
    old = {
        "kind": "alem-barrier-ensemble",
        "n_members": 2,
        "graph_settings": {"n_images": 5},
        "backbone_config": {"hidden": 32},
        "finetune_config": {"freeze": "frozen", "epochs": 3},
        "an_old_key": {"kept": [1, 2]},
    }
    (tmp_path / CARD_FILENAME).write_text(json.dumps(old))
    card = ModelCard.load(tmp_path)
    assert card.stack is None and card.cv_metrics is None and card.sigma_scale == 1.0
    assert card.as_dict() == old  # defaults are not written into a card that never had them
    (tmp_path / "copy").mkdir()
    card.save(tmp_path / "copy")
    assert json.loads((tmp_path / "copy" / CARD_FILENAME).read_text()) == old


def test_a_missing_or_broken_card_is_one_alem_error_naming_the_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match=f"{tmp_path}: no model_card.json here \\(not an alem ensemble\\)") as missing:
        ModelCard.load(tmp_path)
    with pytest.raises(ModelNotFoundError, match="not a pre-trained backbone"):
        BackboneCard.load(tmp_path)
    (tmp_path / CARD_FILENAME).write_text(json.dumps({"kind": "alem-barrier-ensemble", "graph_settings": {}}))
    expected = f"{tmp_path / CARD_FILENAME}: not a valid model card \\(n_members: Field required; backbone_config"
    with pytest.raises(ModelError, match=expected) as broken:
        ModelCard.load(tmp_path)
    (tmp_path / CARD_FILENAME).write_text("{not json")
    with pytest.raises(ModelError, match="not a valid model card"):
        ModelCard.load(tmp_path / CARD_FILENAME)
    assert isinstance(missing.value, AlemError) and isinstance(missing.value, FileNotFoundError)
    assert isinstance(broken.value, AlemError) and isinstance(broken.value, ValueError)


#: Ensemble cards as the repository shipped them, one per layout (files named by the commit):
#: GNN members only (v1 descriptors, no descriptor_set key), the first stack (boosting), the
#: stack with the fidelity-aware add-on. The shipped card above is the newest layout.
OLD_CARDS = sorted((Path(__file__).parent / "data" / "cards").glob("ensemble_*.json"))


@pytest.mark.parametrize("file", OLD_CARDS, ids=lambda path: path.stem)
def test_every_shipped_card_layout_loads_typed_and_writes_back_key_for_key(file, tmp_path):
    raw = json.loads(file.read_text())
    card = ModelCard.load(file)
    assert card.as_dict() == raw
    assert isinstance(card.graph_settings, GraphSettings) and isinstance(card.backbone_config, BackboneConfig)
    assert card.graph_settings.descriptor_set == raw["graph_settings"].get("descriptor_set", "v1")
    assert card.finetune_config == FinetuneConfig(**raw["finetune_config"])
    assert card.cv_metrics["mae_ev"] == raw["cv_metrics"]["mae_ev"]
    if "stack" in raw:
        assert [spec.model_dump(exclude_unset=True) for spec in card.stack.tree_specs] == raw["stack"]["tree_specs"]
        assert all(isinstance(spec, TreeSpec) for spec in card.tree_specs)
    if "fidelity_aware" in raw:
        assert card.fidelity_aware.cheap_fidelity == raw["fidelity_aware"]["cheap_fidelity"]
        assert card.fidelity_aware.weights == raw["fidelity_aware"]["weights"]
    card.save(tmp_path)
    assert json.loads((tmp_path / CARD_FILENAME).read_text()) == raw
    # the recipe to train it again is the card's own
    recipe = EnsembleRecipe.of(card)
    assert recipe.finetune == card.finetune_config and recipe.n_members == raw["n_members"]
    assert recipe.components == card.tree_specs and recipe.cv_folds == 0
    inherited = Combination.of(card, inherited_from="parent")
    assert inherited.stack == card.stack and inherited.calibration.sigma_scale == raw["calibration"]["sigma_scale"]
