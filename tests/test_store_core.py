"""The SQLite store on a real file: pragmas, atomic transitions, de-duplication, round trips."""

import math
import sqlite3

import numpy as np
import pytest

from alem.store import HopState, ProposalInput, Store, StoreError, UnknownHopError


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "state" / "alem.sqlite") as opened:
        yield opened


def test_open_creates_a_wal_store_with_foreign_keys_and_the_latest_schema(tmp_path):
    path = tmp_path / "state" / "alem.sqlite"
    with Store.open(path) as store:
        assert store.schema_version == store.latest_schema_version
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert path.is_file()
    with pytest.raises(StoreError, match="no store here"):
        Store.open(tmp_path / "missing.sqlite", create=False)


def test_a_file_that_is_not_sqlite_gets_one_clear_error(tmp_path):
    bogus = tmp_path / "alem.sqlite"
    bogus.write_text("this is not a database, just text that is long enough to have a header" * 20)
    with pytest.raises(StoreError, match="not a usable SQLite store"):
        Store.open(bogus)


def test_hops_round_trip_with_structures_and_deduplicate_by_structure(store, tiny_hop):
    original = tiny_hop("a", 0.4)
    original.metadata["formula"] = "LiO2"
    ids = store.add_hops([original, tiny_hop("b", 0.5), tiny_hop("a-again", 0.4)], source="test")
    assert ids == ["a", "b", "a"]
    assert store.hop_counts()["candidate"] == 2
    record = store.hop("a")
    assert record.state is HopState.CANDIDATE
    assert record.n_sites == 3 and math.isclose(record.hop_length_a, 2.0)
    (loaded,) = store.load_hops(["a"])
    assert loaded.initial == original.initial and loaded.final == original.final
    assert loaded.metadata == {"formula": "LiO2"} and loaded.barrier_ev is None
    # a wrapped, slightly noisy copy of the same hop is the same hop
    noisy = tiny_hop("a-noisy", 0.4)
    noisy.initial.translate_sites([0], [1.0 - 1e-5, 0, 0], frac_coords=True, to_unit_cell=False)
    assert store.add_hops([noisy]) == ["a"]


def test_an_id_clash_adds_nothing_and_names_the_hop(store, tiny_hop):
    store.add_hops([tiny_hop("a", 0.4)])
    with pytest.raises(StoreError, match="hop id 'a' from batch.json is already used"):
        store.add_hops([tiny_hop("fresh", 0.45), tiny_hop("a", 0.5)], source="batch.json")
    assert [h.hop_id for h in store.hops()] == ["a"]


def test_a_transaction_that_raises_leaves_nothing_half_written(store, tiny_hop):
    store.add_hops([tiny_hop("a", 0.4)])
    events_before = len(store.events())
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction():
            store.add_hops([tiny_hop("b", 0.5)])
            store.approve(["a"], who="alice")
            raise RuntimeError("boom")
    assert [h.hop_id for h in store.hops()] == ["a"]
    assert store.hop("a").state is HopState.CANDIDATE
    assert store.decisions() == [] and len(store.events()) == events_before


def test_a_failing_inner_step_rolls_back_to_its_savepoint_only(store, tiny_hop):
    store.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5)])
    with store.transaction():
        store.approve(["a"], who="alice")
        with pytest.raises(UnknownHopError):
            store.approve(["b", "nope"], who="alice")  # all-or-nothing: b stays candidate
    assert store.hop("a").state is HopState.APPROVED
    assert store.hop("b").state is HopState.CANDIDATE


def test_predictions_are_validated_and_nothing_is_stored_on_nan(store, tiny_hop):
    store.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5)])
    model = store.add_model_version("models/v1", {"cv": {"mae_ev": 0.12}}, "sha256:abc", 559)
    assert store.current_model().id == model
    with pytest.raises(StoreError, match="prediction for hop b: mean nan"):
        store.record_predictions(model, ["a", "b"], [0.3, float("nan")], [0.1, 0.1])
    assert store.predictions() == {}
    store.record_predictions(model, ["a", "b"], np.array([0.3, 0.7]), np.array([0.1, 0.2]), [0.9, 0.4])
    predictions = store.predictions()
    assert predictions["b"].mean_ev == pytest.approx(0.7) and predictions["a"].prob_good == pytest.approx(0.9)
    second = store.add_model_version("models/v2", {}, "sha256:def", 565)
    assert store.current_model().id == second and store.predictions() == {}
    assert [m.is_current for m in store.model_versions()] == [False, True]


def test_proposals_record_the_batch_and_move_hops(store, tiny_hop):
    store.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5)])
    batch = Store.new_batch_id()
    proposals = store.add_proposals(batch, "balanced", [ProposalInput("a", 1.5, 0.3, 0.1), ProposalInput("b", 0.9)])
    assert [p.hop_id for p in proposals] == ["a", "b"] and proposals[0].std_ev == pytest.approx(0.1)
    assert store.hop_counts()["proposed"] == 2
    store.withdraw_proposals(["b"], reason="model retrained")
    assert store.hop("b").state is HopState.CANDIDATE
    store.approve(["a"], who="alice", reason="looks promising")
    (decision,) = store.decisions("a")
    assert decision.proposal_id == proposals[0].id and decision.who == "alice"


def test_events_are_ordered_filterable_and_limited(store, tiny_hop):
    store.add_hops([tiny_hop("a", 0.4)])
    store.approve(["a"], who="alice")
    store.log_event("note", "hello", payload={"k": 1})
    kinds = [e.kind for e in store.events()]
    assert kinds == ["hops_added", "approved", "note"]
    assert [e.kind for e in store.events(limit=2)] == ["approved", "note"]
    assert [e.kind for e in store.events(hop_id="a")] == ["approved"]
    assert store.events(kind="note")[0].payload == {"k": 1}


def test_loop_status_keeps_its_start_time_across_heartbeats(tmp_path):
    clock = iter([100.0, 160.0, 200.0]).__next__
    with Store.open(tmp_path / "s.sqlite", clock=clock) as store:
        assert store.loop_status() is None
        store.set_loop_status("proposing", "scoring 10 hops", pid=4242)
        store.set_loop_status("waiting", "next tick in 60 s", pid=4242)
        status = store.loop_status()
        assert (status.phase, status.pid, status.started_at, status.heartbeat) == ("waiting", 4242, 100.0, 160.0)
        store.set_loop_status("starting", pid=5000)
        assert store.loop_status().started_at == 200.0


def test_store_refuses_rows_that_break_foreign_keys(store):
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO predictions (hop_id, model_version_id, mean_ev, std_ev, created_at) VALUES ('x', 9, 0, 0, 0)"
            )
