"""Every host's answer (``alem hosts``, the report, ``alem show HOST_ID``, the ``materials``
strategy), kept between reads instead of analysed again on each.

Analysing a host reads its network, every barrier of its paths and the joint rows: about 2 ms a
host, 50 s for a campaign of 26,000 hosts. The answers (each host's JSON summary and, on joint
rows, whether each row's network is good) are kept in ``<state dir>/host_answers.sqlite``:
derived data like ``posterior_rows/``, deletable (the next read computes them again), never the
record. Each answer is stamped with what it was computed from and is read back only while that
is unchanged:

* what every answer reads: the current model version, the size and time of its posterior rows
  file, the configuration values the answers read (``[model] train_fidelities``, the good-barrier
  thresholds, the default working ion) and this module's :data:`ANSWERS_FORMAT`; a change
  recomputes every host;
* per hop (:meth:`~alem.store.Store.hop_marks`): its host, state and update time, its newest
  result and the current model's prediction time; per host (:meth:`~alem.store.Store.host_marks`):
  formula, name and kept networks. A change recomputes only the hosts whose answers read that hop
  (their own or one borrowed by signature: each answer lists the hops its paths use) and, for a
  new hop, the hosts with a path of the same signature.

A file that cannot be read (torn, another format) is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import textwrap
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from alem.campaign.host_networks import DEFAULT_SAMPLE_ROWS, HostAnalysis, analyses_and_signatures, paths_of_hosts
from alem.campaign.kept_rows import rows_path

if TYPE_CHECKING:
    from pathlib import Path

    from alem.campaign.host_rows import HostRows
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import Store

ANSWERS_FILENAME = "host_answers.sqlite"
#: Raised when what an answer holds, or how it is computed, changes: kept answers of another format are recomputed.
ANSWERS_FORMAT = 3
#: The summary keys a table of every host reads (``alem hosts``, the report, the ``materials``
#: strategy), kept apart from the whole summary: decoding 26,000 whole summaries (their paths,
#: site energies, transport estimate) took most of a read.
ROW_FIELDS = (
    "host_id", "formula", "name", "working_ion", "hops_total", "hops_computed", "hops_predicted", "good_barrier_ev",
    "percolation_barrier_ev", "dimensionality", "directions", "limiting_hop", "missing_paths", "spread", "prob_good", "error",
)
#: Seconds a writer waits for another process writing the same file.
WRITE_TIMEOUT_S = 30.0

_TABLES = (
    "CREATE TABLE IF NOT EXISTS stamp (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS answers (host_id INTEGER PRIMARY KEY, summary_json TEXT NOT NULL, row_json TEXT NOT NULL, "
    "good_rows BLOB, n_rows INTEGER)",
    "CREATE TABLE IF NOT EXISTS hop_marks (hop_id TEXT PRIMARY KEY, host_id INTEGER, mark TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS host_marks (host_id INTEGER PRIMARY KEY, mark TEXT NOT NULL)",
    # the hops whose barrier each answer reads (its own and borrowed), and its network's path signatures
    "CREATE TABLE IF NOT EXISTS reads (hop_id TEXT NOT NULL, host_id INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS reads_hop ON reads(hop_id)",
    "CREATE TABLE IF NOT EXISTS signatures (signature TEXT NOT NULL, host_id INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS signatures_signature ON signatures(signature)",
)


def answers_path(config: CampaignConfig) -> Path:
    return config.state_dir / ANSWERS_FILENAME


def _stamp(config: CampaignConfig, store: Store) -> str:
    """What every answer reads besides the store's hops and hosts, as one string."""
    current = store.current_model()
    rows_file = None
    if current is not None:
        path = rows_path(config, current.id)
        if path.exists():
            stat = path.stat()
            rows_file = [stat.st_size, stat.st_mtime_ns]
    loop = config.loop
    return json.dumps({
        "format": ANSWERS_FORMAT,
        "n_rows": DEFAULT_SAMPLE_ROWS,
        "model_version_id": None if current is None else current.id,
        "rows_file": rows_file,
        "train_fidelities": list(config.model.train_fidelities),
        "good_barrier_ev": loop.good_barrier_ev,
        "good_barrier_ev_by_ion": dict(sorted(loop.good_barrier_ev_by_ion.items())),
        "working_ion": config.campaign.working_ion,
    }, sort_keys=True)


@dataclass
class _Kept:
    """What the answers file holds besides the answers themselves (the marks are read only when
    their digest differs from the store's)."""

    stamp: str | None = None
    marks_digest: str | None = None
    hop_marks: dict[str, tuple[int | None, str]] = field(default_factory=dict)
    host_marks: dict[int, str] = field(default_factory=dict)


@dataclass
class _Changes:
    """Hosts to analyse again (``all_hosts``: every one) and hosts no longer in the store."""

    all_hosts: bool = False
    hosts: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.all_hosts or bool(self.hosts) or bool(self.gone)


def _connect(path: Path) -> sqlite3.Connection:
    """The answers file, its tables those of :data:`ANSWERS_FORMAT` (a file of another is emptied)."""
    conn = sqlite3.connect(path, timeout=WRITE_TIMEOUT_S, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    if conn.execute("PRAGMA user_version").fetchone()[0] != ANSWERS_FORMAT:
        conn.execute("BEGIN IMMEDIATE")
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            conn.execute(f"DROP TABLE {table}")
        for sql in _TABLES:
            conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {ANSWERS_FORMAT}")
        conn.execute("COMMIT")
    return conn


def _read_kept(conn: sqlite3.Connection) -> _Kept:
    kept = _Kept()
    row = conn.execute("SELECT value FROM stamp WHERE key = 'stamp'").fetchone()
    if row is None:
        return kept
    kept.stamp = row[0]
    digest = conn.execute("SELECT value FROM stamp WHERE key = 'marks'").fetchone()
    kept.marks_digest = None if digest is None else digest[0]
    return kept


def _read_marks(conn: sqlite3.Connection, kept: _Kept) -> None:
    kept.hop_marks = {hop_id: (host_id, mark) for hop_id, host_id, mark in conn.execute("SELECT hop_id, host_id, mark FROM hop_marks")}
    kept.host_marks = dict(conn.execute("SELECT host_id, mark FROM host_marks"))


def _keep_digest(conn: sqlite3.Connection, digest: str) -> None:
    try:
        conn.execute("INSERT OR REPLACE INTO stamp VALUES ('marks', ?)", (digest,))
    except sqlite3.OperationalError as exc:
        if not _cannot_write(exc):
            raise
        # a file another process writes: the marks are compared again next time


def _cannot_write(exc: sqlite3.OperationalError) -> bool:
    """Whether the answers file could not be written for a reason outside alem (locked by another
    writer past the timeout, read-only, disk full): the answers are still right, only not kept."""
    return any(word in str(exc) for word in ("locked", "readonly", "read-only", "disk", "full"))


def _marks_digest(hop_marks: list[tuple[str, int | None, str]], host_marks: dict[int, str]) -> str:
    """One fingerprint of every mark: equal, nothing an answer reads has changed."""
    digest = hashlib.sha256()
    digest.update("\n".join(f"{hop_id}\t{host_id}\t{mark}" for hop_id, host_id, mark in sorted(hop_marks)).encode())
    digest.update("\n".join(f"{host_id}\t{mark}" for host_id, mark in sorted(host_marks.items())).encode())
    return digest.hexdigest()


def _changes(conn: sqlite3.Connection, kept: _Kept, stamp: str, hop_marks: list, host_marks: dict[int, str], store: Store) -> _Changes:
    """The hosts whose kept answers no longer hold: every one when the stamp differs or a hop went."""
    if kept.stamp != stamp:
        return _Changes(all_hosts=True)
    if kept.marks_digest == _marks_digest(hop_marks, host_marks):
        return _Changes()
    _read_marks(conn, kept)
    if kept.hop_marks == {hop_id: (host_id, mark) for hop_id, host_id, mark in hop_marks} and kept.host_marks == host_marks:
        _keep_digest(conn, _marks_digest(hop_marks, host_marks))  # same marks, digest of another version: read them once
        return _Changes()
    now = {hop_id: (host_id, mark) for hop_id, host_id, mark in hop_marks}
    if any(hop_id not in now for hop_id in kept.hop_marks):  # hops are never deleted: a store restored from another copy
        return _Changes(all_hosts=True)
    changed = [hop_id for hop_id, value in now.items() if kept.hop_marks.get(hop_id) != value]
    new = [hop_id for hop_id in changed if hop_id not in kept.hop_marks]
    hosts = {host_id for host_id, mark in host_marks.items() if kept.host_marks.get(host_id) != mark}
    hosts |= {now[h][0] for h in changed if now[h][0] is not None}
    hosts |= {kept.hop_marks[h][0] for h in changed if h in kept.hop_marks and kept.hop_marks[h][0] is not None}
    hosts |= _hosts_reading(conn, "SELECT DISTINCT host_id FROM reads WHERE hop_id IN ({})", changed)
    if new:  # a new hop is borrowed by the hosts with a path of its signature
        hosts |= _hosts_reading(conn, "SELECT DISTINCT host_id FROM signatures WHERE signature IN ({})",
                                list(store.hop_signatures(new).values()))
    gone = set(kept.host_marks) - set(host_marks)
    return _Changes(hosts=hosts - gone, gone=gone)


def _hosts_reading(conn: sqlite3.Connection, sql: str, values: list[str]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        found.update(row[0] for row in conn.execute(sql.format(", ".join("?" * len(chunk))), chunk))
    return found


def _answer_of(row: tuple) -> HostAnalysis:
    summary_json, good_rows, n_rows = row  # summary_json: the whole summary or its ROW_FIELDS
    good = None if good_rows is None else np.unpackbits(np.frombuffer(good_rows, dtype=np.uint8), count=n_rows).astype(bool)
    return HostAnalysis(json.loads(summary_json), good)


def _read_answers(conn: sqlite3.Connection, host_ids: Collection[int] | None, whole: bool = True) -> dict[int, HostAnalysis]:
    """The kept answers (``whole``: whole summaries, else their :data:`ROW_FIELDS`)."""
    column = "summary_json" if whole else "row_json"
    if host_ids is None:
        rows = conn.execute(f"SELECT host_id, {column}, good_rows, n_rows FROM answers ORDER BY host_id")
        return {row[0]: _answer_of(row[1:]) for row in rows}
    answers = {}
    for host_id in host_ids:
        row = conn.execute(f"SELECT {column}, good_rows, n_rows FROM answers WHERE host_id = ?", (host_id,)).fetchone()
        if row is not None:
            answers[host_id] = _answer_of(row)
    return answers


def _as_json(value: Any) -> Any:
    """numpy scalars in a summary as the Python numbers JSON writes."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} in a host summary")


def _listed(summary: dict[str, Any]) -> str:
    """A summary as ``alem hosts --json`` prints it inside its list (indent 2, one level in), so
    the kept texts are joined into that output without being decoded."""
    return textwrap.indent(json.dumps(summary, indent=2, default=_as_json), "  ")


def _write(conn: sqlite3.Connection, stamp: str, analyses: dict[int, HostAnalysis], signatures: dict[int, set[str]],
           hop_marks: list, host_marks: dict[int, str], changes: _Changes) -> None:
    """Replace the answers of the analysed hosts and the marks, in one transaction (a reader sees
    the file before or after, never half)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if changes.all_hosts:
            for table in ("answers", "hop_marks", "host_marks", "reads", "signatures"):
                conn.execute(f"DELETE FROM {table}")
        else:
            for host_id in changes.hosts | changes.gone:
                for table in ("answers", "host_marks", "reads", "signatures"):
                    conn.execute(f"DELETE FROM {table} WHERE host_id = ?", (host_id,))
        conn.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", [
            (host_id, _listed(a.summary), json.dumps({k: a.summary.get(k) for k in ROW_FIELDS}, default=_as_json),
             None if a.good_rows is None else np.packbits(a.good_rows).tobytes(), None if a.good_rows is None else len(a.good_rows))
            for host_id, a in analyses.items()
        ])
        conn.executemany("INSERT INTO reads VALUES (?, ?)", [
            (p["hop_id"], host_id) for host_id, a in analyses.items() for p in a.summary["paths"] if p["hop_id"] is not None
        ])
        conn.executemany("INSERT INTO signatures VALUES (?, ?)", [(s, host_id) for host_id, found in signatures.items() for s in found])
        conn.executemany("INSERT OR REPLACE INTO host_marks VALUES (?, ?)", [(h, host_marks[h]) for h in analyses if h in host_marks])
        conn.execute("DELETE FROM hop_marks")
        conn.executemany("INSERT INTO hop_marks VALUES (?, ?, ?)", hop_marks)
        conn.execute("INSERT OR REPLACE INTO stamp VALUES ('stamp', ?)", (stamp,))
        conn.execute("INSERT OR REPLACE INTO stamp VALUES ('marks', ?)", (_marks_digest(hop_marks, host_marks),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _open_kept(path: Path) -> tuple[sqlite3.Connection | None, _Kept]:
    """The answers file and what it holds; a file that cannot be read is removed (it is derived)."""
    for _ in range(2):
        conn = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(path)
            return conn, _read_kept(conn)
        except (sqlite3.DatabaseError, OSError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.OperationalError) and _cannot_write(exc):
                break  # locked past the timeout, or read-only: the answers are computed here, the file left as it is
            _remove(path)
    return None, _Kept()


def _remove(path: Path) -> None:
    """Remove the answers file; one that cannot be (a state directory this user may only read)
    stays, and every read analyses the hosts itself."""
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            part.unlink(missing_ok=True)
        except OSError:
            return


@dataclass
class _Now:
    """The store as the answers read it now, and which kept answers no longer hold."""

    stamp: str
    hop_marks: list[tuple[str, int | None, str]]
    host_marks: dict[int, str]
    changes: _Changes


def _now(config: CampaignConfig, store: Store, conn: sqlite3.Connection | None, kept: _Kept) -> _Now:
    current = store.current_model()
    hop_marks = store.hop_marks(None if current is None else current.id)
    host_marks = store.host_marks()
    stamp = _stamp(config, store)
    changes = _changes(conn, kept, stamp, hop_marks, host_marks, store) if conn is not None else _Changes(all_hosts=True)
    return _Now(stamp, hop_marks, host_marks, changes)


def kept_analyses(
    config: CampaignConfig, store: Store, rows: HostRows | None = None, host_ids: Collection[int] | None = None,
    note: Callable[[str], None] | None = None, whole: bool = True, model: LoadedModel | None = None,
    counted: list[int] | None = None,
) -> dict[int, HostAnalysis]:
    """Every host's analysis (:func:`~alem.campaign.host_networks.analyse_hosts`), or ``host_ids``'
    (a host not in the store is left out), read from the kept answers; the hosts whose answers no
    longer hold are analysed here (on ``rows``: the campaign's joint rows, None: read when needed)
    and kept. ``note`` hears one line when answers are computed here. ``whole``: whole summaries
    (else at least their :data:`ROW_FIELDS`: a kept one holds only those). ``model``: the current
    model when the caller has it loaded (rows that must be predicted use it); ``counted`` gets how
    many hosts were analysed here."""
    path = answers_path(config)
    conn, kept = _open_kept(path)
    try:
        return _refreshed(config, store, conn, _now(config, store, conn, kept), rows, host_ids, note, whole, model, counted)
    except sqlite3.DatabaseError:  # a page of the file that cannot be read: computed again, never trusted
        if conn is not None:
            conn.close()
            conn = None
        _remove(path)
        return kept_analyses(config, store, rows, host_ids, note, whole, model, counted)
    finally:
        if conn is not None:
            conn.close()


def kept_summary(config: CampaignConfig, store: Store, host_id: int) -> dict[str, Any]:
    """One host's summary (``alem show HOST_ID``): its kept answer when it holds (a few hosts'
    stale answers are refreshed first); when every answer is stale (a new model version not yet
    refreshed by the loop) only this host is analysed, and nothing is kept."""
    from alem.campaign.host_networks import host_summary

    conn, kept = _open_kept(answers_path(config))
    try:
        now = _now(config, store, conn, kept)
        if conn is not None and not now.changes.all_hosts:
            found = _refreshed(config, store, conn, now, None, [host_id], None, whole=True)
            if host_id in found:
                return found[host_id].summary
    finally:
        if conn is not None:
            conn.close()
    return host_summary(config, store, host_id)


def _refreshed(config: CampaignConfig, store: Store, conn: sqlite3.Connection | None, now: _Now, rows: HostRows | None,
               host_ids: Collection[int] | None, note: Callable[[str], None] | None, whole: bool = True,
               model: LoadedModel | None = None, counted: list[int] | None = None) -> dict[int, HostAnalysis]:
    from alem.campaign.host_rows import host_rows

    stamp, changes = now.stamp, now.changes
    if not changes and conn is not None:
        return _read_answers(conn, host_ids, whole)
    if rows is None:
        # a few stale hosts read their own columns of the kept rows, not the whole campaign's
        wanted = None if changes.all_hosts else _row_hop_ids(config, store, sorted(changes.hosts))
        rows = host_rows(config, store, model=model, hop_ids=wanted)
        if _stamp(config, store) != stamp:  # the rows were computed again just now: every answer reads them
            # computing them recorded the model's predictions: the hops' marks are read again, or
            # the next read would find every host stale once more
            current = store.current_model()
            now = _Now(_stamp(config, store), store.hop_marks(None if current is None else current.id), now.host_marks,
                       _Changes(all_hosts=True))
            stamp, changes = now.stamp, now.changes
    todo = None if changes.all_hosts else sorted(changes.hosts)
    if note is not None and (todo is None or todo):
        note(f"refreshing the kept host answers ({'every host' if todo is None else f'{len(todo)} of {len(now.host_marks)} hosts'})")
    analyses, signatures = analyses_and_signatures(config, store, rows, todo)
    if counted is not None:
        counted.append(len(analyses))
    if conn is not None:
        try:
            # an analysis may keep a network (signed paths): the marks of the hosts analysed are read again
            after = store.host_marks()
            marks = {h: m for h, m in now.host_marks.items() if h not in changes.gone} | {h: after[h] for h in analyses if h in after}
            _write(conn, stamp, analyses, signatures, now.hop_marks, marks, changes)
        except sqlite3.OperationalError as exc:
            if not _cannot_write(exc):
                raise
            # kept answers only save time: an answers file that cannot be written now is computed again next time
    if todo is None:
        return analyses if host_ids is None else {h: analyses[h] for h in host_ids if h in analyses}
    assert conn is not None  # without a file every host is analysed
    answers = _read_answers(conn, host_ids, whole)  # the write may have failed: what was analysed here wins
    answers.update(analyses if host_ids is None else {h: analyses[h] for h in host_ids if h in analyses})
    return {h: answers[h] for h in sorted(answers) if h not in changes.gone}


def _row_hop_ids(config: CampaignConfig, store: Store, host_ids: list[int]) -> list[str]:
    """The hops whose joint rows the analyses of ``host_ids`` read (their own and those they borrow)."""
    return [hop_id for paths in paths_of_hosts(config, store, host_ids).values() for hop_id in paths.row_hop_ids]


def host_table(config: CampaignConfig, store: Store, rows: HostRows | None = None,
               note: Callable[[str], None] | None = None, whole: bool = True) -> list[dict[str, Any]]:
    """:func:`~alem.campaign.host_networks.host_summary` of every host of the campaign, in host
    id order, on one set of rows: the kept answers, the hosts whose answers no longer hold analysed
    again (``note`` hears one line when that happens). ``whole``: whole summaries, else at least
    the fields of a table of hosts (:data:`ROW_FIELDS`)."""
    return [analysis.summary for analysis in kept_analyses(config, store, rows, note=note, whole=whole).values()]


def hosts_json(config: CampaignConfig, store: Store, note: Callable[[str], None] | None = None) -> str:
    """``alem hosts --json``: every host's whole summary, one JSON list (indent 2), the kept texts
    joined as they are when every answer holds (decoding and encoding 26,000 summaries took seconds)."""
    conn, kept = _open_kept(answers_path(config))
    try:
        if conn is not None and not _now(config, store, conn, kept).changes:
            texts = [row[0] for row in conn.execute("SELECT summary_json FROM answers ORDER BY host_id")]
            return "[\n" + ",\n".join(texts) + "\n]" if texts else "[]"
    except sqlite3.DatabaseError:
        pass  # computed again below, never trusted
    finally:
        if conn is not None:
            conn.close()
    return json.dumps(host_table(config, store, note=note), indent=2, default=_as_json)


def refresh_host_answers(config: CampaignConfig, store: Store, model: LoadedModel | None = None) -> int:
    """Bring the kept answers up to date (the loop after results or a new model version's
    scoring; ``model``: the current one, already loaded, should the joint rows need it). Returns
    how many hosts were analysed."""
    analysed: list[int] = []
    kept_analyses(config, store, host_ids=(), note=None, model=model, counted=analysed)
    return sum(analysed)
