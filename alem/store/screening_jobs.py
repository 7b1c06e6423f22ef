"""Screening jobs: cheap NEBs (an MLIP) run on candidates without approval.

A screening job is a job row with ``stage = 'screening'``. It never moves its hop through the
life cycle (a screened hop stays a candidate, may be proposed, approved and run in DFT later),
it is never retried (a failed cheap NEB is simply not a cheap label), and a (hop, fidelity)
pair is screened at most once: :meth:`begin_screening` refuses while a screening job of the hop
is live or once any job of that fidelity reached a backend for it. The same crash-safe protocol
as target jobs: commit the row with its key, submit, record the external id.
"""

from __future__ import annotations

from collections.abc import Sequence

from alem.store.core import StoreCore
from alem.store.execution import ExecutionTables, _failed_state
from alem.store.fidelity_columns import SCREENING_STAGE
from alem.store.records import CampaignRound, JobRecord, ResultRecord
from alem.store.states import IllegalTransition, JobStatus, StoreError

_PROGRESS_STATES = (JobStatus.SUBMITTED, JobStatus.QUEUED, JobStatus.RUNNING)


class ScreeningTables(ExecutionTables):
    def _screening_job(self, job_id: int, action: str) -> JobRecord:
        job = self.job(job_id)
        if job.stage != SCREENING_STAGE:
            raise IllegalTransition(f"cannot {action} job {job_id} as a screening job: it is a {job.stage} job")
        return job

    def begin_screening(self, hop_id: str, backend: str, fidelity: str) -> JobRecord:
        """Commit a screening job row (state ``created``) for ``hop_id`` at ``fidelity``."""
        with self.transaction():
            self._hop_row(hop_id)
            live = self.live_job(hop_id, SCREENING_STAGE)
            if live is not None:
                raise IllegalTransition(
                    f"cannot screen hop {hop_id}: it already has screening job {live.id} ({live.state.value})"
                )
            earlier = self._conn.execute(
                "SELECT id FROM jobs WHERE hop_id = ? AND fidelity = ? AND state != 'abandoned'", (hop_id, fidelity)
            ).fetchone()
            if earlier is not None:
                raise IllegalTransition(f"hop {hop_id} was already screened at {fidelity} (job {earlier['id']})")
            job = self._insert_job(hop_id, backend, 1, SCREENING_STAGE, fidelity)
            self._event(
                "screening_created",
                f"screening job {job.id} created for hop {hop_id} at {fidelity} on {backend} (key {job.job_key})",
                hop_id=hop_id,
                job_id=job.id,
            )
            return job

    def mark_screening_submitted(self, job_id: int, external_id: str) -> JobRecord:
        """Record the backend's id of a screening job (the hop does not move)."""
        if not external_id:
            raise StoreError(f"job {job_id}: empty external id")
        with self.transaction():
            job = self._screening_job(job_id, "mark submitted")
            if job.state is not JobStatus.CREATED:
                raise IllegalTransition(f"cannot mark screening job {job_id} submitted: it is {job.state.value}")
            now = self.now()
            self._conn.execute(
                "UPDATE jobs SET state = 'submitted', external_id = ?, submitted_at = ?, updated_at = ? WHERE id = ?",
                (external_id, now, now, job_id),
            )
            self._event(
                "screening_submitted",
                f"screening job {job_id} of hop {job.hop_id} submitted to {job.backend} as {external_id}",
                job.hop_id,
                job_id,
            )
            return self.job(job_id)

    def record_screening_result(self, job_id: int, outcome) -> ResultRecord:
        """Store a cheap NEB's outcome (usable or not) and close the job; the hop does not move."""
        with self.transaction():
            job = self._screening_job(job_id, "record a result for")
            result_id, reason = self._insert_result(job, outcome)
            result = ResultRecord.from_row(self._conn.execute("SELECT * FROM results WHERE id = ?", (result_id,)).fetchone())
            said = f"barrier {result.barrier_ev:.3f} eV" if reason is None else f"not usable: {reason}"
            self._event(
                "screened",
                f"hop {job.hop_id} screened at {result.fidelity}: {said}",
                job.hop_id,
                job_id,
                {"result_id": result_id, "barrier_ev": result.barrier_ev, "fidelity": result.fidelity},
            )
            return result

    def fail_screening_job(self, job_id: int, error: str, state: JobStatus | str = JobStatus.FAILED) -> JobRecord:
        """A screening job failed or was lost: record why (no retry, the hop does not move)."""
        target = _failed_state(state, f"fail_screening_job({job_id})")
        with self.transaction():
            job = self._screening_job(job_id, "fail")
            self._mark_failed(job, target, error, "screening", "screening job")
            return self.job(job_id)

    def screened_hop_ids(self, fidelity: str) -> set[str]:
        """Hops with a job of ``fidelity`` that reached (or may have reached) a backend, any stage."""
        rows = self._query("SELECT DISTINCT hop_id FROM jobs WHERE fidelity = ? AND state != 'abandoned'", (fidelity,))
        return {r["hop_id"] for r in rows}


class CampaignRoundTables(StoreCore):
    """The campaign's remaining promise per proposal round (what `alem status` trends and the stop
    rule reads)."""

    def record_campaign_round(
        self,
        model_version_id: int | None,
        batch_id: str | None,
        n_pool: int,
        threshold_ev: float,
        expected_good: float,
        best_acquisition: float | None,
    ) -> CampaignRound:
        with self.transaction():
            cursor = self._conn.execute(
                "INSERT INTO campaign_rounds (model_version_id, batch_id, n_pool, threshold_ev, expected_good, "
                "best_acquisition, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model_version_id, batch_id, n_pool, threshold_ev, expected_good, best_acquisition, self.now()),
            )
            round_id = int(cursor.lastrowid)
            best = "none" if best_acquisition is None else f"{best_acquisition:.3g}"
            self._event(
                "campaign_round",
                f"round {round_id}: {expected_good:.2f} expected good hops (E_m < {threshold_ev:g} eV) left among "
                f"{n_pool} candidates; best acquisition value {best}",
                payload={"round_id": round_id},
            )
            row = self._conn.execute("SELECT * FROM campaign_rounds WHERE id = ?", (round_id,)).fetchone()
            return CampaignRound.from_row(row)

    def campaign_rounds(self, limit: int | None = None) -> list[CampaignRound]:
        """Rounds oldest first; with ``limit`` the newest ``limit`` of them."""
        rows = self._select("campaign_rounds", {}, "id DESC", limit)
        return [CampaignRound.from_row(r) for r in reversed(rows)]


__all__: Sequence[str] = ("CampaignRoundTables", "ScreeningTables")
