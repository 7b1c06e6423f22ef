"""The approval state machine through the CLI, the loop end to end on the replay backend, the
campaign lock, graceful stop, and a reliability test that SIGKILLs a real `alem loop` process."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from alem.store import HopState, Store
from tests._replay_campaign import invoke, make_replay_campaign, replay_submissions


def replay_job_keys(config) -> set[str]:
    with sqlite3.connect(config.state_dir / "replay_backend.sqlite") as conn:
        return {row[0] for row in conn.execute("SELECT job_key FROM submissions")}


# ------------------------------------------------------------------- approval via the CLI
def test_propose_approve_reject_through_the_cli(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=8)

    result = invoke(config, "propose", "--strategy", "explore", "--batch", "3")
    assert result.exit_code == 0, result.output
    assert "approve with" in result.output
    with Store.open(config.store_path) as store:
        proposed = [r.hop_id for r in store.hops(state=HopState.PROPOSED)]
        proposals = store.proposals()
        assert len(proposed) == 3
        assert {p.strategy for p in proposals} == {"explore"}
        assert all(p.std_ev is not None and p.mean_ev is not None for p in proposals)
        # predictions of the whole pool are recorded for the model version
        assert len(store.predictions()) == 8

    listing = invoke(config, "proposals", "--json")
    assert listing.exit_code == 0
    assert sorted(p["hop_id"] for p in json.loads(listing.output)) == sorted(proposed)

    # a second batch never repeats a proposed hop
    again = invoke(config, "propose", "--strategy", "discover", "--batch", "3")
    assert again.exit_code == 0, again.output
    with Store.open(config.store_path) as store:
        all_proposed = [p.hop_id for p in store.proposals()]
    assert len(all_proposed) == len(set(all_proposed)) == 6

    assert invoke(config, "approve", proposed[0], "--who", "alice").exit_code == 0
    rejected = invoke(config, "reject", proposed[1], "--reason", "hop crosses a disordered layer")
    assert rejected.exit_code == 0, rejected.output

    # illegal transitions are refused with one clear message and change nothing
    refused = invoke(config, "approve", proposed[1])
    assert refused.exit_code == 1
    assert "cannot approve hop" in refused.output and "rejected" in refused.output
    assert invoke(config, "reject", proposed[0]).exit_code == 2  # --reason is required
    mixed = invoke(config, "approve", proposed[2], "no-such-hop")
    assert mixed.exit_code == 1 and "no-such-hop" in mixed.output
    with Store.open(config.store_path) as store:
        assert store.hop(proposed[2]).state is HopState.PROPOSED  # all or nothing

    assert invoke(config, "approve", "--all").exit_code == 0
    with Store.open(config.store_path) as store:
        counts = store.hop_counts()
        decisions = store.decisions()
    assert counts["approved"] == 5 and counts["rejected"] == 1 and counts["proposed"] == 0
    reject_decision = next(d for d in decisions if d.decision == "reject")
    assert reject_decision.reason == "hop crosses a disordered layer"
    assert any(d.who == "alice" for d in decisions)


def test_propose_refuses_unknown_strategy(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=2)
    result = invoke(config, "propose", "--strategy", "greedy")
    assert result.exit_code == 2 and "unknown strategy 'greedy'" in result.output


# ------------------------------------------------------------------ the loop, end to end
def test_loop_runs_a_campaign_to_the_end_on_the_replay_backend(tmp_path, replay_ensemble_dir):
    config, barriers = make_replay_campaign(
        tmp_path,
        replay_ensemble_dir,
        n_hops=10,
        approval__auto_approve=True,
        approval__max_running_jobs=3,
        acquisition__batch_size=3,
        acquisition__strategy="discover",
        model__retrain_after_results=4,
        model__n_members=2,
    )
    result = invoke(config, "loop", "--max-ticks", "20", "--tick-seconds", "0", "--until-idle")
    assert result.exit_code == 0, result.output
    assert "nothing left to do" in result.output

    with Store.open(config.store_path) as store:
        assert store.hop_counts()["done"] == 10
        results = {r.hop_id: r.barrier_ev for r in store.results(usable=True)}
        assert results == pytest.approx(barriers)  # every barrier arrived, from the right hop
        versions = store.model_versions()
        assert len(versions) >= 2  # retrained at least once
        assert all(Path(v.path).is_dir() for v in versions)  # old versions kept on disk
        assert versions[-1].is_current and versions[-1].n_training_hops > 24
        assert [e.kind for e in store.events(kind="retrained")]
        assert store.loop_status().phase == "stopped"
        assert store.integrity_check() == []
        # never more jobs in flight than approval.max_running_jobs
        finished = {r.job_id: r.created_at for r in store.results()}
        spans = [(j.created_at, finished[j.id]) for j in store.jobs()]
        assert max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans) <= 3
    assert set(replay_submissions(config).values()) == {1}
    log = config.resolve(config.campaign.log_file).read_text()
    assert "re-fine-tuning the ensemble" in log and "auto-approved" in log


def test_manual_campaign_waits_for_approval(tmp_path, replay_ensemble_dir):
    from alem.review.picture import PICTURES_DIRNAME

    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=5, acquisition__batch_size=2)
    assert invoke(config, "loop", "--once").exit_code == 0
    with Store.open(config.store_path) as store:
        assert store.hop_counts()["proposed"] == 2 and store.hop_counts()["submitted"] == 0
        assert store.loop_status().phase == "stopped"
    # the batch waits for a person: its review pictures are drawn already (the first page is fast)
    assert len(list((config.state_dir / PICTURES_DIRNAME).glob("*.png"))) == 2
    # a second tick proposes nothing new while the batch waits for a person
    assert invoke(config, "loop", "--once").exit_code == 0
    with Store.open(config.store_path) as store:
        assert store.hop_counts()["proposed"] == 2
    assert invoke(config, "approve", "--all").exit_code == 0
    assert invoke(config, "loop", "--once").exit_code == 0
    with Store.open(config.store_path) as store:
        assert store.hop_counts()["submitted"] == 2


def test_auto_approval_stays_within_the_daily_budget(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(
        tmp_path, replay_ensemble_dir, n_hops=8, approval__auto_approve=True, approval__max_jobs_per_day=3,
        acquisition__batch_size=2,
    )
    result = invoke(config, "loop", "--max-ticks", "6", "--tick-seconds", "0", "--no-retrain")
    assert result.exit_code == 0, result.output
    with Store.open(config.store_path) as store:
        assert len(store.jobs()) == 3
        assert store.hop_counts()["done"] == 3
        assert store.hop_counts()["approved"] == 0  # nothing approved beyond the budget


# ------------------------------------------------------------------------ lock and signals
def _alem_loop(config, *args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", "from alem.cli import app; app()", "loop", "--campaign", str(config.campaign_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _wait_for_heartbeat(config, pid: int, timeout_s: float = 240.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with Store.open(config.store_path) as store:
            status = store.loop_status()
        if status is not None and status.pid == pid:
            return
        time.sleep(0.1)
    raise AssertionError("the loop never wrote its status")


def test_second_loop_is_refused_and_sigterm_stops_cleanly(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=3)
    first = _alem_loop(config, "--tick-seconds", "30")
    try:
        _wait_for_heartbeat(config, first.pid)
        second = invoke(config, "loop", "--once")
        assert second.exit_code == 3
        assert f"pid {first.pid}" in second.output and "already running" in second.output
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output
    assert "SIGTERM received" in output and "stopped by SIGTERM" in output
    with Store.open(config.store_path) as store:
        assert store.loop_status().phase == "stopped"
        assert store.events(kind="loop_stopped")


# ------------------------------------------------------------------------ reliability
REPO_ROOT = Path(__file__).resolve().parent.parent


def _alem_loop_paused_at(config, window: str | None, marker: Path, *args) -> subprocess.Popen:
    """`alem loop` whose replay backend stops forever in ``window`` (tests/_pause_points.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ALEM_TEST_PAUSE_AT": window or "", "ALEM_TEST_PAUSE_MARKER": str(marker)}
    code = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); import tests._pause_points as p; p.main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "loop", "--campaign", str(config.campaign_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _wait_for_marker(marker: Path, process: subprocess.Popen, timeout_s: float = 240.0) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline and process.poll() is None:
        if marker.is_file():
            return json.loads(marker.read_text())
        time.sleep(0.05)
    raise AssertionError(f"the loop never reached its pause point (exit code {process.poll()})")


def _where_the_kill_landed(config, window: str, facts: dict) -> None:
    """Check, from the store and the backend, that the loop died inside ``window``."""
    from alem.backends.replay import ReplayBackend

    backend = ReplayBackend.from_config(config)
    with Store.open(config.store_path) as store:
        if window == "in_outcome":
            (job,) = [j for j in store.jobs() if j.external_id == facts["external_id"]]
            assert job.state.value in ("submitted", "queued", "running")
            assert not [r for r in store.results() if r.job_id == job.id]
            assert backend.poll([job.external_id])[job.external_id].value == "completed"
            return
        (job,) = [j for j in store.jobs() if j.job_key == facts["job_key"]]
        assert job.state.value == "created" and job.external_id is None
    known = backend.find_by_key(facts["job_key"])
    assert known == (facts["external_id"] if window == "after_submit" else None)


def test_loop_survives_sigkill_in_every_window_of_the_protocol(tmp_path, replay_ensemble_dir):
    """SIGKILL a real `alem loop` 12 times: 9 kills land, by construction, in the three windows
    where a crash can lose or duplicate work (job row committed but not submitted; submitted but
    external id not recorded; outcome fetched but result not recorded), 3 at random moments. After
    each restart nothing is lost, nothing submitted twice, the store is consistent; finally every
    hop is done exactly once, and each half-done submission was settled the right way."""
    from alem.loop.runner import STARTUP_STALE_AFTER_S

    config, barriers = make_replay_campaign(
        tmp_path, replay_ensemble_dir, n_hops=24,
        approval__auto_approve=True, approval__max_running_jobs=3, approval__max_jobs_per_day=1000,
        acquisition__batch_size=3, backend__replay__delay_s=1.5,
    )
    rng = random.Random(4)
    schedule = ["before_submit", "after_submit", None, "in_outcome"] * 3  # None: a random moment
    landed: Counter = Counter()
    half_done: dict[str, list[dict]] = {"before_submit": [], "after_submit": []}  # the markers' facts
    seen_results: dict[int, float] = {}
    for round_number, window in enumerate(schedule):
        marker = tmp_path / f"pause-{round_number}.json"
        process = _alem_loop_paused_at(config, window, marker, "--tick-seconds", "0.1", "--no-retrain")
        try:
            if window is None:
                if round_number == 6:
                    time.sleep(rng.uniform(0.2, 3.0))  # now and then during start-up
                else:
                    _wait_for_heartbeat(config, process.pid)
                    time.sleep(rng.uniform(0.0, 2.0))
            else:
                facts = _wait_for_marker(marker, process)
        finally:
            process.kill()
            output, _ = process.communicate(timeout=120)
        assert process.returncode == -signal.SIGKILL, output
        if window is not None:
            _where_the_kill_landed(config, window, facts)
            landed[window] += 1
            if window in half_done:
                half_done[window].append(facts)
                # the next start settles "created" rows older than this: make it this one's turn
                time.sleep(STARTUP_STALE_AFTER_S + 0.5)

        with Store.open(config.store_path) as store:
            assert store.integrity_check() == []
            results = {r.id: r.barrier_ev for r in store.results()}
            # no result lost: everything seen before is still there, unchanged
            assert {k: results[k] for k in seen_results} == seen_results
            seen_results = results
            store_keys = {j.job_key for j in store.jobs()}
        submissions = replay_submissions(config)
        assert max(submissions.values(), default=1) == 1  # the backend never saw a hop twice
        # every submission the backend holds is known to the store (possibly as a job the killed
        # loop created but had not yet marked submitted: the next start settles it by its key)
        assert replay_job_keys(config) <= store_keys
    assert landed == {"before_submit": 3, "after_submit": 3, "in_outcome": 3}

    final = _alem_loop(config, "--tick-seconds", "0.1", "--no-retrain", "--until-idle", "--max-ticks", "400")
    output, _ = final.communicate(timeout=480)
    assert final.returncode == 0, output
    with Store.open(config.store_path) as store:
        assert store.integrity_check() == []
        assert store.hop_counts()["done"] == len(barriers)
        results = {r.hop_id: r.barrier_ev for r in store.results(usable=True)}
        assert len(store.results()) == len(barriers)
        jobs = {j.job_key: j for j in store.jobs()}
    assert results == pytest.approx(barriers)
    assert set(replay_submissions(config).values()) == {1}
    # a job the backend never saw was abandoned (its hop submitted afresh under a new key); one
    # it had seen was recorded under the backend's id instead of being submitted again
    assert all(jobs[f["job_key"]].state.value == "abandoned" for f in half_done["before_submit"])
    assert all(jobs[f["job_key"]].state.value == "completed" and jobs[f["job_key"]].external_id == f["external_id"]
               for f in half_done["after_submit"])


def test_loop_stops_after_five_failed_ticks_in_a_row(tmp_path, replay_ensemble_dir):
    """The backend breaks for good (its dataset file was damaged while a job ran): every tick
    fails while reconciling; the loop logs each, carries on, and stops after the fifth."""
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=3, acquisition__batch_size=1)
    assert invoke(config, "propose").exit_code == 0
    assert invoke(config, "approve", "--all").exit_code == 0
    assert invoke(config, "loop", "--once", "--no-retrain").exit_code == 0  # submitted; done at once (delay 0)
    config.resolve(config.backend.replay.dataset).write_text("{damaged")

    result = invoke(config, "loop", "--max-ticks", "20", "--tick-seconds", "0", "--no-retrain")
    said = " ".join(result.output.split())
    assert result.exit_code != 0
    failed_ticks = re.findall(r"tick (\d+) failed: ReplayError", said)
    assert failed_ticks == ["1", "2", "3", "4", "5"]
    # the loop ends with one error line saying why (no traceback) and exit code 1
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: 5 ticks in a row failed; last: replay dataset unusable")
    log = config.resolve(config.campaign.log_file).read_text()
    assert log.count("Traceback") >= 5  # each failure logged with its traceback
    with Store.open(config.store_path) as store:
        status = store.loop_status()
        assert status.phase == "stopped" and "5 ticks in a row failed" in status.message
        assert store.hop_counts()["submitted"] == 1 and store.integrity_check() == []  # the job is still there


def test_a_second_signal_stops_at_once(tmp_path, replay_ensemble_dir):
    """First SIGTERM: the loop finishes its step, so a step that never ends keeps it alive; the
    second SIGTERM ends it at once. Nothing is lost: the next start settles the half-done job."""
    config, barriers = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=2, approval__auto_approve=True,
                                            acquisition__batch_size=2)
    marker = tmp_path / "pause.json"
    process = _alem_loop_paused_at(config, "before_submit", marker, "--tick-seconds", "0", "--no-retrain")
    try:
        facts = _wait_for_marker(marker, process)  # stuck inside submit, forever
        process.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=3)  # the first signal waits for the step
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGTERM, output
    assert "SIGTERM received: finishing the current step" in output
    with Store.open(config.store_path) as store:
        (job,) = [j for j in store.jobs() if j.job_key == facts["job_key"]]
        assert job.state.value == "created"
    from alem.loop.runner import STARTUP_STALE_AFTER_S

    time.sleep(STARTUP_STALE_AFTER_S + 0.5)
    final = invoke(config, "loop", "--until-idle", "--max-ticks", "50", "--tick-seconds", "0", "--no-retrain")
    assert final.exit_code == 0, final.output
    with Store.open(config.store_path) as store:
        assert {r.hop_id: r.barrier_ev for r in store.results(usable=True)} == pytest.approx(barriers)
        assert store.integrity_check() == []


def test_heartbeat_thread_keeps_a_long_step_alive(tmp_path, replay_ensemble_dir):
    from alem.loop.heartbeat import Heartbeat

    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=1)
    beat = Heartbeat(config.store_path, interval_s=0.05).start()
    try:
        beat.set("retraining", "fine-tuning on 7 new results")
        time.sleep(1.5)
        with Store.open(config.store_path) as store:
            status = store.loop_status()
    finally:
        beat.stop()
    assert status.phase == "retraining" and status.message == "fine-tuning on 7 new results"
    assert status.pid == os.getpid() and time.time() - status.heartbeat < 1.0  # beats kept coming after the first
