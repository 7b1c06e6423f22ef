"""While the loop waits on NEB jobs a person sees which run and for how long: a live line in a
terminal, a plain line a minute in a log file (``alem.cli.live``), fed by the loop before each sleep."""

from __future__ import annotations

import io

from rich.console import Console

from alem.cli.live import JobsInFlight, duration_text
from alem.store import JobRecord, JobStatus
from tests._replay_campaign import invoke, make_replay_campaign


def _job(hop_id: str, submitted_at: float, state: JobStatus = JobStatus.RUNNING, stage: str = "target") -> JobRecord:
    return JobRecord(id=1, job_key="k", hop_id=hop_id, backend="local", external_id="x", state=state, attempt=1,
                     created_at=submitted_at - 1, submitted_at=submitted_at, updated_at=submitted_at, error=None, stage=stage)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_durations_read_like_a_person_says_them():
    assert [duration_text(s) for s in (0, 42, 65, 3599, 7260)] == ["0 s", "42 s", "1 min 05 s", "59 min 59 s", "2 h 01 min"]


def test_without_a_terminal_one_plain_line_a_minute():
    out = io.StringIO()
    clock = Clock(1000.0)
    show = JobsInFlight(Console(file=out, force_terminal=False, width=120), clock=clock)
    jobs = [_job("LiF_rocksalt-p1", 935.0), _job("Li2O_antifluorite-p1", 990.0, JobStatus.SUBMITTED, stage="screening")]
    show(jobs)
    assert out.getvalue() == (
        "2 NEB job(s) in flight: LiF_rocksalt-p1 running 1 min 05 s, Li2O_antifluorite-p1 screening submitted 10 s\n"
    )
    clock.now += 30
    show(jobs)  # within the minute: nothing more
    clock.now += 30
    show(jobs[:1])
    assert out.getvalue().splitlines()[-1] == "1 NEB job(s) in flight: LiF_rocksalt-p1 running 2 min 05 s"
    show([])
    assert len(out.getvalue().splitlines()) == 2


def test_in_a_terminal_a_live_line_that_counts_up_and_goes_away():
    out = io.StringIO()
    clock = Clock(1000.0)
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    show = JobsInFlight(console, clock=clock)
    show([_job("LiF_rocksalt-p1", 940.0)])
    assert show._status is not None  # the spinner runs
    clock.now += 60
    console.print(show)  # what the spinner renders at its next refresh
    assert "LiF_rocksalt-p1 running 2 min 00 s" in out.getvalue()
    show([])
    assert show._status is None


def test_the_loop_shows_its_jobs_in_flight_while_it_waits(tmp_path, replay_ensemble_dir):
    """A real loop on a replay campaign whose jobs stay running: before it sleeps it says which."""
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=3, approval__auto_approve=True,
                                     acquisition__batch_size=2, backend__replay__delay_s=3600.0)
    result = invoke(config, "loop", "--max-ticks", "2", "--tick-seconds", "0", "--no-retrain")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if "in flight:" in line]  # one a minute, not one a tick
    assert line.startswith("2 NEB job(s) in flight: ") and line.count(" submitted ") + line.count(" running ") == 2
