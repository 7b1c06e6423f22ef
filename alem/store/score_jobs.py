"""Scoring jobs: the prediction of a large candidate pool run as a batch job (``[model] score_on =
"backend"``) instead of inside ``alem loop``.

The NEB jobs' crash-safe protocol, as for retraining jobs (:mod:`alem.store.retrain_jobs`): the row
(with its key and run directory) is committed first, then the job is submitted, then its external
id is recorded; a loop killed in between finds the submission again by its key. At most one
scoring job is live at a time (a partial unique index holds that even against two processes).
``attempt`` is 1 for a scoring and 2 for its one retry after a failed or lost job. A completed job's
predictions are recorded in the same transaction that closes its row, so they are recorded once.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass

from alem.store.batch_jobs import close_job, job_row, job_rows, mark_submitted, update_progress
from alem.store.core import StoreCore
from alem.store.schema import LIVE_RETRAIN_STATES
from alem.store.states import IllegalTransition


@dataclass(frozen=True)
class ScoreJobRecord:
    id: int
    job_key: str
    runner: str
    attempt: int
    model_version_id: int
    n_hops: int
    run_dir: str
    state: str
    external_id: str | None
    n_recorded: int | None
    error: str | None
    created_at: float
    submitted_at: float | None
    updated_at: float
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ScoreJobRecord:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    @property
    def live(self) -> bool:
        return self.state in LIVE_RETRAIN_STATES


class ScoreJobTables(StoreCore):
    def score_job(self, score_job_id: int) -> ScoreJobRecord:
        return job_row(self, "score_jobs", ScoreJobRecord, "scoring job", score_job_id)

    def score_jobs(self, live: bool | None = None, limit: int | None = None) -> list[ScoreJobRecord]:
        """Scoring jobs, newest first (``live``: only those in flight / only finished ones)."""
        return job_rows(self, "score_jobs", ScoreJobRecord, live, limit)

    def live_score_job(self) -> ScoreJobRecord | None:
        live = self.score_jobs(live=True)
        return live[0] if live else None

    def begin_score_job(self, runner: str, attempt: int, model_version_id: int, n_hops: int, run_root: str) -> ScoreJobRecord:
        """Commit a scoring job row (state ``created``) whose run directory is ``run_root/<key>``;
        refused while another scoring job is live."""
        with self.transaction():
            live = self.live_score_job()
            if live is not None:
                raise IllegalTransition(f"cannot start a scoring job: scoring job {live.id} is {live.state}")
            self.model_version(model_version_id)
            next_id = int(self._conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM score_jobs").fetchone()[0])
            key = f"alem-score-{next_id}-a{attempt}"
            now = self.now()
            cursor = self._conn.execute(
                "INSERT INTO score_jobs (job_key, runner, attempt, model_version_id, n_hops, run_dir, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, runner, attempt, model_version_id, n_hops, f"{run_root.rstrip('/')}/{key}", now, now),
            )
            job = self.score_job(int(cursor.lastrowid))
            self._event("score_created", f"scoring job {job.id} created on {runner} for {n_hops} hops with model version "
                        f"{model_version_id} (attempt {attempt}, key {key})", payload={"score_job_id": job.id})
            return job

    def mark_score_submitted(self, score_job_id: int, external_id: str) -> ScoreJobRecord:
        return mark_submitted(self, "score_jobs", ScoreJobRecord, "scoring job", "score_submitted", score_job_id, external_id)

    def update_score_state(self, score_job_id: int, state: str) -> ScoreJobRecord:
        """Queue progress of a submitted job (``queued`` / ``running``)."""
        return update_progress(self, "score_jobs", ScoreJobRecord, "scoring job", score_job_id, state)

    def finish_score_job(self, score_job_id: int, state: str, error: str | None = None, n_recorded: int | None = None) -> ScoreJobRecord:
        """Close a live scoring job: ``completed`` (with how many predictions it recorded: call it in
        the transaction that records them), ``failed`` or ``lost`` (with the reason)."""
        return close_job(self, "score_jobs", ScoreJobRecord, "scoring job", score_job_id, state, error,
                         ("n_recorded", n_recorded, f"{n_recorded} predictions recorded",
                          "a completed job says how many predictions it recorded, a failed one does not"))
