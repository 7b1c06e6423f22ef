"""The jobflow-remote backend on a real jobflow-remote project whose queue store is maggma's
in-memory (mongomock) MemoryStore, a MongoStore subclass (no MongoDB server is installable here).
The controller and the runner share that in-process queue; the runner executes jobs for real
through a local worker (shell scheduler, ``jf execution run``)."""

import sys
from pathlib import Path

import pytest
import yaml

from alem.backends.base import QueueState
from alem.backends.jobflow_remote_backend import JobflowRemoteBackend
from tests._chgnet_reference import LI2O_FAST_UNRELAXED_EV, TOLERANCE_EV


def write_project(folder: Path, work_dir: Path, with_data_store: bool = True) -> str:
    # File-backed output store (montydb on SQLite): it outlives processes like a MongoDB would.
    def monty(name):
        return {"type": "MontyStore", "collection_name": name, "database_path": str(folder / "outputs"),
                "storage": "sqlite"}

    jobstore = {"docs_store": monty("outputs")}
    if with_data_store:
        jobstore["additional_stores"] = {"data": monty("outputs_data")}
    project = {
        "name": "alem_test",
        "workers": {"local_shell": {
            "type": "local", "scheduler_type": "shell", "work_dir": str(work_dir), "resources": {},
            # the job runs `jf execution run` in a new shell: put this interpreter's bin first
            "pre_run": f"export PATH={Path(sys.executable).parent}:$PATH",
        }},
        "queue": {"store": {"type": "MemoryStore", "collection_name": "jobs"}},
        "jobstore": jobstore,
        "runner": {"delay_checkout": 1, "delay_check_run_status": 1, "delay_advance_status": 1},
    }
    (folder / "alem_test.yaml").write_text(yaml.safe_dump(project))
    return "alem_test"


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    import jobflow_remote

    folder = tmp_path / "projects"
    folder.mkdir()
    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
    return folder


def make_backend(project_dir, preset, with_data_store=True):
    from jobflow_remote import JobController
    from jobflow_remote.config import ConfigManager

    name = write_project(project_dir, project_dir.parent / "work", with_data_store)
    controller = JobController.from_project(ConfigManager().get_project(name))
    controller.reset()  # initialise the fresh queue database (job id counter, indexes)
    return JobflowRemoteBackend(preset, project=name, worker="local_shell", job_controller=controller)


@pytest.fixture
def backend(project_dir, fast_mlip_preset):
    fast_mlip_preset.neb.relax_endpoints = False  # one job keeps the executed test short
    return make_backend(project_dir, fast_mlip_preset)


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
    backend = make_backend(project_dir, fast_mlip_preset, with_data_store=False)
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
    assert outcome.usable, outcome.failure_reason
    assert outcome.barrier_ev == pytest.approx(LI2O_FAST_UNRELAXED_EV, abs=TOLERANCE_EV)
    assert outcome.details["flow_id"] == external_id
