"""Reconciling the store with the (real) replay backend: results, failures, lost jobs, retries,
and the results coming back as training data."""

import pytest

from alem.backends.replay import ReplayBackend
from alem.campaign import export_dataset, reconcile, result_hops, submit_approved, usable_results_since
from alem.config import CampaignConfig
from alem.hops import read_hops, write_dataset
from alem.store import HopState, JobStatus, Store

BARRIERS = {"h0": 0.25, "h1": 0.55, "h2": None}  # h2: in the dataset without a barrier; h3: not in it


@pytest.fixture
def campaign(tmp_path, tiny_hop):
    labelled = [tiny_hop(hop_id, 0.30 + 0.05 * i, barrier_ev=b) for i, (hop_id, b) in enumerate(BARRIERS.items())]
    for hop in labelled:
        hop.provenance = type(hop.provenance)(source="literature", xc="GGA+U", citation="doi:10/xyz")
    config = CampaignConfig()
    config.campaign_dir = tmp_path
    config.backend.kind = "replay"
    config.backend.replay.dataset = str(write_dataset(labelled, tmp_path / "labelled.json"))
    config.backend.max_attempts = 2
    store = Store.open(config.store_path)
    # the campaign knows h1 under another id: the replay backend must match it by structure
    store.add_hops([tiny_hop("h0", 0.30), tiny_hop("LiO2-path-7", 0.35), tiny_hop("h2", 0.40), tiny_hop("h3", 0.45)])
    yield config, store
    store.close()


def _backend(config, delay_s=0.0, clock=None):
    kwargs = {"clock": clock} if clock else {}
    return ReplayBackend(
        config.resolve(config.backend.replay.dataset), config.state_dir / "replay_backend.sqlite", delay_s, **kwargs
    )


def test_completed_jobs_become_results_and_hops_done(campaign):
    config, store = campaign
    backend = _backend(config)
    store.approve(["h0", "LiO2-path-7"], who="alice")
    submit_approved(store, backend, config)
    report = reconcile(store, backend, config)
    assert report.checked == 2 and report.completed == 2 and report.problems == []
    assert any("completed: barrier 0.250 eV (replay:GGA+U); hop done" in r for r in report.repairs)
    assert store.hop("h0").state is HopState.DONE and store.hop("LiO2-path-7").state is HopState.DONE
    by_hop = {r.hop_id: r for r in store.results(usable=True)}
    assert by_hop["LiO2-path-7"].barrier_ev == pytest.approx(0.55)
    assert by_hop["LiO2-path-7"].details["matched_by"] == "structure"
    assert reconcile(store, backend, config).repairs == []  # nothing left to do


def test_running_jobs_are_only_noted(campaign):
    config, store = campaign
    clock = [1000.0]
    backend = _backend(config, delay_s=30.0, clock=lambda: clock[0])
    store.approve(["h0"], who="alice")
    submit_approved(store, backend, config)
    report = reconcile(store, backend, config)
    assert report.repairs == [f"job 1 (hop h0, {store.job(1).external_id}) is running"]
    assert store.job(1).state is JobStatus.RUNNING and store.hop("h0").state is HopState.SUBMITTED
    clock[0] += 31
    reconcile(store, backend, config)
    assert store.hop("h0").state is HopState.DONE


def test_a_completed_job_without_a_barrier_is_a_failed_result_and_never_a_training_point(campaign):
    config, store = campaign
    backend = _backend(config)
    store.approve(["h2"], who="alice")
    submit_approved(store, backend, config)
    report = reconcile(store, backend, config)
    assert "not usable: the replay dataset has no barrier for hop h2; hop failed" in report.repairs[0]
    assert store.hop("h2").state is HopState.FAILED
    assert store.results(usable=False)[0].failure_reason == "the replay dataset has no barrier for hop h2"
    assert result_hops(store) == []


def test_failed_jobs_are_retried_until_the_cap_then_the_hop_fails(campaign):
    config, store = campaign
    backend = _backend(config)
    store.approve(["h3"], who="alice")
    submit_approved(store, backend, config)
    first = reconcile(store, backend, config)
    assert first.failed == 1 and first.retried == 1
    assert "hop h3 is not in the replay dataset" in first.repairs[0] and "will be retried" in first.repairs[0]
    assert [h for h, _ in first.resubmitted.submitted] == ["h3"]  # attempt 2 went out at once
    second = reconcile(store, backend, config)
    assert second.retried == 0 and "hop h3 failed after 2 attempts" in second.repairs[0]
    assert store.hop("h3").state is HopState.FAILED
    jobs = store.jobs(hop_id="h3")
    assert [(j.attempt, j.state) for j in jobs] == [(2, JobStatus.FAILED), (1, JobStatus.FAILED)]
    assert len(backend.submissions()) == 2
    assert store.integrity_check() == []


def test_lost_jobs_are_detected_and_resubmitted(campaign):
    config, store = campaign
    store.approve(["h0"], who="alice")
    submit_approved(store, _backend(config), config)
    (config.state_dir / "replay_backend.sqlite").unlink()  # the queue forgot everything
    backend = _backend(config)
    report = reconcile(store, backend, config)
    assert "lost: backend replay has no record of" in report.repairs[0]
    assert store.jobs(hop_id="h0")[-1].state is JobStatus.LOST
    assert store.jobs(hop_id="h0")[0].attempt == 2 and len(backend.submissions()) == 1
    reconcile(store, backend, config)
    assert store.hop("h0").state is HopState.DONE
    # the label carries both attempts, read from the jobs ledger (the NEB's own record cannot know them)
    attempts = result_hops(store)[0].metadata["provenance"]["attempts"]
    assert [(a["attempt"], a["state"]) for a in attempts] == [(1, "lost"), (2, "completed")]
    assert attempts[0]["error"].startswith("backend replay has no record of")


def test_reconcile_settles_a_job_whose_submission_never_reached_the_store(campaign):
    config, store = campaign
    backend = _backend(config)
    store.approve(["h0"], who="alice")
    job = store.begin_submission("h0", backend.name)
    backend.submit(store.load_hops(["h0"])[0], job.job_key)  # ... and the process died here
    report = reconcile(store, backend, config, stale_after_s=0)
    assert report.repairs[0].startswith("found the earlier submission of hop h0")
    assert store.hop("h0").state is HopState.DONE and len(backend.submissions()) == 1


def test_usable_results_come_back_as_training_hops_and_export_round_trips(campaign, tmp_path):
    config, store = campaign
    backend = _backend(config)
    store.approve(["h0", "LiO2-path-7", "h2"], who="alice")
    submit_approved(store, backend, config)
    reconcile(store, backend, config)
    hops = result_hops(store)
    assert [(h.hop_id, h.barrier_ev) for h in hops] == [("h0", 0.25), ("LiO2-path-7", 0.55)]
    assert hops[0].provenance.source == "alem:replay" and hops[0].provenance.xc == "GGA+U"
    assert usable_results_since(store, 0.0) == 2 and usable_results_since(store, store.now() + 1) == 0
    path, n = export_dataset(store, tmp_path / "out" / "alem_results.json")
    assert n == 2
    back = read_hops([path])
    assert [(h.hop_id, h.barrier_ev, h.provenance.xc, h.provenance.source) for h in back] == [
        ("h0", 0.25, "GGA+U", "alem:replay"),
        ("LiO2-path-7", 0.55, "GGA+U", "alem:replay"),
    ]
    assert back[1].initial == store.load_hops(["LiO2-path-7"])[0].initial


def test_a_cancelled_job_is_a_failure_with_its_reason(campaign):
    config, store = campaign
    config.backend.max_attempts = 1
    backend = _backend(config)
    store.approve(["h0"], who="alice")
    (hop_id, external_id), = submit_approved(store, backend, config).submitted
    backend.cancel(external_id)
    report = reconcile(store, backend, config)
    assert f"failed: replay job {external_id} was cancelled; hop h0 failed after 1 attempts" in report.repairs[0]
    assert store.jobs(hop_id="h0")[0].error == f"replay job {external_id} was cancelled"


def test_replay_backend_configuration_errors_name_the_key(tmp_path):
    from alem.backends.replay import ReplayError

    config = CampaignConfig()
    config.campaign_dir = tmp_path
    with pytest.raises(ReplayError, match=r"alem.toml: \[backend.replay\] dataset is empty"):
        ReplayBackend.from_config(config)
    config.backend.replay.dataset = "missing.json"
    with pytest.raises(ReplayError, match="missing.json: replay dataset not found"):
        ReplayBackend.from_config(config)


def test_cancel_refuses_a_job_whose_neb_already_finished(campaign):
    from alem.campaign import CancelError, cancel_jobs

    config, store = campaign
    backend = _backend(config)  # no delay: the NEB is finished as soon as it is submitted
    store.approve(["h0"], who="alice")
    submit_approved(store, backend, config)
    with pytest.raises(CancelError, match=r"hop h0: its NEB \(.+\) has already finished; run `alem reconcile` to record it"):
        cancel_jobs(store, backend, ["h0"], "changed my mind")
    assert store.live_job("h0") is not None  # untouched: the barrier is still to be recorded
    reconcile(store, backend, config)
    assert store.hop("h0").state is HopState.DONE


def _page_checks(monkeypatch) -> list[str]:
    """Every ``PRAGMA integrity_check`` a store opened from now on runs."""
    import sqlite3

    import alem.store.core as core

    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(lambda sql: seen.append(sql) if "integrity_check" in sql.lower() else None)
        return conn

    monkeypatch.setattr(core.sqlite3, "connect", traced)
    return seen


def test_status_and_loop_ticks_leave_the_whole_file_page_check_to_reconcile(tmp_path, replay_ensemble_dir, monkeypatch):
    """SQLite's page check reads the whole store (4.4 s at 10^5 hops): `alem status` does not run it,
    a loop runs it on its first tick only, `alem reconcile` always; the store's own invariants are
    checked every time (a broken one is still reported by status)."""
    from tests._replay_campaign import invoke, make_replay_campaign

    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=4, acquisition__min_approved_queue=0)
    seen = _page_checks(monkeypatch)
    assert invoke(config, "status").exit_code == 0
    assert seen == []
    result = invoke(config, "loop", "--tick-seconds", "0", "--no-retrain", "--max-ticks", "3")
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    assert invoke(config, "reconcile").exit_code == 0
    assert len(seen) == 2
    with Store.open(config.store_path) as store:  # an invariant broken by hand: status still says so
        hop_id = store.hops()[0].hop_id
        store._conn.execute("UPDATE hops SET state = 'submitted' WHERE hop_id = ?", (hop_id,))
    status = invoke(config, "status", "--json")
    assert f"hop {hop_id} is submitted but has no submitted job" in status.output
