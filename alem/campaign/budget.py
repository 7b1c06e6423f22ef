"""The campaign's job budget (``[approval]`` in alem.toml), spent by approval and by submission.

Two limits: at most ``max_running_jobs`` NEB jobs in flight, and at most ``max_jobs_per_day`` jobs
started in any 24 hours. Approved hops without a live job are the queue between the two steps:
approval counts them as already spent, submission spends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alem.store import HopRecord, HopState
from alem.store.fidelity_columns import TARGET_STAGE

if TYPE_CHECKING:
    from alem.config import ApprovalSection, ScreeningSection
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


def job_budget(store: Store, limits: ApprovalSection | ScreeningSection, stage: str = TARGET_STAGE) -> JobBudget:
    """The budget of ``stage`` left at the store's current time under ``limits`` (its
    ``max_running_jobs`` and ``max_jobs_per_day``): ``[approval]`` for the target (DFT) stage,
    ``[screening]`` for the cheap one. The stages never spend each other's budget."""
    return JobBudget(
        free_running=limits.max_running_jobs - len(store.jobs(live=True, stage=stage)),
        free_today=limits.max_jobs_per_day - store.count_jobs_created_since(store.now() - DAY_S, stage),
    )
