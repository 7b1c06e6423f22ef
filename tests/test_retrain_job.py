"""Retraining as a job (``[model] retrain_on = "backend"``): real CPU training of a tiny ensemble
in a detached process (local) and as a batch job of a real one-node Slurm (tests/_slurm.py),
while `alem loop` goes on; the new version registered when the job's exit marker appears; never
two at once; a loop restarted mid-job finds it; a lost job reported and retried once."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from alem.backends.retrain_runner import MODEL, BatchRetrainRunner
from alem.campaign.model_versions import load_current_model
from alem.campaign.retrain_job import advance_retraining, make_retrain_runner, new_results_for_next_retraining, retrain_run_root
from alem.config import CampaignConfig, RetrainJobSection
from alem.store import Store
from alem.store.states import IllegalTransition
from tests._replay_campaign import invoke, make_replay_campaign

pytest_plugins = ["tests._slurm"]

#: A replay campaign that has 3 results after its first loop tick: a retraining is then due.
CAMPAIGN = dict(
    n_hops=6, approval__auto_approve=True, approval__max_running_jobs=3, acquisition__batch_size=3,
    acquisition__strategy="discover", model__retrain_after_results=3, model__n_members=2, model__retrain_on="backend",
    model__retrain_job__cpus=1,
)


def _wait_for_exit_marker(run_dir: Path, timeout_s: float = 240.0) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if (run_dir / "exit.json").is_file():
            return json.loads((run_dir / "exit.json").read_text())
        time.sleep(0.5)
    log = run_dir / "retrain.log"
    raise AssertionError(f"{run_dir}: no exit.json after {timeout_s} s; log:\n{log.read_text() if log.exists() else '(none)'}")


def _loop(config, *args):
    result = invoke(config, "loop", "--tick-seconds", "0", *args)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_local_retraining_job_runs_beside_the_loop_and_is_registered_when_it_exits(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **CAMPAIGN)
    said = _loop(config, "--max-ticks", "2")
    assert "retraining job 1 submitted to local" in said and "the loop goes on with version 1" in said
    with Store.open(config.store_path) as store:
        (job,) = store.retrain_jobs()
        assert job.live and job.attempt == 1 and job.n_new_results == 3
        assert len(store.model_versions()) == 1  # the loop did not wait for it
        # never two retrainings at once, even asked directly
        with pytest.raises(IllegalTransition, match="retraining job 1 is"):
            store.begin_retrain_job("local", 1, None, 0, str(tmp_path))
    run_dir = Path(job.run_dir)
    assert run_dir.parent == config.state_dir / "retrain_runs"
    jobs = invoke(config, "jobs")
    assert "Retraining" in jobs.output and "alem-retrain-1-a1" in " ".join(jobs.output.split())
    status = json.loads(invoke(config, "status", "--json").stdout)
    assert status["retraining"]["live"]["id"] == 1

    assert _wait_for_exit_marker(run_dir) == {**_wait_for_exit_marker(run_dir), "state": "completed"}
    said = _loop(config, "--once")
    assert "retraining job 1 finished: model version 2 is current" in said
    with Store.open(config.store_path) as store:
        current = store.current_model()
        assert current.id == 2 and Path(current.path) == run_dir / MODEL
        assert current.n_training_hops == 24 + 3  # the tiny model's hops and the campaign's 3 results
        assert store.retrain_jobs()[0].state == "completed" and store.retrain_jobs()[0].model_version_id == 2
        assert [e.kind for e in store.events(kind="retrained")] == ["retrained"]
        assert store.integrity_check() == []
        # the results that arrived while the job ran are not in version 2: they count towards the next
        arrived_meanwhile = [r for r in store.results(usable=True) if r.created_at >= job.created_at]
        assert len(arrived_meanwhile) == 3
        assert new_results_for_next_retraining(store, config) == 3
    status = json.loads(invoke(config, "status", "--json").stdout)
    assert status["retraining"]["live"] is None and status["retraining"]["last"]["state"] == "completed"


def test_a_lost_job_is_retried_once_then_the_loop_keeps_its_model(tmp_path, replay_ensemble_dir):
    # A Python that exits at once: the job's process dies without an exit marker (lost), twice.
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **CAMPAIGN, model__retrain_job__python="/bin/false")
    said = _loop(config, "--max-ticks", "4")
    assert "retraining job 1 lost" in said and "retrying once" in said
    assert "retraining job 2 lost again" in said and "keeping model version 1 until more results arrive" in said
    with Store.open(config.store_path) as store:
        jobs = store.retrain_jobs()
        assert [(j.id, j.attempt, j.state) for j in jobs] == [(2, 2, "lost"), (1, 1, "lost")]  # no third job
        assert len(store.model_versions()) == 1


def test_a_loop_killed_before_submitting_finds_its_job_and_a_killed_job_is_lost_and_retried(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **{**CAMPAIGN, "model__retrain_on": "loop"})
    _loop(config, "--max-ticks", "1", "--no-retrain")  # 3 results, no retraining yet
    config = CampaignConfig.load(config.campaign_dir)
    config.model.retrain_on = "backend"
    with Store.open(config.store_path) as store:
        current = load_current_model(store, config)
        # a loop killed right after committing the row: nothing staged, nothing submitted
        store.begin_retrain_job("local", 1, current.version_id, 3, str(retrain_run_root(config)))
        runner = make_retrain_runner(config)
        step = advance_retraining(store, config, current, runner)
        assert step.messages == ["retraining job 1: found after a restart, submitted as alem-retrain-1-a1"]
        job = store.retrain_job(1)
        run_dir = Path(job.run_dir)
        assert job.state in ("submitted", "running") and (run_dir / "training_hops.pickle").is_file()
        # a second look submits nothing new: the same process is found by its key
        pid = json.loads((run_dir / "job.json").read_text())["pid"]
        advance_retraining(store, config, current, runner)
        assert json.loads((run_dir / "job.json").read_text())["pid"] == pid
        # the job is killed (a node crash): lost, reported, retried once
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
        step = advance_retraining(store, config, current, runner)
        assert store.retrain_job(1).state == "lost" and "retrying once" in step.messages[0]
        retry = store.live_retrain_job()
        assert retry.id == 2 and retry.attempt == 2
    assert _wait_for_exit_marker(Path(retry.run_dir))["state"] == "completed"
    with Store.open(config.store_path) as store:
        step = advance_retraining(store, config, load_current_model(store, config), runner)
        assert step.new_model is not None and step.new_model.version_id == 2


def test_retraining_as_a_slurm_job_found_again_by_a_restarted_loop(slurm_cluster, tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(
        tmp_path, replay_ensemble_dir, **CAMPAIGN, model__retrain_job__scheduler="slurm",
        model__retrain_job__run_dir=str(tmp_path / "shared" / "retrain"),
        model__retrain_job__walltime_minutes=10,
    )
    said = _loop(config, "--max-ticks", "2")  # the loop process ends here, as if killed: the job runs on
    assert "retraining job 1 submitted to slurm as" in said
    with Store.open(config.store_path) as store:
        (job,) = store.retrain_jobs()
    assert slurm_cluster.job_names()[job.external_id] == "alem-retrain-1-a1"
    script = (Path(job.run_dir) / "job.sh").read_text()
    assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH --time=0-0:10:0" in script and "--gres" not in script
    assert "-m alem.backends.retrain_runner" in script
    status = " ".join(invoke(config, "status").output.split())
    assert f"retraining job 1 (attempt 1) {job.state} on slurm as {job.external_id}" in status

    from alem.doctor import run_checks

    doctor = {c.name: (c.status, c.message) for c in run_checks(config, check_potentials=False)}
    assert doctor["retraining job scheduler"][0] == "ok" and "squeue answers" in doctor["retraining job scheduler"][1]
    assert doctor["retraining job run directory"] == ("ok", f"{tmp_path / 'shared' / 'retrain'} writable (compute nodes must see it too)")

    assert _wait_for_exit_marker(Path(job.run_dir))["state"] == "completed"
    said = _loop(config, "--once")  # a new loop: finds the job in the store, sees its exit marker
    assert "retraining job 1 finished: model version 2 is current" in said
    with Store.open(config.store_path) as store:
        assert store.current_model().id == 2 and store.retrain_jobs()[0].state == "completed"


def test_the_job_script_asks_for_the_gpus_the_campaign_names(tmp_path):
    runner = BatchRetrainRunner("slurm", RetrainJobSection(gpus=2, partition="gpu", cpus=8, walltime_minutes=90))
    script = runner.script("alem-retrain-7-a1", tmp_path)
    assert "#SBATCH --gres=gpu:2" in script and "#SBATCH --partition=gpu" in script
    assert "#SBATCH --cpus-per-task=8" in script and "OMP_NUM_THREADS=8" in script
    with pytest.raises(ValueError, match="qtoolkit writes no GPU request for PBS"):
        BatchRetrainRunner("pbs", RetrainJobSection(gpus=1)).script("k", tmp_path)


def test_a_version_4_store_migrates_to_5_keeping_its_rows(tmp_path, tiny_hop):
    import sqlite3
    from contextlib import closing

    from alem.store.schema import SCHEMA_VERSION, migrate

    path = tmp_path / "v4.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, target=4)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("INSERT INTO model_versions (path, card_json, created_at, is_current) VALUES ('m', '{}', 1.0, 1)")
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'retrain_jobs'").fetchone()[0] == 0
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION  # 5 and the migrations after it
        assert [m.path for m in store.model_versions()] == ["m"] and store.retrain_jobs() == []
        job = store.begin_retrain_job("slurm", 1, 1, 5, str(tmp_path / "runs"))
        assert job.job_key == "alem-retrain-1-a1" and job.run_dir == f"{tmp_path / 'runs'}/alem-retrain-1-a1"
        assert store.mark_retrain_submitted(job.id, "4242").state == "submitted"
        assert store.update_retrain_state(job.id, "running").state == "running"
        with pytest.raises(IllegalTransition):  # never two live retraining jobs
            store.begin_retrain_job("slurm", 1, 1, 5, str(tmp_path / "runs"))
        store.finish_retrain_job(job.id, "lost", "gone")
        assert store.live_retrain_job() is None and store.retrain_jobs(live=False)[0].error == "gone"
        assert store.integrity_check() == []


def test_a_backend_without_a_batch_scheduler_must_name_where_retraining_runs(tmp_path):
    from alem.config import ConfigError

    with pytest.raises(ConfigError, match=r'alem.toml: \[model\] retrain_on = "backend" with \[backend\] kind = .fireworks.: set '
                                          r'\[model.retrain_job\] scheduler'):
        CampaignConfig.from_dict({"model": {"retrain_on": "backend"}, "backend": {"kind": "fireworks"}}, tmp_path / "alem.toml")
    named = CampaignConfig.from_dict({"model": {"retrain_on": "backend", "retrain_job": {"scheduler": "slurm"}},
                                      "backend": {"kind": "fireworks", "slurm": {"run_dir": "/shared/runs"}}})
    assert retrain_run_root(named) == Path("/shared/runs/retrain")
