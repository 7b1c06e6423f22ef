"""The hpc_configs templates parse with the libraries that will read them."""

from pathlib import Path

import pytest
import yaml

HPC = Path(__file__).resolve().parents[1] / "hpc_configs"


@pytest.mark.parametrize("name, scheduler", [("alem_slurm", "slurm"), ("alem_pbs", "pbs")])
def test_jobflow_remote_projects_validate(name, scheduler):
    from jobflow_remote.config.base import Project

    project = Project.model_validate(yaml.safe_load((HPC / "jobflow_remote" / f"{name}.yaml").read_text()))
    assert project.name == name
    assert project.workers["cluster"].scheduler_type == scheduler
    assert "data" in project.get_jobstore().additional_stores  # atomate2 jobs need it


@pytest.mark.parametrize("name, directive", [("my_qadapter_slurm", "#SBATCH --nodes=5"), ("my_qadapter_pbs", "#PBS -l nodes=5:ppn=32")])
def test_fireworks_queue_adapters_render(name, directive, tmp_path):
    from fireworks.utilities.fw_serializers import load_object_from_file

    adapter = load_object_from_file(str(HPC / "fireworks" / f"{name}.yaml"))
    script = adapter.get_script_str(str(tmp_path))
    assert directive in script and "rlaunch" in script


def test_fireworks_worker_launchpad_and_job_store(tmp_path):
    from fireworks import FWorker
    from jobflow import JobStore

    assert FWorker.from_file(str(HPC / "fireworks" / "my_fworker.yaml")).name == "alem_vasp_worker"
    launchpad = yaml.safe_load((HPC / "fireworks" / "my_launchpad.yaml").read_text())
    assert {"host", "port", "name", "username", "password"} <= set(launchpad)
    store = JobStore.from_dict_spec(yaml.safe_load((HPC / "fireworks" / "jobflow.yaml").read_text())["JOB_STORE"])
    assert list(store.additional_stores) == ["data"]
