"""The store's schema as an ordered list of forward migrations.

Version N of a store is the result of applying ``MIGRATIONS[:N]`` to an empty database. Opening a
store applies the missing steps in ONE transaction (all or nothing) and records each in
``schema_version``. Never edit a released step: append a new one. A step is a list of SQL
statements or a callable taking the connection (for data rewrites SQL cannot express).

Times are Unix seconds (REAL, UTC); structures and free-form facts are JSON text.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alem.errors import AlemError

#: Job states in which a job may still produce a result; a hop has at most one job in them.
LIVE_JOB_STATES = ("created", "submitted", "queued", "running")
_LIVE_SQL = ", ".join(f"'{s}'" for s in LIVE_JOB_STATES)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    steps: Sequence[str] | Callable[[sqlite3.Connection], None]


_V1_CAMPAIGN = [
    """CREATE TABLE hosts (
        id INTEGER PRIMARY KEY,
        formula TEXT NOT NULL,
        structure_json TEXT NOT NULL,
        fingerprint TEXT NOT NULL UNIQUE,
        source_file TEXT,
        name TEXT,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE hops (
        hop_id TEXT PRIMARY KEY,
        host_id INTEGER REFERENCES hosts(id),
        working_ion TEXT NOT NULL,
        initial_json TEXT NOT NULL,
        final_json TEXT NOT NULL,
        hop_length_a REAL NOT NULL,
        n_sites INTEGER NOT NULL,
        fingerprint TEXT NOT NULL UNIQUE,
        grp TEXT,
        metadata_json TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'candidate' CHECK (state IN
            ('candidate', 'proposed', 'approved', 'rejected', 'submitted', 'done', 'failed')),
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX hops_state ON hops(state)",
    "CREATE INDEX hops_host ON hops(host_id)",
    """CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        card_json TEXT NOT NULL DEFAULT '{}',
        dataset_hash TEXT,
        n_training_hops INTEGER,
        created_at REAL NOT NULL,
        is_current INTEGER NOT NULL DEFAULT 0 CHECK (is_current IN (0, 1))
    )""",
    "CREATE UNIQUE INDEX model_versions_one_current ON model_versions(is_current) WHERE is_current = 1",
    """CREATE TABLE predictions (
        hop_id TEXT NOT NULL REFERENCES hops(hop_id),
        model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
        mean_ev REAL NOT NULL,
        std_ev REAL NOT NULL,
        prob_good REAL,
        created_at REAL NOT NULL,
        PRIMARY KEY (hop_id, model_version_id)
    )""",
    """CREATE TABLE proposals (
        id INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL,
        hop_id TEXT NOT NULL REFERENCES hops(hop_id),
        strategy TEXT NOT NULL,
        score REAL NOT NULL,
        mean_ev REAL,
        std_ev REAL,
        model_version_id INTEGER REFERENCES model_versions(id),
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX proposals_batch ON proposals(batch_id)",
    "CREATE INDEX proposals_hop ON proposals(hop_id)",
    """CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        hop_id TEXT NOT NULL REFERENCES hops(hop_id),
        proposal_id INTEGER REFERENCES proposals(id),
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        who TEXT NOT NULL,
        reason TEXT,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX decisions_hop ON decisions(hop_id)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        hop_id TEXT,
        job_id INTEGER,
        message TEXT NOT NULL,
        payload_json TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX events_hop ON events(hop_id)",
]

_V2_EXECUTION = [
    f"""CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        job_key TEXT NOT NULL UNIQUE,
        hop_id TEXT NOT NULL REFERENCES hops(hop_id),
        backend TEXT NOT NULL,
        external_id TEXT,
        state TEXT NOT NULL DEFAULT 'created' CHECK (state IN
            ({_LIVE_SQL}, 'completed', 'failed', 'lost', 'abandoned')),
        attempt INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        submitted_at REAL,
        updated_at REAL NOT NULL,
        error TEXT,
        CHECK (state = 'created' OR state = 'abandoned' OR external_id IS NOT NULL)
    )""",
    # The store-level guarantee behind "never submit a hop twice".
    f"CREATE UNIQUE INDEX jobs_one_live_per_hop ON jobs(hop_id) WHERE state IN ({_LIVE_SQL})",
    "CREATE INDEX jobs_state ON jobs(state)",
    """CREATE TABLE results (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL UNIQUE REFERENCES jobs(id),
        hop_id TEXT NOT NULL REFERENCES hops(hop_id),
        usable INTEGER NOT NULL CHECK (usable IN (0, 1)),
        barrier_ev REAL,
        reverse_barrier_ev REAL,
        image_energies_json TEXT NOT NULL DEFAULT '[]',
        path_coordinate_json TEXT NOT NULL DEFAULT '[]',
        converged INTEGER NOT NULL CHECK (converged IN (0, 1)),
        method TEXT NOT NULL DEFAULT '',
        failure_reason TEXT,
        details_json TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        CHECK (usable = 0 OR (barrier_ev IS NOT NULL AND failure_reason IS NULL AND converged = 1))
    )""",
    "CREATE INDEX results_hop ON results(hop_id)",
    """CREATE TABLE loop_status (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER,
        hostname TEXT,
        phase TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        started_at REAL,
        heartbeat REAL NOT NULL
    )""",
    "CREATE INDEX events_job ON events(job_id)",
]

#: States in which a retraining job may still produce a model.
LIVE_RETRAIN_STATES = ("created", "submitted", "queued", "running")
RETRAIN_STATES = (*LIVE_RETRAIN_STATES, "completed", "failed", "lost")
_LIVE_RETRAIN_SQL = ", ".join(f"'{s}'" for s in LIVE_RETRAIN_STATES)

#: Schema 5: retraining jobs (alem.store.retrain_jobs).
_V5_RETRAIN_JOBS = [
    f"""CREATE TABLE retrain_jobs (
        id INTEGER PRIMARY KEY,
        job_key TEXT NOT NULL UNIQUE,
        runner TEXT NOT NULL,
        attempt INTEGER NOT NULL CHECK (attempt IN (1, 2)),
        parent_model_id INTEGER REFERENCES model_versions(id),
        n_new_results INTEGER NOT NULL,
        run_dir TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'created' CHECK (state IN ({", ".join(f"'{s}'" for s in RETRAIN_STATES)})),
        external_id TEXT,
        model_version_id INTEGER REFERENCES model_versions(id),
        error TEXT,
        created_at REAL NOT NULL,
        submitted_at REAL,
        updated_at REAL NOT NULL,
        finished_at REAL
    )""",
    # one live retraining at a time: every live row has the same value of this expression
    f"CREATE UNIQUE INDEX retrain_jobs_one_live ON retrain_jobs((state IN ({_LIVE_RETRAIN_SQL}))) WHERE state IN ({_LIVE_RETRAIN_SQL})",
]

#: The core-hour ledger (alem.store.job_costs): what each ended job spent, and on what allocation.
_V6_CORE_HOURS = [
    "ALTER TABLE jobs ADD COLUMN core_hours REAL CHECK (core_hours IS NULL OR core_hours >= 0)",
    "ALTER TABLE jobs ADD COLUMN cost_json TEXT",
]


#: Schema 8: each host's migration network as ``candidates add`` built it (alem.candidates.network_record),
#: so the host answers read it instead of building it again; one row per host and working ion.
_V8_HOST_NETWORKS = [
    """CREATE TABLE host_networks (
        host_id INTEGER NOT NULL REFERENCES hosts(id),
        working_ion TEXT NOT NULL,
        covers_a REAL NOT NULL,
        record_json TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (host_id, working_ion)
    )""",
]


#: Schema 9: scoring jobs (alem.store.score_jobs): a large pool scored as a batch job, one live at a time.
_V9_SCORE_JOBS = [
    f"""CREATE TABLE score_jobs (
        id INTEGER PRIMARY KEY,
        job_key TEXT NOT NULL UNIQUE,
        runner TEXT NOT NULL,
        attempt INTEGER NOT NULL CHECK (attempt IN (1, 2)),
        model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
        n_hops INTEGER NOT NULL,
        run_dir TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'created' CHECK (state IN ({", ".join(f"'{s}'" for s in RETRAIN_STATES)})),
        external_id TEXT,
        n_recorded INTEGER,
        error TEXT,
        created_at REAL NOT NULL,
        submitted_at REAL,
        updated_at REAL NOT NULL,
        finished_at REAL
    )""",
    f"CREATE UNIQUE INDEX score_jobs_one_live ON score_jobs((state IN ({_LIVE_RETRAIN_SQL}))) WHERE state IN ({_LIVE_RETRAIN_SQL})",
    # Every column of a hop record (alem.store.records.HopRecord), so listing hops reads this index
    # and never the rows: a row's two structures sit before state and times, and walking their
    # overflow pages made a listing of 10^4 hops take 2 s.
    "CREATE INDEX hops_records ON hops(state, host_id, created_at, hop_id, working_ion, hop_length_a, n_sites, fingerprint, grp, "
    "metadata_json, updated_at)",
]


#: Schema 11: each hop's content key (alem.hops.content_key) kept with it, so a rescoring whose hop features are all in
#: the feature cache reads the keys instead of building the hops' structures. A hop stored before has none until it is
#: next scored (alem.store.hop_rows.HopTables.keep_content_keys). A row whose structures or ion change loses its key
#: (the trigger), so a kept key is always the key of the row as it is.
_V12_CONTENT_KEYS = [
    "ALTER TABLE hops ADD COLUMN content_key TEXT",
    # the hops still without one, found without reading every row (empty once every hop was scored)
    "CREATE INDEX hops_without_content_key ON hops(hop_id) WHERE content_key IS NULL",
    """CREATE TRIGGER hops_content_key_follows_content AFTER UPDATE OF initial_json, final_json, working_ion ON hops
        FOR EACH ROW WHEN NEW.content_key IS NOT NULL
        BEGIN UPDATE hops SET content_key = NULL WHERE hop_id = NEW.hop_id; END""",
]


def _v3_fidelity(conn: sqlite3.Connection) -> None:
    from alem.store.fidelity_columns import migrate_to_v3

    migrate_to_v3(conn, LIVE_JOB_STATES)


def _v4_provenance(conn: sqlite3.Connection) -> None:
    from alem.store.provenance_column import migrate_to_v4

    migrate_to_v4(conn)


def _v7_compact_structures(conn: sqlite3.Connection) -> None:
    from alem.store.structure_json import migrate_to_v7

    migrate_to_v7(conn)


def _v10_packed_endpoints(conn: sqlite3.Connection) -> None:
    from alem.store.structure_json import migrate_to_v10

    migrate_to_v10(conn)


#: Where a hop's metadata holds its supercell-independent signature (``alem.candidates.signature.SIGNATURE_KEY``):
#: the store indexes it, and a query must spell the indexed expression exactly for SQLite to use the index.
SIGNATURE_SQL = "json_extract(metadata_json, '$.signature')"

_V11_SIGNATURE_INDEX = [
    # A host path that enumeration did not store (an identical hop of another host was) finds that
    # hop by its signature: one indexed lookup, not every hop record of the campaign decoded.
    f"CREATE INDEX hops_signature ON hops({SIGNATURE_SQL}, created_at)",
]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "campaign: hosts, hops, models, predictions, proposals, decisions, events", _V1_CAMPAIGN),
    Migration(2, "execution: jobs (one live job per hop), results, loop status", _V2_EXECUTION),
    Migration(3, "fidelity: job stage and fidelity, result fidelity, campaign rounds", _v3_fidelity),
    Migration(4, "provenance: each result's preset, settings hash, inputs and code versions", _v4_provenance),
    Migration(5, "retraining jobs: a re-fine-tuning run as a batch job, one live at a time", _V5_RETRAIN_JOBS),
    Migration(6, "core-hour ledger: core-hours and allocation of every ended job", _V6_CORE_HOURS),
    Migration(7, "compact hop structures: lattice, elements and fractional coordinates where nothing is lost", _v7_compact_structures),
    Migration(8, "host networks: each host's migration network, path signatures and dataset matches, kept", _V8_HOST_NETWORKS),
    Migration(9, "scoring jobs (a large pool scored as a batch job, one live at a time); hop records read from an index",
              _V9_SCORE_JOBS),
    Migration(10, "packed structures: hosts and hops' initial structures compressed, a final one as the ion's new position "
              "where nothing else moved", _v10_packed_endpoints),
    Migration(11, "hops indexed by their signature (a host's path stored under another host found by one lookup)",
              _V11_SIGNATURE_INDEX),
    Migration(12, "content keys: each hop's exact content hash kept with it (a rescoring reads its cached features without "
              "building structures)", _V12_CONTENT_KEYS),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


class SchemaError(AlemError, RuntimeError):
    """The store's schema cannot be used by this alem (newer than known, or a failed migration)."""


def _ensure_version_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
    )


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _refuse_newer(have: int, known: int, where: str) -> None:
    if have > known:
        raise SchemaError(
            f"{where}: schema version {have} is newer than this alem understands (up to {known}); "
            "upgrade alem to open this campaign"
        )


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[Migration] = MIGRATIONS,
    target: int | None = None,
    where: str = "store",
) -> list[Migration]:
    """Bring the database to ``target`` (default: the newest known version) in one transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Returns the applied steps.
    Raises :class:`SchemaError` for a store newer than this alem, or when a step fails (after
    rolling every step of this call back).
    """
    known = migrations[-1].version if migrations else 0
    target = known if target is None else target
    have = current_version(conn)
    _refuse_newer(have, known, where)
    if have >= target:
        return []  # the common case takes no write lock, so readers open a busy store freely
    conn.execute("BEGIN IMMEDIATE")
    try:
        _ensure_version_table(conn)
        have = current_version(conn)  # again, under the lock: another process may have migrated
        _refuse_newer(have, known, where)
        applied = []
        for migration in migrations:
            if migration.version <= have or migration.version > target:
                continue
            try:
                if callable(migration.steps):
                    migration.steps(conn)
                else:
                    for statement in migration.steps:
                        conn.execute(statement)
            except sqlite3.Error as exc:
                raise SchemaError(
                    f"{where}: migration to schema version {migration.version} ({migration.description}) "
                    f"failed: {exc}; the store was left at version {have}"
                ) from exc
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, time.time()),
            )
            applied.append(migration)
        conn.execute("COMMIT")
        return applied
    except BaseException:
        conn.execute("ROLLBACK")
        raise
