"""Schema versions: an old store is migrated in one transaction, a newer one is refused."""

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure

from alem.store import SCHEMA_VERSION, HopState, Store
from alem.store.schema import MIGRATIONS, Migration, SchemaError, current_version, migrate

FROZEN_V1 = Path(__file__).parent / "data" / "store_v1.sqlite"  # built by tests/data/make_store_v1.py
V1_TABLES = ("hosts", "hops", "model_versions", "predictions", "proposals", "decisions", "events")


def _version_1_store(tmp_path) -> Path:
    """A copy of the frozen store the first release wrote (schema version 1, rows in every table)."""
    path = tmp_path / "old.sqlite"
    shutil.copyfile(FROZEN_V1, path)
    return path


def _rows(path) -> dict[str, list[tuple]]:
    with closing(sqlite3.connect(path)) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in V1_TABLES}


def test_the_frozen_file_is_a_version_1_store_with_rows_in_every_table():
    with closing(sqlite3.connect(FROZEN_V1)) as conn:
        assert current_version(conn) == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {*V1_TABLES, "schema_version"}
    assert all(_rows(FROZEN_V1).values())


def _schema_sql(conn) -> set[str]:
    return {" ".join(r[0].split()) for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")}


def test_the_released_version_1_step_was_never_edited(tmp_path):
    """Today's migration code still builds exactly the schema the first release wrote."""
    with closing(sqlite3.connect(tmp_path / "today.sqlite", isolation_level=None)) as today, \
            closing(sqlite3.connect(FROZEN_V1)) as frozen:
        migrate(today, MIGRATIONS, target=1)
        assert _schema_sql(today) == _schema_sql(frozen)


def test_opening_a_version_1_store_migrates_it_and_keeps_its_data(tmp_path, tiny_hop):
    path = _version_1_store(tmp_path)
    before = _rows(path)
    Store.open(path).close()
    after = _rows(path)
    # migrating rewrote no v1 row, but for v7's and v10's hop structures (columns 3 and 4) and v10's
    # packed host structures (column 2), read back below; v11 appended the hops' content keys, none yet
    assert {t: r for t, r in after.items() if t not in ("hops", "hosts")} == {t: r for t, r in before.items() if t not in ("hops", "hosts")}
    assert [r[:3] + r[5:-1] for r in after["hops"]] == [r[:3] + r[5:] for r in before["hops"]]
    assert all(r[-1] is None for r in after["hops"])
    assert [r[:2] + r[3:] for r in after["hosts"]] == [r[:2] + r[3:] for r in before["hosts"]]
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert {h.hop_id: h.state for h in store.hops()} == {
            "a": HopState.CANDIDATE, "b": HopState.PROPOSED, "c": HopState.APPROVED, "d": HopState.REJECTED}
        assert store.current_model().id == 1 and store.current_model().card["cv_metrics"]["mae_ev"] == 0.2
        assert [p.hop_id for p in store.proposals(batch_id="batch-1")] == ["b", "c", "d"]
        assert {(d.hop_id, d.decision, d.who, d.reason) for d in store.decisions()} == {
            ("c", "approve", "alice", "cheap"), ("d", "reject", "bob", "disordered layer")}
        assert len(store.predictions()) == 4 and store.hosts()[0].name == "tiny host"
        old_host = Structure.from_dict(json.loads(before["hosts"][0][2]))
        assert store.host_structure(store.hosts()[0].id).frac_coords.tobytes() == old_host.frac_coords.tobytes()
        assert store.load_hops(["b"])[0].initial == tiny_hop("b", 0.4).initial
        assert store.integrity_check() == []
        # the old fingerprints still de-duplicate: the same hop again maps to the stored id
        assert store.add_hops([tiny_hop("another-name", 0.5)]) == ["c"]
        job = store.begin_submission("c", "replay")  # the v2 tables work on the migrated data
        store.mark_submitted(job.id, "ext-1")
        assert store.hop("c").state is HopState.SUBMITTED
        versions = [r["version"] for r in store._conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_a_version_5_store_gains_the_core_hour_ledger_and_keeps_its_jobs(tmp_path, tiny_hop):
    from alem.neb.core_hours import JobCost

    path = tmp_path / "v5.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS, target=5)
    conn.close()
    # a v5 store with a job in flight (written without the ledger's columns)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("INSERT INTO hops (hop_id, working_ion, initial_json, final_json, hop_length_a, n_sites, fingerprint, "
                     "state, created_at, updated_at) VALUES ('h', 'Li', '{}', '{}', 2.0, 3, 'fp', 'submitted', 0, 0)")
        conn.execute("INSERT INTO jobs (job_key, hop_id, backend, state, attempt, created_at, updated_at, external_id, stage) "
                     "VALUES ('k', 'h', 'slurm', 'running', 1, 0, 0, '42', 'target')")
        conn.commit()
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        [job] = store.jobs()
        assert job.core_hours is None and job.external_id == "42"
        assert store.record_job_cost(job.id, JobCost(nodes=2, cores_per_node=4, wall_s=1800, source="test"))
        assert not store.record_job_cost(job.id, JobCost(nodes=9, cores_per_node=9, wall_s=9, source="again"))
        assert store.job(job.id).core_hours == 4.0 and store.core_hours_spent(stage="target") == 4.0
        assert store.core_hours_spent(stage="screening") == 0.0 and store.core_hours_by_hop() == {"h": (4.0, 1)}
        with pytest.raises(sqlite3.IntegrityError):
            store._conn.execute("UPDATE jobs SET core_hours = -1 WHERE id = ?", (job.id,))


def test_a_failing_migration_leaves_the_store_exactly_as_it_was(tmp_path):
    path = _version_1_store(tmp_path)
    before = _rows(path)
    broken = (*MIGRATIONS, Migration(5, "broken step", ["CREATE TABLE extra (x)", "ALTER TABLE nope ADD y"]))
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(SchemaError, match="migration to schema version 5 .* failed: no such table: nope; the store was left at version 1"):
        migrate(conn, broken, where=str(path))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert current_version(conn) == 1
    assert "jobs" not in tables and "extra" not in tables  # v2 to v4 rolled back together with v5
    conn.close()
    assert _rows(path) == before


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
    with pytest.raises(SchemaError, match=rf"new.sqlite: schema version 99 is newer than this alem understands \(up to {SCHEMA_VERSION}\)"):
        Store.open(path)


def test_v7_rewrites_hop_structures_compactly_and_exactly(tmp_path):
    import json

    from alem.store.structure_json import COMPACT_KEY, _unpacked
    from tests._factories import rocksalt_hop

    path = tmp_path / "v6.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS, target=6)
    conn.close()
    plain = rocksalt_hop("plain")
    charged = rocksalt_hop("charged")
    charged.initial.add_oxidation_state_by_element({"Li": 1, "O": -2})
    charged.final.add_oxidation_state_by_element({"Li": 1, "O": -2})
    with closing(sqlite3.connect(path)) as conn:  # rows as a v6 alem wrote them: pymatgen's dicts
        for i, hop in enumerate((plain, charged)):
            conn.execute("INSERT INTO hops (hop_id, working_ion, initial_json, final_json, hop_length_a, n_sites, fingerprint, "
                         "state, created_at, updated_at) VALUES (?, 'Li', ?, ?, 2.0, 63, ?, 'candidate', 0, 0)",
                         (hop.hop_id, json.dumps(hop.initial.as_dict()), json.dumps(hop.final.as_dict()), f"fp{i}"))
        conn.commit()
        old_size = conn.execute("SELECT length(initial_json) FROM hops WHERE hop_id = 'plain'").fetchone()[0]
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, MIGRATIONS, target=7)
        rows = {r[0]: r[1] for r in conn.execute("SELECT hop_id, initial_json FROM hops")}
    assert COMPACT_KEY in json.loads(rows["plain"]) and len(rows["plain"]) * 3 < old_size
    assert COMPACT_KEY not in json.loads(rows["charged"])  # oxidation states: pymatgen's dict kept
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        loaded = dict(zip(("plain", "charged"), store.load_hops(["plain", "charged"])))
        for hop in (plain, charged):
            for mine, theirs in ((loaded[hop.hop_id].initial, hop.initial), (loaded[hop.hop_id].final, hop.final)):
                assert np.array_equal(mine.frac_coords, theirs.frac_coords)  # to the bit
                assert np.array_equal(mine.lattice.matrix, theirs.lattice.matrix) and mine.species == theirs.species
        new = store.add_hops([rocksalt_hop("new", neighbor_rank=1)])
        assert COMPACT_KEY in _unpacked(store._conn.execute("SELECT initial_json FROM hops WHERE hop_id = ?", new).fetchone()[0])


def _same_structures(mine, theirs) -> bool:
    return (np.array_equal(mine.frac_coords, theirs.frac_coords) and np.array_equal(mine.lattice.matrix, theirs.lattice.matrix)
            and mine.species == theirs.species and mine.site_properties == theirs.site_properties)


def test_v10_packs_hop_endpoints_and_reads_them_back_to_the_bit(tmp_path):
    """A v9 store's hosts and hops: a host's structure and a hop's initial structure compressed, the final one as the ion's new position
    where nothing else moved (an enumerated hop), compressed whole where it did (a relaxed hop) or
    where pymatgen's dict was kept (oxidation states); each reads back to the bit, de-duplicates as
    before, and a hop stored after the migration is packed too."""
    import json

    from alem.hops.fingerprint import hop_fingerprint
    from alem.store.structure_json import MOVED_KEY, PACKED_PREFIX, structure_to_json
    from tests._factories import rocksalt_hop

    path = tmp_path / "v9.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, MIGRATIONS, target=9)
    enumerated = rocksalt_hop("enumerated")
    relaxed = rocksalt_hop("relaxed", neighbor_rank=3)
    relaxed.final.translate_sites([5], [0.01, 0.0, 0.0])  # a host site moved as well: the final kept whole
    charged = rocksalt_hop("charged", neighbor_rank=2)
    charged.initial.add_oxidation_state_by_element({"Li": 1, "O": -2})
    charged.final.add_oxidation_state_by_element({"Li": 1, "O": -2})
    hops = (enumerated, relaxed, charged)
    ordered_host = enumerated.initial.copy()
    ordered_host.properties = {"alem_ordering": {"rank": 1}}  # a stand-in of a disordered host keeps its provenance
    with closing(sqlite3.connect(path)) as conn:  # rows as a v9 alem wrote them
        for hop in hops:
            conn.execute("INSERT INTO hops (hop_id, working_ion, initial_json, final_json, hop_length_a, n_sites, fingerprint, "
                         "state, created_at, updated_at) VALUES (?, 'Li', ?, ?, 2.0, 63, ?, 'candidate', 0, 0)",
                         (hop.hop_id, structure_to_json(hop.initial), structure_to_json(hop.final), hop_fingerprint(hop)))
        conn.execute("INSERT INTO hosts (formula, structure_json, fingerprint, created_at) VALUES ('LiO', ?, 'host-fp', 0)",
                     (json.dumps(ordered_host.as_dict()),))
        conn.commit()
        old_bytes = conn.execute("SELECT length(initial_json) + length(final_json) FROM hops WHERE hop_id = 'enumerated'").fetchone()[0]
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        rows = {r[0]: (r[1], r[2]) for r in store._conn.execute("SELECT hop_id, initial_json, final_json FROM hops")}
        assert all(initial.startswith(PACKED_PREFIX) for initial, _ in rows.values())
        assert set(json.loads(rows["enumerated"][1])) == {MOVED_KEY}
        assert rows["relaxed"][1].startswith(PACKED_PREFIX) and rows["charged"][1].startswith(PACKED_PREFIX)
        assert sum(map(len, rows["enumerated"])) * 4 < old_bytes
        loaded = dict(zip([h.hop_id for h in hops], store.load_hops([h.hop_id for h in hops])))
        for hop in hops:
            assert _same_structures(loaded[hop.hop_id].initial, hop.initial)
            assert _same_structures(loaded[hop.hop_id].final, hop.final)
            assert hop_fingerprint(loaded[hop.hop_id]) == hop_fingerprint(hop)
        assert store.add_hops([rocksalt_hop("again")]) == ["enumerated"]  # the same hop maps to the stored id
        new = store.add_hops([rocksalt_hop("new", neighbor_rank=1)])
        initial, final = store._conn.execute("SELECT initial_json, final_json FROM hops WHERE hop_id = ?", new).fetchone()
        assert initial.startswith(PACKED_PREFIX) and set(json.loads(final)) == {MOVED_KEY}
        assert _same_structures(store.load_hops(new)[0].final, rocksalt_hop("new", neighbor_rank=1).final)
        host_id = store.hosts()[0].id
        packed_host = store._conn.execute("SELECT structure_json FROM hosts WHERE id = ?", (host_id,)).fetchone()[0]
        assert packed_host.startswith(PACKED_PREFIX)
        host = store.host_structure(host_id)
        assert _same_structures(host, ordered_host) and host.properties == ordered_host.properties
        assert store.integrity_check() == []


def test_v11_indexes_hops_by_signature_and_finds_another_hosts_newest_in_one_lookup(tmp_path):
    """A v10 store's hops gain an index on their metadata's signature: the newest hop with a
    signature that is not the asking host's is one indexed lookup, as the host answers need it."""
    from alem.candidates.signature import SIGNATURE_KEY
    from alem.store.schema import SIGNATURE_SQL

    path = tmp_path / "v10.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, MIGRATIONS, target=10)
    rows = [  # hop id, host, signature, created at
        ("a1", 1, "sig-a", 1.0), ("a2", 2, "sig-a", 2.0), ("a3", 3, "sig-a", 3.0), ("b1", 1, "sig-b", 4.0), ("c", None, None, 5.0),
    ]
    with closing(sqlite3.connect(path)) as conn:  # rows as a v10 alem wrote them
        for host_id in (1, 2, 3):
            conn.execute("INSERT INTO hosts (id, formula, structure_json, fingerprint, created_at) VALUES (?, 'LiO', '{}', ?, 0)",
                         (host_id, f"host-{host_id}"))
        for hop_id, host_id, signature, created_at in rows:
            metadata = json.dumps({"path_info": "PATH 0", **({SIGNATURE_KEY: signature} if signature else {})})
            conn.execute("INSERT INTO hops (hop_id, host_id, working_ion, initial_json, final_json, hop_length_a, n_sites, fingerprint, "
                         "metadata_json, state, created_at, updated_at) VALUES (?, ?, 'Li', '{}', '{}', 2.0, 3, ?, ?, 'candidate', ?, ?)",
                         (hop_id, host_id, f"fp-{hop_id}", metadata, created_at, created_at))
        conn.commit()
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.hop_with_signature("sig-a", other_than_host=1).hop_id == "a3"
        assert store.hop_with_signature("sig-a", other_than_host=3).hop_id == "a2"
        assert store.hop_with_signature("sig-b", other_than_host=1) is None
        assert store.hop_with_signature("sig-b", other_than_host=2).hop_id == "b1"
        assert store.hop_with_signature("sig-z", other_than_host=1) is None
        assert store.host_hop_ids() == ["a1", "a2", "a3", "b1"]  # oldest first, hops of a host only
        plan = " ".join(str(tuple(r)) for r in store._conn.execute(
            f"EXPLAIN QUERY PLAN SELECT hop_id FROM hops WHERE {SIGNATURE_SQL} = ? AND host_id IS NOT ?", ("sig-a", 1)))
        assert "USING INDEX hops_signature" in plan
        assert store.integrity_check() == []
    assert SIGNATURE_SQL == f"json_extract(metadata_json, '$.{SIGNATURE_KEY}')"  # the key hops are signed under


def test_v12_keeps_each_hops_content_key_and_drops_it_when_the_structures_change(tmp_path, monkeypatch):
    """A v11 store's hops (one in the compact form, one with pymatgen's dict: oxidation states)
    gain the content_key column, empty until :meth:`keep_content_keys` fills it from the columns
    with exactly the key of the structures they read back as; a hop stored after the migration
    has its key from the start; rewriting a row's structures empties its key, which is then
    computed anew (never the old hop's)."""
    from alem.hops.content_key import hop_content_key, structures_content_key
    from alem.hops.fingerprint import hop_fingerprint
    from alem.store.structure_json import COMPACT_KEY, _unpacked, endpoint_columns
    from tests._factories import rocksalt_hop

    path = tmp_path / "v11.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, MIGRATIONS, target=11)
    plain = rocksalt_hop("plain")
    charged = rocksalt_hop("charged", neighbor_rank=2)
    charged.initial.add_oxidation_state_by_element({"Li": 1, "O": -2})
    charged.final.add_oxidation_state_by_element({"Li": 1, "O": -2})
    with closing(sqlite3.connect(path)) as conn:  # rows as a v11 alem wrote them
        for hop in (plain, charged):
            initial, final, _ = endpoint_columns(hop.initial, hop.final, hop.working_ion)
            conn.execute("INSERT INTO hops (hop_id, working_ion, initial_json, final_json, hop_length_a, n_sites, fingerprint, "
                         "state, created_at, updated_at) VALUES (?, 'Li', ?, ?, 2.0, 63, ?, 'candidate', 0, 0)",
                         (hop.hop_id, initial, final, hop_fingerprint(hop)))
        conn.commit()

    def kept(store):
        return dict(store._conn.execute("SELECT hop_id, content_key FROM hops").fetchall())

    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert kept(store) == {"plain": None, "charged": None}
        assert store.keep_content_keys(["plain"]) == 1 and kept(store)["charged"] is None
        assert store.keep_content_keys() == 1 and store.keep_content_keys() == 0
        for hop in (plain, charged):
            assert kept(store)[hop.hop_id] == hop_content_key(hop)  # the key of the hop as it was stored
        charged_initial = store._conn.execute("SELECT initial_json FROM hops WHERE hop_id = 'charged'").fetchone()[0]
        assert COMPACT_KEY not in _unpacked(charged_initial)  # pymatgen's dict: its key read through the structures
        new = rocksalt_hop("new", neighbor_rank=1)
        assert store.add_hops([new]) == ["new"] and kept(store)["new"] == hop_content_key(new)
        # another structure written into a row: its key goes, and the key read next is the new content's
        moved = rocksalt_hop("moved", neighbor_rank=3)
        initial, final, _ = endpoint_columns(moved.initial, moved.final, "Li")
        with store.transaction():
            store._conn.execute("UPDATE hops SET initial_json = ?, final_json = ? WHERE hop_id = 'plain'", (initial, final))
        assert kept(store)["plain"] is None
        [reread] = store.load_hops(["plain"])
        assert reread.content_key is None and hop_content_key(reread) == hop_content_key(moved) != hop_content_key(plain)
        assert store.keep_content_keys() == 1 and kept(store)["plain"] == hop_content_key(moved)
        with store.transaction():
            store._conn.execute("UPDATE hops SET working_ion = 'Na' WHERE hop_id = 'plain'")
        assert kept(store)["plain"] is None and store.keep_content_keys() == 1
        [sodium] = store.load_hops(["plain"])
        assert sodium.content_key == structures_content_key("Na", moved.initial, moved.final) != hop_content_key(moved)
        # a row another process rewrites while its key is computed gets no key of its old content
        import alem.store.hop_rows

        compute = alem.store.hop_rows.content_key_of_columns

        def rewritten_meanwhile(*columns):
            with closing(sqlite3.connect(path)) as other:
                other.execute("UPDATE hops SET initial_json = ?, final_json = ? WHERE hop_id = 'new'", (initial, final))
                other.commit()
            return compute(*columns)

        with store.transaction():
            store._conn.execute("UPDATE hops SET content_key = NULL WHERE hop_id = 'new'")
        monkeypatch.setattr(alem.store.hop_rows, "content_key_of_columns", rewritten_meanwhile)
        store.keep_content_keys(["new"])
        assert kept(store)["new"] is None
        monkeypatch.undo()
        assert store.keep_content_keys(["new"]) == 1 and kept(store)["new"] == hop_content_key(moved)
        assert store.integrity_check() == []
