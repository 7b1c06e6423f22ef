"""Pages to read in a browser: ``report`` (the campaign so far) and ``review`` (the waiting proposals).

Heavy libraries are imported inside the commands so ``alem --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alem.cli.app import app
from alem.cli.common import CampaignOption, console, load_config


# -------------------------------------------------------------------------------- report
@app.command()
def report(
    out: Annotated[Path | None, typer.Option(help="HTML file (default: <state>/report.html)")] = None,
    campaign: CampaignOption = None,
) -> None:
    """Write a self-contained HTML report: parity, learning curve, campaign history, results."""
    from alem.cli.host_cmds import say_refreshing
    from alem.report import write_report

    path = write_report(load_config(campaign), out, note=say_refreshing)
    console.print(f"report written to {path}")


# -------------------------------------------------------------------------------- review
@app.command()
def review(
    out: Annotated[Path | None, typer.Option(help="HTML file (default: <state>/review.html)")] = None,
    neighbours: Annotated[int, typer.Option(min=1, help="nearest literature hops shown per proposal")] = 5,
    campaign: CampaignOption = None,
) -> None:
    """Write one HTML page with a card per waiting proposal: picture, prediction, why, cost, neighbours."""
    from alem.review import write_review

    config = load_config(campaign)
    with console.status("drawing hops and finding their nearest literature hops"):
        path, n_cards = write_review(config, out, k_neighbours=neighbours)
    console.print(f"review of {n_cards} waiting proposal(s) written to {path}", highlight=False, soft_wrap=True)
