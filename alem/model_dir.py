"""Model directories: where alem keeps a trained model, what its files are called, and its card.

An ensemble directory (``models/ensemble`` ships with alem) holds::

    model_card.json             ModelCard: recipe, graph settings, CV metrics, calibration, stack
    member_0.pt ... member_K.pt GNN members (state dicts)
    trees.joblib                descriptor-tree components, when the card has a ``stack``
    oof_predictions.npz         grouped out-of-fold predictions, when the recipe ran a CV
    cv_parity.png               their parity plot
    reference_predictions.json  the fresh ensemble's predictions of a few hops (drift check)

A pre-trained backbone directory (``models/pretrained``) holds ``backbone.pt`` and its own
``model_card.json`` (:class:`BackboneCard`). Every module that writes or reads these files takes
the names and default paths from here.

Cards are pydantic models that allow extra keys: a card written by older (or newer) code loads,
and every key it holds is written back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alem import shipped_dir
from alem.errors import AlemError

CARD_FILENAME = "model_card.json"
TREES_FILENAME = "trees.joblib"
OOF_FILENAME = "oof_predictions.npz"
CV_PARITY_FILENAME = "cv_parity.png"
REFERENCE_FILENAME = "reference_predictions.json"
#: The fidelity-aware add-on (alem.inference.fidelity_aware): its trees and its reference predictions.
FIDELITY_TREES_FILENAME = "fidelity_trees.joblib"
FIDELITY_REFERENCE_FILENAME = "reference_predictions_fidelity.json"
BACKBONE_FILENAME = "backbone.pt"

ENSEMBLE_KIND = "alem-barrier-ensemble"
BACKBONE_KIND = "alem-pretrained-backbone"


class ModelError(AlemError, ValueError):
    """A model directory whose card or files do not make a usable model."""


class ModelNotFoundError(AlemError, FileNotFoundError):
    """No model card where a model was expected."""


def member_filename(index: int) -> str:
    """File of GNN member ``index`` (0-based) in an ensemble directory."""
    return f"member_{index}.pt"


def default_ensemble_path() -> Path:
    """The shipped ensemble: ``models/ensemble`` (of the repository, or inside the wheel)."""
    return shipped_dir("models") / "ensemble"


def default_pretrained_path() -> Path:
    """The shipped pre-trained backbone: ``models/pretrained`` (of the repository, or inside the wheel)."""
    return shipped_dir("models") / "pretrained"


def card_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / CARD_FILENAME


class _Card(BaseModel):
    model_config = ConfigDict(extra="allow")
    #: What a directory without this card is not, for the error message.
    _what: ClassVar[str] = "an alem model directory"

    @classmethod
    def load(cls, model_dir: str | Path):
        """The card of ``model_dir`` (a directory, or the card file itself).

        Raises:
            ModelNotFoundError: no card there.
            ModelError: the card is not JSON or lacks what this kind of card needs.
        """
        path = Path(model_dir)
        file = path if path.suffix == ".json" else card_path(path)
        if not file.is_file():
            raise ModelNotFoundError(f"{file.parent}: no {CARD_FILENAME} here (not {cls._what})")
        try:
            return cls.model_validate(json.loads(file.read_text()))
        except json.JSONDecodeError as exc:
            raise ModelError(f"{file}: not a valid model card (not JSON: {exc})") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ModelError(f"{file}: not a valid model card ({problems})") from exc

    def as_dict(self) -> dict[str, Any]:
        """The card as plain JSON data: the keys it was built or loaded with, extra keys included."""
        return self.model_dump(mode="json", exclude_unset=True)

    def save(self, model_dir: str | Path) -> Path:
        """Write ``model_card.json`` into ``model_dir``; returns the file."""
        file = card_path(model_dir)
        file.write_text(json.dumps(self.as_dict(), indent=2))
        return file


class Calibration(BaseModel):
    model_config = ConfigDict(extra="allow")

    sigma_scale: float = Field(1.0, description="factor on the predictive σ, fitted on out-of-fold predictions")
    method: str = Field("none", description="how sigma_scale was chosen")


class StackSection(BaseModel):
    """How the GNN ensemble and the descriptor trees combine (:mod:`alem.inference.stacking`)."""

    model_config = ConfigDict(extra="allow")

    components: list[str] = Field(description="component names, 'gnn' first, then the trees in tree_specs order")
    weights: list[float] = Field(description="non-negative stacking weights summing to one, one per component")
    weights_method: str = Field("", description="how the weights were fitted")
    tree_specs: list[dict[str, Any]] = Field(description="alem.inference.trees.TreeSpec of each tree component, as dicts")
    descriptor_set: str | None = Field(None, description="hop descriptors the trees read (must equal the GNN head's)")
    sklearn_version: str | None = Field(None, description="scikit-learn that pickled trees.joblib")


class ModelCard(_Card):
    """``model_card.json`` of a fine-tuned ensemble.

    Written by :func:`alem.training.finetune.save_ensemble` (recipe, settings, provenance) with the
    CV entries of :func:`alem.training.recipe.cv_card_entries`; read by :class:`alem.ensemble.Ensemble`,
    retraining, the report and the CLI.
    """

    _what: ClassVar[str] = "an alem ensemble"

    kind: str = Field(ENSEMBLE_KIND, description="what the directory holds")
    n_members: int = Field(description="number of GNN members (member_K.pt files)")
    graph_settings: dict[str, Any] = Field(description="alem.graphs.crystal_graph.GraphSettings the members read")
    backbone_config: dict[str, Any] = Field(description="alem.nn.backbone.BackboneConfig of every member")
    finetune_config: dict[str, Any] = Field(default_factory=dict, description="alem.training.finetune.FinetuneConfig")
    calibration: Calibration = Field(default_factory=Calibration, description="σ calibration of the final prediction")
    stack: StackSection | None = Field(None, description="stacking with descriptor trees; None: GNN members only")
    cv_metrics: dict[str, Any] | None = Field(None, description="grouped-CV metrics of the shipped combination (mae_ev, r2, ...)")
    cv_metrics_gnn_ensemble: dict[str, Any] | None = Field(None, description="grouped-CV metrics of the GNN members alone")
    cv_metrics_single_member: dict[str, Any] | None = Field(None, description="grouped-CV metrics of one GNN member")
    cv_metrics_components: dict[str, dict[str, Any]] | None = Field(None, description="grouped-CV metrics per tree component")
    cv_folds: int | None = Field(None, description="number of grouped CV folds")
    cv_grouping: str | None = Field(None, description="what the CV folds group by")
    n_training_hops: int | None = Field(None, description="hops with a barrier the members were fitted on")
    training_hop_ids: list[str] | None = Field(None, description="their hop ids")
    dataset_hash: str | None = Field(
        None, description="hash of the training set; read when a campaign registers a model, not written by alem's training"
    )
    fidelity_aware: dict[str, Any] | None = Field(
        None, description="the fidelity-aware add-on: cheap_fidelity (the potential it reads), form, weights, σ factor, CV"
    )
    pretrained_backbone: str | None = Field(None, description="name of the pre-trained backbone directory")
    pretrained_path: str | None = Field(None, description="absolute path of that directory when trained")
    wall_time_s: float | int | None = Field(None, description="training wall time")
    seconds_per_member: list[float] | None = None
    device: str | None = Field(None, description="where it was trained, e.g. 'cpu:8 threads'")
    peak_memory_mb: float | int | None = None
    git_commit: str | None = Field(None, description="alem's commit when trained")
    created: str | None = Field(None, description="UTC time, ISO 8601")

    @property
    def sigma_scale(self) -> float:
        return self.calibration.sigma_scale

    @property
    def freeze(self) -> str | None:
        """The fine-tuning strategy (``frozen``, ``partial``, ``none``, ``scratch``)."""
        return self.finetune_config.get("freeze")


class BackboneCard(_Card):
    """``model_card.json`` of a pre-trained backbone (written by :func:`alem.training.pretrain.pretrain`)."""

    _what: ClassVar[str] = "a pre-trained backbone"

    kind: str = Field(BACKBONE_KIND, description="what the directory holds")
    properties: list[str] = Field(default_factory=list, description="bulk properties of the multi-task head")
    backbone_config: dict[str, Any] = Field(description="alem.nn.backbone.BackboneConfig")
    graph_settings: dict[str, Any] = Field(description="alem.graphs.crystal_graph.GraphSettings of the corpus graphs")
    validation_mae: dict[str, float] = Field(default_factory=dict, description="last epoch's validation MAE per property, published units")
    history: list[dict[str, Any]] = Field(default_factory=list, description="per epoch: train_loss, val_mae")
    wall_time_s: float | int | None = None
    device: str | None = None
