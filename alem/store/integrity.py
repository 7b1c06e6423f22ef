"""Consistency checks of a store: what `alem reconcile` and `alem status` warn about.

Each check is a query for rows that break one invariant the Store maintains; a healthy store
returns no rows. Problems are plain sentences naming the hop or job.
"""

from __future__ import annotations

import sqlite3

from alem.store.schema import LIVE_JOB_STATES

_LIVE = ", ".join(f"'{s}'" for s in LIVE_JOB_STATES)

#: (SQL selecting offending rows, sentence formatted with the row's columns)
_INVARIANTS: tuple[tuple[str, str], ...] = (
    (
        f"SELECT hop_id, stage, COUNT(*) AS n FROM jobs WHERE state IN ({_LIVE}) GROUP BY hop_id, stage HAVING n > 1",
        "hop {hop_id} has {n} live {stage} jobs (at most one allowed)",
    ),
    (
        "SELECT h.hop_id FROM hops h WHERE h.state = 'done' AND NOT EXISTS "
        "(SELECT 1 FROM results r JOIN jobs j ON j.id = r.job_id WHERE r.hop_id = h.hop_id AND r.usable = 1 "
        "AND j.stage = 'target')",
        "hop {hop_id} is done but has no usable result",
    ),
    (
        "SELECT r.id, r.job_id FROM results r LEFT JOIN jobs j ON j.id = r.job_id WHERE j.id IS NULL",
        "result {id} refers to job {job_id}, which does not exist",
    ),
    (
        "SELECT j.id, j.hop_id FROM jobs j WHERE j.state = 'completed' AND NOT EXISTS "
        "(SELECT 1 FROM results r WHERE r.job_id = j.id)",
        "job {id} of hop {hop_id} is completed but has no result",
    ),
    (
        f"SELECT h.hop_id FROM hops h WHERE h.state = 'submitted' AND NOT EXISTS "
        f"(SELECT 1 FROM jobs j WHERE j.hop_id = h.hop_id AND j.stage = 'target' AND j.state IN ({_LIVE}) "
        "AND j.state != 'created')",
        "hop {hop_id} is submitted but has no submitted job",
    ),
    (
        f"SELECT j.id, j.hop_id, h.state FROM jobs j JOIN hops h ON h.hop_id = j.hop_id "
        f"WHERE j.stage = 'target' AND j.state IN ({_LIVE}) AND NOT ((j.state = 'created' AND h.state = 'approved') "
        "OR (j.state != 'created' AND h.state = 'submitted'))",
        "live job {id} belongs to hop {hop_id}, which is {state}",
    ),
)


def find_problems(conn: sqlite3.Connection, now: float, stale_after_s: float, sqlite_pages: bool = True) -> list[str]:
    """Every broken invariant, SQLite's foreign-key check and (``sqlite_pages``) its page-level
    integrity check included."""
    problems: list[str] = []
    for (verdict,) in conn.execute("PRAGMA integrity_check").fetchall() if sqlite_pages else ():
        if verdict != "ok":
            problems.append(f"SQLite integrity check: {verdict}")
    for row in conn.execute("PRAGMA foreign_key_check").fetchall():
        problems.append(f"table {row[0]} row {row[1]} refers to a missing row of {row[2]}")
    for sql, sentence in _INVARIANTS:
        for row in conn.execute(sql).fetchall():
            problems.append(sentence.format(**dict(row)))
    stale = conn.execute(
        "SELECT id, hop_id, job_key, created_at FROM jobs WHERE state = 'created' AND created_at < ?",
        (now - stale_after_s,),
    ).fetchall()
    for row in stale:
        age_s = now - row["created_at"]
        problems.append(
            f"job {row['id']} of hop {row['hop_id']} was created {age_s:.0f} s ago but never got an external id "
            f"(key {row['job_key']}; `alem reconcile` resolves it)"
        )
    return problems
