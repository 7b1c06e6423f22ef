"""Model directories: where alem keeps a trained model, what its files are called, and its card.

An ensemble directory (``models/ensemble`` ships with alem) holds::

    model_card.json             ModelCard: recipe, graph settings, CV metrics, calibration, stack
    member_0.pt ... member_K.pt GNN members (state dicts)
    trees.joblib                descriptor-tree components, when the card has a ``stack``
    oof_predictions.npz         grouped out-of-fold predictions, when the recipe ran a CV
    cv_parity.png               their parity plot
    reference_predictions.json  the fresh ensemble's predictions of a few hops (drift check)
    sister_residuals.npz        labelled hops' out-of-sample residuals, when the card has a
                                ``sister_correction`` (alem.inference.sister_correction)

A pre-trained backbone directory (``models/pretrained``) holds ``backbone.pt`` and its own
``model_card.json`` (:class:`BackboneCard`). Every module that writes or reads these files takes
the names and default paths from here.

Cards are pydantic models that allow extra keys: a card written by older (or newer) code loads,
and every key it holds is written back unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alem import shipped_dir
from alem.errors import AlemError
from alem.graphs.crystal_graph import GraphSettings
from alem.graphs.descriptors import LATEST_DESCRIPTOR_SET
from alem.hops.fidelity import SHIPPED_CHEAP_FIDELITY
from alem.nn.backbone import BackboneConfig
from alem.out_of_fold import OOF_FILENAME as OOF_FILENAME  # its own module: numpy reads it, no torch

CARD_FILENAME = "model_card.json"
TREES_FILENAME = "trees.joblib"
CV_PARITY_FILENAME = "cv_parity.png"
REFERENCE_FILENAME = "reference_predictions.json"
#: The fidelity-aware add-on (alem.inference.fidelity_aware): its trees and its reference predictions.
FIDELITY_TREES_FILENAME = "fidelity_trees.joblib"
FIDELITY_REFERENCE_FILENAME = "reference_predictions_fidelity.json"
BACKBONE_FILENAME = "backbone.pt"
#: The sister-label correction (alem.inference.sister_correction): its residual store.
SISTER_RESIDUALS_FILENAME = "sister_residuals.npz"

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


#: How much of the pre-trained backbone stays fixed while fine-tuning.
#: ``frozen``: the whole backbone (host side computed once; only path convolutions + head train);
#: ``partial``: embedding and all but the last convolution; ``none``: nothing; ``scratch``: no
#: pre-training at all.
FREEZE_STRATEGIES = ("frozen", "partial", "none", "scratch")


class FinetuneConfig(BaseModel):
    """How GNN members are fine-tuned (the card's ``finetune_config``)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    freeze: str = Field("frozen", description=f"how much of the pre-trained backbone stays fixed: one of {FREEZE_STRATEGIES}")
    epochs: int = Field(100, description="passes over the training hops per member")
    batch_size: int = Field(32, description="hops per gradient step")
    learning_rate: float = Field(2e-3, description="peak learning rate of the path side and head (one-cycle schedule)")
    #: Pre-trained layers that do train move slower than the new path side.
    backbone_learning_rate: float = Field(3e-4, description="peak learning rate of backbone layers that train")
    weight_decay: float = Field(1e-4, description="AdamW weight decay")
    dropout: float = Field(0.1, description="dropout in the head")
    #: Plain L1 first, so the location settles before the Laplace scale is learned with it.
    l1_warmup_epochs: int = Field(20, description="epochs of plain L1 loss before the Laplace likelihood")
    #: Off by default: on 559 hops, losing a third of the distinct hops per member cost more
    #: accuracy (grouped CV) than the diversity it buys.
    bootstrap: bool = Field(False, description="bootstrap resampling per member")
    #: ``v2`` adds the bond-valence / electrostatic profile along a relaxed path; chosen on inner
    #: folds, see benchmarks/cv.
    descriptor_set: str = Field(LATEST_DESCRIPTOR_SET, description="hop descriptors the head reads")

    @field_validator("freeze")
    @classmethod
    def _known_freeze(cls, value: str) -> str:
        if value not in FREEZE_STRATEGIES:
            raise ValueError(f"freeze must be one of {FREEZE_STRATEGIES}, not {value!r}")
        return value

    def as_dict(self) -> dict[str, Any]:
        """Every setting, defaults included (what a freshly written card records)."""
        return self.model_dump(mode="json")


#: Kinds of stack component beside the GNN (:data:`alem.inference.trees.TREE_KINDS` builds them).
COMPONENT_KINDS = ("extra_trees", "random_forest", "gradient_boosting", "svr")
#: What a component reads: the hop descriptors and ion one-hot, or those and the backbone's
#: features (:func:`alem.inference.backbone_features.backbone_path_features`).
COMPONENT_INPUTS = ("descriptors", "descriptors+backbone")


class TreeSpec(BaseModel):
    """One stack component beside the GNN: its name in the card, its kind (:data:`COMPONENT_KINDS`),
    scikit-learn parameters, target (E_m or log E_m) and inputs (:data:`COMPONENT_INPUTS`).
    Positional like the dataclass it was: ``TreeSpec("et", "extra_trees", {...}, log_target=True)``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(description="the component's name in the card and the stack")
    kind: str = Field(description=f"one of {COMPONENT_KINDS}")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the scikit-learn model")
    log_target: bool = Field(False, description="learn log E_m (predictions are exp of the output, eV)")
    inputs: str = Field("descriptors", description=f"what it reads: one of {COMPONENT_INPUTS}")

    def __init__(self, name: str | None = None, kind: str | None = None, params: dict | None = None, /, **data: Any):
        positional = {"name": name, "kind": kind, "params": params}
        super().__init__(**{key: value for key, value in positional.items() if value is not None}, **data)

    @model_validator(mode="after")
    def _known_kind_and_inputs(self) -> TreeSpec:
        if self.kind not in COMPONENT_KINDS:
            raise ValueError(f"unknown component kind {self.kind!r} (known: {', '.join(COMPONENT_KINDS)})")
        if self.inputs not in COMPONENT_INPUTS:
            raise ValueError(f"unknown component inputs {self.inputs!r} (known: {', '.join(COMPONENT_INPUTS)})")
        if self.reads_backbone and self.kind != "svr":
            raise ValueError(f"{self.name}: only the svr kind reads backbone features")
        return self

    @property
    def reads_backbone(self) -> bool:
        return self.inputs == "descriptors+backbone"

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


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


class _Section(BaseModel):
    """A card section: typed, and keys it does not know (written by newer code) kept."""

    model_config = ConfigDict(extra="allow")


class BarrierMetrics(_Section):
    """:func:`alem.metrics.barrier_metrics` of out-of-fold predictions (None: undefined, e.g.
    precision with no predicted good conductor). Reads like the plain dict it is written as."""

    n: int | None = Field(None, description="hops scored")
    mae_ev: float | None = Field(None, description="mean absolute error, eV")
    rmse_ev: float | None = Field(None, description="root-mean-square error, eV")
    r2: float | None = Field(None, description="coefficient of determination")
    accuracy_065: float | None = Field(None, description="accuracy of E_m < 0.65 eV as a yes/no call")
    precision_065: float | None = Field(None, description="precision of that call")
    recall_065: float | None = Field(None, description="recall of that call")
    spearman_sigma_abs_err: float | None = Field(None, description="rank correlation of σ with the absolute error")
    nll: float | None = Field(None, description="Gaussian negative log-likelihood per hop, in units of log(1/eV)")
    mean_sigma_ev: float | None = Field(None, description="mean predictive σ, eV")
    coverage_68: float | None = Field(None, description="fraction of barriers inside the central 68% interval")
    coverage_90: float | None = Field(None, description="fraction inside the central 90% interval")
    coverage_95: float | None = Field(None, description="fraction inside the central 95% interval")
    method: str | None = Field(None, description="how the predictions scored were made, when not plain out-of-fold")

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_dict().get(key, default)


class Calibration(_Section):
    sigma_scale: float = Field(1.0, description="factor on the predictive σ, fitted on out-of-fold predictions")
    method: str = Field("none", description="how sigma_scale was chosen")
    inherited_from: str | None = Field(None, description="the parent model whose factor a retrained model reuses")


class StackSection(_Section):
    """How the GNN ensemble and the descriptor trees combine (:mod:`alem.inference.stacking`)."""

    components: list[str] = Field(description="component names, 'gnn' first, then the trees in tree_specs order")
    weights: list[float] = Field(description="non-negative stacking weights summing to one, one per component")
    weights_method: str = Field("", description="how the weights were fitted")
    tree_specs: list[TreeSpec] = Field(description="the stack's components beside the GNN, in order")
    descriptor_set: str | None = Field(None, description="hop descriptors the trees read (must equal the GNN head's)")
    sklearn_version: str | None = Field(None, description="scikit-learn that pickled trees.joblib")


class FidelityAwareSection(_Section):
    """The fidelity-aware add-on (:mod:`alem.inference.fidelity_aware`): trees that also read a
    cheap barrier of one potential, mixed with the structure-only components for hops that have one."""

    cheap_fidelity: str = Field(description="the potential whose barriers the add-on reads, e.g. 'mlip:MACE-MP'")
    form: str = Field(description="target form of its trees: feature, delta or log_delta")
    tree_specs: list[TreeSpec] = Field(description="its trees (descriptors + ion + cheap barrier)")
    weights: list[float] = Field(description="stack weights over the structure-only components, then these trees")
    sigma_scale: float = Field(description="its own σ factor, fitted on out-of-fold predictions")
    n_components_structure: int | None = Field(None, description="structure-only components the weights start with")
    n_paired_hops: int | None = Field(None, description="training hops with a cheap barrier of that potential")
    cv_mae_per_form: dict[str, float] | None = Field(None, description="cross-fitted out-of-fold MAE of each form tried, eV")
    cv_metrics: BarrierMetrics | None = Field(None, description="grouped-CV metrics of the hops with a cheap barrier")
    method: str | None = Field(None, description="how it was fitted")
    sklearn_version: str | None = Field(None, description="scikit-learn that pickled fidelity_trees.joblib")
    trees_file: str = Field(FIDELITY_TREES_FILENAME, description="the file of its trees in the model directory")


def fidelity_trees_filename(cheap_fidelity: str) -> str:
    """File of the trees of an add-on that is not the card's first (``fidelity_aware``) one:
    ``mlip:CHGNet`` -> ``fidelity_trees_mlip_CHGNet.joblib``."""
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", cheap_fidelity)
    return f"fidelity_trees_{slug}.joblib"


class SisterCorrectionSection(_Section):
    """The sister-label correction (:mod:`alem.inference.sister_correction`): a GP on the stack's
    residuals with a host-identity kernel; its residual store is ``sister_residuals.npz``."""

    space: str = Field(description="residual space: 'log' (multiplicative correction) or 'ev' (additive)")
    length_scale: float | None = Field(description="squared-exponential length scale over standardised descriptors (None: flat)")
    variance_ratio: float = Field(ge=0.0, description="host-level residual variance over hop-level noise (0: no correction)")
    narrow_sigma: bool = Field(True, description="σ narrows by the share of residual variance the sisters explain (False: the stack's σ)")
    sigma_factor: float = Field(
        1.0, gt=0.0, description="σ of a hop with labelled sisters is multiplied by it (fitted on the sister-aware protocol; 1: unchanged)"
    )
    descriptor_mean: list[float] = Field(description="per descriptor column: the mean that standardises it")
    descriptor_std: list[float] = Field(description="per descriptor column: the spread that standardises it")
    n_residuals: int | None = Field(None, description="labelled hops in the residual store")
    cv: dict[str, Any] | None = Field(None, description="the protocol numbers it was chosen on (benchmarks/cv/sister_results.json)")
    method: str | None = Field(None, description="how the hyper-parameters and the residuals were obtained")

    @field_validator("space")
    @classmethod
    def _known_space(cls, value: str) -> str:
        if value not in ("log", "ev"):
            raise ValueError(f"space must be 'log' or 'ev', not {value!r}")
        return value


class TrainingRecord(_Section):
    """What a card records of how its model was judged and where its data came from: the grouped
    CV (:func:`alem.training.recipe.cv_card_entries`) and, for a loop retraining, the campaign."""

    cv_metrics: BarrierMetrics | None = Field(None, description="grouped-CV metrics of the shipped combination")
    cv_metrics_gnn_ensemble: BarrierMetrics | None = Field(None, description="grouped-CV metrics of the GNN members alone")
    cv_metrics_single_member: BarrierMetrics | None = Field(None, description="grouped-CV metrics of one GNN member")
    cv_metrics_components: dict[str, BarrierMetrics] | None = Field(None, description="grouped-CV metrics per tree component")
    cv_folds: int | None = Field(None, description="number of grouped CV folds")
    cv_grouping: str | None = Field(None, description="what the CV folds group by")
    dataset_hash: str | None = Field(None, description="hash of the training set (hop ids and barriers)")
    #: Written by loop retraining (:mod:`alem.campaign.retrain`).
    campaign_results: int | None = Field(None, description="training hops that are this campaign's results")
    train_fidelities: list[str] | None = Field(None, description="fidelities the campaign's results were selected by")
    campaign_result_fidelities: list[str] | None = Field(None, description="fidelities those results carry")
    parent_model: str | None = Field(None, description="the model directory this one was retrained from")

    def entries(self) -> dict[str, Any]:
        """The entries set, as card JSON."""
        return self.model_dump(mode="json", exclude_unset=True)


class Combination(_Section):
    """How the components of an ensemble combine: stacking weights, σ calibration and the
    fidelity-aware add-on. Fitted by the recipe's grouped CV, or inherited from a parent model by
    loop retraining (no CV runs inside the loop)."""

    stack: StackSection | None = Field(None, description="stacking weights and the components beside the GNN")
    calibration: Calibration = Field(default_factory=Calibration, description="σ calibration of the final prediction")
    fidelity_aware: FidelityAwareSection | None = Field(None, description="the add-on whose trees are refitted")
    fidelity_addons: list[FidelityAwareSection] | None = Field(None, description="add-ons of further potentials, refitted likewise")

    @property
    def addons(self) -> list[FidelityAwareSection]:
        """Every add-on, the first (``fidelity_aware``) first."""
        return [*([self.fidelity_aware] if self.fidelity_aware else []), *(self.fidelity_addons or [])]

    @classmethod
    def of(cls, card: ModelCard, inherited_from: str | None = None) -> Combination:
        """The combination of ``card``'s model (``inherited_from``: recorded in the calibration)."""
        calibration = card.calibration
        if inherited_from is not None:
            calibration = Calibration.model_validate(
                {"sigma_scale": calibration.sigma_scale, **calibration.model_dump(exclude_unset=True), "inherited_from": inherited_from}
            )
        return cls(stack=card.stack, calibration=calibration, fidelity_aware=card.fidelity_aware,
                   fidelity_addons=card.fidelity_addons)


class EnsembleRecipe(BaseModel):
    """How to train an ensemble: ``alem train``, loop retraining and the benchmarks pass one
    (:func:`alem.training.recipe.calibrated_ensemble`, :func:`alem.training.finetune.train_ensemble`)."""

    model_config = ConfigDict(extra="forbid")

    n_members: int = Field(5, ge=1, description="GNN members")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig, description="how each member is fine-tuned")
    components: list[TreeSpec] | None = Field(
        None, description="stack components beside the GNN; None: the recipe's default for finetune.freeze, []: GNN only"
    )
    cv_folds: int = Field(5, ge=0, description="grouped CV folds that fit weights and calibration (0 or 1: none)")
    seed: int = Field(0, description="seed of members, trees and folds")
    pretrained_path: str | None = Field(None, description="pre-trained backbone directory; None: the shipped one")
    cheap_fidelity: str = Field(SHIPPED_CHEAP_FIDELITY, description="potential of the fidelity-aware add-on fitted after a CV")

    @classmethod
    def of(
        cls, card: ModelCard, n_members: int | None = None, epochs: int | None = None, pretrained_path: str | Path | None = None
    ) -> EnsembleRecipe:
        """The recipe ``card``'s model was trained with, to train it again: ``n_members`` and
        ``epochs`` override the card's when given; no CV (the combination is inherited)."""
        finetune = card.finetune_config or FinetuneConfig()
        if epochs:
            finetune = finetune.model_copy(update={"epochs": epochs})
        return cls(
            n_members=n_members or card.n_members, finetune=finetune, components=card.tree_specs, cv_folds=0,
            pretrained_path=None if pretrained_path is None else str(pretrained_path),
        )


class ModelCard(_Card, TrainingRecord):
    """``model_card.json`` of a fine-tuned ensemble.

    Written by :func:`alem.training.finetune.save_ensemble` (recipe, settings, provenance) with the
    CV entries of :func:`alem.training.recipe.cv_card_entries`; read by :class:`alem.ensemble.Ensemble`,
    retraining, the report and the CLI.
    """

    _what: ClassVar[str] = "an alem ensemble"

    kind: str = Field(ENSEMBLE_KIND, description="what the directory holds")
    n_members: int = Field(description="number of GNN members (member_K.pt files)")
    graph_settings: GraphSettings = Field(description="how hops become the graphs the members read")
    backbone_config: BackboneConfig = Field(description="the backbone of every member")
    finetune_config: FinetuneConfig | None = Field(None, description="how the members were fine-tuned")
    calibration: Calibration = Field(default_factory=Calibration, description="σ calibration of the final prediction")
    stack: StackSection | None = Field(None, description="stacking with descriptor trees; None: GNN members only")
    n_training_hops: int | None = Field(None, description="hops with a barrier the members were fitted on")
    training_hop_ids: list[str] | None = Field(None, description="their hop ids")
    training_fidelities: dict[str, int] | None = Field(
        None, description="those hops per fidelity, e.g. {'dft:GGA': 493, 'dft:GGA+U': 41} (the functionals it learned from)"
    )
    fidelity_aware: FidelityAwareSection | None = Field(None, description="the fidelity-aware add-on; None: the model has none")
    fidelity_addons: list[FidelityAwareSection] | None = Field(
        None, description="add-ons of further potentials (one per potential, each its own trees file); None: none"
    )
    sister_correction: SisterCorrectionSection | None = Field(
        None, description="the correction by labelled sister hops' residuals; None: the model has none"
    )
    pretrained_backbone: str | None = Field(None, description="name of the pre-trained backbone directory")
    pretrained_path: str | None = Field(None, description="absolute path of that directory when trained")
    wall_time_s: float | int | None = Field(None, description="training wall time, s")
    seconds_per_member: list[float] | None = Field(None, description="fine-tuning wall time of each member, s")
    device: str | None = Field(None, description="where it was trained, e.g. 'cpu:8 threads'")
    peak_memory_mb: float | int | None = Field(None, description="peak memory while training, MiB")
    git_commit: str | None = Field(None, description="alem's commit when trained")
    created: str | None = Field(None, description="UTC time, ISO 8601")

    #: Order of the keys in a written card (fields of the record first would reshuffle old cards).
    _KEY_ORDER: ClassVar[tuple[str, ...]] = (
        "kind", "n_members", "graph_settings", "backbone_config", "finetune_config", "calibration", "stack", "cv_metrics",
        "cv_metrics_gnn_ensemble", "cv_metrics_single_member", "cv_metrics_components", "cv_folds", "cv_grouping",
        "n_training_hops", "training_hop_ids", "training_fidelities", "dataset_hash", "fidelity_aware", "fidelity_addons",
        "pretrained_backbone",
        "pretrained_path",
    )

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        rank = {key: i for i, key in enumerate(self._KEY_ORDER)}
        return {key: data[key] for key in sorted(data, key=lambda key: rank.get(key, len(rank)))}

    @property
    def sigma_scale(self) -> float:
        return self.calibration.sigma_scale

    @property
    def freeze(self) -> str | None:
        """The fine-tuning strategy (``frozen``, ``partial``, ``none``, ``scratch``)."""
        return self.finetune_config.freeze if self.finetune_config else None

    @property
    def dropout(self) -> float:
        """The members' dropout (architecture: the heads are built with it)."""
        return self.finetune_config.dropout if self.finetune_config else FinetuneConfig().dropout

    @property
    def addons(self) -> list[FidelityAwareSection]:
        """Every fidelity-aware add-on, one per potential: ``fidelity_aware`` first, then ``fidelity_addons``."""
        return [*([self.fidelity_aware] if self.fidelity_aware else []), *(self.fidelity_addons or [])]

    @property
    def cheap_fidelities(self) -> list[str]:
        """The potentials the model has an add-on for."""
        return [addon.cheap_fidelity for addon in self.addons]

    @property
    def tree_specs(self) -> list[TreeSpec]:
        """The stack's components beside the GNN (none without a stack)."""
        return list(self.stack.tree_specs) if self.stack else []


class BackboneCard(_Card):
    """``model_card.json`` of a pre-trained backbone (written by :func:`alem.training.pretrain.pretrain`)."""

    _what: ClassVar[str] = "a pre-trained backbone"

    kind: str = Field(BACKBONE_KIND, description="what the directory holds")
    properties: list[str] = Field(default_factory=list, description="bulk properties of the multi-task head")
    backbone_config: BackboneConfig = Field(description="the pre-trained backbone's shape")
    graph_settings: GraphSettings = Field(description="how the corpus structures became graphs")
    validation_mae: dict[str, float] = Field(default_factory=dict, description="last epoch's validation MAE per property, published units")
    history: list[dict[str, Any]] = Field(default_factory=list, description="per epoch: train_loss, val_mae")
    wall_time_s: float | int | None = Field(None, description="pre-training wall time, s")
    device: str | None = Field(None, description="where it was pre-trained")
