"""Every command against a broken backend: one ``error:`` line, the documented exit code, and a
store left exactly as it was (never a traceback).

Three ways a backend breaks, as a new user meets them: the scheduler does not answer (Slurm
installed, its configuration unusable: ``squeue`` fails at once), a run directory that cannot be
made, and a preset that does not exist. The campaign holds a candidate, an approved hop and one
hop whose NEB job is in flight (submitted as job 4242), so the commands that talk to the backend
have something to ask it about.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from typer.testing import CliRunner

from alem.cli import app
from alem.cli.common import ExitCode
from alem.store import Store

runner = CliRunner()

pytestmark = pytest.mark.skipif(shutil.which("squeue") is None, reason="Slurm's commands are not installed here")


def _store_dump(config) -> list[str]:
    with sqlite3.connect(config.store_path) as conn:
        return list(conn.iterdump())


def _campaign(tmp_path, tiny_hop, monkeypatch, breakage: str):
    from alem.campaign import init_campaign

    config = init_campaign(tmp_path / "campaign", backend="slurm")
    config.backend.slurm.preset = "mlip_chgnet"
    config.backend.slurm.run_dir = str(tmp_path / "runs")
    empty_conf = tmp_path / "slurm.conf"
    empty_conf.write_text("")
    if breakage == "scheduler down":
        monkeypatch.setenv("SLURM_CONF", str(empty_conf))  # squeue/sbatch: "Unable to process configuration file"
    elif breakage == "run directory":
        (tmp_path / "a-file").write_text("not a directory")
        config.backend.slurm.run_dir = str(tmp_path / "a-file" / "runs")
    elif breakage == "missing preset":
        config.backend.kind = "local"
        config.backend.local.preset = "no_such_preset"
    config.save()
    with Store.open(config.store_path) as store:
        store.add_hops([tiny_hop(f"h{i}", 0.30 + 0.05 * i) for i in range(3)])
        store.approve(["h1", "h2"], who="alice")
        job = store.begin_submission("h2", config.backend.kind, "mlip:CHGNet")
        store.mark_submitted(job.id, "4242")
    return config


BACKEND_COMMANDS = {
    "loop": ["loop", "--once", "--no-retrain"],
    "reconcile": ["reconcile"],
    "cancel": ["cancel", "h2", "--reason", "wrong cell"],
}
#: What each breakage makes of the commands that need the backend (alem --help, Exit codes).
EXPECTED = {
    "scheduler down": ("slurm", ExitCode.USAGE),
    "run directory": ("a-file is a file", ExitCode.USAGE),
    "missing preset": ("no_such_preset", ExitCode.USAGE),
}


@pytest.mark.parametrize("breakage", list(EXPECTED))
@pytest.mark.parametrize("command", list(BACKEND_COMMANDS))
def test_a_command_that_needs_the_backend_says_one_error_line_and_changes_nothing(
    tmp_path, tiny_hop, monkeypatch, breakage, command
):
    config = _campaign(tmp_path, tiny_hop, monkeypatch, breakage)
    before = _store_dump(config)
    result = runner.invoke(app, [*BACKEND_COMMANDS[command], "--campaign", str(config.campaign_dir)])
    said, code = EXPECTED[breakage]
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert len(errors) == 1, result.output
    assert said in " ".join(result.output.split()), result.output
    assert result.exit_code == code, result.output
    assert _store_dump(config) == before


@pytest.mark.parametrize("breakage", list(EXPECTED))
def test_commands_that_only_read_the_store_still_work(tmp_path, tiny_hop, monkeypatch, breakage):
    """A broken backend must not take the campaign's own records with it; doctor names the problem."""
    config = _campaign(tmp_path, tiny_hop, monkeypatch, breakage)
    before = _store_dump(config)
    reading = (["status"], ["jobs", "--all"], ["history"], ["proposals"], ["show", "h2"], ["status", "--json"],
               ["export", str(tmp_path / "results.json")], ["report", "--out", str(tmp_path / "report.html")])
    for command in reading:
        result = runner.invoke(app, [*command, "--campaign", str(config.campaign_dir)])
        assert result.exit_code == 0, (command, result.output)
    doctor = runner.invoke(app, ["doctor", "--skip-potentials", "--campaign", str(config.campaign_dir)])
    assert doctor.exit_code == ExitCode.FAILED and "problem" in doctor.output and "Traceback" not in doctor.output
    assert EXPECTED[breakage][0] in " ".join(doctor.output.split())
    assert _store_dump(config) == before


def test_the_demo_on_a_scheduler_that_does_not_answer_stops_before_anything(tmp_path, monkeypatch):
    """The issue's case: Slurm installed, no usable configuration. Before: proposals, approvals,
    then 169 lines of two chained tracebacks. Now: the doctor's scheduler check fails first, one
    line, exit 2, and no campaign is left behind."""
    (tmp_path / "slurm.conf").write_text("")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--backend", "slurm", "--host", "Li2O_antifluorite"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.exit_code == ExitCode.USAGE, result.output
    said = " ".join(result.output.split())
    assert "backend slurm is not ready" in said and "squeue does not answer" in said and "Traceback" not in said
    assert "proposed" not in said
    assert not (tmp_path / "demo").exists()


def test_submission_that_fails_with_a_scheduler_that_does_not_answer_leaves_the_hop_approved(tmp_path, tiny_hop, monkeypatch):
    """The library path behind the traceback: ``submit`` fails, then asking the scheduler whether
    the job arrived fails too. The round stops with a sentence; the job row stays ``created`` for
    the next round to settle (whether it reached the scheduler is not known)."""
    from alem.backends import make_backend
    from alem.campaign import submit_approved
    from alem.store import HopState, JobStatus

    config = _campaign(tmp_path, tiny_hop, monkeypatch, "scheduler down")
    backend = make_backend(config)
    with Store.open(config.store_path) as store:
        report = submit_approved(store, backend, config)
        assert report.submitted == [] and len(report.errors) == 1
        said = report.errors[0]
        assert said.startswith("could not submit hop h1 to slurm: slurm refused") and "\n" not in said
        assert "asking whether it arrived failed too: slurm does not answer (command squeue failed" in said
        assert store.hop("h1").state is HopState.APPROVED
        assert [job.state for job in store.jobs(hop_id="h1")] == [JobStatus.CREATED]
