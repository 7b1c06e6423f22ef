"""`alem loop` on the slurm backend against a real one-node Slurm (tests/_slurm.py): real CHGNet
NEBs submitted with sbatch, seen queued/running/completed, barriers ingested; `kill -9` of the
loop while its jobs are queued loses nothing and submits nothing twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from alem.cli import app
from alem.store import HopState, Store

pytest_plugins = ["tests._slurm"]

runner = CliRunner()
HOSTS = ("Li2O_antifluorite", "LiF_rocksalt")  # one small hop each
#: The demo preset loosened further (as tests/conftest.py's fast_mlip_preset): seconds per NEB.
FAST_NEB = {"n_images = 5": "n_images = 3", "fmax_ev_a = 0.05": "fmax_ev_a = 0.1", "max_steps = 200": "max_steps = 150",
            "endpoint_fmax_ev_a = 0.03": "endpoint_fmax_ev_a = 0.05", "endpoint_max_steps = 150": "endpoint_max_steps = 100"}


def _alem_loop(campaign_dir, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from alem.cli import app; app()", "loop", "--campaign", str(campaign_dir),
         "--tick-seconds", "1", "--no-retrain", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _job_states(config) -> dict[str, str]:
    with Store.open(config.store_path) as store:
        return {job.job_key: job.state.value for job in store.jobs()}


@pytest.mark.slow
def test_alem_loop_on_slurm_survives_kill_9_and_ingests_real_barriers(slurm_cluster, tmp_path):
    from alem.candidates.pool import add_candidates
    from alem.demo import DEMO_ENUMERATION, create_demo_campaign, demo_host_files

    config = create_demo_campaign(tmp_path / "campaign", backend="slurm")
    preset_file = config.campaign_dir / "workflows" / "mlip_chgnet_demo.toml"
    text = preset_file.read_text()
    for old, new in FAST_NEB.items():
        assert old in text
        text = text.replace(old, new)
    preset_file.write_text(text)
    config.backend.slurm.extra_directives = ["#SBATCH --hold"]  # the first loop's jobs stay queued
    config.save()
    with Store.open(config.store_path) as store:
        add_candidates(store, demo_host_files(HOSTS), "Li", DEMO_ENUMERATION)
        hop_ids = {record.hop_id for record in store.hops()}
    assert len(hop_ids) == 2

    first = _alem_loop(config.campaign_dir)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            states = _job_states(config)
            if len(states) == 2 and set(states.values()) == {"queued"}:  # the loop saw them pending in squeue
                break
            assert set(states.values()) <= {"created", "submitted", "queued"}, states  # held jobs cannot run
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.5)
        else:
            raise AssertionError(f"jobs never queued: {_job_states(config)}")
    finally:
        first.kill()
        output, _ = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, output

    queued = slurm_cluster.job_names()  # job id -> job name (the alem job key)
    assert set(slurm_cluster.queue().values()) == {"PD"} and len(queued) == 2
    restarted = runner.invoke(app, ["reconcile", "--campaign", str(config.campaign_dir)])
    assert restarted.exit_code == 0, restarted.output
    with Store.open(config.store_path) as store:
        assert {job.external_id: job.job_key for job in store.jobs()} == queued  # same jobs, none new
        assert store.integrity_check() == []

    config.backend.slurm.extra_directives = []
    config.save()
    slurm_cluster.run("scontrol", "release", *queued)
    second = _alem_loop(config.campaign_dir, "--until-idle", "--max-ticks", "900")
    try:
        output, _ = second.communicate(timeout=1200)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, output
    said = " ".join(output.split())
    assert "is running" in said and said.count("completed: barrier") == 2, output
    with Store.open(config.store_path) as store:
        assert {record.state for record in store.hops()} == {HopState.DONE}
        results = store.results(usable=True)
        assert {result.hop_id for result in results} == hop_ids
        assert all(0.0 < result.barrier_ev < 3.0 and result.method.startswith("mlip:CHGNet") for result in results)
        assert len(store.jobs()) == 2  # nothing submitted twice
        assert store.integrity_check() == []
    assert len(list((config.state_dir / "batch_runs" / "ids").iterdir())) == 2  # two sbatch calls in all
    assert slurm_cluster.queue() == {}
