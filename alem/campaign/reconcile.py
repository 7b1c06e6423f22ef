"""Bring the store in line with what the backend knows (``alem reconcile``, every loop start).

For every live job of the backend: a COMPLETED job's outcome is recorded (hop done, or failed
with the reason); a FAILED or LOST job is recorded with its error and the hop is retried while
``backend.max_attempts`` allows, else failed; QUEUED/RUNNING progress is noted. Job rows that were
created but never got an external id are resolved through ``backend.find_by_key``. Every change
is one store transaction and one plain sentence in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alem.backends.base import Backend, QueueState
from alem.campaign.submit import SubmitReport, resolve_unsubmitted, submit_approved
from alem.config import CampaignConfig
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


def _settle(store: Store, backend: Backend, config: CampaignConfig, job: JobRecord, state: QueueState) -> str | None:
    """Apply one polled state to one job; the sentence describing the change (None: unchanged)."""
    label = f"job {job.id} (hop {job.hop_id}, {job.external_id})"
    max_attempts = config.backend.max_attempts
    if state in (QueueState.QUEUED, QueueState.RUNNING):
        if job.state.value == state.value:
            return None
        store.update_job_state(job.id, state.value)
        return f"{label} is {state.value}"
    if state is QueueState.COMPLETED:
        try:
            outcome: NebOutcome = backend.outcome(job.external_id or "")
        except Exception as exc:
            error = f"finished, but its output could not be read ({type(exc).__name__}: {exc})"
            hop_state = store.fail_job(job.id, error, max_attempts, state=JobStatus.FAILED)
            return f"{label} {error}; " + _next_step(job, hop_state, max_attempts)
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
) -> ReconcileReport:
    """Compare live jobs with ``backend.poll`` and repair the store; with ``resubmit``, submit the
    retries at once (within the approval limits)."""
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
        if state is QueueState.COMPLETED:
            report.completed += 1
        elif state in (QueueState.FAILED, QueueState.LOST):
            report.failed += 1
            if store.hop(job.hop_id).state is HopState.APPROVED:
                report.retried += 1
                retry_hops.append(job.hop_id)
    if resubmit and retry_hops:
        report.resubmitted = submit_approved(store, backend, config, stale_after_s=stale_after_s, only_hops=retry_hops)
        report.repairs.extend(report.resubmitted.messages)
    report.problems.extend(store.integrity_check(stale_after_s=max(stale_after_s, 600.0)))
    return report
