"""The store's foundation: opening/migrating, transactions, the event log and loop status."""

from __future__ import annotations

import enum
import itertools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from alem.store.records import Event, LoopStatus
from alem.store.schema import SCHEMA_VERSION, migrate
from alem.store.states import HopState, IllegalTransition, StoreUnavailableError, UnknownHopError, check_transition


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, default=str)


def _values(selection: Any, kind: type[enum.Enum]) -> list[str] | None:
    """State filter argument (one state or several, enum or str) as a list of values."""
    if selection is None:
        return None
    states = [selection] if isinstance(selection, str | enum.Enum) else list(selection)
    return [kind(s).value for s in states]


class StoreCore:
    """Connection, transactions, event log, loop status and the hop state helper."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Callable[[], float] = time.time):
        self._conn = conn
        self.path = path
        self._clock = clock
        self._depth = 0
        self._savepoints = itertools.count()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = True,
        busy_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        """Open (and create or migrate) the store at ``path``.

        WAL journal (readers never block the writer), foreign keys on, ``busy_timeout_s`` to wait
        for another writer. An older schema is migrated in one transaction; a newer one is
        refused with :class:`~alem.store.schema.SchemaError`.
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise StoreUnavailableError(f"{path}: no store here (create a campaign with `alem init`)")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # FULL: a committed result survives a power cut of the login node, not only a crash.
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailableError(f"{path}: not a usable SQLite store ({exc})") from exc
        try:
            migrate(conn, where=str(path))
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, clock)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    @property
    def latest_schema_version(self) -> int:
        return SCHEMA_VERSION

    def now(self) -> float:
        return self._clock()

    # ------------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work: everything inside commits together or not at all.

        Takes the write lock at the start (``BEGIN IMMEDIATE``) so two writers queue instead of
        failing halfway. Nested use joins the outer transaction through a savepoint.
        """
        if self._depth:
            name = f"sp{next(self._savepoints)}"
            self._conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                raise
            else:
                self._conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._depth = 0

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    def _select(
        self, table: str, conditions: dict[str, Any], order_by: str, limit: int | None = None, columns: str = "*"
    ) -> list[sqlite3.Row]:
        """``SELECT <columns>`` with ANDed conditions: ``{"col": v}`` is ``col = v`` (a tuple/list: ``col IN``),
        ``{"col OP": v}`` is ``col OP v`` (``IN``/``NOT IN`` take a tuple); None values are skipped."""
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in conditions.items():
            if value is None:
                continue
            column, _, op = key.partition(" ")
            if isinstance(value, list | tuple | frozenset | set):
                value = list(value)
                op = op or "IN"
                clauses.append(f"{column} {op} ({', '.join('?' for _ in value)})")
                params.extend(value)
            else:
                clauses.append(f"{column} {op or '='} ?")
                params.append(value)
        sql = f"SELECT {columns} FROM {table}" + (f" WHERE {' AND '.join(clauses)}" if clauses else "") + f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._query(sql, params)

    def _event(
        self,
        kind: str,
        message: str,
        hop_id: str | None = None,
        job_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        cursor = self._conn.execute(
            "INSERT INTO events (time, kind, hop_id, job_id, message, payload_json) VALUES (?, ?, ?, ?, ?, ?)",
            (self.now(), kind, hop_id, job_id, message, _dumps(payload or {})),
        )
        return int(cursor.lastrowid)

    def log_event(
        self,
        kind: str,
        message: str,
        hop_id: str | None = None,
        job_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Append a free event (e.g. the loop's "model retrained"); returns its id."""
        with self.transaction():
            return self._event(kind, message, hop_id, job_id, payload)

    def _hop_row(self, hop_id: str) -> sqlite3.Row:
        row = self._conn.execute("SELECT * FROM hops WHERE hop_id = ?", (hop_id,)).fetchone()
        if row is None:
            raise UnknownHopError(f"no hop {hop_id!r} in {self.path}")
        return row

    def _move_hop(self, hop_id: str, action: str, expect: HopState | None = None) -> HopState:
        state = HopState(self._hop_row(hop_id)["state"])
        target = check_transition(hop_id, state, action)
        if expect is not None and target is not expect:  # pragma: no cover - guards HOP_TRANSITIONS edits
            raise IllegalTransition(f"{action} of hop {hop_id} leads to {target.value}, expected {expect.value}")
        self._conn.execute(
            "UPDATE hops SET state = ?, updated_at = ? WHERE hop_id = ?", (target.value, self.now(), hop_id)
        )
        return target

    # ------------------------------------------------------------------ events
    def events(
        self,
        hop_id: str | None = None,
        job_id: int | None = None,
        kind: str | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events in time order; with ``limit``, the newest ``limit`` of them (still in time order)."""
        conditions = {"hop_id": hop_id, "job_id": job_id, "kind": kind, "id >": after_id}
        rows = self._select("events", conditions, "id DESC", limit)
        return [Event.from_row(r) for r in reversed(rows)]

    # ------------------------------------------------------------- loop status
    def set_loop_status(self, phase: str, message: str = "", pid: int | None = None) -> None:
        """What the loop is doing now (one row; also its heartbeat). Not an event: call often."""
        pid = os.getpid() if pid is None else pid
        now = self.now()
        with self.transaction():
            row = self._conn.execute("SELECT pid, started_at FROM loop_status WHERE id = 1").fetchone()
            started = row["started_at"] if row and row["pid"] == pid else now
            self._conn.execute(
                "INSERT OR REPLACE INTO loop_status (id, pid, hostname, phase, message, started_at, heartbeat) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
                (pid, socket.gethostname(), phase, message, started, now),
            )

    def loop_status(self) -> LoopStatus | None:
        row = self._conn.execute("SELECT * FROM loop_status WHERE id = 1").fetchone()
        return LoopStatus.from_row(row) if row else None

    # --------------------------------------------------------------- integrity
    def integrity_check(self, stale_after_s: float = 600.0, sqlite_pages: bool = True) -> list[str]:
        """Every inconsistency found (empty list = healthy). See :mod:`alem.store.integrity`;
        ``sqlite_pages=False`` leaves out SQLite's own page check, which reads the whole file
        (4 s for a 10^5-hop store)."""
        from alem.store.integrity import find_problems

        return find_problems(self._conn, now=self.now(), stale_after_s=stale_after_s, sqlite_pages=sqlite_pages)
