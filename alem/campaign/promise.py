"""The campaign's remaining promise: how many good hops the pool still holds, and how much the
acquisition still finds worth doing.

* expected good hops = Σ P(E_m < threshold) over the unlabelled pool (candidate, proposed,
  approved, submitted), each hop's threshold that of its working ion (``[loop] good_barrier_ev``,
  ``good_barrier_ev_by_ion``), with P from the current model's recorded predictions as a normal
  N(μ, σ²) — the same normal the ensemble's ``prob_good`` uses;
* best acquisition value = the largest score of the last proposal batch.

Each proposal round records both (store table ``campaign_rounds``), so ``alem status`` and the
report show their trend and the loop's stop rule (:mod:`alem.campaign.stop_rule`) can read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from alem.acquisition.screening import expected_good_hops
from alem.store import CampaignRound, HopState, Store

UNLABELLED_STATES = (HopState.CANDIDATE, HopState.PROPOSED, HopState.APPROVED, HopState.SUBMITTED)


@dataclass(frozen=True)
class Promise:
    expected_good: float
    n_pool: int  # unlabelled hops with a prediction of the model
    n_unscored: int  # unlabelled hops the model has not predicted yet (not counted)
    threshold_ev: float


def remaining_promise(
    store: Store,
    threshold_ev: float,
    model_version_id: int | None = None,
    threshold_ev_by_ion: Mapping[str, float] | None = None,
) -> Promise:
    """Expected number of still-unlabelled good hops under the model's recorded predictions; a
    hop's threshold is its working ion's in ``threshold_ev_by_ion``, else ``threshold_ev``."""
    if model_version_id is None:
        current = store.current_model()
        if current is None:
            counts = store.hop_counts()
            return Promise(0.0, 0, sum(counts[s.value] for s in UNLABELLED_STATES), threshold_ev)
        model_version_id = current.id
    rows, n_unscored = store.predicted_pool(model_version_id, [s.value for s in UNLABELLED_STATES])
    if not rows:
        return Promise(0.0, 0, n_unscored, threshold_ev)
    ions = np.array([r[0] for r in rows])
    mean_ev = np.array([r[1] for r in rows], dtype=float)
    std_ev = np.array([r[2] for r in rows], dtype=float)
    by_ion = threshold_ev_by_ion or {}
    threshold = np.array([by_ion.get(ion, threshold_ev) for ion in ions.tolist()]) if by_ion else threshold_ev
    return Promise(expected_good_hops(mean_ev, std_ev, threshold), len(rows), n_unscored, threshold_ev)


def record_round(
    store: Store,
    model_version_id: int | None,
    batch_id: str | None,
    scores: Sequence[float],
    threshold_ev: float,
    threshold_ev_by_ion: Mapping[str, float] | None = None,
) -> CampaignRound:
    """Record this proposal round's promise (after its predictions were stored)."""
    promise = remaining_promise(store, threshold_ev, model_version_id, threshold_ev_by_ion)
    best = max(scores) if scores else None
    return store.record_campaign_round(model_version_id, batch_id, promise.n_pool, threshold_ev, promise.expected_good, best)


def promise_summary(
    store: Store, threshold_ev: float, last_rounds: int = 8, threshold_ev_by_ion: Mapping[str, float] | None = None
) -> dict:
    """What `alem status` and the report show: now, and the trend over the last rounds."""
    current = store.current_model()
    now = remaining_promise(store, threshold_ev, current.id, threshold_ev_by_ion) if current else None
    rounds = store.campaign_rounds(limit=last_rounds)
    return {
        "threshold_ev": threshold_ev,
        "expected_good_now": None if now is None else round(now.expected_good, 3),
        "unlabelled_scored": None if now is None else now.n_pool,
        "last_best_acquisition": rounds[-1].best_acquisition if rounds else None,
        "trend": [
            {"round": r.id, "expected_good": round(r.expected_good, 3), "best_acquisition": r.best_acquisition,
             "model_version": r.model_version_id}
            for r in rounds
        ],
    }
