"""Retraining jobs: a re-fine-tuning of the ensemble run as a batch job (``[model] retrain_on =
"backend"``) instead of inside ``alem loop``.

The same crash-safe protocol as NEB jobs: the row (with its key and run directory) is committed
first, then the job is submitted, then its external id is recorded; a loop killed in between finds
the submission again by its key. At most one retraining job is live at a time (a partial unique
index holds that even against two processes). ``attempt`` is 1 for a retraining and 2 for its one
retry after a failed or lost job.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any

from alem.store.batch_jobs import close_job, job_row, job_rows, mark_submitted, update_progress
from alem.store.core import StoreCore
from alem.store.schema import LIVE_RETRAIN_STATES
from alem.store.states import IllegalTransition


@dataclass(frozen=True)
class RetrainJobRecord:
    id: int
    job_key: str
    runner: str
    attempt: int
    parent_model_id: int | None
    n_new_results: int
    run_dir: str
    state: str
    external_id: str | None
    model_version_id: int | None
    error: str | None
    created_at: float
    submitted_at: float | None
    updated_at: float
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RetrainJobRecord:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    @property
    def live(self) -> bool:
        return self.state in LIVE_RETRAIN_STATES

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RetrainJobTables(StoreCore):
    def retrain_job(self, retrain_job_id: int) -> RetrainJobRecord:
        return job_row(self, "retrain_jobs", RetrainJobRecord, "retraining job", retrain_job_id)

    def retrain_jobs(self, live: bool | None = None, limit: int | None = None) -> list[RetrainJobRecord]:
        """Retraining jobs, newest first (``live``: only those in flight / only finished ones)."""
        return job_rows(self, "retrain_jobs", RetrainJobRecord, live, limit)

    def live_retrain_job(self) -> RetrainJobRecord | None:
        live = self.retrain_jobs(live=True)
        return live[0] if live else None

    def begin_retrain_job(self, runner: str, attempt: int, parent_model_id: int | None, n_new_results: int,
                          run_root: str) -> RetrainJobRecord:
        """Commit a retraining job row (state ``created``) whose run directory is ``run_root/<key>``;
        refused while another retraining job is live."""
        with self.transaction():
            live = self.live_retrain_job()
            if live is not None:
                raise IllegalTransition(f"cannot start a retraining: retraining job {live.id} is {live.state}")
            next_id = int(self._conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM retrain_jobs").fetchone()[0])
            key = f"alem-retrain-{next_id}-a{attempt}"
            now = self.now()
            cursor = self._conn.execute(
                "INSERT INTO retrain_jobs (job_key, runner, attempt, parent_model_id, n_new_results, run_dir, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, runner, attempt, parent_model_id, n_new_results, f"{run_root.rstrip('/')}/{key}", now, now),
            )
            job = self.retrain_job(int(cursor.lastrowid))
            self._event("retrain_created", f"retraining job {job.id} created on {runner} (attempt {attempt}, key {key})",
                        payload={"retrain_job_id": job.id})
            return job

    def mark_retrain_submitted(self, retrain_job_id: int, external_id: str) -> RetrainJobRecord:
        return mark_submitted(self, "retrain_jobs", RetrainJobRecord, "retraining job", "retrain_submitted", retrain_job_id, external_id)

    def update_retrain_state(self, retrain_job_id: int, state: str) -> RetrainJobRecord:
        """Queue progress of a submitted job (``queued`` / ``running``)."""
        return update_progress(self, "retrain_jobs", RetrainJobRecord, "retraining job", retrain_job_id, state)

    def finish_retrain_job(self, retrain_job_id: int, state: str, error: str | None = None,
                           model_version_id: int | None = None) -> RetrainJobRecord:
        """Close a live retraining job: ``completed`` (with the model version it registered),
        ``failed`` or ``lost`` (with the reason)."""
        return close_job(self, "retrain_jobs", RetrainJobRecord, "retraining job", retrain_job_id, state, error,
                         ("model_version_id", model_version_id, f"model version {model_version_id} registered",
                          "a completed job names its model version, a failed one does not"))
