"""Proposing: choosing one batch of the candidate pool with the acquisition and recording it.

The pool is every hop still waiting for a decision (``candidate``) plus the hops whose NEB is
already coming (``proposed``, ``approved``, ``submitted``): the latter are BoTorch pending points
the new batch is conditioned on, and are never proposed again. Predictions of the whole pool are
recorded for the model version (so ``alem show`` and the report see them); the pool is predicted
in chunks (:func:`alem.campaign.score.predict_in_chunks`), or its rows are read from the host rows
the loop's scoring kept for the model version when they cover it (the same rows, already recorded).

``cheap_barriers`` (hop id -> :class:`~alem.hops.fidelity.CheapBarrier`, the screening stage's
MLIP barriers) go to a fidelity-aware ensemble's ``predict``; each batch records the campaign's
remaining promise (:mod:`alem.campaign.promise`).

:func:`propose` is the one proposal step: ``alem propose`` and the loop call it. It reads what a
DFT proposal needs from the campaign's settings (:class:`ProposalSettings`) and proposes one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alem.acquisition import Selection, SelectionRequest, select_batch
from alem.campaign.budget import approved_waiting
from alem.campaign.score import pool_table
from alem.hops.fidelity import CheapBarrier
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV
from alem.store import HopState, Proposal, ProposalInput

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.config import AcquisitionSection, CampaignConfig
    from alem.store import Store

PENDING_STATES = (HopState.PROPOSED, HopState.APPROVED, HopState.SUBMITTED)


def proposal_needed(store: Store, acquisition: AcquisitionSection) -> bool:
    """The loop's rule: propose when no proposal waits for a decision, fewer than
    ``min_approved_queue`` approved hops wait for submission, and candidates are left."""
    if store.hops(state=HopState.PROPOSED):
        return False  # a batch is waiting for a decision
    waiting = len(approved_waiting(store))
    return waiting < acquisition.min_approved_queue and bool(store.hops(state=HopState.CANDIDATE))


@dataclass
class ProposalOutcome:
    batch_id: str | None
    proposals: list[Proposal]
    n_candidates: int
    selections: list[Selection]


@dataclass
class ProposalSettings:
    """What a proposal reads from the campaign beside the acquisition section."""

    #: The screening stage's cheap barriers by hop id, of the fidelity-aware model's potential only
    #: (None: none, or the model has no fidelity-aware part).
    cheap_barriers: Mapping[str, CheapBarrier] | None = None
    #: Good-barrier threshold of discover and of the promise recorded with each batch, eV.
    good_barrier_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV
    #: The threshold of hops of these working ions instead.
    good_barrier_ev_by_ion: Mapping[str, float] = field(default_factory=dict)
    #: Extra :class:`~alem.acquisition.SelectionRequest` fields of the cost-aware choice
    #: (:func:`alem.campaign.neb_costs.cost_request_fields`; empty: cost-blind).
    cost_fields: Mapping[str, object] = field(default_factory=dict)
    #: Why cheap barriers were left out (the model's and the screening stage's potentials differ).
    warning: str | None = None


def proposal_settings(store: Store, config: CampaignConfig, model: LoadedModel) -> ProposalSettings:
    """The :class:`ProposalSettings` of ``model`` under ``config``."""
    from alem.campaign.fidelity_labels import backend_fidelity, campaign_cheap_barriers
    from alem.campaign.neb_costs import backend_preset_or_none, cost_request_fields

    cheap, warning = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)
    cost_fields: dict = {}
    if config.costs.aware:  # the structures are read only when the costs are used
        records = store.hops(state=[HopState.CANDIDATE, *PENDING_STATES])
        hops = store.load_hops([r.hop_id for r in records])
        cost_fields = cost_request_fields(hops, backend_fidelity(config), config.costs, backend_preset_or_none(config))
    return ProposalSettings(
        cheap_barriers=cheap or None,
        good_barrier_ev=config.loop.good_barrier_ev,
        good_barrier_ev_by_ion=dict(config.loop.good_barrier_ev_by_ion),
        cost_fields=cost_fields,
        warning=warning,
    )


def propose(
    store: Store,
    config: CampaignConfig,
    model: LoadedModel,
    strategy: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    warn: Callable[[str], object] | None = None,
) -> ProposalOutcome:
    """The proposal step of ``alem propose`` and the loop: one batch chosen with the campaign's
    settings (``strategy`` and ``batch_size`` override its ``[acquisition]``); ``warn`` is told,
    before the choice, why cheap barriers were left out."""
    settings = proposal_settings(store, config, model)
    if settings.warning and warn is not None:
        warn(settings.warning)
    if (strategy or config.acquisition.strategy) == "materials":
        return _propose_materials(store, config, model, batch_size or config.acquisition.batch_size, settings)
    return propose_batch(
        store, model, config.acquisition, strategy, batch_size, progress,
        cheap_barriers=settings.cheap_barriers, good_barrier_ev=settings.good_barrier_ev,
        good_barrier_ev_by_ion=settings.good_barrier_ev_by_ion, cost_fields=settings.cost_fields, config=config,
    )


def propose_batch(
    store: Store,
    model: LoadedModel,
    acquisition: AcquisitionSection,
    strategy: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    *,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    good_barrier_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV,
    good_barrier_ev_by_ion: Mapping[str, float] | None = None,
    cost_fields: Mapping[str, object] | None = None,
    config: CampaignConfig | None = None,
) -> ProposalOutcome:
    """Choose and record one batch (``acquisition`` is the campaign's ``[acquisition]`` section).

    ``good_barrier_ev`` (``good_barrier_ev_by_ion`` for hops of those working ions): discover's
    threshold and the promise's. ``cost_fields``: extra :class:`SelectionRequest` fields of the cost-aware choice
    (:func:`alem.campaign.neb_costs.cost_request_fields`). ``config``: the campaign, whose kept
    host rows of the model version are read when they cover the pool (:func:`alem.campaign.score.pool_table`:
    the same rows as predicting the pool again, so the same batch); ``cheap_barriers`` must then be
    the campaign's.
    """
    strategy = strategy or acquisition.strategy
    batch_size = batch_size or acquisition.batch_size
    candidates = store.hops(state=HopState.CANDIDATE)
    if not candidates:
        return ProposalOutcome(None, [], 0, [])
    pending = store.hops(state=list(PENDING_STATES))
    pool = candidates + pending
    table = pool_table(store, model, pool, progress, cheap_barriers, config)
    by_ion = dict(good_barrier_ev_by_ion or {})
    request = SelectionRequest(
        strategy=strategy,
        batch_size=batch_size,
        pending=[r.hop_id for r in pending],
        max_per_host=acquisition.max_per_host,
        cost_weight=acquisition.cost_weight,
        host_of={r.hop_id: str(r.host_id) for r in pool if r.host_id is not None},
        n_sites_of={r.hop_id: r.n_sites for r in pool},
        threshold_ev=good_barrier_ev,
        threshold_ev_of={r.hop_id: by_ion[r.working_ion] for r in pool if r.working_ion in by_ion},
        **dict(cost_fields or {}),
    )
    selections = select_batch(table, request)
    return _record_batch(store, model, strategy, selections, len(candidates), good_barrier_ev, by_ion)


def _record_batch(
    store: Store, model: LoadedModel, strategy: str, selections: list[Selection], n_candidates: int,
    good_barrier_ev: float, by_ion: Mapping[str, float],
) -> ProposalOutcome:
    """Record the chosen batch (none: only the round's promise) and say what was proposed."""
    from alem.campaign.promise import record_round

    if not selections:
        record_round(store, model.version_id, None, [], good_barrier_ev, by_ion)
        return ProposalOutcome(None, [], n_candidates, [])
    batch_id = store.new_batch_id()
    items = [ProposalInput(s.hop_id, s.score, s.mean_ev, s.std_ev) for s in selections]
    proposals = store.add_proposals(batch_id, strategy, items, model.version_id)
    record_round(store, model.version_id, batch_id, [s.score for s in selections], good_barrier_ev, by_ion)
    return ProposalOutcome(batch_id, proposals, n_candidates, selections)


def _propose_materials(
    store: Store, config: CampaignConfig, model: LoadedModel, batch_size: int, settings: ProposalSettings
) -> ProposalOutcome:
    """One ``materials`` batch (:func:`alem.campaign.materials.materials_selections`), recorded like any batch."""
    from alem.campaign.materials import materials_selections

    candidates = store.hops(state=HopState.CANDIDATE)
    if not candidates:
        return ProposalOutcome(None, [], 0, [])
    pending = store.hops(state=list(PENDING_STATES))
    costs = settings.cost_fields.get("cost_core_hours_of")
    selections = materials_selections(store, config, model, candidates, pending, batch_size, costs)  # type: ignore[arg-type]
    return _record_batch(store, model, "materials", selections, len(candidates), settings.good_barrier_ev,
                         settings.good_barrier_ev_by_ion)
