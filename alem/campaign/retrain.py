"""Retraining: a new model version fine-tuned on the campaign's results.

Each retraining writes a new ensemble directory under ``<state>/models/`` and registers it in the
store as the current version; older directories stay on disk (a version's path never changes), so
any earlier model can be reloaded or compared with. Retraining reuses the current model's
fine-tuning recipe (its card's ``finetune_config``, and its ``stack``: the descriptor trees are refit
on the same hops and combined with the parent's weights) on the hops it was trained on plus the
campaign's usable results whose fidelity ``[model] train_fidelities`` selects (default: DFT only,
so MLIP screening barriers never become DFT labels). A fidelity-aware parent (``cheap_fidelity``)
also gets the paired cheap barriers of the training hops.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alem.campaign.model_versions import LoadedModel, load_ensemble, store_card
from alem.hops.fidelity import CheapBarrier, matches
from alem.hops.hop import Hop
from alem.model_dir import BACKBONE_FILENAME, Combination, EnsembleRecipe, ModelCard, TrainingRecord, default_pretrained_path

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.ensemble import Ensemble
    from alem.store import Store

MODELS_DIRNAME = "models"


def dataset_hash(hops: Sequence[Hop]) -> str:
    rows = sorted(f"{h.hop_id}:{h.barrier_ev:.6f}" for h in hops if h.barrier_ev is not None)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def new_results_since_current(store: Store, fidelities: Sequence[str] | None = None) -> int:
    """Usable results (of the selected fidelities; None: all) recorded after the current model
    version was registered."""
    from alem.campaign import usable_results_since

    current = store.current_model()
    return usable_results_since(store, current.created_at if current else 0.0, fidelities)


def retraining_due(store: Store, config: CampaignConfig) -> bool:
    return new_results_since_current(store, config.model.train_fidelities) >= config.model.retrain_after_results


def training_hops(store: Store, model_path: Path, fidelities: Sequence[str] | None = ("dft",)) -> list[Hop]:
    """The current model's training hops (from alem's dataset, by id) plus the campaign's results,
    both only of the selected fidelities (None: all): ``["dft:GGA"]`` also drops the dataset's
    GGA+U, SCAN and LDA barriers, ``["dft"]`` keeps every functional."""
    from alem.campaign import result_hops
    from alem.hops.io import load_training_hops

    base_ids = ModelCard.load(model_path).training_hop_ids
    base = load_training_hops()
    if base_ids is not None:
        wanted = set(base_ids)
        base = [h for h in base if h.hop_id in wanted]
    if fidelities is not None:
        base = [h for h in base if matches(h.provenance.fidelity, fidelities)]
    results = result_hops(store, fidelities)
    result_ids = {h.hop_id for h in results}
    return [h for h in base if h.hop_id not in result_ids] + results


def pretrained_backbone_of(card: ModelCard) -> Path | None:
    """The pre-trained backbone a model was fine-tuned from (None: the trainer's default)."""
    recorded = card.pretrained_path or card.as_dict().get("pretrained_backbone_path")
    if recorded and Path(recorded).exists():
        return Path(recorded)
    if card.pretrained_backbone:
        shipped = default_pretrained_path().parent / card.pretrained_backbone
        if (shipped / BACKBONE_FILENAME).exists():
            return shipped
    return None


def _cheap_barriers_for(store: Store, config: CampaignConfig, current: LoadedModel, hops: Sequence[Hop]):
    """The paired cheap labels of ``hops`` for a fidelity-aware parent, per potential it has an
    add-on for (the campaign's own pairs joining the shipped and calibration ones); None for a
    parent without an add-on."""
    from alem.campaign.fidelity_labels import training_cheap_barriers

    fidelities = current.ensemble.cheap_fidelities
    if not fidelities:
        return None
    return training_cheap_barriers(store, fidelities, [h.hop_id for h in hops], config)


@dataclass
class RetrainPlan:
    """What one retraining trains on and how (the current model's recipe): inside the loop, or
    written into a retraining job's run directory (:mod:`alem.campaign.retrain_job`)."""

    hops: list[Hop]
    recipe: EnsembleRecipe
    combination: Combination
    record: TrainingRecord
    cheap_barriers: dict[str, tuple[CheapBarrier, ...]] | None
    dataset_hash: str
    n_results: int

    def train_kwargs(self) -> dict:
        """Keyword arguments of :func:`alem.training.finetune.train_ensemble` besides hops and out_dir."""
        return {"recipe": self.recipe, "combination": self.combination, "record": self.record, "cheap_barriers": self.cheap_barriers}


def plan_retraining(store: Store, config: CampaignConfig, current: LoadedModel) -> RetrainPlan:
    """The hops and recipe of a new version fine-tuned from ``current`` on the campaign's data."""
    model_card = ModelCard.load(current.path)
    backbone = None if model_card.freeze == "scratch" else pretrained_backbone_of(model_card)
    recipe = EnsembleRecipe.of(model_card, config.model.n_members, config.model.epochs, backbone)
    hops = training_hops(store, current.path, config.model.train_fidelities)
    digest = dataset_hash(hops)
    n_results = sum(1 for h in hops if (h.provenance.source or "").startswith("alem:"))
    fidelities = sorted({h.provenance.fidelity or "unknown" for h in hops if (h.provenance.source or "").startswith("alem:")})
    record = TrainingRecord(
        dataset_hash=digest,
        campaign_results=n_results,
        train_fidelities=list(config.model.train_fidelities),
        campaign_result_fidelities=fidelities,
        parent_model=str(current.path),
    )
    # the parent's calibration factor, stacking weights and fidelity add-on are reused: no
    # cross-validation runs inside the loop (its trees are refitted on the new hops)
    combination = Combination.of(model_card, inherited_from=str(current.path))
    return RetrainPlan(hops, recipe, combination, record, _cheap_barriers_for(store, config, current, hops), digest, n_results)


def new_version_dir(config: CampaignConfig) -> Path:
    """A fresh directory name for a model version under ``<state>/models/``."""
    out_dir = config.state_dir / MODELS_DIRNAME / time.strftime("v%Y%m%d-%H%M%S", time.gmtime())
    suffix = 1
    while out_dir.exists():
        out_dir = out_dir.with_name(f"{out_dir.name.split('.')[0]}.{suffix}")
        suffix += 1
    return out_dir


def register_retrained(store: Store, config: CampaignConfig, parent_version_id: int | None, path: Path,
                       digest: str, n_hops: int, n_results: int, ensemble: Ensemble | None = None) -> LoadedModel:
    """Make a freshly trained version directory the current model (``ensemble``: it, loaded already)."""
    ensemble = ensemble or load_ensemble(path)
    version_id = store.add_model_version(path, store_card(ensemble.card), digest, n_hops)
    store.log_event(
        "retrained",
        f"model version {version_id} fine-tuned on {n_hops} hops ({n_results} from this campaign, "
        f"fidelities {', '.join(config.model.train_fidelities)})",
        payload={"path": str(path), "parent": parent_version_id},
    )
    return LoadedModel(version_id, path, ensemble)


def carry_sister_labels(store: Store, parent: LoadedModel, model_dir: Path) -> None:
    """Give a retrained model its parent's sister correction (:func:`alem.training.sister.carry_sister_correction`):
    the parent's residual store plus the campaign's DFT labels with their residuals against the
    parent's stack. Nothing for a parent without one."""
    from alem.campaign.ingest import result_hops
    from alem.campaign.score import SISTER_LABEL_FIDELITIES
    from alem.training.sister import carry_sister_correction

    if parent.ensemble.sister is not None:
        carry_sister_correction(parent.ensemble, model_dir, result_hops(store, SISTER_LABEL_FIDELITIES))


def retrain(store: Store, config: CampaignConfig, current: LoadedModel, progress: bool = False) -> LoadedModel:
    """Fine-tune a new ensemble on the campaign's data (in this process) and make it the current version."""
    from alem.training.finetune import train_ensemble

    plan = plan_retraining(store, config, current)
    path = train_ensemble(plan.hops, new_version_dir(config), progress=progress, **plan.train_kwargs())
    carry_sister_labels(store, current, path)
    return register_retrained(store, config, current.version_id, path, plan.dataset_hash, len(plan.hops), plan.n_results)
