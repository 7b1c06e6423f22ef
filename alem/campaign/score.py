"""Scoring the candidate pool: the current model's predictions, recorded per model version.

The loop scores candidates the current model has not predicted yet (so ``alem show``, the report
and the review page see a prediction for every candidate); proposing re-scores the whole pool it
chooses from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from alem.acquisition import PredictionTable
from alem.hops.fidelity import CheapBarrier
from alem.store import HopRecord, HopState

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.store import Store


def predict_pool(
    store: Store,
    model: LoadedModel,
    records: Sequence[HopRecord],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> PredictionTable:
    """Predict ``records`` with ``model`` and record the predictions; hops with a cheap barrier of
    the model's potential get the fidelity-aware prediction."""
    hop_ids = [r.hop_id for r in records]
    hops = store.load_hops(hop_ids)
    prediction = model.ensemble.predict(hops, progress=progress, cheap_barriers=cheap_barriers or None)
    store.record_predictions(model.version_id, hop_ids, prediction.mean_ev, prediction.std_ev, prediction.prob_good)
    return PredictionTable.from_prediction(hop_ids, prediction)


def score_unscored_candidates(
    store: Store, model: LoadedModel, progress: bool = False, cheap_barriers: Mapping[str, CheapBarrier] | None = None
) -> int:
    """Predict candidates the current model has not scored yet; returns how many were scored."""
    scored = store.predictions(model.version_id)
    missing = [r for r in store.hops(state=HopState.CANDIDATE) if r.hop_id not in scored]
    if missing:
        predict_pool(store, model, missing, progress, cheap_barriers)
    return len(missing)
