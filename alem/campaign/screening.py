"""The screening stage: cheap NEBs (an MLIP) on candidates before any DFT hour is spent.

With ``[screening] fidelity = "mlip:CHGNet"`` every round of the loop (and ``alem screen``):

1. settles screening jobs: results recorded with their fidelity, failures noted (no retry: a failed
   cheap NEB is simply not a cheap label);
2. submits cheap NEBs for candidates WITHOUT approval, within the stage's own budget
   (``max_running_jobs``, ``max_jobs_per_day``), most uncertain first (``order = "uncertain"``,
   σ of the current model's recorded predictions) or in pool order (``"all"``), each (hop,
   fidelity) at most once.

Screening never moves a hop through its life cycle and never touches the DFT budget: the target
track (proposal, approval, submission) is unchanged. Cheap barriers reach the DFT model only as
``cheap_barriers`` of a fidelity-aware ensemble of the same potential, never as labels (unless
``[model] train_fidelities`` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alem.acquisition.screening import screening_order
from alem.backends.base import Backend, QueueState
from alem.campaign.budget import job_budget, record_cost
from alem.errors import AlemError
from alem.hops.fidelity import parse_fidelity
from alem.neb.schemas import NebOutcome
from alem.store import HopState, JobRecord, JobStatus, Store
from alem.store.fidelity_columns import SCREENING_STAGE

if TYPE_CHECKING:
    from alem.config import CampaignConfig

#: Hops a screening NEB may run on: not yet labelled and not rejected.
SCREENABLE_STATES = (HopState.CANDIDATE, HopState.PROPOSED)


class ScreeningConfigError(AlemError, ValueError):
    """``[screening]`` names a backend that cannot produce its fidelity."""


@dataclass
class ScreeningReport:
    submitted: list[tuple[str, str]] = field(default_factory=list)  # (hop_id, external_id)
    screened: list[tuple[str, float | None]] = field(default_factory=list)  # (hop_id, barrier or None)
    failed: list[str] = field(default_factory=list)
    waiting: int = 0  # screenable hops left for a later round
    limit: str | None = None
    messages: list[str] = field(default_factory=list)


def screening_enabled(config) -> bool:
    return bool(config.screening.fidelity)


def screening_campaign_config(config: CampaignConfig) -> CampaignConfig:
    """The campaign's config with ``[screening.backend]`` as its backend: how the screening
    backend is built and checked (``alem doctor``), exactly like the campaign's own."""
    screening_config = config.model_copy(update={"backend": config.screening.backend})
    screening_config.campaign_dir = config.campaign_dir
    return screening_config


def make_screening_backend(config: CampaignConfig) -> Backend:
    """The backend of ``[screening.backend]`` (built like the campaign's own backend)."""
    from alem.backends import make_backend

    backend = make_backend(screening_campaign_config(config))
    declared = backend.fidelity
    wanted = parse_fidelity(config.screening.fidelity)
    if declared is not None and declared.lower() != wanted.lower():
        raise ScreeningConfigError(
            f"{config.config_path}: [screening] fidelity is {wanted} but [screening.backend] "
            f"({config.screening.backend.kind}) produces {declared} barriers; make them agree"
        )
    return backend


def _settle(store: Store, backend: Backend, job: JobRecord, state: QueueState, report: ScreeningReport) -> None:
    label = f"screening job {job.id} (hop {job.hop_id}, {job.external_id})"
    if state in (QueueState.QUEUED, QueueState.RUNNING):
        if job.state.value != state.value:
            store.update_job_state(job.id, state.value)
        return
    record_cost(store, backend, job)
    if state is QueueState.COMPLETED:
        try:
            outcome: NebOutcome = backend.outcome(job.external_id or "")
        except Exception as exc:  # unreadable output: no cheap label, say why
            store.fail_screening_job(job.id, f"output unreadable ({type(exc).__name__}: {exc})")
            report.failed.append(job.hop_id)
            report.messages.append(f"{label}: output unreadable ({exc})")
            return
        result = store.record_screening_result(job.id, outcome)
        report.screened.append((job.hop_id, result.barrier_ev if result.usable else None))
        said = f"{result.barrier_ev:.3f} eV" if result.usable else f"not usable ({result.failure_reason})"
        report.messages.append(f"{label} screened at {result.fidelity}: {said}")
        return
    error = "the backend has no record of it" if state is QueueState.LOST else "the backend reports it failed"
    store.fail_screening_job(job.id, error, JobStatus.LOST if state is QueueState.LOST else JobStatus.FAILED)
    report.failed.append(job.hop_id)
    report.messages.append(f"{label} {state.value}: {error}; the hop is not screened again")


def settle_screening_jobs(store: Store, backend: Backend, report: ScreeningReport, stale_after_s: float) -> None:
    """Resolve unsubmitted screening rows, then apply the backend's states to live ones."""
    cutoff = store.now() - stale_after_s
    for job in store.jobs(state=JobStatus.CREATED, stage=SCREENING_STAGE):
        if job.backend != backend.name or job.created_at > cutoff:
            continue
        found = backend.find_by_key(job.job_key)
        if found:
            store.mark_screening_submitted(job.id, found)
        else:
            store.abandon_job(job.id, f"backend {backend.name} has no submission with key {job.job_key}")
    live = [j for j in store.jobs(live=True, stage=SCREENING_STAGE) if j.external_id and j.backend == backend.name]
    states = backend.poll([j.external_id for j in live]) if live else {}
    for job in sorted(live, key=lambda j: j.id):
        _settle(store, backend, job, states.get(job.external_id, QueueState.LOST), report)


def screening_room(store: Store, screening) -> tuple[int, str]:
    """How many screening NEBs may start now, and the limit that binds."""
    budget = job_budget(store, screening, SCREENING_STAGE)
    if budget.free_running <= budget.free_today:
        return max(budget.free_running, 0), f"at most {screening.max_running_jobs} screening NEBs in flight ([screening] max_running_jobs)"
    return max(budget.free_today, 0), f"at most {screening.max_jobs_per_day} screening NEBs in 24 h ([screening] max_jobs_per_day)"


def screening_queue(store: Store, fidelity: str, order: str) -> list[str]:
    """Hops still to screen at ``fidelity``, in the order they are screened."""
    done = store.screened_hop_ids(fidelity)
    busy = {j.hop_id for j in store.jobs(live=True, stage=SCREENING_STAGE)}
    pool = [r.hop_id for r in store.hops(state=list(SCREENABLE_STATES)) if r.hop_id not in done | busy]
    sigma = {hop_id: p.std_ev for hop_id, p in store.predictions().items()}  # the current model's
    return screening_order(pool, sigma, order=order)


def screen_candidates(store: Store, backend: Backend, config, *, stale_after_s: float = 60.0) -> ScreeningReport:
    """One screening round (see module doc). Safe to repeat; never screens a (hop, fidelity) twice."""
    screening = config.screening
    fidelity = parse_fidelity(screening.fidelity)
    report = ScreeningReport()
    settle_screening_jobs(store, backend, report, stale_after_s)
    queue = screening_queue(store, fidelity, screening.order)
    room, limit = screening_room(store, screening)
    for position, hop_id in enumerate(queue):
        if position >= room:
            report.waiting, report.limit = len(queue) - position, limit
            break
        job = store.begin_screening(hop_id, backend.name, fidelity)
        hop = store.load_hops([hop_id])[0]
        try:
            external_id = backend.submit(hop, job.job_key)
        except Exception as exc:  # leave the hop for a later round, say why
            found = backend.find_by_key(job.job_key)
            if not found:
                store.abandon_job(job.id, f"screening submission failed: {type(exc).__name__}: {exc}")
                report.messages.append(f"could not screen hop {hop_id} on {backend.name}: {exc}")
                report.waiting = len(queue) - position
                break
            external_id = found
        store.mark_screening_submitted(job.id, external_id)
        report.submitted.append((hop_id, external_id))
    if report.submitted:
        report.messages.append(
            f"screening {len(report.submitted)} hops at {fidelity} without approval: "
            + ", ".join(h for h, _ in report.submitted)
        )
    if report.waiting and report.limit:
        report.messages.append(f"{report.waiting} hops wait for screening: {report.limit}")
    return report


def settle_screening(store: Store, config, stale_after_s: float = 60.0) -> list[str]:
    """``alem reconcile``'s part for the screening stage: settle its jobs, submit nothing new.
    Returns what changed, in plain sentences (nothing when screening is off)."""
    if not screening_enabled(config):
        return []
    report = ScreeningReport()
    settle_screening_jobs(store, make_screening_backend(config), report, stale_after_s)
    return report.messages
