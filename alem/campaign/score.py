"""Scoring the candidate pool: the current model's predictions, recorded per model version.

The loop scores candidates the current model has not predicted yet (so ``alem show``, the report
and the review page see a prediction for every candidate); proposing re-scores the whole pool it
chooses from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alem.acquisition import PredictionTable
from alem.acquisition.model import POSTERIOR_DRAWS
from alem.hops.fidelity import CheapBarrier
from alem.inference.feature_cache import CACHE_FILENAME, FeatureCache
from alem.store import HopRecord, HopState

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.ensemble import Ensemble, EnsemblePrediction
    from alem.hops.hop import Hop
    from alem.store import Store

#: Seed of the posterior rows: the same model and pool give the same rows, so a proposal repeats.
POSTERIOR_SEED = 0


def feature_cache_of(store: Store) -> FeatureCache:
    """The campaign's hop-feature cache, beside its store (``state/feature_cache.sqlite``): graphs'
    host context, descriptors and backbone features survive restarts and are shared by every
    model version with the same frozen backbone, so a rescoring after a retraining recomputes only
    what the new version changed."""
    return FeatureCache(Path(store.path).parent / CACHE_FILENAME)


def posterior_table(
    ensemble: Ensemble,
    hops: Sequence[Hop],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    cache: FeatureCache | None = None,
) -> tuple[EnsemblePrediction, PredictionTable]:
    """The calibrated prediction of ``hops`` and the acquisition's table: its rows are
    :data:`~alem.acquisition.model.POSTERIOR_DRAWS` joint draws of the model over the hops
    (seeded: the same model and pool give the same rows)."""
    prediction, draws = ensemble.posterior(
        hops, POSTERIOR_DRAWS, seed=POSTERIOR_SEED, cheap_barriers=cheap_barriers or None, progress=progress, cache=cache
    )
    return prediction, PredictionTable.from_prediction([h.hop_id for h in hops], prediction, draws)


def predict_pool(
    store: Store,
    model: LoadedModel,
    records: Sequence[HopRecord],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> PredictionTable:
    """Predict ``records`` with ``model`` and record the predictions; hops with a cheap barrier of
    the model's potential get the fidelity-aware prediction (:func:`posterior_table`)."""
    hop_ids = [r.hop_id for r in records]
    with feature_cache_of(store) as cache:
        prediction, table = posterior_table(model.ensemble, store.load_hops(hop_ids), progress, cheap_barriers, cache)
    store.record_predictions(model.version_id, hop_ids, prediction.mean_ev, prediction.std_ev, prediction.prob_good)
    return table


def score_unscored_candidates(
    store: Store, model: LoadedModel, progress: bool = False, cheap_barriers: Mapping[str, CheapBarrier] | None = None
) -> int:
    """Predict candidates the current model has not scored yet; returns how many were scored."""
    scored = store.predictions(model.version_id)
    missing = [r for r in store.hops(state=HopState.CANDIDATE) if r.hop_id not in scored]
    if missing:
        predict_pool(store, model, missing, progress, cheap_barriers)
    return len(missing)
