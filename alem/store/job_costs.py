"""The core-hour ledger (schema version 6): what each job (one attempt of a hop) spent.

A job's core-hours are recorded once, when it ends (completed, failed, lost), from the backend's
:class:`alem.neb.core_hours.JobCost`; ``cost_json`` keeps the allocation and wall time they come
from. Sums per stage, per hop and over the last 24 h answer ``alem status``, the report and the
core-hour budget (``[approval] max_core_hours_per_day``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from alem.store.core import StoreCore

if TYPE_CHECKING:
    from alem.neb.core_hours import JobCost

class JobCostTables(StoreCore):
    def record_job_cost(self, job_id: int, cost: JobCost) -> bool:
        """Record what job ``job_id`` spent; False (and nothing written) when it already has a
        record, so a job polled twice is never counted twice."""
        with self.transaction():
            cursor = self._conn.execute(
                "UPDATE jobs SET core_hours = ?, cost_json = ? WHERE id = ? AND core_hours IS NULL",
                (cost.core_hours, json.dumps(cost.model_dump()), job_id),
            )
            if cursor.rowcount:
                row = self._conn.execute("SELECT hop_id, attempt FROM jobs WHERE id = ?", (job_id,)).fetchone()
                self._event("job_cost", f"job {job_id} of hop {row['hop_id']} (attempt {row['attempt']}) spent "
                            f"{cost.describe()}", row["hop_id"], job_id, {"core_hours": cost.core_hours})
            return bool(cursor.rowcount)

    def core_hours_spent(self, stage: str | None = None, since: float | None = None, hop_id: str | None = None) -> float:
        """Core-hours recorded for jobs of ``stage`` (None: all), ended at or after ``since``,
        of ``hop_id``."""
        sql, args = "SELECT COALESCE(SUM(core_hours), 0) FROM jobs WHERE core_hours IS NOT NULL", []
        for condition, value in (("stage = ?", stage), ("updated_at >= ?", since), ("hop_id = ?", hop_id)):
            if value is not None:
                sql += f" AND {condition}"
                args.append(value)
        return float(self._conn.execute(sql, args).fetchone()[0])

    def core_hours_by_hop(self, stage: str | None = None) -> dict[str, tuple[float, int]]:
        """Hop id -> (core-hours recorded, attempts with a record), most expensive first."""
        sql = "SELECT hop_id, SUM(core_hours) AS spent, COUNT(*) AS n FROM jobs WHERE core_hours IS NOT NULL"
        args = []
        if stage is not None:
            sql += " AND stage = ?"
            args.append(stage)
        rows = self._conn.execute(sql + " GROUP BY hop_id ORDER BY spent DESC", args).fetchall()
        return {row["hop_id"]: (float(row["spent"]), int(row["n"])) for row in rows}

    def attempt_ledger(self, hop_id: str, stage: str, up_to_job_id: int) -> list[dict[str, object]]:
        """The attempts that led to job ``up_to_job_id`` of ``hop_id`` on ``stage``, oldest first:
        job id, attempt number, scheduler id, how it ended and its core-hours (None: not recorded),
        plus the allocation and wall time the core-hours came from where the backend told them."""
        rows = self._conn.execute(
            "SELECT id, attempt, external_id, state, error, core_hours, cost_json FROM jobs "
            "WHERE hop_id = ? AND stage = ? AND id <= ? ORDER BY id", (hop_id, stage, up_to_job_id),
        ).fetchall()
        ledger: list[dict[str, object]] = []
        for row in rows:
            entry: dict[str, object] = {"job_id": row["id"], "attempt": row["attempt"], "external_id": row["external_id"],
                                        "state": row["state"], "core_hours": row["core_hours"]}
            if row["error"]:
                entry["error"] = row["error"]
            if row["cost_json"]:
                entry["cost"] = json.loads(row["cost_json"])
            ledger.append(entry)
        return ledger
