"""``alem doctor``: is this campaign's NEB backend ready to run?"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from alem.cli.app import app, console, err_console


@app.command()
def doctor(
    campaign: Path = typer.Option(None, "--campaign", "-c", help="campaign directory (default: nearest alem.toml)"),
    skip_potentials: bool = typer.Option(False, "--skip-potentials", help="do not load the machine-learned potential"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Check the campaign's backend: preset, potential or VASP setup, database, queue commands."""
    from rich.table import Table

    from alem.config import CampaignConfig, ConfigError, find_campaign_dir
    from alem.doctor import run_checks

    try:
        campaign_dir = campaign or find_campaign_dir()
        config = CampaignConfig.load(campaign_dir)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    with console.status("checking the backend ..."):
        checks = run_checks(config, check_potentials=not skip_potentials)
    problems = [check for check in checks if not check.ok]
    if as_json:
        console.print_json(json.dumps([check.__dict__ for check in checks]))
    else:
        table = Table(title=f"alem doctor: {config.campaign_dir}")
        table.add_column("check")
        table.add_column("status")
        table.add_column("details", overflow="fold")
        colours = {"ok": "green", "warning": "yellow", "problem": "red"}
        for check in checks:
            table.add_row(check.name, f"[{colours[check.status]}]{check.status}[/]", check.message)
        console.print(table)
        if problems:
            err_console.print(f"[red]{len(problems)} problem(s)[/red]: the backend cannot run NEBs until they are fixed.")
        else:
            console.print("[green]ready[/green]")
    if problems:
        raise typer.Exit(1)
