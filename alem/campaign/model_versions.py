"""The campaign's model versions: the first one registered from the config, later ones made by
retraining (:mod:`alem.campaign.retrain`); loading the current one, and what its card says.

A version is a directory with an ensemble and its ``model_card.json``, registered in the store
(path, card without its bulky keys, dataset hash). A version's path never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alem.errors import AlemError

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.ensemble import Ensemble
    from alem.store import Store

#: Card keys too bulky for the store (kept in the model directory's card).
_BULKY_CARD_KEYS = ("training_hop_ids",)


class ModelLoadError(AlemError, RuntimeError):
    """A model directory exists but its ensemble cannot be loaded (e.g. another alem version)."""


def load_ensemble(path: Path) -> Ensemble:
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
    ensemble: Ensemble  # imported lazily: torch is heavy


def configured_model_path(config: CampaignConfig) -> Path:
    from alem.model_dir import default_ensemble_path

    return config.resolve(config.model.path) if config.model.path else default_ensemble_path()


def store_card(card: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in card.items() if key not in _BULKY_CARD_KEYS}


def ensure_model_version(store: Store, config: CampaignConfig) -> int:
    """Id of the current model version; registers the configured ensemble when there is none."""
    current = store.current_model()
    if current is not None:
        return current.id
    path = configured_model_path(config)
    card = load_ensemble(path).card
    return store.add_model_version(path, store_card(card), card.get("dataset_hash"), card.get("n_training_hops"))


def load_current_model(store: Store, config: CampaignConfig) -> LoadedModel:
    version_id = ensure_model_version(store, config)
    path = Path(store.model_version(version_id).path)
    return LoadedModel(version_id, path, load_ensemble(path))


def cv_mae_ev(card: dict[str, Any]) -> float | None:
    """Cross-validated MAE (eV) from a model card: the first ``mae``/``mae_ev`` number found under
    a key that mentions ``cv`` (e.g. ``card["cv"]["mae_ev"]`` or ``card["metrics"]["cv"]["mae"]``);
    alem's own cards name the shipped combination's metrics ``cv_metrics``, and that comes first."""
    shipped = card.get("cv_metrics")
    if isinstance(shipped, dict) and isinstance(shipped.get("mae_ev"), int | float):
        return float(shipped["mae_ev"])

    def search(node: Any, under_cv: bool) -> float | None:
        if not isinstance(node, dict):
            return None
        for key, value in node.items():
            key_l = str(key).lower()
            is_cv = under_cv or "cv" in key_l or "cross" in key_l
            if is_cv and key_l in ("mae", "mae_ev") and isinstance(value, int | float):
                return float(value)
            if isinstance(value, int | float) and ("cv" in key_l or "cross" in key_l) and "mae" in key_l:
                return float(value)
            found = search(value, is_cv)
            if found is not None:
                return found
        return None

    return search(card, False)
