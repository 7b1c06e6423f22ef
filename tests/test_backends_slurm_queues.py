"""The database-backed backends' queue side against a real one-node Slurm (tests/_slurm.py):
the FireWorks qadapter templates in hpc_configs/ rendered by FireWorks' own CommonAdapter and
submitted with sbatch (stub command: rlaunch would need a MongoDB server), and a jobflow-remote
worker whose scheduler is the real Slurm running a real CHGNet NEB (runner in-process)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from alem.backends.base import QueueState
from tests._backends import make_jobflow_remote_backend
from tests._chgnet_reference import LI2O_FAST_UNRELAXED_EFFECTIVE_EV, LI2O_FAST_UNRELAXED_EV, TOLERANCE_EV

pytest_plugins = ["tests._slurm"]

HPC = Path(__file__).resolve().parents[1] / "hpc_configs"


def test_fireworks_slurm_qadapter_template_runs_as_a_real_slurm_job(slurm_cluster, tmp_path, monkeypatch):
    from fireworks.utilities.fw_serializers import load_object_from_file

    monkeypatch.chdir(tmp_path)  # qlaunch submits from the launch directory (the job's .out/.error land there)
    adapter = load_object_from_file(str(HPC / "fireworks" / "my_qadapter_slurm.yaml"))
    assert type(adapter).__name__ == "CommonAdapter" and adapter.q_type == "SLURM"
    marker = tmp_path / "rocket.out"
    # what this one-node cluster can give; every other line is the template's own
    adapter.update({"nodes": 1, "ntasks_per_node": 1, "walltime": "00:05:00", "logdir": str(tmp_path),
                    "rocket_launch": f"echo rocket launched on $SLURM_JOB_NODELIST > {marker}"})
    script = tmp_path / "FW_submit.script"
    script.write_text(adapter.get_script_str(str(tmp_path)))
    assert "#SBATCH --job-name=alem_neb" in script.read_text() and "#SBATCH --account=" in script.read_text()
    job_id = adapter.submit_to_queue(str(script))  # FireWorks' own sbatch call and job-id parsing
    assert str(job_id).isdigit(), f"FireWorks parsed no Slurm job id: {job_id!r}"
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.3)
    assert marker.read_text().strip() == f"rocket launched on {slurm_cluster.host}"
    assert list(tmp_path.glob(f"alem_neb-{job_id}.out"))


def _slurm_worker_project(project_root: Path, work_dir: Path) -> None:
    """Turn the test project's shell worker into a local worker whose scheduler is Slurm."""
    path = project_root / "alem_test.yaml"
    project = yaml.safe_load(path.read_text())
    worker = project["workers"].pop("local_shell")
    worker.update({"scheduler_type": "slurm", "work_dir": str(work_dir),
                   "resources": {"partition": "debug", "ntasks": 1, "time": "00:30:00"}})
    project["workers"]["local_shell"] = worker  # the name the backend helper submits to
    path.write_text(yaml.safe_dump(project))


@pytest.mark.slow
def test_jobflow_remote_worker_on_real_slurm_runs_the_neb(slurm_cluster, project_dir, tmp_path, fast_mlip_preset, li2o_hop):
    from jobflow_remote import JobController
    from jobflow_remote.config import ConfigManager
    from jobflow_remote.jobs.runner import Runner

    fast_mlip_preset.neb.relax_endpoints = False  # one jobflow job, one Slurm job
    backend = make_jobflow_remote_backend(project_dir, fast_mlip_preset)
    _slurm_worker_project(project_dir, tmp_path / "jfr_work")
    backend._jc = JobController.from_project(ConfigManager().get_project("alem_test"))
    backend.job_controller.reset()
    external_id = backend.submit(li2o_hop, "job-slurm")
    runner = Runner(project_name=backend.project_name)
    runner.job_controller = backend.job_controller  # share the in-memory queue database
    runner.run_all_jobs(max_seconds=900)  # a bound, not a timing: slow shared CI machines need room
    [job] = backend.job_controller.get_jobs_info(flow_ids=[external_id])
    assert str(job.remote.process_id).isdigit()  # a Slurm job id from sbatch
    [submit_script] = (tmp_path / "jfr_work").rglob("submit.sh")
    assert "#SBATCH --partition=debug" in submit_script.read_text()
    assert backend.poll([external_id])[external_id] == QueueState.COMPLETED
    outcome = backend.outcome(external_id)
    # unrelaxed vacancy endpoints sit above the relaxed path: an intermediate minimum, not a label,
    # with both the forward and the effective barrier kept
    assert not outcome.usable and "intermediate minimum 0.15 eV below the initial endpoint" in outcome.failure_reason
    assert outcome.details["forward_barrier_ev"] == pytest.approx(LI2O_FAST_UNRELAXED_EV, abs=TOLERANCE_EV)
    assert outcome.details["effective_barrier_ev"] == pytest.approx(LI2O_FAST_UNRELAXED_EFFECTIVE_EV, abs=TOLERANCE_EV)
