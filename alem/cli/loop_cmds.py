"""Candidates, proposals, approval, the loop, the demo and the report.

Commands: ``candidates add``, ``propose``, ``proposals``, ``approve``, ``reject``, ``loop``,
``demo``, ``report``. Heavy libraries are imported inside the commands so ``alem --help`` is fast.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from alem.cli.app import app
from alem.cli.common import (
    CampaignOption,
    ExitCode,
    JsonOption,
    WhoOption,
    WideOption,
    console,
    fail,
    load_config,
    open_backend,
    open_campaign,
    print_json,
)
from alem.cli.tables import Column, hop_formulas, print_table
from alem.config import STRATEGIES
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

if TYPE_CHECKING:
    from alem.candidates.pool import AddReport
    from alem.hops.fidelity import CheapBarrier
    from alem.store import Prediction, Proposal, Store

candidates_app = typer.Typer(help="Candidate hops: enumerate them from host structures.", no_args_is_help=True)
app.add_typer(candidates_app, name="candidates")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- candidates
@candidates_app.command("add")
def candidates_add(
    host_files: Annotated[
        list[str],
        typer.Argument(help="host structures (CIF, POSCAR/CONTCAR, pymatgen JSON), directories of them, or quoted globs"),
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
    strict: Annotated[
        bool, typer.Option("--strict", help="add nothing if any host yields no hop (default: skip such hosts, add the rest)")
    ] = False,
    campaign: CampaignOption = None,
) -> None:
    """Enumerate the symmetry-distinct hops of each host and store the new ones as candidates.

    Hosts that yield no hop are skipped and listed with the reason; exit code 1 says some were.
    """
    from alem.campaign.enumeration import enumeration_settings
    from alem.candidates import HostError
    from alem.candidates.pool import add_candidates, expand_host_paths
    from alem.neb.presets import PresetError

    with open_campaign(campaign) as (config, store):
        try:
            settings = enumeration_settings(config, max_hop_length, min_image_distance, max_atoms)
        except PresetError as exc:
            fail(str(exc), ExitCode.USAGE)
        working_ion = ion or config.campaign.working_ion
        try:
            paths = expand_host_paths(host_files)
            with console.status(f"enumerating hops of {len(paths)} host(s) (pymatgen-analysis-diffusion)"):
                report = add_candidates(store, paths, working_ion, settings, strict=strict)
        except HostError as exc:
            fail(f"{exc}\nnothing was added to the store")
    _print_added_hosts(report, working_ion)
    if report.skipped_hosts:
        raise typer.Exit(ExitCode.FAILED)


def _print_added_hosts(report: AddReport, working_ion: str) -> None:
    columns = (
        Column("host", whole=True), Column("hops", whole=True, justify="right"), Column("new", whole=True, justify="right"),
        Column("known", keep=3, whole=True, justify="right"), Column("paths skipped", keep=1, justify="right"),
        Column("supercell atoms", keep=2), Column("s", keep=4, whole=True, justify="right"),
    )
    rows = [
        [
            host.label, str(len(host.hops)), str(len(host.hops) - len(host.known)), str(len(host.known)),
            str(len(host.skipped)), ", ".join(map(str, sorted({h.n_sites for h in host.hops}))), f"{host.seconds:.1f}",
        ]
        for host in report.hosts
    ]
    if rows:
        print_table(console, columns, rows, f"{working_ion} hops from {len(report.hosts)} host(s)")
    for host in report.hosts:
        for line in host.skipped:
            console.print(f"[yellow]path skipped[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    for skipped in report.skipped_hosts:  # soft_wrap: a file name split over lines cannot be copied
        console.print(f"[bold yellow]host skipped[/] {escape(skipped.reason)}", highlight=False, soft_wrap=True)
    seconds = sum(h.seconds for h in report.hosts) + sum(s.seconds for s in report.skipped_hosts)
    n_read = len(report.hosts) + len(report.skipped_hosts)
    console.print(
        f"{len(report.added)} candidate hops stored from {len(report.hosts)} host(s) "
        f"({report.n_known} already in the dataset or store); {len(report.skipped_hosts)} host(s) skipped; "
        f"{seconds:.1f} s enumerating ({seconds / max(n_read, 1):.2f} s per host) + {report.overhead_seconds:.1f} s storing",
        highlight=False,
    )




# ----------------------------------------------------------------------------- propose
@app.command()
def propose(
    strategy: Annotated[str | None, typer.Option(help=f"{' | '.join(STRATEGIES)} (default: alem.toml)")] = None,
    batch: Annotated[int | None, typer.Option(help="batch size q (default: alem.toml)")] = None,
    campaign: CampaignOption = None,
) -> None:
    """Score the candidates with the current model and record a proposal batch."""
    from alem.campaign.model_versions import ModelLoadError, load_current_model
    from alem.campaign.propose import propose_batch
    from alem.ensemble import ModelNotFoundError

    if strategy is not None and strategy not in STRATEGIES:
        fail(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}", ExitCode.USAGE)
    if batch is not None and batch < 1:
        fail("--batch must be at least 1", ExitCode.USAGE)
    with open_campaign(campaign) as (config, store):
        try:
            model = load_current_model(store, config)
        except (ModelNotFoundError, ModelLoadError) as exc:
            fail(f"no model to score with: {exc}", ExitCode.USAGE)
        from alem.campaign.two_stage import proposal_context

        context = proposal_context(store, config, model)
        if context.warning:
            console.print(f"[yellow]warning:[/] {context.warning}", highlight=False)
        with console.status("scoring candidates"):
            outcome = propose_batch(store, model, config.acquisition, strategy, batch, **context.kwargs)
        if not outcome.proposals:
            console.print("no candidate hops left to propose (add hosts with `alem candidates add`)")
            return
        predictions = store.predictions(model.version_id)
        _print_proposals(outcome.proposals, predictions, store, f"batch {outcome.batch_id} ({outcome.proposals[0].strategy})")
    console.print(
        "why: `alem review`; approve with `alem approve ID...` (a unique prefix will do) or `--all`; "
        "reject with `alem reject ID... --reason TEXT`", highlight=False,
    )


PROPOSAL_COLUMNS = (
    Column("hop", whole=True),
    Column("formula", whole=True),
    Column("μ eV", keep=9, whole=True, justify="right"),
    Column("σ eV", keep=8, whole=True, justify="right"),
    Column("MLIP eV", keep=7, whole=True, justify="right"),
    Column(f"P(<{GOOD_CONDUCTOR_THRESHOLD_EV})", keep=7, whole=True, justify="right"),
    Column("strategy", keep=6, whole=True),
    Column("atoms", keep=5, whole=True, justify="right"),
    Column("length Å", keep=4, whole=True, justify="right"),
    Column("score", keep=3, whole=True, justify="right"),
    Column("batch", keep=1, whole=True),
    Column("host", keep=0),
)


def _print_proposals(
    proposals: Sequence[Proposal], predictions: Mapping[str, Prediction], store: Store, title: str, wide: bool = False
) -> None:
    from alem.campaign.fidelity_labels import cheap_barriers_of

    formulas = hop_formulas(store, [p.hop_id for p in proposals])
    cheap = cheap_barriers_of(store)  # the screening stage's MLIP barrier beside μ ± σ
    rows = []
    for proposal in proposals:
        record = store.hop(proposal.hop_id)
        host = store.host(record.host_id).name if record.host_id is not None else (record.group or "")
        prediction = predictions.get(proposal.hop_id)
        rows.append([
            proposal.hop_id, formulas.get(proposal.hop_id, ""), _fmt(proposal.mean_ev), _fmt(proposal.std_ev),
            _cheap_text(cheap.get(proposal.hop_id)),
            _fmt(prediction.prob_good if prediction else None, 2), proposal.strategy, str(record.n_sites),
            f"{record.hop_length_a:.2f}", f"{proposal.score:.4g}", proposal.batch_id, host or "",
        ])
    print_table(console, PROPOSAL_COLUMNS, rows, title, wide)


def _cheap_text(barrier: CheapBarrier | None) -> str:
    return "" if barrier is None else f"{barrier.barrier_ev:.3f} {barrier.fidelity.split(':', 1)[1]}"


@app.command()
def proposals(
    as_json: JsonOption = False,
    wide: WideOption = False,
    campaign: CampaignOption = None,
) -> None:
    """Proposed hops waiting for a decision, with why they were chosen."""
    from alem.campaign.approve import waiting_proposals

    with open_campaign(campaign) as (config, store):
        waiting = waiting_proposals(store)
        if as_json:
            from alem.campaign.fidelity_labels import cheap_barriers_of

            cheap = cheap_barriers_of(store)
            rows = [
                {
                    **p.as_dict(),
                    "mlip_barrier_ev": getattr(cheap.get(p.hop_id), "barrier_ev", None),
                    "mlip_fidelity": getattr(cheap.get(p.hop_id), "fidelity", None),
                }
                for p in waiting
            ]
            print_json(rows)
            return
        if not waiting:
            console.print("no proposals wait for a decision (`alem propose` makes a batch)")
            return
        _print_proposals(waiting, store.predictions(), store, f"{len(waiting)} proposals waiting for a decision", wide)
    console.print("why: `alem review`; decide: `alem approve ID...` (a unique prefix will do)", highlight=False)


# ------------------------------------------------------------------- approve / reject
@app.command()
def approve(
    hop_ids: Annotated[list[str] | None, typer.Argument(help="hop ids to approve (a unique prefix is enough)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="approve every waiting proposal")] = False,
    who: WhoOption = None,
    reason: Annotated[str | None, typer.Option(help="optional note")] = None,
    campaign: CampaignOption = None,
) -> None:
    """Approve hops for NEB calculation (all or nothing); a unique id prefix names a hop."""
    from alem.campaign.approve import waiting_proposals
    from alem.campaign.hop_ids import decision_targets

    if bool(hop_ids) == all_:
        fail("give hop ids or --all (not both)", ExitCode.USAGE)
    with open_campaign(campaign) as (config, store):
        ids = [p.hop_id for p in waiting_proposals(store)] if all_ else decision_targets(store, hop_ids or [], "approve")
        if not ids:
            console.print("no proposals wait for a decision")
            return
        store.approve(ids, who=who or getpass.getuser(), reason=reason)
    console.print(f"approved {len(ids)} hop(s): {', '.join(ids)}; `alem loop` submits them")


@app.command()
def reject(
    hop_ids: Annotated[list[str], typer.Argument(help="hop ids to reject (a unique prefix is enough)")],
    reason: Annotated[str, typer.Option(help="why (recorded with the decision)")] = ...,
    who: WhoOption = None,
    campaign: CampaignOption = None,
) -> None:
    """Reject hops (all or nothing); they are never proposed again unless reopened."""
    from alem.campaign.hop_ids import decision_targets

    if not reason.strip():
        fail("--reason must say why", ExitCode.USAGE)
    with open_campaign(campaign) as (config, store):
        ids = decision_targets(store, hop_ids, "reject")
        store.reject(ids, who=who or getpass.getuser(), reason=reason)
    console.print(f"rejected {len(ids)} hop(s): {', '.join(ids)}")


@app.command()
def cancel(
    hop_ids: Annotated[list[str], typer.Argument(help="hops whose NEB job in flight to cancel (a unique prefix is enough)")],
    reason: Annotated[str, typer.Option(help="why (recorded with the job)")] = ...,
    screening: Annotated[bool, typer.Option("--screening", help="cancel the hops' screening (MLIP) NEBs instead")] = False,
    campaign: CampaignOption = None,
) -> None:
    """Cancel the NEB jobs of hops (all or nothing): recorded as failed first, then cancelled on the
    backend (scancel/qdel, FireWorks defuse, jobflow-remote stop). Approve a hop again to rerun it."""
    from alem.campaign import CancelError, cancel_jobs
    from alem.campaign.hop_ids import decision_targets, resolve_hop_ids
    from alem.campaign.screening import make_screening_backend
    from alem.store.fidelity_columns import SCREENING_STAGE, TARGET_STAGE

    if not reason.strip():
        fail("--reason must say why", ExitCode.USAGE)
    with open_campaign(campaign) as (config, store):
        if screening and not config.screening.fidelity:
            fail("this campaign has no screening stage ([screening] fidelity is empty)", ExitCode.USAGE)
        backend = make_screening_backend(config) if screening else open_backend(config)
        kind = config.screening.backend.kind if screening else config.backend.kind
        if screening:
            screening_now = [job.hop_id for job in store.jobs(live=True, stage=SCREENING_STAGE)]
            ids = resolve_hop_ids(hop_ids, (record.hop_id for record in store.hops()), screening_now)
        else:
            ids = decision_targets(store, hop_ids, "cancel")
        try:
            report = cancel_jobs(store, backend, ids, reason, SCREENING_STAGE if screening else TARGET_STAGE)
        except CancelError as exc:
            fail(f"{exc}\nnothing was cancelled")
    for hop_id, external_id in report.cancelled:
        what = "the screening NEB of hop" if screening else "hop"
        console.print(f"cancelled {what} {hop_id} (job {external_id} on {kind})", highlight=False)
    for hop_id, message in report.backend_errors:
        console.print(f"[red]hop {hop_id}: recorded as cancelled, but the backend said: {escape(message)}[/]", highlight=False)
    if report.backend_errors:
        raise typer.Exit(ExitCode.FAILED)


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
    """Run the campaign: reconcile, ingest, retrain, score, propose, (auto-)approve, submit, sleep."""
    from alem.loop.runner import CampaignLoop, LoopOptions

    config = load_config(campaign)
    backend = open_backend(config)
    options = LoopOptions(
        max_ticks=1 if once else max_ticks, tick_seconds=tick_seconds, retrain=retrain, until_idle=until_idle, progress=False
    )
    from alem.campaign.model_versions import ModelLoadError
    from alem.ensemble import ModelNotFoundError

    runner = CampaignLoop(config, backend, options, say=lambda line: console.print(line, highlight=False, markup=False))
    try:
        runner.run()
    except (ModelNotFoundError, ModelLoadError) as exc:
        fail(f"no model to score candidates with: {exc} (set [model] path in alem.toml)", ExitCode.USAGE)


# -------------------------------------------------------------------------------- report
@app.command()
def report(
    out: Annotated[Path | None, typer.Option(help="HTML file (default: <state>/report.html)")] = None,
    campaign: CampaignOption = None,
) -> None:
    """Write a self-contained HTML report: parity, learning curve, campaign history, results."""
    from alem.report import write_report

    path = write_report(load_config(campaign), out)
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
        str, typer.Option("--backend", help="local (default) | slurm: each NEB a batch job through this machine's Slurm")
    ] = "local",
) -> None:
    """The main job on a fresh clone: a small real campaign (shipped hosts, CHGNet NEBs, auto-approval)."""
    from alem.campaign.model_versions import ModelLoadError
    from alem.demo import DEMO_HOSTS, remove_demo_campaign, run_demo
    from alem.ensemble import ModelNotFoundError

    if backend not in ("local", "slurm"):
        fail(f"--backend {backend}: the demo runs on local or slurm", ExitCode.USAGE)
    try:
        if fresh:
            remove_demo_campaign(directory)
        result = run_demo(
            directory, model_path=model or "", max_minutes=max_minutes, retrain=retrain,
            hosts=tuple(host) if host else DEMO_HOSTS, say=lambda line: console.print(line, highlight=False, markup=False),
            backend=backend,  # type: ignore[arg-type]
        )
    except (ModelNotFoundError, ModelLoadError, ValueError) as exc:  # a bad directory, config, host or model
        fail(str(exc), ExitCode.USAGE)
    columns = (
        Column("hop", whole=True), Column("atoms", keep=1, justify="right"), Column("Å", keep=2, justify="right"),
        # numbers never fold (one word each); their headers may wrap
        Column("predicted eV", justify="right"), Column("σ eV", justify="right"),
        Column("CHGNet NEB eV", justify="right"), Column("state", keep=3),
    )
    rows = [
        [row["hop_id"], str(row["atoms"]), f"{row['hop_length_a']:.2f}", _fmt(row["predicted_ev"]),
         _fmt(row["sigma_ev"]), _fmt(row["neb_barrier_ev"]), row["state"]]
        for row in result.rows
    ]
    print_table(console, columns, rows, f"demo campaign {result.campaign_dir}")
    for row in result.rows:
        if row["note"]:
            console.print(f"{row['hop_id']}: {row['note']}", highlight=False)
    console.print(f"report: {result.report_path}")
    console.print(f"carry on with: cd {result.campaign_dir} && alem status / alem loop / alem report")
