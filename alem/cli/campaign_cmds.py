"""Campaign commands: init, status, show, jobs, history, export, reconcile.

Every inspection command takes ``--json`` (one JSON document on stdout, for scripts) and
``--campaign DIR`` (default: the nearest directory with ``alem.toml``, or ``$ALEM_CAMPAIGN``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from alem import shipped_dir
from alem.cli.app import app
from alem.cli.common import CampaignOption, ExitCode, JsonOption, WideOption, console, fail, open_backend, open_campaign, print_json
from alem.cli.tables import Column, hop_formulas, print_table


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _ago(seconds: float | None, now: float | None = None) -> str:
    if seconds is None:
        return "-"
    age = (now or time.time()) - seconds
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= size:
            return f"{age / size:.0f} {unit} ago"
    return f"{max(age, 0):.0f} s ago"


# --------------------------------------------------------------------------- init
#: The shipped template (under hpc_configs/) whose [backend] part a cluster campaign starts from.
CLUSTER_TEMPLATES = {
    "slurm": "batch/alem_slurm.toml", "pbs": "batch/alem_pbs.toml",
    "fireworks": "fireworks", "jobflow-remote": "jobflow_remote",
}


@app.command("init")
def init_cmd(
    directory: Annotated[Path, typer.Argument(help="campaign directory (created if missing)")] = Path("."),
    ion: Annotated[str, typer.Option("--ion", help="working ion")] = "Li",
    backend: Annotated[str, typer.Option("--backend", help="local | slurm | pbs | fireworks | jobflow-remote | replay")] = "local",
    name: Annotated[str | None, typer.Option("--name", help="campaign name (default: the directory name)")] = None,
    replay_dataset: Annotated[
        str | None, typer.Option("--replay-dataset", help="with --backend replay: labelled Em-dataset-layout file")
    ] = None,
) -> None:
    """Create a campaign: alem.toml (documented defaults) and the state store."""
    from alem.campaign import init_campaign

    config = init_campaign(directory, working_ion=ion, backend=backend, name=name, replay_dataset=replay_dataset)  # type: ignore[arg-type]
    console.print(f"Created campaign [bold]{config.campaign.name}[/] in {config.campaign_dir}")
    console.print(f"  config: {config.config_path}  (every key documented; edit it to change the campaign)")
    console.print(f"  store:  {config.store_path}")
    template = CLUSTER_TEMPLATES.get(backend)
    if template:
        console.print(f"  template for its [backend] section: {shipped_dir('hpc_configs') / template}")
    if backend == "replay" and not replay_dataset:
        console.print("  [yellow]set \\[backend.replay] dataset in alem.toml before submitting[/]")


# ------------------------------------------------------------------------- status
@app.command("status")
def status_cmd(campaign: CampaignOption = None, as_json: JsonOption = False, wide: WideOption = False) -> None:
    """Campaign overview: hops per state, running jobs, current model and its CV error, the loop."""
    from alem.campaign.status import campaign_status

    with open_campaign(campaign) as (config, store):
        data = campaign_status(config, store)
        formulas = hop_formulas(store, [job["hop_id"] for job in data["running_jobs"]])
    if as_json:
        print_json(data)
        return
    console.print(
        f"[bold]{data['campaign']}[/]  {data['working_ion']} migration, backend {data['backend']}  "
        f"([dim]{data['store']}, schema v{data['schema_version']}[/])"
    )
    hops = Table(title="Hops", title_justify="left")
    for state in data["hops"]:
        hops.add_column(state, justify="right", no_wrap=True)
    hops.add_row(*(str(n) for n in data["hops"].values()))
    # each column as wide as its state's name or count, one cell of padding each side, the borders
    needed = sum(max(len(state), len(str(n))) + 3 for state, n in data["hops"].items()) + 1
    if needed <= console.width:
        console.print(hops)
    else:  # a narrow terminal: one line that wraps between states instead of a cropped table
        console.print("Hops: " + ", ".join(f"{n} {state}" for state, n in data["hops"].items()), highlight=False)
    results = data["results"]
    console.print(f"Results: {results['usable']} usable, {results['failed']} failed")
    from alem.campaign.budget import core_hour_lines
    from alem.campaign.fidelity_status import fidelity_status_lines

    for line in [*fidelity_status_lines(data["fidelity"]), *core_hour_lines(data["core_hours"])]:
        console.print(escape(line), highlight=False)
    model = data["model"]
    if model is None:
        console.print("Model: none registered yet (the shipped ensemble is used until the first retraining)")
    else:
        mae = f"{model['cv_mae_ev']:.3f} eV" if model["cv_mae_ev"] is not None else "not in its card"
        learns_from = data["fidelity"]["train_fidelities"]
        console.print(
            f"Model: version {model['id']} ({model['path']}), trained on {model['n_training_hops']} hops, CV MAE "
            f"{mae}; registered in this campaign {_ago(model['created_at'])}; since then "
            f"{results['new_since_current_model']} new usable results of any fidelity, "
            f"{data['fidelity']['new_for_retraining']} of those it learns from ({', '.join(learns_from)})",
            highlight=False,
        )
        if model["training_fidelities"]:
            learned = ", ".join(f"{n} {fidelity}" for fidelity, n in model["training_fidelities"].items())
            console.print(escape(f"  trained on fidelities: {learned}"), highlight=False)
    loop = data["loop"]
    if loop is None:
        console.print("Loop: never started (run `alem loop`)")
    else:
        state = "[green]running[/]" if loop["alive"] else "[red]not running[/]"
        console.print(
            f"Loop: {state}, pid {loop['pid']} on {loop['hostname']}, last heartbeat {_ago(loop['heartbeat'])}: "
            f"{loop['phase']}" + (f" - {loop['message']}" if loop["message"] else "")
        )
    from alem.campaign.status import retraining_status_line, scoring_status_line

    for line in (retraining_status_line(data["retraining"]), scoring_status_line(data["scoring"])):
        if line:
            console.print(escape(line), highlight=False)
    if data["running_jobs"]:
        _print_jobs(data["running_jobs"], "Jobs in flight", formulas, wide)
    else:
        console.print("Jobs in flight: none")
    for problem in data["problems"]:
        console.print(f"[yellow]problem:[/] {escape(problem)}", highlight=False)


# --------------------------------------------------------------------------- jobs
JOB_COLUMNS = (
    Column("job", keep=6, whole=True, justify="right"),
    Column("hop", whole=True),
    Column("formula", whole=True),
    Column("state", whole=True),
    Column("backend", keep=2),
    Column("external id", keep=3),
    Column("attempt", keep=4, whole=True, justify="right"),
    Column("submitted", keep=1),
    Column("updated", keep=5),
    Column("error", keep=7),
)


def _print_jobs(jobs: list[dict[str, Any]], title: str, formulas: dict[str, str], wide: bool) -> None:
    rows = [
        [
            str(job["id"]), job["hop_id"], formulas.get(job["hop_id"], ""),
            job["state"] + (" (screening)" if job.get("stage") == "screening" else ""), job["backend"],
            job["external_id"] or "-", str(job["attempt"]), _when(job["submitted_at"]), _ago(job["updated_at"]),
            escape(job["error"] or ""),
        ]
        for job in jobs
    ]
    print_table(console, JOB_COLUMNS, rows, title, wide)


@app.command("jobs")
def jobs_cmd(
    campaign: CampaignOption = None,
    as_json: JsonOption = False,
    show_all: Annotated[bool, typer.Option("--all", help="finished jobs too (default: jobs in flight)")] = False,
    state: Annotated[str | None, typer.Option("--state", help="only jobs in this state")] = None,
    limit: Annotated[int, typer.Option("--limit", help="most jobs shown, newest first")] = 50,
    wide: WideOption = False,
) -> None:
    """NEB jobs, retraining jobs and scoring jobs: in flight by default, all with --all."""
    from alem.store import JobStatus

    if state is not None and state not in {s.value for s in JobStatus}:
        fail(f"--state {state!r}: not a job state ({', '.join(s.value for s in JobStatus)})", ExitCode.USAGE)
    with open_campaign(campaign) as (_, store):
        live = None if (show_all or state) else True
        jobs = [j.as_dict() for j in store.jobs(state=state, live=live, limit=limit)]
        retraining = [] if state else store.retrain_jobs(live=live, limit=limit)
        scoring = [] if state else store.score_jobs(live=live, limit=limit)
        formulas = {} if as_json else hop_formulas(store, [job["hop_id"] for job in jobs])
    if as_json:
        print_json(jobs)
    elif jobs:
        _print_jobs(jobs, "Jobs" if (show_all or state) else "Jobs in flight", formulas, wide)
    else:
        console.print("No jobs" + ("" if (show_all or state) else " in flight (use --all for finished ones)"))
    if not as_json and retraining:
        _print_retrain_jobs(retraining, wide)
    if not as_json and scoring:
        rows = [[str(j.id), j.job_key, j.state, j.runner, j.external_id or "-", str(j.attempt), _when(j.submitted_at),
                 str(j.model_version_id), str(j.n_hops), escape(j.error or "")] for j in scoring]
        print_table(console, SCORE_JOB_COLUMNS, rows, "Scoring jobs", wide)


RETRAIN_JOB_COLUMNS = (
    Column("job", whole=True, justify="right"), Column("key", whole=True), Column("state", whole=True),
    Column("runner", keep=2), Column("external id", keep=3), Column("attempt", keep=4, justify="right"),
    Column("submitted", keep=1), Column("model version", keep=5, justify="right"), Column("error", keep=6),
)


SCORE_JOB_COLUMNS = (*RETRAIN_JOB_COLUMNS[:-1], Column("hops", keep=5, justify="right"), RETRAIN_JOB_COLUMNS[-1])


def _print_retrain_jobs(jobs: list[Any], wide: bool) -> None:
    rows = [[str(j.id), j.job_key, j.state, j.runner, j.external_id or "-", str(j.attempt), _when(j.submitted_at),
             str(j.model_version_id or "-"), escape(j.error or "")] for j in jobs]
    print_table(console, RETRAIN_JOB_COLUMNS, rows, "Retraining jobs", wide)


# ------------------------------------------------------------------------ history
EVENT_COLUMNS = (
    Column("time"),
    Column("event", keep=1, whole=True),  # the message says what happened too
    Column("hop", whole=True),
    Column("formula", whole=True),
    Column("job", keep=0, whole=True, justify="right"),
    Column("message"),
)


def _print_events(events: list[dict[str, Any]], formulas: dict[str, str], wide: bool) -> None:
    rows = [
        [
            _when(event["time"]), event["kind"], event["hop_id"] or "", formulas.get(event["hop_id"] or "", ""),
            str(event["job_id"] or ""), escape(event["message"]),
        ]
        for event in events
    ]
    print_table(console, EVENT_COLUMNS, rows, "History", wide)


@app.command("history")
def history_cmd(
    campaign: CampaignOption = None,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="the newest N events")] = 50,
    hop: Annotated[str | None, typer.Option("--hop", help="only events of this hop")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="only events of this kind (e.g. result, approved)")] = None,
    wide: WideOption = False,
) -> None:
    """The campaign's event log, oldest of the shown events first."""
    with open_campaign(campaign) as (_, store):
        events = [e.as_dict() for e in store.events(hop_id=hop, kind=kind, limit=limit)]
        formulas = {} if as_json else hop_formulas(store, [event["hop_id"] for event in events])
    if as_json:
        print_json(events)
    elif events:
        _print_events(events, formulas, wide)
    else:
        console.print("No events")


# --------------------------------------------------------------------------- show
@app.command("show")
def show_cmd(
    hop_id: Annotated[str, typer.Argument(help="the hop's id (see `alem status`, `alem jobs`), or a host id (see `alem hosts`)")],
    campaign: CampaignOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything known about one hop (predictions, proposals, decisions, jobs, results with their
    inputs' provenance, history) or one host."""
    from alem.campaign.status import hop_status
    from alem.cli.host_cmds import is_host_id, show_host
    from alem.neb.provenance import provenance_lines

    if is_host_id(hop_id, campaign):
        show_host(int(hop_id), campaign, as_json)
        return

    with open_campaign(campaign) as (_, store):
        data = hop_status(store, hop_id)
    if as_json:
        print_json(data)
        return
    hop = data["hop"]
    host = data["host"]
    console.print(
        f"[bold]{hop['hop_id']}[/]  state [bold]{hop['state']}[/]  {hop['working_ion']} hop of "
        f"{hop['hop_length_a']:.2f} Å in a {hop['n_sites']}-site cell"
        + (f", host {host['id']} {host['formula']}" if host else "")
        + (f", group {hop['group']}" if hop["group"] else "")
    )
    for p in data["predictions"]:
        prob = f", P(good) {p['prob_good']:.2f}" if p["prob_good"] is not None else ""
        console.print(f"  model {p['model_version_id']}: {p['mean_ev']:.3f} ± {p['std_ev']:.3f} eV{prob}")
    for p in data["proposals"]:
        console.print(f"  proposed in batch {p['batch_id']} ({p['strategy']}, score {p['score']:.4g}) {_when(p['created_at'])}")
    for d in data["decisions"]:
        console.print(f"  {d['decision']}d by {d['who']} {_when(d['created_at'])}" + (f": {d['reason']}" if d["reason"] else ""))
    for r in data["results"]:
        if r["usable"]:
            reverse = f", reverse {r['reverse_barrier_ev']:.3f} eV" if r["reverse_barrier_ev"] is not None else ""
            console.print(f"  [green]result[/] {escape(r['fidelity'] or 'fidelity unknown')}: barrier {r['barrier_ev']:.3f} eV"
                          f"{reverse} ({r['method']}, job {r['job_id']})")
        else:
            console.print(f"  [red]failed result[/] {escape(r['fidelity'] or '')}: {escape(r['failure_reason'] or '')} "
                          f"({r['method'] or 'unknown method'}, job {r['job_id']})")
        for line in provenance_lines(r["provenance"]):
            console.print(escape(f"    {line}"), highlight=False)
    formulas = {hop["hop_id"]: host["formula"] if host else ""}
    if data["jobs"]:
        _print_jobs(data["jobs"], "Jobs", formulas, wide=False)
    if data["events"]:
        _print_events(data["events"], formulas, wide=False)


# ------------------------------------------------------------------------- export
@app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Argument(help="output file (.json or .json.gz), Em dataset layout")],
    campaign: CampaignOption = None,
    as_json: JsonOption = False,
    fidelity: Annotated[
        list[str] | None,
        typer.Option("--fidelity", help='only results of these fidelities (repeatable): "dft", "dft:GGA+U", "mlip:CHGNet"'),
    ] = None,
    with_unusable: Annotated[
        bool, typer.Option("--with-unusable", help="also hops with only unusable results: no target, usable false, the reason")
    ] = False,
) -> None:
    """Write every usable NEB result in the Em dataset layout, with its fidelity (trainable like the shipped data)."""
    from alem.campaign import export_dataset
    from alem.hops.fidelity import FidelityError, validate_selector

    try:
        selectors = [validate_selector(f) for f in fidelity] if fidelity else None
    except FidelityError as exc:
        fail(f"--fidelity: {exc}", ExitCode.USAGE)
    with open_campaign(campaign) as (_, store):
        path, n = export_dataset(store, out, selectors, with_unusable=with_unusable)
    if as_json:
        print_json({"path": str(path), "n_hops": n})
    elif n:
        console.print(f"Wrote {n} hops with barriers to {path}")
    else:
        console.print(f"No usable results yet; wrote an empty list to {path}")


# ---------------------------------------------------------------------- reconcile
@app.command("reconcile")
def reconcile_cmd(
    campaign: CampaignOption = None,
    as_json: JsonOption = False,
    no_resubmit: Annotated[bool, typer.Option("--no-resubmit", help="record failures but do not resubmit retries")] = False,
    stale_after_s: Annotated[
        float, typer.Option("--stale-after", help="seconds after which a job without external id is resolved")
    ] = 60.0,
) -> None:
    """Compare the store with the backend and repair it (results recorded, failed/lost jobs retried)."""
    from alem.campaign import reconcile

    with open_campaign(campaign) as (config, store):
        backend = open_backend(config)
        report = reconcile(store, backend, config, stale_after_s=stale_after_s, resubmit=not no_resubmit)
        from alem.campaign.screening import settle_screening

        report.repairs.extend(settle_screening(store, config, stale_after_s))
    if as_json:
        print_json(
            {
                "checked": report.checked,
                "completed": report.completed,
                "failed": report.failed,
                "retried": report.retried,
                "repairs": report.repairs,
                "problems": report.problems,
            }
        )
        return
    console.print(f"Checked {report.checked} jobs on {config.backend.kind}.")
    for line in report.repairs:
        console.print(f"  {line}", highlight=False, markup=False)
    if not report.repairs:
        console.print("  Nothing to repair: the store agrees with the backend.")
    for problem in report.problems:
        console.print(f"[yellow]problem:[/] {escape(problem)}", highlight=False)
