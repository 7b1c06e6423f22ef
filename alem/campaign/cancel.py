"""Cancelling NEB jobs in flight: the store first, then the backend.

The store records the cancellation before the backend is asked, because the other order lets a
running ``alem loop`` see the killed job as failed or lost in between and submit the hop again.
A cancelled hop ends ``failed`` (no automatic retry); a person may approve it again. A cancelled
screening NEB (stage ``screening``) is recorded as failed and the hop stays where it is (screening
never moves a hop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from alem.backends.base import Backend, QueueState
from alem.store import HopState, JobStatus, Store, StoreError
from alem.store.fidelity_columns import SCREENING_STAGE, TARGET_STAGE


class CancelError(StoreError):
    """A hop that has no job alem can cancel now."""


@dataclass
class CancelReport:
    cancelled: list[tuple[str, str]] = field(default_factory=list)  # (hop id, external id)
    #: Jobs recorded as cancelled whose backend refused or failed to cancel (hop id, message).
    backend_errors: list[tuple[str, str]] = field(default_factory=list)


def cancel_jobs(
    store: Store, backend: Backend, hop_ids: Sequence[str], reason: str, stage: str = TARGET_STAGE
) -> CancelReport:
    """Cancel the live job of ``stage`` of each hop (all checked before any is touched);
    ``backend`` is the one that runs that stage."""
    jobs = []
    problems = []
    noun = "screening job" if stage == SCREENING_STAGE else "job"
    for hop_id in hop_ids:
        job = store.live_job(hop_id, stage)
        if job is None:
            problems.append(f"hop {hop_id} has no {noun} in flight (it is {store.hop(hop_id).state.value})")
        elif job.state is JobStatus.CREATED or not job.external_id:
            problems.append(f"hop {hop_id}: its job {job.id} is being submitted; run `alem reconcile` first")
        else:
            jobs.append(job)
    states = backend.poll([job.external_id for job in jobs]) if jobs else {}
    for job in jobs:
        if states.get(job.external_id) is QueueState.COMPLETED:
            # never throw a finished barrier away: reconcile records it
            problems.append(f"hop {job.hop_id}: its NEB ({job.external_id}) has already finished; run `alem reconcile` to record it")
    if problems:
        raise CancelError("; ".join(problems))
    report = CancelReport()
    for job in jobs:
        if stage == SCREENING_STAGE:
            store.fail_screening_job(job.id, f"cancelled: {reason}")
        else:
            # max_attempts 0: the hop fails now instead of going back to approved for a retry
            state = store.fail_job(job.id, f"cancelled: {reason}", max_attempts=0)
            assert state is HopState.FAILED
        report.cancelled.append((job.hop_id, job.external_id))
        try:
            backend.cancel(job.external_id)
        except Exception as exc:  # the backend's own error types; the store already says cancelled
            report.backend_errors.append((job.hop_id, f"{type(exc).__name__}: {exc}"))
    return report
