"""The campaign's job budget (``[approval]`` in alem.toml), spent by approval and by submission.

Three limits: at most ``max_running_jobs`` NEB jobs in flight, at most ``max_jobs_per_day`` jobs
started in any 24 hours, and (when set) at most ``max_core_hours_per_day`` core-hours spent by the
jobs that ended in the last 24 hours (the store's ledger, :func:`record_cost`): once spent, nothing
new starts until older jobs fall out of the window. Approved hops without a live job are the
queue between the steps: approval counts them as already spent, submission spends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alem.store import HopRecord, HopState
from alem.store.fidelity_columns import TARGET_STAGE

if TYPE_CHECKING:
    from alem.backends.base import Backend
    from alem.config import ApprovalSection, ScreeningSection
    from alem.store import JobRecord, Store

DAY_S = 86400.0


def approved_waiting(store: Store) -> list[HopRecord]:
    """Approved hops without a live job: approved, not (or no longer) submitted, in store order."""
    return [record for record in store.hops(state=HopState.APPROVED) if store.live_job(record.hop_id) is None]


@dataclass(frozen=True)
class JobBudget:
    """What is left of each limit now (negative when a limit was lowered below what runs)."""

    #: ``max_running_jobs`` minus the jobs in flight.
    free_running: int
    #: ``max_jobs_per_day`` minus the jobs started in the last 24 h (0 once the core-hours of
    #: the last 24 h reach ``max_core_hours_per_day``).
    free_today: int
    #: core-hours of the jobs that ended in the last 24 h
    core_hours_today: float = 0.0
    #: the stage's ``max_core_hours_per_day`` (0: no core-hour limit)
    max_core_hours_per_day: float = 0.0

    @property
    def core_hours_exhausted(self) -> bool:
        return 0 < self.max_core_hours_per_day <= self.core_hours_today


def job_budget(store: Store, limits: ApprovalSection | ScreeningSection, stage: str = TARGET_STAGE) -> JobBudget:
    """The budget of ``stage`` left at the store's current time under ``limits`` (its
    ``max_running_jobs`` and ``max_jobs_per_day``): ``[approval]`` for the target (DFT) stage,
    ``[screening]`` for the cheap one. The stages never spend each other's budget."""
    since = store.now() - DAY_S
    spent = store.core_hours_spent(stage=stage, since=since)
    limit = float(getattr(limits, "max_core_hours_per_day", 0.0) or 0.0)
    free_today = limits.max_jobs_per_day - store.count_jobs_created_since(since, stage)
    return JobBudget(
        free_running=limits.max_running_jobs - len(store.jobs(live=True, stage=stage)),
        free_today=0 if 0 < limit <= spent else free_today,
        core_hours_today=spent,
        max_core_hours_per_day=limit,
    )


def record_cost(store: Store, backend: Backend, job: JobRecord) -> None:
    """Put what an ended job spent (:meth:`Backend.job_cost`) into the store's core-hour ledger,
    once per job."""
    try:
        cost = backend.job_cost(job.external_id or "")
    except Exception:  # bookkeeping must never stop a result from being recorded
        cost = None
    if cost is not None:
        store.record_job_cost(job.id, cost)


def core_hour_ledger(store: Store, approval: ApprovalSection, top_hops: int = 10) -> dict:
    """What the campaign spent, from the store's ledger: core-hours per stage (all time and the
    last 24 h), the daily limit, and the most expensive hops with their attempts (JSON-ready)."""
    from alem.store.fidelity_columns import STAGES

    since = store.now() - DAY_S
    by_hop = store.core_hours_by_hop()
    return {
        "by_stage": {stage: store.core_hours_spent(stage=stage) for stage in STAGES},
        "last_24h": {stage: store.core_hours_spent(stage=stage, since=since) for stage in STAGES},
        "max_core_hours_per_day": approval.max_core_hours_per_day,
        "by_hop": [{"hop_id": hop_id, "core_hours": spent, "attempts": attempts}
                   for hop_id, (spent, attempts) in list(by_hop.items())[:top_hops]],
        "hops_with_cost": len(by_hop),
    }


#: How the ledger names the stages for a reader.
STAGE_NAMES = {TARGET_STAGE: "target (DFT)", "screening": "screening"}


def core_hour_lines(ledger: dict) -> list[str]:
    """The ledger in plain sentences (``alem status``, the report)."""
    stages = ", ".join(f"{STAGE_NAMES.get(stage, stage)} {hours:.1f}" for stage, hours in ledger["by_stage"].items())
    today = sum(ledger["last_24h"].values())
    limit = ledger["max_core_hours_per_day"]
    lines = [f"Core-hours spent: {stages} (last 24 h: {today:.1f}"
             + (f" of at most {limit:g} per day)" if limit else "; no daily core-hour limit)")]
    if ledger["by_hop"]:
        costly = ", ".join(f"{row['hop_id']} {row['core_hours']:.1f} ({row['attempts']} attempt{'s' * (row['attempts'] != 1)})"
                           for row in ledger["by_hop"][:5])
        lines.append(f"Most expensive hops: {costly}")
    return lines
