"""The campaign's job budget (``[approval]`` in alem.toml), spent by approval and by submission.

Two limits: at most ``max_running_jobs`` NEB jobs in flight, and at most ``max_jobs_per_day`` jobs
started in any 24 hours. Approved hops without a live job are the queue between the two steps:
approval counts them as already spent, submission spends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alem.store import HopRecord, HopState

if TYPE_CHECKING:
    from alem.config import ApprovalSection
    from alem.store import Store

DAY_S = 86400.0


def approved_waiting(store: Store) -> list[HopRecord]:
    """Approved hops without a live job: approved, not (or no longer) submitted, in store order."""
    return [record for record in store.hops(state=HopState.APPROVED) if store.live_job(record.hop_id) is None]


@dataclass(frozen=True)
class JobBudget:
    """What is left of each limit now (negative when a limit was lowered below what runs)."""

    #: ``max_running_jobs`` minus the jobs in flight.
    free_running: int
    #: ``max_jobs_per_day`` minus the jobs started in the last 24 h.
    free_today: int


def job_budget(store: Store, approval: ApprovalSection) -> JobBudget:
    """The budget left at the store's current time."""
    return JobBudget(
        free_running=approval.max_running_jobs - len(store.jobs(live=True)),
        free_today=approval.max_jobs_per_day - store.count_jobs_created_since(store.now() - DAY_S),
    )
