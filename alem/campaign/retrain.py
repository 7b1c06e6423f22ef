"""The campaign's model versions: the first one registered from the config, new ones fine-tuned
on the campaign's results.

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
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alem.hops.hop import Hop

MODELS_DIRNAME = "models"
#: Card keys too bulky for the store (kept in the model directory's card).
_BULKY_CARD_KEYS = ("training_hop_ids",)


class ModelLoadError(RuntimeError):
    """A model directory exists but its ensemble cannot be loaded (e.g. another alem version)."""


def load_ensemble(path: Path):
    """``Ensemble.load`` with one clear message for a directory that is not loadable."""
    from alem.ensemble import Ensemble, ModelNotFoundError

    try:
        return Ensemble.load(path)
    except ModelNotFoundError:
        raise
    except Exception as exc:  # torch and pydantic raise many types for a mismatched checkpoint
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelLoadError(
            f"{path}: cannot load the ensemble ({type(exc).__name__}: {first_line}); was it trained by "
            "another version of alem? Point [model] path at a compatible ensemble or retrain it."
        ) from exc


@dataclass(frozen=True)
class LoadedModel:
    version_id: int
    path: Path
    ensemble: object  # alem.ensemble.Ensemble (imported lazily: torch is heavy)


def configured_model_path(config) -> Path:
    from alem.ensemble import default_ensemble_path

    return config.resolve(config.model.path) if config.model.path else default_ensemble_path()


def store_card(card: dict) -> dict:
    return {key: value for key, value in card.items() if key not in _BULKY_CARD_KEYS}


def dataset_hash(hops: Sequence[Hop]) -> str:
    rows = sorted(f"{h.hop_id}:{h.barrier_ev:.6f}" for h in hops if h.barrier_ev is not None)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def ensure_model_version(store, config) -> int:
    """Id of the current model version; registers the configured ensemble when there is none."""
    current = store.current_model()
    if current is not None:
        return current.id
    path = configured_model_path(config)
    card = load_ensemble(path).card
    return store.add_model_version(path, store_card(card), card.get("dataset_hash"), card.get("n_training_hops"))


def load_current_model(store, config) -> LoadedModel:
    version_id = ensure_model_version(store, config)
    path = Path(store.model_version(version_id).path)
    return LoadedModel(version_id, path, load_ensemble(path))


def new_results_since_current(store, fidelities: Sequence[str] | None = None) -> int:
    """Usable results (of the selected fidelities; None: all) recorded after the current model
    version was registered."""
    from alem.campaign import usable_results_since

    current = store.current_model()
    return usable_results_since(store, current.created_at if current else 0.0, fidelities)


def retraining_due(store, config) -> bool:
    return new_results_since_current(store, config.model.train_fidelities) >= config.model.retrain_after_results


def training_hops(store, model_path: Path, fidelities: Sequence[str] | None = ("dft",)) -> list[Hop]:
    """The current model's training hops (from alem's dataset, by id) plus the campaign's results
    of the selected fidelities (None: all)."""
    from alem.campaign import result_hops
    from alem.hops.io import load_training_hops

    card = json.loads((model_path / "model_card.json").read_text())
    base_ids = card.get("training_hop_ids")
    base = load_training_hops()
    if base_ids is not None:
        wanted = set(base_ids)
        base = [h for h in base if h.hop_id in wanted]
    results = result_hops(store, fidelities)
    result_ids = {h.hop_id for h in results}
    return [h for h in base if h.hop_id not in result_ids] + results


def pretrained_backbone_of(card: dict) -> Path | None:
    """The pre-trained backbone a model was fine-tuned from (None: the trainer's default)."""
    from alem import REPO_ROOT

    for key in ("pretrained_path", "pretrained_backbone_path"):
        if card.get(key) and Path(card[key]).exists():
            return Path(card[key])
    name = card.get("pretrained_backbone")
    if name and (REPO_ROOT / "models" / name / "backbone.pt").exists():
        return REPO_ROOT / "models" / name
    return None


def _cheap_barrier_argument(store, current: LoadedModel, hops: Sequence[Hop], train) -> dict:
    """``{"cheap_barriers": ...}`` for a fidelity-aware parent whose trainer takes them, else ``{}``
    (a trainer without the argument, or a parent without a cheap fidelity, trains as before)."""
    import inspect

    from alem.campaign.fidelity_labels import model_cheap_fidelity, training_cheap_barriers

    cheap_fidelity = model_cheap_fidelity(current.ensemble)
    if cheap_fidelity is None or "cheap_barriers" not in inspect.signature(train).parameters:
        return {}
    return {"cheap_barriers": training_cheap_barriers(store, cheap_fidelity, [h.hop_id for h in hops])}


def retrain(store, config, current: LoadedModel, progress: bool = False) -> LoadedModel:
    """Fine-tune a new ensemble on the campaign's data and make it the current version."""
    from alem.training.finetune import FinetuneConfig, train_ensemble

    card = json.loads((current.path / "model_card.json").read_text())
    recipe = FinetuneConfig(**card.get("finetune_config", {}))
    if config.model.epochs:
        recipe = FinetuneConfig(**{**recipe.__dict__, "epochs": config.model.epochs})
    hops = training_hops(store, current.path, config.model.train_fidelities)
    out_dir = config.state_dir / MODELS_DIRNAME / time.strftime("v%Y%m%d-%H%M%S", time.gmtime())
    suffix = 1
    while out_dir.exists():
        out_dir = out_dir.with_name(f"{out_dir.name.split('.')[0]}.{suffix}")
        suffix += 1
    digest = dataset_hash(hops)
    n_results = sum(1 for h in hops if (h.provenance.source or "").startswith("alem:"))
    fidelities = sorted({h.provenance.fidelity or "unknown" for h in hops if (h.provenance.source or "").startswith("alem:")})
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
            "train_fidelities": list(config.model.train_fidelities),
            "campaign_result_fidelities": fidelities,
            "parent_model": str(current.path),
            # the parent's calibration factor and stacking weights are reused: no cross-validation
            # runs inside the loop
            "calibration": {**card.get("calibration", {"sigma_scale": 1.0}), "inherited_from": str(current.path)},
        },
        stack=card.get("stack"),
        **_cheap_barrier_argument(store, current, hops, train_ensemble),
    )
    ensemble = load_ensemble(path)
    version_id = store.add_model_version(path, store_card(ensemble.card), digest, len(hops))
    store.log_event(
        "retrained",
        f"model version {version_id} fine-tuned on {len(hops)} hops ({n_results} from this campaign, "
        f"fidelities {', '.join(config.model.train_fidelities)})",
        payload={"path": str(path), "parent": current.version_id},
    )
    return LoadedModel(version_id, path, ensemble)
