"""Idempotent submission through the (real) replay backend, with crashes injected mid-protocol."""

import subprocess
import sys
import textwrap

import pytest

from alem.backends.replay import ReplayBackend
from alem.campaign import submit_approved
from alem.config import CampaignConfig
from alem.hops import write_dataset
from alem.store import HopState, JobStatus, Store


class ProcessDied(BaseException):
    """Stands in for the process being killed (not an Exception: nothing may catch it)."""


class DiesAfterSubmit(ReplayBackend):
    """The backend accepts the job, then the alem process dies before the store hears of it."""

    def submit(self, hop, job_key):
        super().submit(hop, job_key)
        raise ProcessDied


class DiesBeforeSubmit(ReplayBackend):
    def submit(self, hop, job_key):
        raise ProcessDied


class RefusesSubmit(ReplayBackend):
    def submit(self, hop, job_key):
        raise ConnectionError("LaunchPad unreachable")


@pytest.fixture
def campaign(tmp_path, tiny_hop):
    hops = [tiny_hop(f"h{i}", 0.30 + 0.05 * i, barrier_ev=0.2 + 0.1 * i) for i in range(5)]
    dataset = write_dataset(hops, tmp_path / "labelled.json")
    config = CampaignConfig()
    config.campaign_dir = tmp_path
    config.backend.kind = "replay"
    config.backend.replay.dataset = str(dataset)
    config.approval.max_running_jobs = 10
    store = Store.open(config.store_path)
    store.add_hops([tiny_hop(h.hop_id, 0.30 + 0.05 * i) for i, h in enumerate(hops)])
    yield config, store
    store.close()


def _backend(config, cls=ReplayBackend):
    return cls(config.resolve(config.backend.replay.dataset), config.state_dir / "replay_backend.sqlite")


def test_each_approved_hop_is_submitted_once_however_often_submit_runs(campaign):
    config, store = campaign
    backend = _backend(config)
    store.approve(["h0", "h1"], who="alice")
    first = submit_approved(store, backend, config)
    assert sorted(h for h, _ in first.submitted) == ["h0", "h1"]
    again = submit_approved(store, backend, config)
    assert again.submitted == [] and again.messages == []
    assert sorted(s["hop_id"] for s in backend.submissions()) == ["h0", "h1"]
    for hop_id, external_id in first.submitted:
        (job,) = store.jobs(hop_id=hop_id)
        assert job.external_id == external_id and job.state is JobStatus.SUBMITTED
        assert store.hop(hop_id).state is HopState.SUBMITTED
        assert backend.find_by_key(job.job_key) == external_id


def test_a_crash_between_backend_submit_and_the_store_update_is_recovered_not_resubmitted(campaign):
    config, store = campaign
    store.approve(["h0"], who="alice")
    with pytest.raises(ProcessDied):
        submit_approved(store, _backend(config, DiesAfterSubmit), config)
    (job,) = store.jobs(hop_id="h0")
    assert job.state is JobStatus.CREATED and job.external_id is None
    # the restarted process: a fresh backend object on the same (persistent) replay state
    backend = _backend(config)
    report = submit_approved(store, backend, config, stale_after_s=0)
    (submission,) = backend.submissions()
    assert report.recovered == [("h0", submission["external_id"])] and report.submitted == []
    assert "found the earlier submission of hop h0" in report.messages[0]
    (job,) = store.jobs(hop_id="h0")
    assert job.external_id == submission["external_id"] and job.state is JobStatus.SUBMITTED
    assert store.integrity_check() == []


def test_a_recent_unsubmitted_job_is_left_alone_it_may_still_be_in_flight(campaign):
    config, store = campaign
    store.approve(["h0"], who="alice")
    with pytest.raises(ProcessDied):
        submit_approved(store, _backend(config, DiesAfterSubmit), config)
    report = submit_approved(store, _backend(config), config, stale_after_s=3600)
    assert report.recovered == [] and report.submitted == []
    assert store.jobs(hop_id="h0")[0].state is JobStatus.CREATED


def test_a_crash_before_backend_submit_abandons_the_row_and_submits_afresh(campaign):
    config, store = campaign
    store.approve(["h0"], who="alice")
    with pytest.raises(ProcessDied):
        submit_approved(store, _backend(config, DiesBeforeSubmit), config)
    backend = _backend(config)
    report = submit_approved(store, backend, config, stale_after_s=0)
    assert report.abandoned == ["h0"] and [h for h, _ in report.submitted] == ["h0"]
    assert [j.state for j in store.jobs(hop_id="h0")] == [JobStatus.SUBMITTED, JobStatus.ABANDONED]
    assert store.jobs(hop_id="h0")[0].attempt == 1
    assert len(backend.submissions()) == 1


def test_a_backend_error_leaves_the_hop_approved_and_says_why(campaign):
    config, store = campaign
    store.approve(["h0", "h1"], who="alice")
    report = submit_approved(store, _backend(config, RefusesSubmit), config)
    assert report.submitted == [] and report.waiting == 2
    assert report.errors == ["could not submit hop h0 to replay: LaunchPad unreachable"]
    assert store.hop("h0").state is HopState.APPROVED and store.jobs(live=True) == []
    assert "LaunchPad unreachable" in store.jobs(hop_id="h0")[0].error


def test_running_and_daily_limits_are_respected(campaign):
    config, store = campaign
    backend = _backend(config)
    config.approval.max_running_jobs = 2
    store.approve(["h0", "h1", "h2", "h3"], who="alice")
    report = submit_approved(store, backend, config)
    assert len(report.submitted) == 2 and report.waiting == 2
    assert report.messages[-1] == "2 approved hops wait: at most 2 jobs in flight (approval.max_running_jobs)"
    config.approval.max_running_jobs = 10
    config.approval.max_jobs_per_day = 3
    report = submit_approved(store, backend, config)
    assert len(report.submitted) == 1 and report.waiting == 1
    assert report.limit == "at most 3 submissions in 24 h (approval.max_jobs_per_day)"


def test_core_hour_budget_stops_new_submissions_until_the_day_has_room(campaign):
    from alem.campaign.budget import core_hour_lines
    from alem.campaign.status import campaign_status
    from alem.neb.core_hours import JobCost

    config, store = campaign
    backend = _backend(config)
    config.approval.max_core_hours_per_day = 100.0
    store.approve(["h0", "h1", "h2"], who="alice")
    config.approval.max_running_jobs = 1
    [(hop, _)] = submit_approved(store, backend, config).submitted
    [job] = store.jobs(hop_id=hop)
    store.record_job_cost(job.id, JobCost(nodes=2, cores_per_node=32, wall_s=2 * 3600, source="test"))  # 128 core-hours
    config.approval.max_running_jobs = 10
    report = submit_approved(store, backend, config)
    assert report.submitted == [] and report.waiting == 2
    assert report.limit == "128.0 core-hours spent in 24 h, at most 100 (approval.max_core_hours_per_day)"
    ledger = campaign_status(config, store)["core_hours"]
    assert ledger["by_stage"] == {"target": 128.0, "screening": 0.0}
    assert ledger["by_hop"] == [{"hop_id": hop, "core_hours": 128.0, "attempts": 1}]
    assert core_hour_lines(ledger)[0] == ("Core-hours spent: target (DFT) 128.0, screening 0.0 "
                                          "(last 24 h: 128.0 of at most 100 per day)")
    from alem.report import render_report

    page = render_report(config, store)  # the report: per stage and per hop, with attempts
    assert "<tr><td>target (DFT)</td><td>128.0</td><td>128.0</td></tr>" in page
    assert f"<tr><td>{hop}</td><td>128.00</td><td>1</td></tr>" in page
    with Store.open(config.store_path, clock=lambda: store.job(job.id).updated_at + 86400.0 + 1) as a_day_later:
        assert len(submit_approved(a_day_later, backend, config).submitted) == 2  # the window has room again


KILLED_SUBMITTER = textwrap.dedent(
    """
    import os, sys
    from alem.backends.replay import ReplayBackend
    from alem.campaign import submit_approved
    from alem.config import CampaignConfig
    from alem.store import Store

    class KilledAfterSubmit(ReplayBackend):
        def submit(self, hop, job_key):
            external_id = super().submit(hop, job_key)
            os._exit(9)  # killed: no cleanup, no exception handlers, no store update

    config = CampaignConfig.load(sys.argv[1])
    backend = KilledAfterSubmit(config.resolve(config.backend.replay.dataset), config.state_dir / "replay_backend.sqlite")
    submit_approved(Store.open(config.store_path), backend, config)
    """
)


def test_a_process_killed_after_submitting_is_recovered_by_the_next_process(campaign):
    config, store = campaign
    config.save()
    store.approve(["h0", "h1"], who="alice")
    killed = subprocess.run([sys.executable, "-c", KILLED_SUBMITTER, str(config.campaign_dir)], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    backend = _backend(config)
    assert len(backend.submissions()) == 1  # it died after the first hop's submission
    report = submit_approved(store, backend, config, stale_after_s=0)
    assert [h for h, _ in report.recovered] == ["h0"] and [h for h, _ in report.submitted] == ["h1"]
    hops_submitted = [s["hop_id"] for s in backend.submissions()]
    assert sorted(hops_submitted) == ["h0", "h1"]  # nothing submitted twice
    assert store.integrity_check() == []


def test_the_daily_limit_is_a_rolling_24_hour_window(tmp_path, tiny_hop):
    hops = [tiny_hop(f"h{i}", 0.30 + 0.05 * i, barrier_ev=0.3) for i in range(3)]
    config = CampaignConfig()
    config.campaign_dir = tmp_path
    config.backend.replay.dataset = str(write_dataset(hops, tmp_path / "labelled.json"))
    config.approval.max_jobs_per_day = 1
    clock = [1_000_000.0]
    with Store.open(config.store_path, clock=lambda: clock[0]) as store:
        store.add_hops(hops)
        store.approve(["h0", "h1"], who="alice")
        backend = _backend(config)
        assert [h for h, _ in submit_approved(store, backend, config).submitted] == ["h0"]
        clock[0] += 23 * 3600
        assert submit_approved(store, backend, config).submitted == []
        clock[0] += 3601
        assert [h for h, _ in submit_approved(store, backend, config).submitted] == ["h1"]
