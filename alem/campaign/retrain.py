"""Retraining: a new model version fine-tuned on the campaign's results.

Each retraining writes a new ensemble directory under ``<state>/models/`` and registers it in the
store as the current version; older directories stay on disk (a version's path never changes), so
any earlier model can be reloaded or compared with. Retraining reuses the current model's
fine-tuning recipe (its card's ``finetune_config``, and its ``stack``: the descriptor trees are refit
on the same hops and combined with the parent's weights) on the hops it was trained on plus every
usable result of the campaign.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alem.campaign.model_versions import LoadedModel, load_ensemble, store_card
from alem.hops.fidelity import CheapBarrier
from alem.hops.hop import Hop

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.store import Store

MODELS_DIRNAME = "models"


def dataset_hash(hops: Sequence[Hop]) -> str:
    rows = sorted(f"{h.hop_id}:{h.barrier_ev:.6f}" for h in hops if h.barrier_ev is not None)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def new_results_since_current(store: Store) -> int:
    """Usable results recorded after the current model version was registered."""
    from alem.campaign import usable_results_since

    current = store.current_model()
    return usable_results_since(store, current.created_at if current else 0.0)


def retraining_due(store: Store, config: CampaignConfig) -> bool:
    return new_results_since_current(store) >= config.model.retrain_after_results


def training_hops(store: Store, model_path: Path) -> list[Hop]:
    """The current model's training hops (from alem's dataset, by id) plus every campaign result."""
    from alem.campaign import result_hops
    from alem.hops.io import load_training_hops

    card = json.loads((model_path / "model_card.json").read_text())
    base_ids = card.get("training_hop_ids")
    base = load_training_hops()
    if base_ids is not None:
        wanted = set(base_ids)
        base = [h for h in base if h.hop_id in wanted]
    results = result_hops(store)
    result_ids = {h.hop_id for h in results}
    return [h for h in base if h.hop_id not in result_ids] + results


def pretrained_backbone_of(card: dict[str, Any]) -> Path | None:
    """The pre-trained backbone a model was fine-tuned from (None: the trainer's default)."""
    from alem import REPO_ROOT

    for key in ("pretrained_path", "pretrained_backbone_path"):
        if card.get(key) and Path(card[key]).exists():
            return Path(card[key])
    name = card.get("pretrained_backbone")
    if name and (REPO_ROOT / "models" / name / "backbone.pt").exists():
        return REPO_ROOT / "models" / name
    return None


def retrain(
    store: Store,
    config: CampaignConfig,
    current: LoadedModel,
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> LoadedModel:
    """Fine-tune a new ensemble on the campaign's data and make it the current version.

    ``cheap_barriers`` (hop id -> :class:`alem.hops.fidelity.CheapBarrier`): the paired cheap
    labels of the training hops for the parent's fidelity-aware add-on (None: the shipped MACE-MP
    pairs only)."""
    from alem.training.finetune import FinetuneConfig, train_ensemble

    card = json.loads((current.path / "model_card.json").read_text())
    recipe = FinetuneConfig(**card.get("finetune_config", {}))
    if config.model.epochs:
        recipe = FinetuneConfig(**{**recipe.__dict__, "epochs": config.model.epochs})
    hops = training_hops(store, current.path)
    out_dir = config.state_dir / MODELS_DIRNAME / time.strftime("v%Y%m%d-%H%M%S", time.gmtime())
    suffix = 1
    while out_dir.exists():
        out_dir = out_dir.with_name(f"{out_dir.name.split('.')[0]}.{suffix}")
        suffix += 1
    digest = dataset_hash(hops)
    n_results = sum(1 for h in hops if (h.provenance.source or "").startswith("alem:"))
    calibration = card.get("calibration", {}).get("sigma_scale")
    path = train_ensemble(
        hops,
        out_dir,
        n_members=config.model.n_members,
        config=recipe,
        pretrained_path=None if recipe.freeze == "scratch" else pretrained_backbone_of(card),
        calibration_scale=calibration,
        progress=progress,
        extra_card={
            "dataset_hash": digest,
            "campaign_results": n_results,
            "parent_model": str(current.path),
            # the parent's calibration factor and stacking weights are reused: no cross-validation
            # runs inside the loop
            "calibration": {**card.get("calibration", {"sigma_scale": 1.0}), "inherited_from": str(current.path)},
        },
        stack=card.get("stack"),
        fidelity_aware=card.get("fidelity_aware"),
        cheap_barriers=cheap_barriers,
    )
    ensemble = load_ensemble(path)
    version_id = store.add_model_version(path, store_card(ensemble.card), digest, len(hops))
    store.log_event(
        "retrained",
        f"model version {version_id} fine-tuned on {len(hops)} hops ({n_results} from this campaign)",
        payload={"path": str(path), "parent": current.version_id},
    )
    return LoadedModel(version_id, path, ensemble)
