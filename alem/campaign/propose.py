"""Scoring the candidate pool with the current model and recording a proposal batch.

The pool is every hop still waiting for a decision (``candidate``) plus the hops whose NEB is
already coming (``proposed``, ``approved``, ``submitted``): the latter are BoTorch pending points
the new batch is conditioned on, and are never proposed again. Predictions of the whole pool are
recorded for the model version (so ``alem show`` and the report see them).

``cheap_barriers`` (hop id -> :class:`~alem.hops.fidelity.CheapBarrier`, the screening stage's
MLIP barriers) go to a fidelity-aware ensemble's ``predict``; each batch records the campaign's
remaining promise (:mod:`alem.campaign.promise`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alem.hops.fidelity import CheapBarrier
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

from alem.acquisition import PredictionTable, Selection, SelectionRequest, select_batch
from alem.store import HopRecord, HopState, Proposal, ProposalInput

PENDING_STATES = (HopState.PROPOSED, HopState.APPROVED, HopState.SUBMITTED)


@dataclass
class ProposalOutcome:
    batch_id: str | None
    proposals: list[Proposal]
    n_candidates: int
    selections: list[Selection]


def predict_pool(
    store,
    model,
    records: Sequence[HopRecord],
    progress: bool = False,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> PredictionTable:
    """Predict ``records`` with ``model`` (a ``LoadedModel``) and record the predictions."""
    hop_ids = [r.hop_id for r in records]
    hops = store.load_hops(hop_ids)
    extra = {"cheap_barriers": cheap_barriers} if cheap_barriers else {}
    prediction = model.ensemble.predict(hops, progress=progress, **extra)
    store.record_predictions(model.version_id, hop_ids, prediction.mean_ev, prediction.std_ev, prediction.prob_good)
    return PredictionTable.from_prediction(hop_ids, prediction)


def score_unscored_candidates(
    store, model, progress: bool = False, cheap_barriers: Mapping[str, CheapBarrier] | None = None
) -> int:
    """Predict candidates the current model has not scored yet; returns how many were scored."""
    scored = store.predictions(model.version_id)
    missing = [r for r in store.hops(state=HopState.CANDIDATE) if r.hop_id not in scored]
    if missing:
        predict_pool(store, model, missing, progress, cheap_barriers)
    return len(missing)


def propose_batch(
    store,
    model,
    acquisition,
    strategy: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    *,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    good_barrier_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV,
    cost_fields: Mapping[str, object] | None = None,
) -> ProposalOutcome:
    """Choose and record one batch (``acquisition`` is the campaign's ``[acquisition]`` section).

    ``cost_fields``: extra :class:`SelectionRequest` fields of the cost-aware choice
    (:func:`alem.campaign.neb_costs.cost_request_fields`).
    """
    from alem.campaign.promise import record_round

    strategy = strategy or acquisition.strategy
    batch_size = batch_size or acquisition.batch_size
    candidates = store.hops(state=HopState.CANDIDATE)
    if not candidates:
        return ProposalOutcome(None, [], 0, [])
    pending = store.hops(state=list(PENDING_STATES))
    pool = candidates + pending
    table = predict_pool(store, model, pool, progress, cheap_barriers)
    request = SelectionRequest(
        strategy=strategy,
        batch_size=batch_size,
        pending=[r.hop_id for r in pending],
        max_per_host=acquisition.max_per_host,
        cost_weight=acquisition.cost_weight,
        host_of={r.hop_id: str(r.host_id) for r in pool if r.host_id is not None},
        n_sites_of={r.hop_id: r.n_sites for r in pool},
        **dict(cost_fields or {}),
    )
    selections = select_batch(table, request)
    if not selections:
        record_round(store, model.version_id, None, [], good_barrier_ev)
        return ProposalOutcome(None, [], len(candidates), [])
    batch_id = store.new_batch_id()
    items = [ProposalInput(s.hop_id, s.score, s.mean_ev, s.std_ev) for s in selections]
    proposals = store.add_proposals(batch_id, strategy, items, model.version_id)
    record_round(store, model.version_id, batch_id, [s.score for s in selections], good_barrier_ev)
    return ProposalOutcome(batch_id, proposals, len(candidates), selections)
