"""The FireWorks backend against a LaunchPad on mongomock (no MongoDB server is installable
here): real jobflow -> FireWorks conversion, real LaunchPad queries, real rapidfire execution."""

import functools

import mongomock
import mongomock.gridfs
import pytest
from jobflow import JobStore
from maggma.stores import JSONStore
from mongomock.store import ServerStore

from alem.backends.base import QueueState
from alem.backends.fireworks_backend import FireWorksBackend
from tests._chgnet_reference import LI2O_FAST_UNRELAXED_EFFECTIVE_EV, LI2O_FAST_UNRELAXED_EV, TOLERANCE_EV


@pytest.fixture
def launchpad(monkeypatch):
    import fireworks.core.launchpad as launchpad_module
    from fireworks import LaunchPad

    mongomock.gridfs.enable_gridfs_integration()
    server = ServerStore()  # every client of this test shares one in-memory server
    monkeypatch.setattr(launchpad_module, "MongoClient", functools.partial(mongomock.MongoClient, _store=server))
    lp = LaunchPad(name="alem_test", strm_lvl="ERROR")
    lp.reset("", require_password=False)
    return lp


@pytest.fixture
def job_store(tmp_path):
    return JobStore(JSONStore(str(tmp_path / "docs.json"), read_only=False),
                    additional_stores={"data": JSONStore(str(tmp_path / "data.json"), read_only=False)})


@pytest.fixture
def backend(launchpad, job_store, fast_mlip_preset):
    fast_mlip_preset.neb.relax_endpoints = False  # one Firework keeps the executed test short
    return FireWorksBackend(fast_mlip_preset, launchpad=launchpad, job_store=job_store, embed_job_store=True,
                            fworker_name="cluster-a")


def test_submit_records_job_key_and_is_idempotent(backend, launchpad, li2o_hop):
    external_id = backend.submit(li2o_hop, "job-1")
    assert backend.submit(li2o_hop, "job-1") == external_id
    assert launchpad.workflows.count_documents({}) == 1
    workflow = launchpad.workflows.find_one({"nodes": int(external_id)})
    assert workflow["metadata"]["alem_job_key"] == "job-1"
    assert workflow["metadata"]["alem_hop_id"] == "li2o-vacancy"
    firework = launchpad.fireworks.find_one({"fw_id": int(external_id)})
    assert firework["spec"]["_fworker"] == "cluster-a"
    assert "JobFiretask" in firework["spec"]["_tasks"][0]["_fw_name"]
    assert backend.find_by_key("job-1") == external_id
    assert backend.find_by_key("job-2") is None


def test_poll_maps_launchpad_states(backend, launchpad, li2o_hop, tmp_path):
    from fireworks import FWorker

    external_id = backend.submit(li2o_hop, "job-1")
    assert backend.poll([external_id, "999"]) == {external_id: QueueState.QUEUED, "999": QueueState.LOST}
    launchpad.checkout_fw(FWorker(name="cluster-a"), launch_dir=str(tmp_path))
    assert backend.poll([external_id])[external_id] == QueueState.RUNNING
    backend.lost_run_expiration_s = 0  # heartbeat now counts as stale: a lost run
    assert backend.poll([external_id])[external_id] == QueueState.LOST

    other = backend.submit(li2o_hop, "job-2")
    backend.cancel(other)
    assert backend.poll([other])[other] == QueueState.FAILED
    outcome = backend.outcome(other)
    assert not outcome.usable and f"FireWorks workflow {other} DEFUSED" in outcome.failure_reason

    launchpad.delete_wf(int(other))
    assert backend.poll([other])[other] == QueueState.LOST


@pytest.mark.slow
def test_rapidfire_runs_the_neb_and_outcome_comes_from_the_job_store(backend, launchpad, li2o_hop, tmp_path, monkeypatch):
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    external_id = backend.submit(li2o_hop, "job-1")
    monkeypatch.chdir(tmp_path)  # rapidfire writes launcher_* directories in the cwd
    rapidfire(launchpad, FWorker(name="cluster-a"), nlaunches=0, strm_lvl="ERROR")
    assert backend.poll([external_id])[external_id] == QueueState.COMPLETED
    outcome = backend.outcome(external_id)
    # unrelaxed vacancy endpoints sit above the relaxed path: an intermediate minimum, not a label,
    # with both the forward and the effective barrier kept
    assert not outcome.usable and "intermediate minimum 0.15 eV below the initial endpoint" in outcome.failure_reason
    assert outcome.details["forward_barrier_ev"] == pytest.approx(LI2O_FAST_UNRELAXED_EV, abs=TOLERANCE_EV)
    assert outcome.details["effective_barrier_ev"] == pytest.approx(LI2O_FAST_UNRELAXED_EFFECTIVE_EV, abs=TOLERANCE_EV)
    assert outcome.details["fw_id"] == int(external_id)


def test_fizzled_workflow_is_failed_with_the_error(backend, launchpad, li2o_hop, tmp_path, monkeypatch):
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    external_id = backend.submit(li2o_hop, "job-1")
    # a worker whose potential cannot be loaded: the Firework raises and fizzles
    monkeypatch.setattr("atomate2.forcefields.utils.ase_calculator",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("potential weights missing")))
    monkeypatch.chdir(tmp_path)  # rapidfire writes launcher_* directories in the cwd
    rapidfire(launchpad, FWorker(name="cluster-a"), nlaunches=1, strm_lvl="ERROR")
    assert backend.poll([external_id])[external_id] == QueueState.FAILED
    outcome = backend.outcome(external_id)
    assert not outcome.usable
    assert "FIZZLED" in outcome.failure_reason and "potential weights missing" in outcome.failure_reason


def test_lost_run_is_reconciled_and_retried_up_to_max_attempts(backend, launchpad, li2o_hop, tmp_path):
    """A worker checks the Firework out and goes silent: the run is lost; reconcile records it,
    submits the hop again under a new key (a second workflow), and gives up after max_attempts."""
    from fireworks import FWorker

    from alem.campaign import reconcile, submit_approved
    from alem.config import CampaignConfig
    from alem.store import HopState, JobStatus, ProposalInput, Store

    config = CampaignConfig()
    config.backend.max_attempts = 2
    with Store.open(tmp_path / "store.sqlite") as store:
        store.add_hops([li2o_hop])
        store.add_proposals(Store.new_batch_id(), "explore", [ProposalInput(li2o_hop.hop_id, 1.0, 0.3, 0.1)])
        store.approve([li2o_hop.hop_id], who="alice")
        (first,) = [fw for _, fw in submit_approved(store, backend, config).submitted]

        launchpad.checkout_fw(FWorker(name="cluster-a"), launch_dir=str(tmp_path))  # running, then silence
        report = reconcile(store, backend, config)
        assert report.failed == 0 and store.hop(li2o_hop.hop_id).state is HopState.SUBMITTED  # heartbeat fresh
        backend.lost_run_expiration_s = 0  # the heartbeat is now older than the limit

        report = reconcile(store, backend, config)
        assert report.failed == 1 and report.retried == 1
        jobs = sorted(store.jobs(), key=lambda j: j.attempt)
        assert [(j.state, j.attempt) for j in jobs] == [(JobStatus.LOST, 1), (JobStatus.SUBMITTED, 2)]
        second = jobs[1].external_id
        assert second != first and launchpad.workflows.count_documents({}) == 2
        assert backend.find_by_key(jobs[1].job_key) == second and jobs[1].job_key != jobs[0].job_key
        assert any("lost" in line and "will be retried" in line for line in report.repairs)

        launchpad.checkout_fw(FWorker(name="cluster-a"), launch_dir=str(tmp_path))  # lost again
        report = reconcile(store, backend, config)
        assert report.failed == 1 and report.retried == 0
        assert store.hop(li2o_hop.hop_id).state is HopState.FAILED
        assert [j.state for j in store.jobs()] == [JobStatus.LOST, JobStatus.LOST]
        assert launchpad.workflows.count_documents({}) == 2  # no third submission
        assert any("failed after 2 attempts" in line for line in report.repairs)
        assert store.integrity_check() == []


@pytest.mark.slow
def test_unconverged_mlip_neb_is_continued_from_its_last_images(backend, launchpad, li2o_hop, tmp_path, monkeypatch):
    """A completed workflow whose CHGNet NEB ran out of steps with its images still moving: the
    retry starts from the images it reached (read from its launch directory by a job of the retry)."""
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    from alem.neb.restart import MIN_PROGRESS_A, unconverged_progress_a
    from tests.test_backends_restart import launch_trajectory_energies

    backend.preset.neb.max_steps = 6
    monkeypatch.chdir(tmp_path)
    first = backend.submit(li2o_hop, "job-1")
    rapidfire(launchpad, FWorker(name="cluster-a"), nlaunches=0, strm_lvl="ERROR")
    outcome = backend.outcome(first)
    assert backend.poll([first])[first] == QueueState.COMPLETED and not outcome.converged
    assert unconverged_progress_a(outcome) > MIN_PROGRESS_A  # what reconcile continues

    second = backend.submit(li2o_hop, "job-2")
    names = [fw.name for fw in launchpad.get_wf_by_fw_id(int(second)).fws]
    assert any("images_from_previous_mlip_neb" in name for name in names), names
    rapidfire(launchpad, FWorker(name="cluster-a"), nlaunches=0, strm_lvl="ERROR")
    frames = backend.preset.neb.n_images + 2
    first_steps, second_steps = (launch_trajectory_energies(launchpad, external_id, frames) for external_id in (first, second))
    assert second_steps[0] == pytest.approx(first_steps[-1], abs=1e-5)  # not from IDPP
