"""The campaign state store (SQLite). See the package docstring for the API overview."""

from __future__ import annotations

from alem.store.execution import ExecutionTables
from alem.store.hop_rows import HopTables
from alem.store.job_costs import JobCostTables
from alem.store.planning import PlanningTables
from alem.store.retrain_jobs import RetrainJobTables
from alem.store.score_jobs import ScoreJobTables
from alem.store.screening_jobs import CampaignRoundTables, ScreeningTables

__all__ = ["Store"]


class Store(JobCostTables, RetrainJobTables, ScoreJobTables, ScreeningTables, ExecutionTables, CampaignRoundTables, PlanningTables,
            HopTables):
    """An open campaign store. Create with :meth:`Store.open`; close with :meth:`close` or ``with``.

    The table groups live in their own modules (hops, planning, execution, screening, campaign rounds, core-hour ledger) on a shared core
    (connection, transactions, events); this class only puts them together.
    """
