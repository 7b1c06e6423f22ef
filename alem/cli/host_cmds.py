"""Host commands: ``alem hosts`` (one row per host) and the host view of ``alem show HOST_ID``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from alem.cli.app import app
from alem.cli.common import CampaignOption, JsonOption, WideOption, console, err_console, open_campaign, print_json
from alem.cli.tables import Column, print_table

#: Hosts ``alem hosts`` lists by default: a screening campaign's tens of thousands are read with --json.
DEFAULT_HOSTS_SHOWN = 200

HOST_COLUMNS = (
    Column("host", whole=True, justify="right"),
    Column("formula", whole=True),
    Column("ion", keep=1),
    Column("hops", keep=4, justify="right"),
    Column("network", whole=True),
    Column("E_perc eV", whole=True, justify="right"),
    Column("P(good)", keep=3, justify="right"),
    Column("limiting hop", keep=2, whole=True),
)


def _barrier_text(host: dict[str, Any]) -> str:
    spread = host["spread"]
    if spread is not None and spread["mean_ev"] is not None:
        return f"{spread['mean_ev']:.2f}±{spread['std_ev']:.2f}"
    if host["percolation_barrier_ev"] is not None:
        return f"{host['percolation_barrier_ev']:.2f}"
    return "none"


def _network_text(host: dict[str, Any]) -> str:
    if host.get("error"):
        return "error"
    if not host["dimensionality"]:
        # without every barrier a missing hop might still close a network
        return "unscored" if host["missing_paths"] else "none"
    return f"{host['dimensionality']}D {host['directions']}"


def _row(host: dict[str, Any]) -> list[str]:
    prob = host["prob_good"]
    return [
        str(host["host_id"]),
        host["formula"],
        host["working_ion"],
        f"{host['hops_computed']}/{host['hops_total']}",
        _network_text(host),
        _barrier_text(host),
        "—" if prob is None else f"{prob:.2f}",
        escape(host["limiting_hop"] or "—"),
    ]


def say_refreshing(line: str) -> None:
    """One dim line on stderr while stale host answers are computed (not with ``--json``: its output is the JSON alone)."""
    err_console.print(f"[dim]{escape(line)}[/]", highlight=False)


@app.command("hosts")
def hosts_cmd(
    campaign: CampaignOption = None, as_json: JsonOption = False, wide: WideOption = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="most hosts shown, in host id order (0: all; --json: every host)")]
    = DEFAULT_HOSTS_SHOWN,
) -> None:
    """One row per host: hops computed/total, how its network percolates (1D/2D/3D and along which
    lattice directions), the percolation barrier ± σ, P(barrier < [loop] good_barrier_ev) and the hop that limits it."""
    from alem.campaign.host_answers import host_table, hosts_json

    with open_campaign(campaign) as (config, store):
        if as_json:
            print(hosts_json(config, store))
            return
        hosts = host_table(config, store, note=say_refreshing, whole=False)
    if not hosts:
        console.print("No hosts yet (`alem candidates add HOST_FILES`)")
        return
    shown = hosts[:limit] if limit else hosts
    print_table(console, HOST_COLUMNS, [_row(h) for h in shown], title="Hosts", wide=wide)
    if len(shown) < len(hosts):
        console.print(f"{len(shown)} of {len(hosts)} hosts shown (--limit 0: all; --json: every host's answer)", highlight=False)
    console.print(
        "[dim]E_perc: lowest barrier of a network that reaches a site's periodic image (± over the "
        "model's joint posterior rows, computed hops fixed); hops: computed / distinct paths[/]",
        highlight=False,
    )
    rows = next((h["spread"]["rows"] for h in hosts if h["spread"] is not None), None)
    if rows is not None and not rows.startswith("joint"):
        console.print(f"[yellow]rows: {escape(rows)}[/]", highlight=False)
    for host in shown:
        if host.get("error"):
            console.print(f"host {host['host_id']}: no network ({escape(host['error'])})", highlight=False)
        if host["missing_paths"]:
            console.print(f"host {host['host_id']}: no barrier yet for {', '.join(sorted(set(host['missing_paths'])))}", highlight=False)


def is_host_id(text: str, campaign: CampaignOption = None) -> bool:
    """Whether ``alem show TEXT`` means a host: a bare number that is no stored hop's id."""
    if not text.isdigit():
        return False
    from alem.store.states import UnknownHopError

    with open_campaign(campaign) as (_, store):
        try:
            store.hop(text)
        except UnknownHopError:
            return True
    return False


def show_host(host_id: int, campaign: CampaignOption = None, as_json: bool = False) -> None:
    """``alem show HOST_ID``: the host's network, each distinct path with its barrier and source."""
    from alem.campaign.host_answers import kept_summary

    with open_campaign(campaign) as (config, store):
        host = kept_summary(config, store, host_id)
    if as_json:
        print_json(host)
        return
    console.print(
        f"[bold]host {host['host_id']} {host['formula']}[/]  {host['working_ion']} network of {host['n_sites']} sites "
        f"per cell, hops up to {host['cutoff_a']:.2f} Å",
        highlight=False,
    )
    if host["percolation_barrier_ev"] is None and host["missing_paths"]:
        console.print(f"  no network of hops with barriers yet; without a barrier: {', '.join(host['missing_paths'])}", highlight=False)
    elif host["percolation_barrier_ev"] is None:
        console.print("  the hops within the cutoff make no network that reaches a site's periodic image (not a conductor at this cutoff)")
    else:
        console.print(
            f"  percolates {_network_text(host)} at {host['percolation_barrier_ev']:.3f} eV, limited by {host['limiting_hop']}",
            highlight=False,
        )
    estimate = host["estimate"]
    if estimate is not None:
        console.print(
            f"  order of magnitude at {estimate['temperature_k']:.0f} K: D ~ {estimate['diffusivity_cm2_s']:.0e} cm²/s, "
            f"σ ~ {estimate['conductivity_s_cm']:.0e} S/cm (ν = 1e13 Hz random walk, Nernst–Einstein)",
            highlight=False,
        )
    spread = host["spread"]
    if spread is not None and spread["mean_ev"] is not None:
        shares = ", ".join(f"{hop} {share:.0%}" for hop, share in spread["limiting_share"].items())
        console.print(
            f"  over {spread['n_rows']} sample rows ({spread['rows']}): {spread['mean_ev']:.3f} ± {spread['std_ev']:.3f} eV, "
            f"P(< {host['good_barrier_ev']} eV) {spread['prob_good']:.2f}; limiting: {shares}",
            highlight=False,
        )
    columns = (
        Column("path", whole=True, justify="right"), Column("hop", whole=True), Column("Å", justify="right"),
        Column("copies", keep=1, justify="right"), Column("barrier eV", whole=True, justify="right"),
        Column("from", keep=2), Column("state", keep=3),
    )
    rows = [
        [
            str(p["path_number"]), escape(p["hop_id"] or "not stored"), f"{p['hop_length_a']:.2f}", str(p["n_copies"]),
            "—" if p["barrier_ev"] is None else f"{p['barrier_ev']:.3f}" + (f"±{p['std_ev']:.2f}" if p["std_ev"] else ""),
            escape(p["source"]), p["state"] or "—",
        ]
        for p in host["paths"]
    ]
    print_table(console, columns, rows, title="Distinct paths")
