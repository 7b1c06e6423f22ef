"""Running the campaign: ``loop`` (the long-running process) and ``demo`` (a small real campaign).

Heavy libraries are imported inside the commands so ``alem --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from alem.cli.app import app
from alem.cli.common import CampaignOption, ExitCode, console, fail, load_config, open_backend
from alem.cli.live import JobsInFlight
from alem.cli.tables import Column, fmt_number, print_table


# -------------------------------------------------------------------------------- loop
@app.command()
def loop(
    once: Annotated[bool, typer.Option("--once", help="run one tick and exit")] = False,
    max_ticks: Annotated[int | None, typer.Option(help="stop after this many ticks")] = None,
    tick_seconds: Annotated[float | None, typer.Option(help="seconds between ticks (default: alem.toml)")] = None,
    retrain: Annotated[bool, typer.Option("--retrain/--no-retrain", help="re-fine-tune on new results")] = True,
    until_idle: Annotated[bool, typer.Option(help="stop when nothing is left to do")] = False,
    campaign: CampaignOption = None,
) -> None:
    """Run the campaign: reconcile, ingest, retrain, score, propose, (auto-)approve, submit, sleep.

    Takes the campaign's lock first (a second loop exits 3 at once), then runs the checks of
    ``alem doctor`` and stops with one error line if the backend cannot run NEBs."""
    from alem.loop.lock import CampaignLock

    config = load_config(campaign)
    with CampaignLock(config.state_dir) as lock:  # before the heavy imports: a second loop is refused at once
        from alem.campaign.model_versions import ModelLoadError
        from alem.doctor import require_backend_ready
        from alem.ensemble import ModelNotFoundError
        from alem.loop.runner import CampaignLoop, LoopOptions

        for check in require_backend_ready(config):
            console.print(f"[yellow]warning:[/] {check.name}: {escape(check.message)}", highlight=False)
        backend = open_backend(config)
        options = LoopOptions(
            max_ticks=1 if once else max_ticks, tick_seconds=tick_seconds, retrain=retrain, until_idle=until_idle, progress=False
        )
        runner = CampaignLoop(config, backend, options, say=lambda line: console.print(line, highlight=False, markup=False),
                              show_jobs=JobsInFlight(console))
        try:
            runner.run(lock=lock)
        except (ModelNotFoundError, ModelLoadError) as exc:
            fail(f"no model to score candidates with: {exc} (set [model] path in alem.toml)", ExitCode.USAGE)


# ---------------------------------------------------------------------------------- demo
@app.command()
def demo(
    directory: Annotated[
        Path, typer.Argument(help="demo campaign directory: created, or continued if it holds the demo already")
    ] = Path("alem-demo"),
    fresh: Annotated[bool, typer.Option("--fresh", help="delete an earlier demo campaign in DIRECTORY first")] = False,
    max_minutes: Annotated[float, typer.Option(help="stop the loop after this many minutes")] = 20.0,
    retrain: Annotated[
        bool, typer.Option("--retrain/--no-retrain", help="re-fine-tune the ensemble on the results (slow on a laptop)")
    ] = False,
    model: Annotated[str | None, typer.Option(help="ensemble directory (default: the shipped one)")] = None,
    host: Annotated[list[str] | None, typer.Option(help="shipped demo host(s) to use (default: all five)")] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="local (default for a new demo) | slurm: each NEB a batch job through this machine's Slurm"),
    ] = None,
) -> None:
    """The main job on a fresh clone: a small real campaign (shipped hosts, CHGNet NEBs, auto-approval)."""
    from alem.campaign.model_versions import ModelLoadError
    from alem.demo import DEMO_HOSTS, remove_demo_campaign, run_demo
    from alem.ensemble import ModelNotFoundError

    if backend not in (None, "local", "slurm"):
        fail(f"--backend {backend}: the demo runs on local or slurm", ExitCode.USAGE)
    try:
        if fresh:
            remove_demo_campaign(directory)
        result = run_demo(
            directory, model_path=model, max_minutes=max_minutes, retrain=retrain,
            hosts=tuple(host) if host else DEMO_HOSTS, say=lambda line: console.print(line, highlight=False, markup=False),
            backend=backend,  # type: ignore[arg-type]
            show_jobs=JobsInFlight(console),
        )
    except (ModelNotFoundError, ModelLoadError, ValueError) as exc:  # a bad directory, config, host or model
        fail(str(exc), ExitCode.USAGE)
    print_demo_summary(console, result.rows, f"demo campaign {result.campaign_dir}")
    for row in result.rows:
        if row["note"]:
            console.print(f"{row['hop_id']}: {row['note']}", highlight=False)
    console.print(f"report: {result.report_path}")
    console.print(f"carry on with: cd {result.campaign_dir} && alem status / alem loop / alem report")


def print_demo_summary(console: Console, rows: list[dict], title: str) -> None:
    """The demo's closing table: one row per hop, its prediction and its CHGNet NEB barrier."""
    columns = (
        Column("hop", whole=True), Column("atoms", keep=1, justify="right"), Column("Å", keep=2, justify="right"),
        # numbers never fold (one word each); their headers may wrap
        Column("predicted eV", justify="right"), Column("σ eV", justify="right"),
        Column("CHGNet NEB eV", justify="right"), Column("state", keep=3),
    )
    cells = [
        [row["hop_id"], str(row["atoms"]), f"{row['hop_length_a']:.2f}", fmt_number(row["predicted_ev"]),
         fmt_number(row["sigma_ev"]), fmt_number(row["neb_barrier_ev"]), row["state"]]
        for row in rows
    ]
    print_table(console, columns, cells, title)
