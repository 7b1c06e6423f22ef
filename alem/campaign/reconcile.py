"""Bring the store in line with what the backend knows (``alem reconcile``, every loop start).

For every live job of the backend: a COMPLETED job's outcome is recorded (hop done, or failed
with the reason); a FAILED or LOST job (killed at its walltime, on a failed node, by scancel) is
recorded with its error and the hop is retried while ``backend.max_attempts`` allows, else
failed; QUEUED/RUNNING progress is noted. A COMPLETED NEB that ran out of optimiser steps (NSW)
unconverged is continued like a killed one when its images still moved (more than
``alem.neb.restart.MIN_PROGRESS_A``) and attempts remain; without progress, or on the last
attempt, its result is recorded as failed with that reason. The backend's next submission of a
retried hop continues the previous attempt (finished endpoints reused, images from where they
stopped). Every ended job's core-hours go into the store's ledger, once. Job rows that were
created but never got an external id are resolved through ``backend.find_by_key``. Every change
is one store transaction and one plain sentence in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alem.backends.base import Backend, QueueState
from alem.campaign.budget import record_cost
from alem.campaign.submit import SubmitReport, resolve_unsubmitted, submit_approved
from alem.config import CampaignConfig
from alem.neb.restart import MIN_PROGRESS_A, unconverged_progress_a
from alem.neb.schemas import NebOutcome
from alem.store import HopState, JobRecord, JobStatus, Store


@dataclass
class ReconcileReport:
    repairs: list[str] = field(default_factory=list)  # what changed in the store, in plain words
    problems: list[str] = field(default_factory=list)  # what is still wrong (integrity check)
    checked: int = 0  # live jobs compared with the backend
    completed: int = 0
    failed: int = 0
    retried: int = 0
    resubmitted: SubmitReport | None = None


def _failure_reason(backend: Backend, job: JobRecord) -> str:
    try:
        outcome = backend.outcome(job.external_id or "")
    except Exception as exc:  # the backend may have nothing to say about a failed job
        return f"backend reports the job failed (no details: {type(exc).__name__}: {exc})"
    return outcome.failure_reason or "backend reports the job failed"


def _unconverged(store: Store, job: JobRecord, outcome: NebOutcome, max_attempts: int) -> tuple[str | None, NebOutcome]:
    """For an unconverged NEB: the reason to continue it in another attempt (None: record it), and
    the outcome to record otherwise, its failure reason saying why it was not continued."""
    moved = unconverged_progress_a(outcome)
    if moved is None:
        return None, outcome
    used = store.attempts_since_approval(job.hop_id)
    if moved >= MIN_PROGRESS_A and used < max_attempts:
        return (f"NEB stopped unconverged at its step limit, images still moving ({moved:.3f} Å this attempt): "
                "continuing from its last images"), outcome
    why = (f"stopped at its step limit without progress (atoms moved at most {moved:.3f} Å, under {MIN_PROGRESS_A} Å)"
           if moved < MIN_PROGRESS_A else f"still unconverged after {used} of {max_attempts} attempts")
    return None, outcome.model_copy(update={"failure_reason": f"{outcome.failure_reason}; {why}"})


def _settle(store: Store, backend: Backend, config: CampaignConfig, job: JobRecord, state: QueueState) -> str | None:
    """Apply one polled state to one job; the sentence describing the change (None: unchanged)."""
    label = f"job {job.id} (hop {job.hop_id}, {job.external_id})"
    max_attempts = config.backend.max_attempts
    if state in (QueueState.QUEUED, QueueState.RUNNING):
        if job.state.value == state.value:
            return None
        store.update_job_state(job.id, state.value)
        return f"{label} is {state.value}"
    record_cost(store, backend, job)
    if state is QueueState.COMPLETED:
        try:
            outcome: NebOutcome = backend.outcome(job.external_id or "")
        except Exception as exc:
            error = f"finished, but its output could not be read ({type(exc).__name__}: {exc})"
            hop_state = store.fail_job(job.id, error, max_attempts, state=JobStatus.FAILED)
            return f"{label} {error}; " + _next_step(job, hop_state, max_attempts)
        continuation, outcome = _unconverged(store, job, outcome, max_attempts)
        if continuation is not None:
            hop_state = store.fail_job(job.id, continuation, max_attempts, state=JobStatus.FAILED)
            return f"{label} {continuation}; " + _next_step(job, hop_state, max_attempts)
        result = store.record_result(job.id, outcome)
        if result.usable:
            return f"{label} completed: barrier {result.barrier_ev:.3f} eV ({result.method}); hop done"
        return f"{label} completed but is not usable: {result.failure_reason}; hop failed"
    if state is QueueState.LOST:
        error = f"backend {backend.name} has no record of {job.external_id} (lost run, deleted workflow or killed worker)"
        hop_state = store.fail_job(job.id, error, max_attempts, state=JobStatus.LOST)
        return f"{label} lost: {error}; " + _next_step(job, hop_state, max_attempts)
    error = _failure_reason(backend, job)
    hop_state = store.fail_job(job.id, error, max_attempts, state=JobStatus.FAILED)
    return f"{label} failed: {error}; " + _next_step(job, hop_state, max_attempts)


def _next_step(job: JobRecord, hop_state: HopState, max_attempts: int) -> str:
    if hop_state is HopState.APPROVED:
        return f"hop {job.hop_id} will be retried (max {max_attempts} attempts)"
    return f"hop {job.hop_id} failed after {max_attempts} attempts"


def reconcile(
    store: Store,
    backend: Backend,
    config: CampaignConfig,
    *,
    stale_after_s: float = 60.0,
    resubmit: bool = True,
    sqlite_pages: bool = True,
) -> ReconcileReport:
    """Compare live jobs with ``backend.poll`` and repair the store; with ``resubmit``, submit the
    retries at once (within the approval limits). The store's invariants are checked each time,
    SQLite's page-level integrity check only with ``sqlite_pages``."""
    report = ReconcileReport()
    unsubmitted = SubmitReport()
    resolve_unsubmitted(store, backend, stale_after_s, unsubmitted)
    report.repairs.extend(unsubmitted.messages)
    live = [j for j in store.jobs(live=True, stage="target") if j.external_id]
    foreign = [j for j in live if j.backend != backend.name]
    for job in foreign:
        report.problems.append(
            f"job {job.id} (hop {job.hop_id}) runs on backend {job.backend}, not {backend.name}; it is not checked"
        )
    mine = [j for j in live if j.backend == backend.name]
    report.checked = len(mine)
    states = backend.poll([j.external_id for j in mine]) if mine else {}
    retry_hops = []
    for job in sorted(mine, key=lambda j: j.id):
        state = states.get(job.external_id, QueueState.LOST)
        message = _settle(store, backend, config, job, state)
        if message is None:
            continue
        report.repairs.append(message)
        if state in (QueueState.QUEUED, QueueState.RUNNING):
            continue
        retried = store.hop(job.hop_id).state is HopState.APPROVED  # a failure, or an NEB to continue
        if state is QueueState.COMPLETED and not retried:
            report.completed += 1
        else:
            report.failed += state is not QueueState.COMPLETED
            if retried:
                report.retried += 1
                retry_hops.append(job.hop_id)
    if resubmit and retry_hops:
        report.resubmitted = submit_approved(store, backend, config, stale_after_s=stale_after_s, only_hops=retry_hops)
        report.repairs.extend(report.resubmitted.messages)
    report.problems.extend(store.integrity_check(stale_after_s=max(stale_after_s, 600.0), sqlite_pages=sqlite_pages))
    return report
