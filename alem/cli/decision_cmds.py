"""Deciding what to compute: ``propose``, ``proposals``, ``approve``, ``reject``, ``cancel``.

Heavy libraries are imported inside the commands so ``alem --help`` is fast.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
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
    open_backend,
    open_campaign,
    print_json,
)
from alem.cli.tables import Column, fmt_number, hop_formulas, print_table
from alem.config import STRATEGIES
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

if TYPE_CHECKING:
    from alem.hops.fidelity import CheapBarrier
    from alem.store import Prediction, Proposal, Store


# ----------------------------------------------------------------------------- propose
@app.command()
def propose(
    strategy: Annotated[str | None, typer.Option(help=f"{' | '.join(STRATEGIES)} (default: alem.toml)")] = None,
    batch: Annotated[int | None, typer.Option(help="batch size q (default: alem.toml)")] = None,
    campaign: CampaignOption = None,
) -> None:
    """Score the candidates with the current model and record a proposal batch."""
    from alem.campaign.model_versions import ModelLoadError, load_current_model
    from alem.campaign.propose import propose
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
        def warn(message: str) -> None:
            console.print(f"[yellow]warning:[/] {message}", highlight=False)

        with console.status("scoring candidates"):
            outcome = propose(store, config, model, strategy, batch, warn=warn)
        if not outcome.proposals:
            console.print("no candidate hops left to propose (add hosts with `alem candidates add`)")
            return
        predictions = store.predictions(model.version_id)
        _print_proposals(outcome.proposals, predictions, store, f"batch {outcome.batch_id} ({outcome.proposals[0].strategy})")
        from alem.review.page import draw_waiting_pictures

        try:
            with console.status("drawing the hops for `alem review`"):
                draw_waiting_pictures(store, config)
        except Exception as exc:  # the batch is recorded: a picture is left to the review page
            console.print(f"[yellow]warning:[/] review pictures not drawn ahead ({type(exc).__name__}: {escape(str(exc))})",
                          highlight=False)
        if store.hosts():
            from alem.campaign.host_answers import refresh_host_answers

            # as the loop does after scoring: `alem hosts` and the report then read kept answers
            # (every host's, once, after a new model version; else the proposed hops' hosts)
            with console.status("bringing the kept host answers up to date"):
                refresh_host_answers(config, store, model=model)
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
            proposal.hop_id, formulas.get(proposal.hop_id, ""), fmt_number(proposal.mean_ev), fmt_number(proposal.std_ev),
            _cheap_text(cheap.get(proposal.hop_id)),
            fmt_number(prediction.prob_good if prediction else None, 2), proposal.strategy, str(record.n_sites),
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
    from alem.store import HopState

    if bool(hop_ids) == all_:
        fail("give hop ids or --all (not both)", ExitCode.USAGE)
    with open_campaign(campaign) as (config, store):
        ids = [p.hop_id for p in waiting_proposals(store)] if all_ else decision_targets(store, hop_ids or [], "approve")
        if not ids:
            console.print("no proposals wait for a decision")
            return
        unproposed = [hop_id for hop_id in ids if store.hop(hop_id).state is HopState.CANDIDATE]
        store.approve(ids, who=who or getpass.getuser(), reason=reason)
    console.print(f"approved {len(ids)} hop(s): {', '.join(ids)}; `alem loop` submits them", highlight=False)
    if unproposed:  # a deliberate shortcut (docs: the campaign, the states), said so the person knows
        console.print(f"{', '.join(unproposed)} {'was' if len(unproposed) == 1 else 'were'} never proposed: "
                      "approved straight from candidate", highlight=False)


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
