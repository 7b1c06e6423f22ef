"""Jobs and results: the submission protocol, job progress, failures with retries, outcomes."""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from alem.store.core import StoreCore, _dumps, _values
from alem.store.fidelity_columns import TARGET_STAGE, fidelity_from_method
from alem.store.records import JobRecord, ResultRecord
from alem.store.schema import LIVE_JOB_STATES
from alem.store.states import HopState, IllegalTransition, JobStatus, StoreError, check_transition

if TYPE_CHECKING:
    from alem.neb.schemas import NebOutcome

_LIVE_SQL = ", ".join("?" for _ in LIVE_JOB_STATES)
_PROGRESS_STATES = (JobStatus.SUBMITTED, JobStatus.QUEUED, JobStatus.RUNNING)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _finite_list(values: Iterable[float]) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


class ExecutionTables(StoreCore):
    # -------------------------------------------------------------------- jobs
    def _job_row(self, job_id: int) -> sqlite3.Row:
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise StoreError(f"no job {job_id} in {self.path}")
        return row

    def job(self, job_id: int) -> JobRecord:
        return JobRecord.from_row(self._job_row(job_id))

    def jobs(
        self,
        state: JobStatus | str | Sequence[JobStatus | str] | None = None,
        hop_id: str | None = None,
        live: bool | None = None,
        limit: int | None = None,
        stage: str | None = None,
    ) -> list[JobRecord]:
        """Job rows, newest first; ``live=True`` = created/submitted/queued/running; ``stage``
        "target" or "screening" (None: both)."""
        conditions: dict[str, Any] = {"state": _values(state, JobStatus), "hop_id": hop_id, "stage": stage}
        if live is not None:
            conditions["state IN" if live else "state NOT IN"] = LIVE_JOB_STATES
        rows = self._select("jobs", conditions, "id DESC", limit)
        return [JobRecord.from_row(r) for r in rows]

    def live_job(self, hop_id: str, stage: str = TARGET_STAGE) -> JobRecord | None:
        row = self._conn.execute(
            f"SELECT * FROM jobs WHERE hop_id = ? AND stage = ? AND state IN ({_LIVE_SQL})",
            (hop_id, stage, *LIVE_JOB_STATES),
        ).fetchone()
        return JobRecord.from_row(row) if row else None

    def count_jobs_created_since(self, since: float, stage: str = TARGET_STAGE) -> int:
        """Jobs of ``stage`` created at or after ``since`` that may have reached a backend (daily cap)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE created_at >= ? AND state != 'abandoned' AND stage = ?", (since, stage)
        ).fetchone()
        return int(row[0])

    def attempts_used(self, hop_id: str) -> int:
        """Jobs of the hop that reached (or may have reached) a backend."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE hop_id = ? AND state != 'abandoned' AND stage = 'target'", (hop_id,)
        ).fetchone()
        return int(row[0])

    def attempts_since_approval(self, hop_id: str) -> int:
        """Jobs of the hop that reached a backend since its last approval (what ``max_attempts``
        counts: a person re-approving a failed hop gives it a fresh set of attempts)."""
        return self._attempts_since_approval(hop_id)

    def _attempts_since_approval(self, hop_id: str) -> int:
        # A person re-approving a failed hop gives it a fresh set of attempts.
        row = self._conn.execute(
            "SELECT MAX(created_at) FROM decisions WHERE hop_id = ? AND decision = 'approve'", (hop_id,)
        ).fetchone()
        since = row[0] if row[0] is not None else float("-inf")
        row = self._conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE hop_id = ? AND state != 'abandoned' AND stage = 'target' "
            "AND created_at >= ?",
            (hop_id, since),
        ).fetchone()
        return int(row[0])

    def begin_submission(self, hop_id: str, backend: str, fidelity: str | None = None) -> JobRecord:
        """Commit a job row (state ``created``, fresh ``job_key``) for an approved hop.

        ``fidelity`` is what the backend declares its results will be (None: it tells per result).

        Call this BEFORE ``backend.submit(hop, job.job_key)``: if the process dies after the
        backend accepted the job, the committed key lets ``backend.find_by_key`` find it again.
        Refused when the hop is not approved or already has a live job.
        """
        with self.transaction():
            state = HopState(self._hop_row(hop_id)["state"])
            check_transition(hop_id, state, "submit")
            live = self.live_job(hop_id)
            if live is not None:
                raise IllegalTransition(
                    f"cannot submit hop {hop_id}: it already has live job {live.id} ({live.state.value}, "
                    f"key {live.job_key})"
                )
            attempt = self.attempts_used(hop_id) + 1
            job = self._insert_job(hop_id, backend, attempt, TARGET_STAGE, fidelity)
            self._event(
                "job_created",
                f"job {job.id} created for hop {hop_id} on {backend} (attempt {attempt}, key {job.job_key})",
                hop_id=hop_id,
                job_id=job.id,
            )
            return job

    def _insert_job(self, hop_id: str, backend: str, attempt: int, stage: str, fidelity: str | None) -> JobRecord:
        """A new job row in state ``created`` with a fresh key (inside the caller's transaction)."""
        now = self.now()
        cursor = self._conn.execute(
            "INSERT INTO jobs (job_key, hop_id, backend, state, attempt, created_at, updated_at, stage, fidelity) "
            "VALUES (?, ?, ?, 'created', ?, ?, ?, ?, ?)",
            (f"alem-{uuid.uuid4().hex}", hop_id, backend, attempt, now, now, stage, fidelity),
        )
        return self.job(int(cursor.lastrowid))

    def _mark_failed(
        self, job: JobRecord, target: JobStatus, error: str, event_prefix: str, noun: str, detail: str = ""
    ) -> None:
        """Job in progress -> ``target`` (failed or lost) with its error and an event
        ``<event_prefix>_<state>`` (inside the caller's transaction)."""
        if job.state not in _PROGRESS_STATES:
            raise IllegalTransition(f"cannot fail {noun} {job.id}: it is {job.state.value}")
        self._conn.execute(
            "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?", (target.value, error, self.now(), job.id)
        )
        what = f"{noun} {job.id} of hop {job.hop_id} {target.value}"
        message = f"{what} {detail}: {error}" if detail else f"{what}: {error}"
        self._event(f"{event_prefix}_{target.value}", message, job.hop_id, job.id)

    def mark_submitted(self, job_id: int, external_id: str) -> JobRecord:
        """Record the backend's id: job created -> submitted and hop approved -> submitted, atomically."""
        if not external_id:
            raise StoreError(f"job {job_id}: empty external id")
        with self.transaction():
            job = self._target_job(job_id, "mark submitted")
            if job.state is not JobStatus.CREATED:
                raise IllegalTransition(
                    f"cannot mark job {job_id} submitted: it is {job.state.value}"
                    + (f" with external id {job.external_id}" if job.external_id else "")
                )
            now = self.now()
            self._conn.execute(
                "UPDATE jobs SET state = 'submitted', external_id = ?, submitted_at = ?, updated_at = ? WHERE id = ?",
                (external_id, now, now, job_id),
            )
            self._move_hop(job.hop_id, "submit", HopState.SUBMITTED)
            self._event(
                "job_submitted",
                f"job {job_id} of hop {job.hop_id} submitted to {job.backend} as {external_id}",
                hop_id=job.hop_id,
                job_id=job_id,
            )
            return self.job(job_id)

    def abandon_job(self, job_id: int, reason: str) -> JobRecord:
        """A ``created`` job that never reached the backend: close it so the hop can be submitted
        again (the hop stays approved; it does not count as an attempt)."""
        with self.transaction():
            job = self.job(job_id)
            if job.state is not JobStatus.CREATED:
                raise IllegalTransition(f"cannot abandon job {job_id}: it is {job.state.value}, not created")
            self._conn.execute(
                "UPDATE jobs SET state = 'abandoned', error = ?, updated_at = ? WHERE id = ?",
                (reason, self.now(), job_id),
            )
            self._event("job_abandoned", f"job {job_id} of hop {job.hop_id} abandoned: {reason}", job.hop_id, job_id)
            return self.job(job_id)

    def update_job_state(self, job_id: int, state: JobStatus | str) -> JobRecord:
        """Progress of a submitted job: submitted/queued/running (no-op when unchanged).

        Endings go through :meth:`record_result` (completed) and :meth:`fail_job` (failed/lost).
        """
        target = JobStatus(state.value if hasattr(state, "value") else state)
        if target not in _PROGRESS_STATES:
            raise StoreError(
                f"update_job_state({job_id}, {target.value}): use record_result for completed jobs and "
                "fail_job for failed or lost ones"
            )
        with self.transaction():
            job = self.job(job_id)
            if job.state not in _PROGRESS_STATES:
                raise IllegalTransition(f"cannot move job {job_id} from {job.state.value} to {target.value}")
            if job.state is target:
                return job
            self._conn.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?", (target.value, self.now(), job_id))
            self._event(
                "job_state",
                f"job {job_id} of hop {job.hop_id}: {job.state.value} -> {target.value}",
                job.hop_id,
                job_id,
            )
            return self.job(job_id)

    def fail_job(self, job_id: int, error: str, max_attempts: int, state: JobStatus | str = JobStatus.FAILED) -> HopState:
        """A submitted job failed or was lost: record why, then retry or give up, atomically.

        The hop goes back to ``approved`` (the next submission is attempt n+1) while fewer than
        ``max_attempts`` jobs of it reached the backend since its last approval, else to ``failed``.
        Returns the hop state.
        """
        target = _failed_state(state, f"fail_job({job_id})")
        with self.transaction():
            job = self._target_job(job_id, "fail")
            self._mark_failed(job, target, error, "job", "job", f"(attempt {job.attempt})")
            used = self._attempts_since_approval(job.hop_id)
            if used < max_attempts:
                self._move_hop(job.hop_id, "retry", HopState.APPROVED)
                self._event(
                    "retry",
                    f"hop {job.hop_id} will be submitted again (attempt {used + 1} of {max_attempts})",
                    job.hop_id,
                    job_id,
                )
                return HopState.APPROVED
            self._move_hop(job.hop_id, "fail", HopState.FAILED)
            # max_attempts 0 is a cancellation: no attempt budget to speak of
            why = f"{used} of {max_attempts} attempts used; last error: {error}" if max_attempts > 0 else f"not retried: {error}"
            self._event(
                "hop_failed",
                f"hop {job.hop_id} failed: {why}",
                job.hop_id,
                job_id,
            )
            return HopState.FAILED

    # ----------------------------------------------------------------- results
    def record_result(self, job_id: int, outcome: NebOutcome) -> ResultRecord:
        """Store a finished NEB's outcome, close the job and move the hop, in one transaction.

        A usable outcome (converged, finite barrier and energies, no failure reason) makes the hop
        ``done``. Anything else is recorded as a failed result with the reason and makes the hop
        ``failed``: it never enters the dataset as a barrier. Non-finite numbers are stored as null.
        """
        with self.transaction():
            job = self._target_job(job_id, "record a result for")
            result_id, reason = self._insert_result(job, outcome)
            usable = reason is None
            barrier = outcome.barrier_ev
            if usable:
                self._move_hop(job.hop_id, "finish", HopState.DONE)
                self._event(
                    "result",
                    f"hop {job.hop_id} done: barrier {barrier:.3f} eV ({outcome.method or 'unknown method'})",
                    job.hop_id,
                    job_id,
                    {"result_id": result_id, "barrier_ev": barrier},
                )
            else:
                self._move_hop(job.hop_id, "fail", HopState.FAILED)
                self._event(
                    "result_failed",
                    f"hop {job.hop_id} failed: {reason} ({outcome.method or 'unknown method'})",
                    job.hop_id,
                    job_id,
                    {"result_id": result_id, "reason": reason},
                )
            return ResultRecord.from_row(self._conn.execute("SELECT * FROM results WHERE id = ?", (result_id,)).fetchone())

    def results(
        self, hop_id: str | None = None, usable: bool | None = None, stage: str | None = None
    ) -> list[ResultRecord]:
        """Results, oldest first; ``stage`` keeps only results of that stage's jobs (None: all)."""
        conditions = {"hop_id": hop_id, "usable": None if usable is None else int(usable)}
        if stage is not None:
            conditions["job_id IN"] = [r["id"] for r in self._query("SELECT id FROM jobs WHERE stage = ?", (stage,))]
        rows = self._select("results", conditions, "id")
        return [ResultRecord.from_row(r) for r in rows]

    def _target_job(self, job_id: int, action: str) -> JobRecord:
        """The job, refused when it is a screening job (those never move the hop: see
        :mod:`alem.store.screening_jobs`)."""
        job = self.job(job_id)
        if job.stage != TARGET_STAGE:
            raise IllegalTransition(f"cannot {action} job {job_id} this way: it is a {job.stage} job")
        return job

    def _insert_result(self, job: JobRecord, outcome: NebOutcome) -> tuple[int, str | None]:
        """Insert the result row of ``job`` and mark the job completed (inside a transaction).

        Returns the result id and why it is unusable (None: usable). The result's fidelity is the
        backend's word on the outcome (``details["fidelity"]``), else the job's declared one, else
        read from the method text.
        """
        if job.state not in _PROGRESS_STATES:
            existing = self._conn.execute("SELECT id FROM results WHERE job_id = ?", (job.id,)).fetchone()
            detail = f" (result {existing['id']} already recorded)" if existing else ""
            raise IllegalTransition(f"cannot record a result for job {job.id}: it is {job.state.value}{detail}")
        reason = outcome.unusable_reason
        from_outcome = fidelity_from_method(outcome.method, job.backend, outcome.details)
        fidelity = from_outcome if outcome.details.get("fidelity") else (job.fidelity or from_outcome)
        now = self.now()
        cursor = self._conn.execute(
            "INSERT INTO results (job_id, hop_id, usable, barrier_ev, reverse_barrier_ev, image_energies_json, "
            "path_coordinate_json, converged, method, failure_reason, details_json, created_at, fidelity, provenance_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.hop_id,
                int(reason is None),
                outcome.barrier_ev if _finite(outcome.barrier_ev) else None,
                outcome.reverse_barrier_ev if _finite(outcome.reverse_barrier_ev) else None,
                _dumps(_finite_list(outcome.image_energies_ev)),
                _dumps(_finite_list(outcome.path_coordinate_a)),
                int(bool(outcome.converged)),
                outcome.method,
                reason,
                json.dumps(outcome.details, default=str),
                now,
                fidelity,
                json.dumps({**outcome.provenance, "fidelity": fidelity}, default=str),
            ),
        )
        self._conn.execute(
            # an unusable result's reason is the job's word too (``alem jobs --all`` shows it)
            "UPDATE jobs SET state = 'completed', fidelity = COALESCE(fidelity, ?), updated_at = ?, "
            "error = COALESCE(?, error) WHERE id = ?",
            (fidelity, now, None if reason is None else f"result unusable: {reason}", job.id),
        )
        return int(cursor.lastrowid), reason


def _failed_state(state: JobStatus | str, caller: str) -> JobStatus:
    """``state`` as a JobStatus, which must be failed or lost."""
    target = JobStatus(state.value if hasattr(state, "value") else state)
    if target not in (JobStatus.FAILED, JobStatus.LOST):
        raise StoreError(f"{caller}: state must be failed or lost, not {target.value}")
    return target
