"""The approval and job state machine, result recording and the integrity check."""

import sqlite3

import pytest

from alem.neb.schemas import NebOutcome
from alem.store import HopState, IllegalTransition, JobStatus, Store, StoreError


@pytest.fixture
def store(tmp_path, tiny_hop):
    with Store.open(tmp_path / "alem.sqlite") as opened:
        opened.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5), tiny_hop("c", 0.6)])
        yield opened


def _submitted(store, hop_id="a", external_id="ext-1"):
    if store.hop(hop_id).state is not HopState.APPROVED:
        store.approve([hop_id], who="alice")
    job = store.begin_submission(hop_id, "replay")
    return store.mark_submitted(job.id, external_id)


GOOD = NebOutcome(
    barrier_ev=0.42, reverse_barrier_ev=0.40, image_energies_ev=[0.0, 0.3, 0.42, 0.02], converged=True, method="vasp:GGA CI-NEB"
)


@pytest.mark.parametrize(
    ("setup", "action", "message"),
    [
        ("reject", "approve", "cannot approve hop a: it was rejected"),
        ("submit", "reject", "cannot reject hop a: its NEB is already submitted"),
        ("approve", "approve", "cannot approve hop a: it is already approved"),
        ("done", "approve", "cannot approve hop a: its NEB is done"),
        ("candidate", "withdraw", "cannot withdraw hop a: it is candidate"),
    ],
)
def test_illegal_transitions_are_refused_with_a_clear_message(store, setup, action, message):
    if setup == "reject":
        store.reject(["a"], who="bob", reason="host too large")
    elif setup == "approve":
        store.approve(["a"], who="bob")
    elif setup in ("submit", "done"):
        job = _submitted(store)
        if setup == "done":
            store.record_result(job.id, GOOD)
    state_before = store.hop("a").state
    events_before = len(store.events())
    with pytest.raises(IllegalTransition, match=message):
        {
            "approve": lambda: store.approve(["a"], who="carol"),
            "reject": lambda: store.reject(["a"], who="carol"),
            "withdraw": lambda: store.withdraw_proposals(["a"], reason="x"),
        }[action]()
    assert store.hop("a").state is state_before and len(store.events()) == events_before


def test_batch_decisions_are_all_or_nothing(store):
    store.reject(["b"], who="bob")
    with pytest.raises(IllegalTransition, match="hop b"):
        store.approve(["a", "b", "c"], who="alice")
    assert store.hop_counts()["approved"] == 0 and len(store.decisions()) == 1


def test_decisions_need_a_person(store):
    with pytest.raises(StoreError, match="who must not be empty"):
        store.approve(["a"], who="")


def test_rejected_hops_can_be_reopened_then_approved(store):
    store.reject(["a"], who="bob")
    store.reopen(["a"], who="bob", reason="changed my mind")
    store.approve(["a"], who="bob")
    assert store.hop("a").state is HopState.APPROVED


def test_submission_protocol_moves_job_and_hop_together(store):
    with pytest.raises(IllegalTransition, match="cannot submit hop a"):
        store.begin_submission("a", "replay")  # not approved yet
    store.approve(["a"], who="alice")
    job = store.begin_submission("a", "replay")
    assert job.state is JobStatus.CREATED and job.external_id is None and job.attempt == 1
    assert store.hop("a").state is HopState.APPROVED
    with pytest.raises(IllegalTransition, match="already has live job"):
        store.begin_submission("a", "replay")
    submitted = store.mark_submitted(job.id, "ext-1")
    assert submitted.state is JobStatus.SUBMITTED and submitted.external_id == "ext-1" and submitted.submitted_at
    assert store.hop("a").state is HopState.SUBMITTED
    with pytest.raises(IllegalTransition, match="with external id ext-1"):
        store.mark_submitted(job.id, "ext-2")
    assert store.update_job_state(job.id, "running").state is JobStatus.RUNNING
    with pytest.raises(StoreError, match="use record_result"):
        store.update_job_state(job.id, "completed")


def test_the_database_itself_refuses_a_second_live_job_per_hop(store):
    job = _submitted(store)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (job_key, hop_id, backend, state, created_at, updated_at) "
                "VALUES ('k2', 'a', 'replay', 'created', 0, 0)"
            )
    assert [j.id for j in store.jobs(hop_id="a")] == [job.id]


def test_a_usable_result_makes_the_hop_done(store):
    job = _submitted(store)
    result = store.record_result(job.id, GOOD)
    assert result.usable and result.barrier_ev == pytest.approx(0.42) and result.image_energies_ev[2] == 0.42
    assert store.hop("a").state is HopState.DONE and store.job(job.id).state is JobStatus.COMPLETED
    with pytest.raises(IllegalTransition, match="already recorded"):
        store.record_result(job.id, GOOD)


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (NebOutcome(barrier_ev=0.5, converged=False), "NEB did not converge"),
        (NebOutcome(barrier_ev=float("nan"), converged=True), "barrier is nan"),
        (NebOutcome(barrier_ev=float("-inf"), converged=True), "barrier is -inf"),
        (NebOutcome(barrier_ev=0.5, converged=True, image_energies_ev=[0.0, float("nan"), 0.1]), "images [1]"),
        (NebOutcome(converged=True), "no barrier"),
        (NebOutcome(barrier_ev=0.5, converged=True, failure_reason="discontinuous path"), "discontinuous path"),
    ],
)
def test_unusable_outcomes_are_recorded_as_failed_with_the_reason(store, outcome, reason):
    job = _submitted(store)
    result = store.record_result(job.id, outcome)
    assert not result.usable and reason in result.failure_reason
    assert store.hop("a").state is HopState.FAILED
    assert store.results(usable=True) == []
    assert "failed" in store.events(kind="result_failed")[0].message


def test_failed_jobs_are_retried_up_to_the_cap(store):
    max_attempts = 2
    first = _submitted(store, external_id="ext-1")
    assert store.fail_job(first.id, "FIZZLED: VASP crashed", max_attempts) is HopState.APPROVED
    second = store.begin_submission("a", "replay")
    assert second.attempt == 2
    store.mark_submitted(second.id, "ext-2")
    assert store.fail_job(second.id, "walltime", max_attempts, state="lost") is HopState.FAILED
    assert store.hop("a").state is HopState.FAILED
    assert [j.state for j in store.jobs(hop_id="a")] == [JobStatus.LOST, JobStatus.FAILED]
    # a person approving the failed hop again gives it a fresh set of attempts
    store.approve(["a"], who="alice", reason="fixed the INCAR")
    third = store.begin_submission("a", "replay")
    store.mark_submitted(third.id, "ext-3")
    assert third.attempt == 3
    assert store.fail_job(third.id, "again", max_attempts) is HopState.APPROVED


def test_abandoned_jobs_do_not_count_as_attempts(store):
    store.approve(["a"], who="alice")
    job = store.begin_submission("a", "replay")
    store.abandon_job(job.id, "never reached the backend")
    assert store.hop("a").state is HopState.APPROVED
    assert store.begin_submission("a", "replay").attempt == 1


def test_integrity_check_is_clean_for_a_normal_campaign(store):
    _submitted(store, "a")
    store.record_result(store.jobs(hop_id="a")[0].id, GOOD)
    _submitted(store, "b", "ext-b")
    assert store.integrity_check() == []


def test_integrity_check_names_every_broken_invariant(tmp_path, tiny_hop):
    clock = [1000.0]
    with Store.open(tmp_path / "alem.sqlite", clock=lambda: clock[0]) as store:
        store.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5), tiny_hop("c", 0.6)])
        store.approve(["a", "b", "c"], who="alice")
        stale = store.begin_submission("a", "replay")
        done = _submitted(store, "b", "ext-b")
        # damage the store the way a buggy tool or manual edit might (bypassing the API)
        conn = store._conn
        conn.execute("UPDATE hops SET state = 'done' WHERE hop_id = 'c'")
        conn.execute("UPDATE jobs SET state = 'completed' WHERE id = ?", (done.id,))
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute(
            "INSERT INTO results (job_id, hop_id, usable, barrier_ev, converged, created_at) VALUES (99, 'b', 1, 0.3, 1, 0)"
        )
        conn.execute("DROP INDEX jobs_one_live_per_hop_stage")
        conn.execute(
            "INSERT INTO jobs (job_key, hop_id, backend, state, created_at, updated_at) "
            "VALUES ('dup', 'a', 'replay', 'created', 1000, 1000)"
        )
        clock[0] += 3600
        problems = store.integrity_check(stale_after_s=600)
    text = "\n".join(problems)
    assert "hop a has 2 live target jobs" in text
    assert "hop c is done but has no usable result" in text
    assert "result 1 refers to job 99, which does not exist" in text
    assert f"job {done.id} of hop b is completed but has no result" in text
    assert "hop b is submitted but has no submitted job" in text
    assert f"job {stale.id} of hop a was created 3600 s ago but never got an external id" in text
    assert "refers to a missing row of jobs" in text
