"""The local backend: real CHGNet NEBs in detached worker processes, a killed worker, a crash."""

import json
import os
import signal
import time

import pytest

from alem.backends import BackendConfigError, make_backend
from alem.backends.base import QueueState
from alem.backends.local import LocalBackend, run_worker
from alem.errors import AlemError
from tests._backends import wait_for
from tests._chgnet_reference import LI2O_FAST_RELAXED_EV, TOLERANCE_EV

TERMINAL = {QueueState.COMPLETED, QueueState.FAILED, QueueState.LOST}


@pytest.mark.slow
def test_real_chgnet_neb_through_the_local_backend(tmp_path, li2o_hop, fast_mlip_preset):
    backend = LocalBackend(tmp_path / "jobstore", fast_mlip_preset)
    external_id = backend.submit(li2o_hop, "job-1")
    assert backend.submit(li2o_hop, "job-1") == external_id  # same key: no second job
    assert backend.find_by_key("job-1") == external_id
    assert backend.find_by_key("job-2") is None
    assert backend.poll([external_id])[external_id] in (QueueState.QUEUED, QueueState.RUNNING)

    # a fresh backend object (as after `alem loop` restarts) sees the same job
    restarted = LocalBackend(tmp_path / "jobstore", fast_mlip_preset)
    assert restarted.find_by_key("job-1") == external_id
    assert wait_for(restarted, external_id, TERMINAL) == QueueState.COMPLETED

    outcome = restarted.outcome(external_id)
    assert outcome.usable, outcome.failure_reason
    assert outcome.barrier_ev == pytest.approx(LI2O_FAST_RELAXED_EV, abs=TOLERANCE_EV)
    assert len(outcome.image_energies_ev) == 5
    assert outcome.method == "mlip:CHGNet CI-NEB"
    run_dir = tmp_path / "jobstore" / "runs" / external_id
    assert (run_dir / "store" / "docs.json").is_file() and (run_dir / "store" / "data.json").is_file()
    assert json.loads((run_dir / "exit.json").read_text())["state"] == "completed"
    assert len(list((tmp_path / "jobstore" / "runs").iterdir())) == 1


@pytest.mark.slow
def test_worker_killed_mid_job_is_lost(tmp_path, li2o_hop, fast_mlip_preset):
    # forces that can never be reached and no step limit worth the name: the endpoint relaxation
    # (the flow's first job) runs until the worker is killed, however fast the machine
    fast_mlip_preset.neb.endpoint_fmax_ev_a = fast_mlip_preset.neb.fmax_ev_a = 1e-9
    fast_mlip_preset.neb.endpoint_max_steps = fast_mlip_preset.neb.max_steps = 10**7
    backend = LocalBackend(tmp_path / "jobstore", fast_mlip_preset)
    external_id = backend.submit(li2o_hop, "job-kill")
    run_dir = tmp_path / "jobstore" / "runs" / external_id
    try:
        assert wait_for(backend, external_id, {QueueState.RUNNING}, timeout_s=300) == QueueState.RUNNING
        deadline = time.time() + 120
        while not list((run_dir / "work").glob("job_*")) and time.time() < deadline:
            time.sleep(0.2)  # wait until jobflow is executing the first job of the flow
        assert list((run_dir / "work").glob("job_*")), "the worker never started a job"
        assert backend.poll([external_id])[external_id] == QueueState.RUNNING
        pid = json.loads((run_dir / "worker.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        assert wait_for(backend, external_id, TERMINAL, timeout_s=120) == QueueState.LOST
    finally:
        if backend.poll([external_id])[external_id] == QueueState.RUNNING:
            backend.cancel(external_id)  # a failed assertion must not leave the worker running
    assert LocalBackend(tmp_path / "jobstore", fast_mlip_preset).poll([external_id])[external_id] == QueueState.LOST
    outcome = backend.outcome(external_id)
    assert not outcome.usable and "has not finished (state lost)" in outcome.failure_reason
    assert not (run_dir / "exit.json").exists()
    # the key still maps to the lost job: the caller decides on a retry under a new key
    assert backend.find_by_key("job-kill") == external_id


def test_crashing_flow_is_failed_with_its_reason(tmp_path, li2o_hop, fast_mlip_preset):
    fast_mlip_preset.neb.relax_endpoints = False
    backend = LocalBackend(tmp_path / "jobstore", fast_mlip_preset)
    backend._spawn = lambda external_id: None  # run the worker body in this process instead
    external_id = backend.submit(li2o_hop, "job-crash")
    run_dir = tmp_path / "jobstore" / "runs" / external_id
    (run_dir / "flow.json").write_text("{not json")
    with pytest.raises(json.JSONDecodeError):
        run_worker(run_dir)
    assert backend.poll([external_id])[external_id] == QueueState.FAILED
    outcome = backend.outcome(external_id)
    assert not outcome.usable and "failed: JSONDecodeError" in outcome.failure_reason


def test_unknown_and_unspawned_jobs(tmp_path, li2o_hop, fast_mlip_preset, monkeypatch):
    backend = LocalBackend(tmp_path / "jobstore", fast_mlip_preset)
    assert backend.poll(["local-nothing"]) == {"local-nothing": QueueState.LOST}
    backend._spawn = lambda external_id: None  # alem killed right after writing the request
    external_id = backend.submit(li2o_hop, "job-unspawned")
    assert backend.poll([external_id])[external_id] == QueueState.QUEUED
    monkeypatch.setattr("alem.backends.local.SPAWN_GRACE_S", 0.0)
    assert backend.poll([external_id])[external_id] == QueueState.LOST


def test_make_backend_from_campaign_config(tmp_path):
    from alem.config import CampaignConfig
    from alem.neb.presets import PresetError

    config = CampaignConfig()
    config.campaign_dir = tmp_path
    backend = make_backend(config, tmp_path)
    assert isinstance(backend, LocalBackend)
    assert backend.root == tmp_path / "state" / "jobstore"
    assert backend.preset.name == "mlip_chgnet"
    config.backend.local.preset = "missing_preset"
    with pytest.raises(PresetError, match="missing_preset"):
        make_backend(config, tmp_path)
    config.backend.kind = "fireworks"
    with pytest.raises(BackendConfigError, match=r"\[backend.fireworks\] launchpad_file is empty") as empty:
        make_backend(config, tmp_path)
    assert isinstance(empty.value, AlemError)
    config.backend.fireworks.launchpad_file = "my_launchpad.yaml"
    backend = make_backend(config, tmp_path)
    assert backend.name == "fireworks" and backend.preset.name == "vasp_gga"
    config.backend.kind = "jobflow-remote"
    config.backend.jobflow_remote.project = "proj"
    assert make_backend(config, tmp_path).project_name == "proj"
