"""What `alem status` concludes: whether the loop is alive (heartbeat age, and on this host
whether its process exists), and a card's cross-validated MAE whatever shape the card has."""

from __future__ import annotations

import os
import socket
import subprocess

from alem.campaign.model_versions import cv_mae_ev
from alem.campaign.status import MISSED_TICKS, loop_alive
from alem.store import LoopStatus, Store


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_loop_is_alive_while_its_heartbeat_is_fresh_and_its_process_exists(tmp_path):
    now = [1_000_000.0]
    with Store.open(tmp_path / "s.sqlite", clock=lambda: now[0]) as store:
        assert not loop_alive(store.loop_status(), tick_seconds=60, now=now[0])  # never started
        store.set_loop_status("sleeping", pid=os.getpid())
        status = store.loop_status()
    limit_s = MISSED_TICKS * 60 + 60
    assert loop_alive(status, tick_seconds=60, now=now[0] + limit_s)
    assert not loop_alive(status, tick_seconds=60, now=now[0] + limit_s + 1)
    assert loop_alive(status, tick_seconds=600, now=now[0] + limit_s + 1)  # slow ticks beat less often
    gone = LoopStatus(**{**status.as_dict(), "pid": _dead_pid()})
    assert not loop_alive(gone, tick_seconds=60, now=now[0])  # fresh heartbeat, but no process here
    elsewhere = LoopStatus(**{**gone.as_dict(), "hostname": socket.gethostname() + "-login2"})
    assert loop_alive(elsewhere, tick_seconds=60, now=now[0])  # another host's pid cannot be checked


def test_cv_mae_is_found_in_every_card_layout():
    assert cv_mae_ev({"cv": {"mae_ev": 0.5}, "cv_metrics": {"mae_ev": 0.266}}) == 0.266  # the shipped combination first
    assert cv_mae_ev({"cv": {"mae_ev": 0.2}}) == 0.2
    assert cv_mae_ev({"metrics": {"cross_validation": {"r2": 0.6, "mae": 0.31}}}) == 0.31
    assert cv_mae_ev({"cv_mae_ev": 0.28, "train_mae_ev": 0.1}) == 0.28
    assert cv_mae_ev({"metrics": {"mae_ev": 0.1}}) is None  # a training MAE is not a CV MAE
    assert cv_mae_ev({}) is None
