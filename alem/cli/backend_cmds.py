"""``alem doctor``: is this campaign's NEB backend ready to run?"""

from __future__ import annotations

import typer

from alem.cli.app import app
from alem.cli.common import CampaignOption, ExitCode, JsonOption, OldCampaignOption, console, err_console, load_config, print_json


@app.command()
def doctor(
    campaign: CampaignOption = None,
    skip_potentials: bool = typer.Option(False, "--skip-potentials", help="do not load the machine-learned potential"),
    as_json: JsonOption = False,
    old_campaign: OldCampaignOption = None,
) -> None:
    """Check the campaign's backend: preset, potential or VASP setup, database, queue commands."""
    from rich.table import Table

    from alem.doctor import run_checks

    config = load_config(campaign if campaign is not None else old_campaign)
    with console.status("checking the backend ..."):
        checks = run_checks(config, check_potentials=not skip_potentials)
    problems = [check for check in checks if not check.ok]
    if as_json:
        print_json([check.__dict__ for check in checks])
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
        raise typer.Exit(ExitCode.FAILED)
