"""Helpers for backend tests: waiting on a backend's queue state, and a real jobflow-remote
project (file-backed output store, in-memory queue) to run NEBs through."""

import sys
import time
from pathlib import Path

import yaml

from alem.backends.jobflow_remote_backend import JobflowRemoteBackend


def wait_for(backend, external_id, states, timeout_s=900.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = backend.poll([external_id])[external_id]
        if state in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"{external_id} still {state} after {timeout_s} s")


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


def make_jobflow_remote_backend(project_dir, preset, with_data_store=True):
    from jobflow_remote import JobController
    from jobflow_remote.config import ConfigManager

    name = write_project(project_dir, project_dir.parent / "work", with_data_store)
    controller = JobController.from_project(ConfigManager().get_project(name))
    controller.reset()  # initialise the fresh queue database (job id counter, indexes)
    return JobflowRemoteBackend(preset, project=name, worker="local_shell", job_controller=controller)
