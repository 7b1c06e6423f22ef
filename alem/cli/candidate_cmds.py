"""``alem candidates add``: enumerate candidate hops from host structures.

Heavy libraries are imported inside the command so ``alem --help`` is fast.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from alem.cli.app import app
from alem.cli.common import CampaignOption, ExitCode, console, fail, open_campaign
from alem.cli.tables import Column, print_table

if TYPE_CHECKING:
    from alem.candidates.pool import AddReport

#: Hosts named in the line about hosts an earlier run enumerated (the rest are counted).
RESUMED_NAMES_SHOWN = 10

candidates_app = typer.Typer(help="Candidate hops: enumerate them from host structures.", no_args_is_help=True)
app.add_typer(candidates_app, name="candidates")


# --------------------------------------------------------------------------- candidates
@candidates_app.command("add")
def candidates_add(
    host_files: Annotated[
        list[str],
        typer.Argument(
            help="host structures (CIF, POSCAR/CONTCAR, pymatgen JSON), directories of them, quoted globs, "
            "or hop files (Em dataset or pymatgen initial/final JSON: stored as they are)"
        ),
    ],
    ion: Annotated[str | None, typer.Option(help="migrating ion (default: the campaign's working_ion)")] = None,
    max_hop_length: Annotated[
        float | None, typer.Option(help="longest hop in Å (default: pymatgen's percolation cutoff)")
    ] = None,
    min_image_distance: Annotated[
        float | None, typer.Option(help="shortest supercell vector in Å (default: the backend preset's [supercell] min_image_distance_a)")
    ] = None,
    max_atoms: Annotated[
        int | None, typer.Option(help="largest NEB supercell (atoms; default: the backend preset's [supercell] max_atoms)")
    ] = None,
    orderings: Annotated[
        int,
        typer.Option(min=0, help="order a partially occupied host into its K lowest-Ewald-energy orderings, each a host (0: refuse it)"),
    ] = 0,
    strict: Annotated[
        bool, typer.Option("--strict", help="add nothing if any host yields no hop (default: skip such hosts, add the rest)")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="processes enumerating hosts side by side (default: the cores available, at most 4)"),
    ] = None,
    campaign: CampaignOption = None,
) -> None:
    """Enumerate the symmetry-distinct hops of each host and store the new ones as candidates.

    Hosts that yield no hop are skipped and listed with the reason; exit code 1 says some were.
    Hosts are enumerated in --workers processes and stored 100 at a time: after a kill, the same
    command goes on where it stopped (hosts stored with the same settings are not enumerated again). The valid hops of a hop file
    are stored and each invalid one is listed (file, id, problem), exit code 1; --strict stores
    nothing when a host or a hop is bad.
    """
    from alem.campaign.enumeration import enumeration_settings
    from alem.candidates import HostError
    from alem.candidates.hop_files import add_hop_files, is_hop_file
    from alem.candidates.pool import add_candidates, expand_host_paths
    from alem.hops import HopError
    from alem.neb.presets import PresetError
    from alem.progress import maybe_progress

    with open_campaign(campaign) as (config, store):
        try:
            settings = enumeration_settings(config, max_hop_length, min_image_distance, max_atoms)
        except PresetError as exc:
            fail(str(exc), ExitCode.USAGE)
        working_ion = ion or config.campaign.working_ion
        try:
            paths = expand_host_paths(host_files)
            hop_files = [p for p in paths if is_hop_file(p)]
            paths = [p for p in paths if p not in hop_files]
            # --strict: hop files and hosts in one transaction, so a bad host also undoes the hop files
            with store.transaction() if strict else contextlib.nullcontext():
                hop_report = add_hop_files(store, hop_files, ion, strict=strict) if hop_files else None
                report = None
                if paths or not hop_files:
                    with maybe_progress(console.is_terminal) as progress:
                        task = progress.add_task("enumerating hosts", total=len(paths), info="") if progress else None

                        def on_host(name: str) -> None:
                            if progress is not None:
                                progress.update(task, advance=1, info=escape(name))

                        report = add_candidates(store, paths, working_ion, settings, strict=strict, workers=workers,
                                                orderings=orderings, on_host=on_host)
        except (HostError, HopError) as exc:
            fail(f"{exc}\nnothing was added to the store")
    if report is not None:
        _print_added_hosts(report, working_ion)
    if hop_report is not None:
        for line in hop_report.invalid:  # soft_wrap: one line per hop, so a script can cut the id out
            console.print(f"[bold yellow]invalid hop[/] {escape(line)}", highlight=False, soft_wrap=True)
        console.print(
            f"{len(hop_report.added)} candidate hops stored from {len(hop_files)} hop file(s) ({len(hop_report.known)} already "
            f"in the dataset or store); {len(hop_report.invalid)} invalid hop(s) left out",
            highlight=False,
        )
    if (report is not None and report.skipped_hosts) or (hop_report is not None and hop_report.invalid):
        raise typer.Exit(ExitCode.FAILED)


def _print_added_hosts(report: AddReport, working_ion: str) -> None:
    columns = (
        Column("host", whole=True), Column("hops", whole=True, justify="right"), Column("new", whole=True, justify="right"),
        Column("known", keep=3, whole=True, justify="right"), Column("paths skipped", keep=1, justify="right"),
        Column("supercell atoms", keep=2), Column("s", keep=4, whole=True, justify="right"),
    )
    rows = [
        [
            host.label, str(len(host.hop_sites)), str(len(host.hop_sites) - len(host.known)), str(len(host.known)),
            str(len(host.skipped)), ", ".join(map(str, sorted(set(host.hop_sites)))), f"{host.seconds:.1f}",
        ]
        for host in report.hosts
    ]
    if rows:
        print_table(console, columns, rows, f"{working_ion} hops from {len(report.hosts)} host(s)")
    for host in report.hosts:
        for line in host.skipped:
            console.print(f"[yellow]path skipped[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    for host in report.hosts:
        if host.no_percolation:
            console.print(f"[yellow]no percolation[/yellow] {escape(host.label)}: {escape(host.no_percolation)}",
                          highlight=False, soft_wrap=True)
    for skipped in report.skipped_hosts:  # soft_wrap: a file name split over lines cannot be copied
        console.print(f"[bold yellow]host skipped[/] {escape(skipped.reason)}", highlight=False, soft_wrap=True)
    if report.resumed_hosts:
        names = [path.stem for path in report.resumed_hosts]
        more = len(names) - RESUMED_NAMES_SHOWN
        shown = ", ".join(names[:RESUMED_NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")
        console.print(
            f"{len(names)} host(s) already enumerated with these settings by an earlier run, not enumerated again: {escape(shown)}",
            highlight=False,
        )
    seconds = sum(h.seconds for h in report.hosts) + sum(s.seconds for s in report.skipped_hosts)
    n_read = len(report.hosts) + len(report.skipped_hosts)
    console.print(
        f"{len(report.added)} candidate hops stored from {len(report.hosts)} host(s) "
        f"({report.n_known} already in the dataset or store); {len(report.skipped_hosts)} host(s) skipped; "
        f"{seconds:.1f} s enumerating ({seconds / max(n_read, 1):.2f} s per host) + {report.overhead_seconds:.1f} s storing",
        highlight=False,
    )
