"""What the store's one-live-at-a-time batch jobs share (retraining jobs, :mod:`alem.store.retrain_jobs`;
scoring jobs, :mod:`alem.store.score_jobs`): reading rows, and the submitted, queue-progress and
closing steps of the NEB jobs' protocol (row committed first, then submitted, then the external id)."""

from __future__ import annotations

from typing import Any

from alem.store.core import StoreCore
from alem.store.schema import LIVE_RETRAIN_STATES
from alem.store.states import IllegalTransition, StoreError

_LIVE_SQL = ", ".join(f"'{s}'" for s in LIVE_RETRAIN_STATES)


def job_row(store: StoreCore, table: str, record: Any, noun: str, job_id: int) -> Any:
    row = store._conn.execute(f"SELECT * FROM {table} WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise StoreError(f"no {noun} {job_id}")
    return record.from_row(row)


def job_rows(store: StoreCore, table: str, record: Any, live: bool | None, limit: int | None) -> list:
    """Rows newest first (``live``: only those in flight / only finished ones)."""
    where = "" if live is None else f"WHERE state {'' if live else 'NOT '}IN ({_LIVE_SQL})"
    sql = f"SELECT * FROM {table} {where} ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
    return [record.from_row(r) for r in store._query(sql)]


def mark_submitted(store: StoreCore, table: str, record: Any, noun: str, event: str, job_id: int, external_id: str) -> Any:
    """``created`` -> ``submitted`` with the external id, and its event, in one transaction."""
    if not external_id:
        raise StoreError(f"{noun} {job_id}: empty external id")
    with store.transaction():
        job = job_row(store, table, record, noun, job_id)
        if job.state != "created":
            raise IllegalTransition(f"cannot mark {noun} {job_id} submitted: it is {job.state}")
        now = store.now()
        store._conn.execute(f"UPDATE {table} SET state = 'submitted', external_id = ?, submitted_at = ?, updated_at = ? WHERE id = ?",
                            (external_id, now, now, job_id))
        store._event(event, f"{noun} {job_id} submitted to {job.runner} as {external_id}", payload={f"{table[:-1]}_id": job_id})
        return job_row(store, table, record, noun, job_id)


def update_progress(store: StoreCore, table: str, record: Any, noun: str, job_id: int, state: str) -> Any:
    """Queue progress of a submitted job (``queued`` / ``running``)."""
    if state not in ("queued", "running"):
        raise StoreError(f"{noun} {job_id}: {state!r} is not a progress state")
    with store.transaction():
        job = job_row(store, table, record, noun, job_id)
        if job.state not in ("submitted", "queued", "running"):
            raise IllegalTransition(f"cannot move {noun} {job_id} from {job.state} to {state}")
        if job.state != state:
            store._conn.execute(f"UPDATE {table} SET state = ?, updated_at = ? WHERE id = ?", (state, store.now(), job_id))
        return job_row(store, table, record, noun, job_id)


def close_job(
    store: StoreCore, table: str, record: Any, noun: str, job_id: int, state: str, error: str | None,
    outcome: tuple[str, Any, str, str],
) -> Any:
    """Close a live job: ``completed`` with its outcome, ``failed`` or ``lost`` with the reason, and
    its ``<kind>_<state>`` event, in one transaction. ``outcome``: the column a completed job fills,
    its value (None unless completed), what a completed job is said to have done, and the refusal
    when the value and the state disagree."""
    column, value, completed_says, refusal = outcome
    if state not in ("completed", "failed", "lost"):
        raise StoreError(f"{noun} {job_id}: {state!r} is not a final state")
    if (state == "completed") != (value is not None):
        raise StoreError(f"{noun} {job_id}: {refusal}")
    with store.transaction():
        job = job_row(store, table, record, noun, job_id)
        if not job.live:
            raise IllegalTransition(f"{noun} {job_id} is already {job.state}")
        now = store.now()
        store._conn.execute(
            f"UPDATE {table} SET state = ?, error = ?, {column} = ?, updated_at = ?, finished_at = ? WHERE id = ?",
            (state, error, value, now, now, job_id),
        )
        said = completed_says if state == "completed" else f"{state}: {error}"
        store._event(f"{table.removesuffix('_jobs')}_{state}", f"{noun} {job_id} (attempt {job.attempt}) {said}",
                     payload={f"{table[:-1]}_id": job_id, "error": error, column: value})
        return job_row(store, table, record, noun, job_id)
