"""Refusals a person meets early: a second ``alem loop`` is refused at once, and an option that
existing state cannot honour is refused with a way out, never silently ignored."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from typer.testing import CliRunner

from alem.cli import app
from alem.cli.common import ExitCode

runner = CliRunner()

#: What `alem loop` needs only once it runs: a refusal must not wait for these to import.
HEAVY_MODULES = ("torch", "pymatgen.analysis.diffusion", "atomate2", "jobflow", "alem.loop.runner", "alem.backends")


def test_a_second_loop_is_refused_before_the_heavy_imports(tmp_path):
    from alem.campaign import init_campaign
    from alem.loop.lock import CampaignLock

    config = init_campaign(tmp_path / "c")
    script = (
        "import sys\nfrom alem.cli import app\n"
        f"try:\n    app(['loop', '--once', '--campaign', {str(config.campaign_dir)!r}])\n"
        "except SystemExit as exc:\n"
        f"    print('exit', exc.code, [m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    )
    with CampaignLock(config.state_dir):
        second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert second.stdout.strip().splitlines()[-1] == "exit 3 []", second.stdout + second.stderr
    assert second.stderr.count("error:") == 1 and "another alem loop is already running" in second.stderr


def _store_dump(config) -> list[str]:
    with sqlite3.connect(config.store_path) as conn:
        return list(conn.iterdump())


def test_the_demo_refuses_options_the_demo_in_the_directory_cannot_honour(tmp_path, scratch_ensemble):
    """The issue's case: `alem demo DIR --backend slurm` on a local demo went on with local and said
    nothing. Now it is refused with how to get what was asked (--fresh, or another directory)."""
    from alem.demo import create_demo_campaign

    config = create_demo_campaign(tmp_path / "demo")  # local backend, shipped model
    before = _store_dump(config)
    for option, said in ((["--backend", "slurm"], "--backend slurm (it runs on local)"),
                         (["--model", str(scratch_ensemble)], f"--model {scratch_ensemble} (it uses the shipped model)")):
        result = runner.invoke(app, ["demo", str(tmp_path / "demo"), *option])
        text = " ".join(result.output.split())
        assert result.exit_code == ExitCode.USAGE, result.output
        assert [line for line in result.output.splitlines() if line.startswith("error:")], result.output
        assert said in text and "--fresh" in text and "another directory" in text, text
    assert _store_dump(config) == before


class _Heard(Exception):
    """Stops the demo once it has said what a continued run keeps (before any NEB starts)."""


def test_a_continued_demo_says_that_hosts_of_earlier_runs_stay(tmp_path):
    from alem.candidates.pool import add_candidates
    from alem.demo import DEMO_ENUMERATION, create_demo_campaign, demo_host_files, run_demo
    from alem.store import Store

    config = create_demo_campaign(tmp_path / "demo")
    with Store.open(config.store_path) as store:
        add_candidates(store, demo_host_files(("LiF_rocksalt",)), "Li", DEMO_ENUMERATION)
    heard = []

    def say(line: str) -> None:
        heard.append(line)
        if line.startswith("the hops of"):
            raise _Heard

    try:
        run_demo(tmp_path / "demo", hosts=("Li2O_antifluorite",), say=say)
    except _Heard:
        pass
    assert heard[-1] == ("the hops of LiF_rocksalt (added by an earlier run) stay in the campaign; "
                         "`alem demo --fresh --host ...` starts over with only the hosts named")
