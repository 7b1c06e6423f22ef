"""The jobflow-remote backend on a real jobflow-remote project whose queue store is maggma's
in-memory (mongomock) MemoryStore, a MongoStore subclass (no MongoDB server is installable here).
The controller and the runner share that in-process queue; the runner executes jobs for real
through a local worker (shell scheduler, ``jf execution run``)."""


import pytest

from alem.backends.base import QueueState
from tests._backends import make_jobflow_remote_backend
from tests._chgnet_reference import LI2O_FAST_UNRELAXED_EFFECTIVE_EV, LI2O_FAST_UNRELAXED_EV, TOLERANCE_EV


@pytest.fixture
def backend(project_dir, fast_mlip_preset):
    fast_mlip_preset.neb.relax_endpoints = False  # one job keeps the executed test short
    return make_jobflow_remote_backend(project_dir, fast_mlip_preset)


def test_submit_poll_find_and_stop(backend, li2o_hop):
    external_id = backend.submit(li2o_hop, "job-1")
    assert backend.submit(li2o_hop, "job-1") == external_id
    assert backend.find_by_key("job-1") == external_id and backend.find_by_key("job-2") is None
    [info] = backend.job_controller.get_flows_info(flow_ids=[external_id])
    assert info.flow_metadata["alem_hop_id"] == "li2o-vacancy"
    assert [job.worker for job in backend.job_controller.get_jobs_info(flow_ids=[external_id])] == ["local_shell"]
    assert backend.poll([external_id, "no-such-flow"]) == {external_id: QueueState.QUEUED, "no-such-flow": QueueState.LOST}
    backend.cancel(external_id)
    assert backend.poll([external_id])[external_id] == QueueState.FAILED
    outcome = backend.outcome(external_id)
    assert not outcome.usable and "STOPPED" in outcome.failure_reason


def test_unknown_worker_and_missing_data_store_are_explained(project_dir, fast_mlip_preset, li2o_hop):
    backend = make_jobflow_remote_backend(project_dir, fast_mlip_preset, with_data_store=False)
    with pytest.raises(ValueError, match=r"lacks the additional store\(s\) \['data'\]"):
        backend.submit(li2o_hop, "job-1")
    backend.worker = "nowhere"
    with pytest.raises(ValueError, match="has no worker 'nowhere' .*local_shell"):
        backend.submit(li2o_hop, "job-1")


@pytest.mark.slow
def test_runner_executes_the_neb(backend, li2o_hop):
    from jobflow_remote.jobs.runner import Runner

    external_id = backend.submit(li2o_hop, "job-1")
    runner = Runner(project_name=backend.project_name)
    runner.job_controller = backend.job_controller  # share the in-memory queue database
    runner.run_all_jobs(max_seconds=600)  # a bound, not a timing: slow shared CI machines need room
    assert backend.poll([external_id])[external_id] == QueueState.COMPLETED
    outcome = backend.outcome(external_id)
    # unrelaxed vacancy endpoints sit above the relaxed path: an intermediate minimum, not a label,
    # with both the forward and the effective barrier kept
    assert not outcome.usable and "intermediate minimum 0.15 eV below the initial endpoint" in outcome.failure_reason
    assert outcome.details["forward_barrier_ev"] == pytest.approx(LI2O_FAST_UNRELAXED_EV, abs=TOLERANCE_EV)
    assert outcome.details["effective_barrier_ev"] == pytest.approx(LI2O_FAST_UNRELAXED_EFFECTIVE_EV, abs=TOLERANCE_EV)
    assert outcome.details["flow_id"] == external_id


@pytest.mark.slow
def test_unconverged_mlip_neb_is_continued_from_its_last_images(backend, li2o_hop):
    """A completed flow whose CHGNet NEB ran out of steps with its images still moving: the retry
    starts from the images it reached (read from its run directory by a job of the retry)."""
    from jobflow_remote.jobs.runner import Runner

    from alem.neb.restart import MIN_PROGRESS_A, unconverged_progress_a
    from tests.test_backends_restart import flow_trajectory_energies

    backend.preset.neb.max_steps = 6
    runner = Runner(project_name=backend.project_name)
    runner.job_controller = backend.job_controller  # share the in-memory queue database
    first = backend.submit(li2o_hop, "job-1")
    runner.run_all_jobs(max_seconds=1200)  # a bound, not a timing
    outcome = backend.outcome(first)
    assert backend.poll([first])[first] == QueueState.COMPLETED and not outcome.converged
    assert unconverged_progress_a(outcome) > MIN_PROGRESS_A  # what reconcile continues

    second = backend.submit(li2o_hop, "job-2")
    names = [job.name for job in backend.job_controller.get_jobs_info(flow_ids=[second])]
    assert "images_from_previous_mlip_neb" in names, names
    runner.run_all_jobs(max_seconds=1200)  # a bound, not a timing
    assert backend.poll([second])[second] == QueueState.COMPLETED
    frames = backend.preset.neb.n_images + 2
    first_steps, second_steps = (flow_trajectory_energies(backend.job_controller, flow, frames) for flow in (first, second))
    assert second_steps[0] == pytest.approx(first_steps[-1], abs=1e-5)  # not from IDPP
