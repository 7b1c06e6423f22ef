"""Scoring off the login node (``[model] score_on = "backend"``) and scoring in chunks: a pool of at
least ``score_job_min_hops`` unscored candidates becomes one job (a detached process for local and
replay, a batch job of a real one-node Slurm, tests/_slurm.py) whose predictions are recorded once
when its exit marker appears; a smaller pool is scored in the loop, ``score_chunk_hops`` at a time;
a loop killed before submitting finds its job; a killed job is lost and retried once; a failed job
is recorded with its reason; two failures make the loop score itself."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from alem.backends.score_runner import PREDICTIONS_DIR, SPEC, stage_score_run
from alem.campaign.model_versions import load_current_model
from alem.campaign.score import candidates_to_score, score_unscored_candidates
from alem.campaign.score_job import advance_scoring, make_score_runner, run_score_job, score_run_root
from alem.config import CampaignConfig
from alem.store import HopState, Store
from alem.store.records import HopRecord
from alem.store.states import IllegalTransition
from tests._replay_campaign import invoke, make_replay_campaign

pytest_plugins = ["tests._slurm", "tests._pbs"]

#: Six candidates, all scored as one job in chunks of 4; no proposing (only scoring is watched).
CAMPAIGN = dict(
    n_hops=6, model__score_on="backend", model__score_job_min_hops=5, model__score_chunk_hops=4,
    model__score_job__cpus=1, acquisition__min_approved_queue=0,
)


def _wait_for_exit_marker(run_dir: Path, timeout_s: float = 240.0) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if (run_dir / "exit.json").is_file():
            return json.loads((run_dir / "exit.json").read_text())
        time.sleep(0.5)
    log = run_dir / "score.log"
    raise AssertionError(f"{run_dir}: no exit.json after {timeout_s} s; log:\n{log.read_text() if log.exists() else '(none)'}")


def _loop(config, *args):
    result = invoke(config, "loop", "--tick-seconds", "0", "--no-retrain", *args)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _in_process_predictions(config) -> dict[str, tuple[float, float, float]]:
    """The current model's prediction of every candidate, computed here in one piece."""
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        ids = [r.hop_id for r in store.hops(state=HopState.CANDIDATE)]
        prediction = model.ensemble.predict(store.load_hops(ids))
    return {h: (prediction.mean_ev[k], prediction.std_ev[k], prediction.prob_good[k]) for k, h in enumerate(ids)}


def _recorded(config, version_id: int = 1) -> dict[str, tuple[float, float, float]]:
    with Store.open(config.store_path) as store:
        return {h: (p.mean_ev, p.std_ev, p.prob_good) for h, p in store.predictions(version_id).items()}


def _assert_same(recorded: dict, expected: dict) -> None:
    assert sorted(recorded) == sorted(expected)
    for hop_id, values in expected.items():
        # the members run in float32: another batch size may round the last bit (1e-7 eV) differently
        np.testing.assert_allclose(recorded[hop_id], values, rtol=0, atol=1e-6, err_msg=hop_id)


def test_a_large_pool_is_scored_by_a_local_job_while_the_loop_goes_on(tmp_path, replay_ensemble_dir, monkeypatch):
    import alem.inference.members

    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **CAMPAIGN)
    monkeypatch.setattr(alem.inference.members, "GRAPH_BATCH", 4)  # chunks are whole forward batches: here of 4 hops
    said = _loop(config, "--max-ticks", "2")
    assert "scoring job 1 submitted to local as alem-score-1-a1: 6 candidates with model version 1" in said
    with Store.open(config.store_path) as store:
        (job,) = store.score_jobs()
        assert job.live and job.n_hops == 6 and job.attempt == 1
        assert store.predictions(1) == {}  # the loop predicted nothing itself while the job was live
        with pytest.raises(IllegalTransition, match="scoring job 1 is"):  # never two at once, even asked directly
            store.begin_score_job("local", 1, 1, 6, str(tmp_path))
    run_dir = Path(job.run_dir)
    assert run_dir.parent == score_run_root(config) == config.state_dir / "score_runs"
    spec = json.loads((run_dir / SPEC).read_text())
    assert [len(c) for c in spec["chunks"]] == [4, 2]  # [model] score_chunk_hops
    assert spec["feature_cache"] == str(config.state_dir / "feature_cache.sqlite")  # same machine: the campaign's cache
    status = json.loads(invoke(config, "status", "--json").stdout)
    assert status["scoring"]["live"]["id"] == 1
    jobs = " ".join(invoke(config, "jobs").output.split())
    assert "Scoring jobs" in jobs and "alem-score-1-a1" in jobs
    assert "Scoring: scoring job 1 (attempt 1, 6 candidates, model version 1)" in " ".join(invoke(config, "status").output.split())

    assert _wait_for_exit_marker(run_dir)["state"] == "completed"
    assert sorted(p.name for p in (run_dir / PREDICTIONS_DIR).iterdir()) == ["chunk-00000.npz", "chunk-00001.npz"]
    said = _loop(config, "--once")
    assert "scoring job 1 finished: 6 predictions of model version 1 recorded" in said
    _assert_same(_recorded(config), _in_process_predictions(config))
    with Store.open(config.store_path) as store:
        assert store.score_job(1).state == "completed" and store.score_job(1).n_recorded == 6
        kinds = [e.kind for e in store.events() if e.kind.startswith("score_")]
        assert sorted(kinds) == ["score_completed", "score_created", "score_submitted"]
        assert store.integrity_check() == []
    said = _loop(config, "--once")  # nothing left to score: no second job, nothing recorded twice
    assert "scoring job" not in said
    with Store.open(config.store_path) as store:
        assert len(store.score_jobs()) == 1


def _chunks_seen(monkeypatch, on_chunk) -> None:
    """Members forward 4 hop graphs at a time (so a chunk may hold 4), and ``on_chunk(hops)`` sees
    every chunk the scoring predicts."""
    import alem.inference.members
    from alem.ensemble import Ensemble

    monkeypatch.setattr(alem.inference.members, "GRAPH_BATCH", 4)
    posterior_chunks = Ensemble.posterior_chunks

    def seeing(self, chunks, *args, **kwargs):
        def seen():
            for hops in chunks:
                on_chunk(hops)
                yield hops
        return posterior_chunks(self, seen(), *args, **kwargs)

    monkeypatch.setattr(Ensemble, "posterior_chunks", seeing)


def test_a_small_pool_is_scored_in_the_loop_in_chunks(tmp_path, replay_ensemble_dir, monkeypatch):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **{**CAMPAIGN, "model__score_job_min_hops": 7,
                                                                       "model__score_chunk_hops": 4})
    expected = _in_process_predictions(config)
    sizes: list[int] = []
    _chunks_seen(monkeypatch, lambda hops: sizes.append(len(hops)))
    with Store.open(config.store_path) as store:
        step = advance_scoring(store, config, load_current_model(store, config))
        assert step.scored == 6 and step.messages == [] and store.score_jobs() == []  # 6 < 7: no job
    assert sizes == [4, 2]  # one chunk of [model] score_chunk_hops at a time
    _assert_same(_recorded(config), expected)  # the same predictions as one piece


def test_a_scoring_killed_mid_pool_keeps_the_chunks_it_recorded(tmp_path, replay_ensemble_dir, monkeypatch):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **CAMPAIGN)
    calls: list[int] = []

    def dies_on_the_second_chunk(hops):
        calls.append(len(hops))
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill between chunks

    with monkeypatch.context() as dying:
        _chunks_seen(dying, dies_on_the_second_chunk)
        with Store.open(config.store_path) as store:
            model = load_current_model(store, config)
            with pytest.raises(KeyboardInterrupt):
                score_unscored_candidates(store, model, chunk_hops=4)
            assert len(store.predictions(1)) == 4  # the first chunk is recorded
            assert len(candidates_to_score(store, model)[0]) == 2  # only the rest is left
    with Store.open(config.store_path) as store:
        assert score_unscored_candidates(store, model, chunk_hops=4) == 2
        assert len(store.predictions(1)) == 6


def test_a_loop_killed_before_submitting_finds_its_job_and_a_killed_job_is_lost_and_retried(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **CAMPAIGN)
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        # a loop killed after submitting, before recording the external id
        job = store.begin_score_job("local", 1, model.version_id, 6, str(score_run_root(config)))
        run_dir = Path(job.run_dir)
        runner = make_score_runner(config)
        stage_score_run(run_dir, [store.hop_rows_as_stored([r.hop_id for r in candidates_to_score(store, model)[0]])], [],
                        {"job_key": job.job_key, "model_version_id": 1, "model": str(model.path),
                         "feature_cache": str(tmp_path / "cache.sqlite")})
        runner.submit(run_dir, job.job_key)
        pid = json.loads((run_dir / "job.json").read_text())["pid"]
        step = advance_scoring(store, config, model, runner)
        assert step.messages == ["scoring job 1: found after a restart, submitted as alem-score-1-a1"]
        assert store.score_job(1).state in ("submitted", "running")
        # the same process, found by its key: not submitted twice
        assert json.loads((run_dir / "job.json").read_text())["pid"] == pid
        # the job is killed (a node crash): lost, reported, retried once
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
        step = advance_scoring(store, config, model, runner)
        assert store.score_job(1).state == "lost" and "retrying once" in step.messages[0]
        retry = store.live_score_job()
        assert retry.id == 2 and retry.attempt == 2 and retry.n_hops == 6
        assert store.predictions(1) == {}
    assert _wait_for_exit_marker(Path(retry.run_dir))["state"] == "completed"
    with Store.open(config.store_path) as store:
        step = advance_scoring(store, config, model, runner)
        assert step.scored == 6 and store.score_job(2).state == "completed"
    _assert_same(_recorded(config), _in_process_predictions(config))


def test_a_loop_killed_before_staging_stages_and_submits_its_job(tmp_path, replay_ensemble_dir):
    waits = tmp_path / "waits.sh"  # a job that only waits: what is staged and submitted is the point here
    waits.write_text("#!/bin/sh\nsleep 60\n")
    waits.chmod(0o755)
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **CAMPAIGN, model__score_job__python=str(waits))
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        store.begin_score_job("local", 1, model.version_id, 6, str(score_run_root(config)))  # row committed, nothing else
        step = advance_scoring(store, config, model, make_score_runner(config))
        assert step.messages == ["scoring job 1: found after a restart, submitted as alem-score-1-a1"]
        run_dir = Path(store.score_job(1).run_dir)
        assert store.score_job(1).state == "running"
        spec = json.loads((run_dir / SPEC).read_text())
        assert sorted(h for chunk in spec["chunks"] for h in chunk) == sorted(r.hop_id for r in store.hops(state=HopState.CANDIDATE))
    os.killpg(json.loads((run_dir / "job.json").read_text())["pid"], signal.SIGKILL)


def test_a_failed_job_is_recorded_with_its_reason_and_two_failures_make_the_loop_score_itself(tmp_path, replay_ensemble_dir):
    # A Python that exits at once: the job never runs; the job body is then run here on a run
    # directory whose model is gone, so it fails and says why in its exit marker.
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, **CAMPAIGN, model__score_job__python="/bin/true")
    with Store.open(config.store_path) as store:
        model = load_current_model(store, config)
        runner = make_score_runner(config)
        advance_scoring(store, config, model, runner)
        run_dir = Path(store.score_job(1).run_dir)
        spec = json.loads((run_dir / SPEC).read_text())
        (run_dir / SPEC).write_text(json.dumps({**spec, "model": str(tmp_path / "no-such-model")}))
        with pytest.raises(Exception, match="no-such-model"):
            run_score_job(run_dir)
        step = advance_scoring(store, config, model, runner)
        failed = store.score_job(1)
        assert failed.state == "failed" and "no-such-model" in failed.error and f"log: {run_dir / 'score.log'}" in failed.error
        assert "scoring job 1 failed:" in step.messages[0] and "retrying once" in step.messages[0]
        assert store.predictions(1) == {}
        time.sleep(0.5)  # the retry's /bin/true exits: no exit marker, no process: lost
        step = advance_scoring(store, config, model, runner)
        assert store.score_job(2).state == "lost" and "scoring job 2 lost" in step.messages[0]
        assert store.live_score_job() is None
        step = advance_scoring(store, config, model, runner)  # gave up on jobs: scored here
        assert step.messages == ["scoring job 2 and its retry failed: scoring 6 candidates with model version 1 in the loop"]
        assert step.scored == 6 and len(store.score_jobs()) == 2  # no third job
    _assert_same(_recorded(config), _in_process_predictions(config))


def test_scoring_as_a_slurm_job_found_again_by_a_restarted_loop(slurm_cluster, tmp_path, replay_ensemble_dir):
    shared = tmp_path / "shared" / "score"
    config, _ = make_replay_campaign(
        tmp_path, replay_ensemble_dir, **CAMPAIGN, model__score_job__scheduler="slurm", model__score_job__run_dir=str(shared),
        model__score_job__walltime_minutes=10,
    )
    said = _loop(config, "--max-ticks", "1")  # the loop process ends here, as if killed: the job runs on
    assert "scoring job 1 submitted to slurm as" in said
    with Store.open(config.store_path) as store:
        (job,) = store.score_jobs()
    assert slurm_cluster.job_names()[job.external_id] == "alem-score-1-a1"
    spec = json.loads((Path(job.run_dir) / SPEC).read_text())
    assert spec["feature_cache"] == str(shared / "feature_cache.sqlite")  # the job's own cache on the shared filesystem
    assert _wait_for_exit_marker(Path(job.run_dir))["state"] == "completed"
    said = _loop(config, "--once")  # a new loop process finds the job by its row and records it
    assert "scoring job 1 finished: 6 predictions of model version 1 recorded" in said
    _assert_same(_recorded(config), _in_process_predictions(config))


def test_scoring_as_a_pbs_job_through_qtoolkit_found_again_by_a_restarted_loop(pbs_queue, tmp_path, replay_ensemble_dir):
    shared = tmp_path / "shared" / "score"
    config, _ = make_replay_campaign(
        tmp_path, replay_ensemble_dir, **CAMPAIGN, model__score_job__scheduler="pbs", model__score_job__run_dir=str(shared),
        model__score_job__walltime_minutes=10,
    )
    said = _loop(config, "--max-ticks", "1")
    assert "scoring job 1 submitted to pbs as 1.pbs-test" in said
    with Store.open(config.store_path) as store:
        (job,) = store.score_jobs()
    assert pbs_queue.job_names() == {"1.pbs-test": "alem-score-1-a1"}
    script = (Path(job.run_dir) / "job.sh").read_text()
    assert "#PBS -N alem-score-1-a1" in script and "#PBS -l walltime=0:10:0" in script  # qtoolkit's PBS directives
    assert _wait_for_exit_marker(Path(job.run_dir))["state"] == "completed"
    said = _loop(config, "--once")
    assert "scoring job 1 finished: 6 predictions of model version 1 recorded" in said
    assert len(pbs_queue.job_names()) == 1  # found by its row, never submitted again
    _assert_same(_recorded(config), _in_process_predictions(config))


def test_a_version_7_store_migrates_with_its_scoring_jobs_table(tmp_path):
    from alem.store.schema import SCHEMA_VERSION, migrate

    path = tmp_path / "v7.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, target=7)
        conn.execute("INSERT INTO model_versions (path, card_json, created_at, is_current) VALUES ('m', '{}', 1.0, 1)")
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'score_jobs'").fetchone()[0] == 0
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 9
        plan = store._conn.execute(f"EXPLAIN QUERY PLAN SELECT {HopRecord.columns()} FROM hops WHERE state = 'candidate'").fetchall()
        assert "COVERING INDEX hops_records" in plan[0][3]  # hop records never read the rows' structures
        assert [m.path for m in store.model_versions()] == ["m"] and store.score_jobs() == []
        job = store.begin_score_job("slurm", 1, 1, 100, str(tmp_path / "runs"))
        assert job.job_key == "alem-score-1-a1" and job.run_dir == f"{tmp_path / 'runs'}/alem-score-1-a1"
        assert store.mark_score_submitted(job.id, "4242").state == "submitted"
        assert store.update_score_state(job.id, "running").state == "running"
        with pytest.raises(IllegalTransition):  # never two live scoring jobs
            store.begin_score_job("slurm", 1, 1, 100, str(tmp_path / "runs"))
        store.finish_score_job(job.id, "lost", "gone")
        assert store.live_score_job() is None and store.score_jobs(live=False)[0].error == "gone"
        assert store.integrity_check() == []


def test_a_backend_without_a_batch_scheduler_must_name_where_scoring_runs(tmp_path):
    from alem.config import ConfigError

    with pytest.raises(ConfigError, match=r'\[model\] score_on = "backend" with \[backend\] kind = .fireworks.: set '
                                          r'\[model.score_job\] scheduler'):
        CampaignConfig.from_dict({"model": {"score_on": "backend"}, "backend": {"kind": "fireworks"}}, tmp_path / "alem.toml")
    named = CampaignConfig.from_dict({"model": {"score_on": "backend", "score_job": {"scheduler": "slurm"}},
                                      "backend": {"kind": "fireworks", "slurm": {"run_dir": "/shared/runs"}}})
    assert score_run_root(named) == Path("/shared/runs/score")
