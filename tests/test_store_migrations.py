"""Schema versions: an old store is migrated in one transaction, a newer one is refused."""

import sqlite3

import pytest

from alem.store import SCHEMA_VERSION, HopState, Store
from alem.store.schema import MIGRATIONS, Migration, SchemaError, current_version, migrate


def _version_1_store(path, hop):
    """A store as the first release wrote it (schema version 1, one candidate hop)."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS, target=1)
    conn.execute(
        "INSERT INTO hops (hop_id, working_ion, initial_json, final_json, hop_length_a, n_sites, fingerprint, "
        "state, created_at, updated_at) VALUES (?, 'Li', ?, ?, 2.0, 3, 'fp-a', 'approved', 0, 0)",
        ("a", hop.initial.to_json(), hop.final.to_json()),
    )
    conn.close()


def test_opening_a_version_1_store_migrates_it_and_keeps_its_data(tmp_path, tiny_hop):
    path = tmp_path / "old.sqlite"
    _version_1_store(path, tiny_hop("a", 0.4))
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert store.hop("a").state is HopState.APPROVED
        job = store.begin_submission("a", "replay")  # the v2 tables work
        store.mark_submitted(job.id, "ext-1")
        versions = [r["version"] for r in store._conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [1, 2]


def test_a_failing_migration_leaves_the_store_exactly_as_it_was(tmp_path, tiny_hop):
    path = tmp_path / "old.sqlite"
    _version_1_store(path, tiny_hop("a", 0.4))
    broken = (*MIGRATIONS, Migration(3, "broken step", ["CREATE TABLE extra (x)", "ALTER TABLE nope ADD y"]))
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(SchemaError, match="migration to schema version 3 .* failed: no such table: nope; the store was left at version 1"):
        migrate(conn, broken, where=str(path))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert current_version(conn) == 1
    assert "jobs" not in tables and "extra" not in tables  # v2 rolled back together with v3
    conn.close()


def test_python_steps_run_inside_the_same_transaction(tmp_path):
    def backfill(conn):
        conn.execute("INSERT INTO notes VALUES ('from python')")

    steps = (Migration(1, "notes", ["CREATE TABLE notes (text TEXT)"]), Migration(2, "backfill", backfill))
    conn = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    applied = migrate(conn, steps)
    assert [m.version for m in applied] == [1, 2]
    assert conn.execute("SELECT text FROM notes").fetchall() == [("from python",)]
    assert migrate(conn, steps) == []  # idempotent


def test_a_store_from_a_newer_alem_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    Store.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    conn.close()
    with pytest.raises(SchemaError, match=r"new.sqlite: schema version 99 is newer than this alem understands \(up to 2\)"):
        Store.open(path)
