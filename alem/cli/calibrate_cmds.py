"""``alem calibrate``: pair the campaign's screening potential with the model (:mod:`alem.campaign.calibrate`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from alem.cli.app import app
from alem.cli.common import CampaignOption, ExitCode, JsonOption, console, fail, load_config, print_json


@app.command("calibrate")
def calibrate_cmd(
    campaign: CampaignOption = None,
    limit: Annotated[int, typer.Option("--limit", help="calibrate on the N smallest shipped training hops")] = 30,
    hop: Annotated[list[str] | None, typer.Option("--hop", help="this training hop (repeatable; instead of the smallest)")] = None,
    ion: Annotated[str | None, typer.Option("--ion", help="only training hops of this working ion")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", help="NEBs at once (default: the screening stage's max_running_jobs)")] = None,
    no_fit: Annotated[bool, typer.Option("--no-fit", help="compute the barriers only; fit no add-on")] = False,
    fit_only: Annotated[bool, typer.Option("--fit-only", help="run no NEB; fit the add-on on the barriers logged so far")] = False,
    poll_s: Annotated[float, typer.Option("--poll-s", hidden=True)] = 5.0,
    as_json: JsonOption = False,
) -> None:
    """Compute the screening potential's NEB barriers of DFT-labelled training hops and fit its add-on.

    The screening preset's NEBs (settings unchanged, in the hops' published cells) run through the
    campaign's screening backend, smallest cells first, one line per hop in
    calibration/<potential>.jsonl. Run it again after a kill: finished hops are not run again and a
    NEB still running is waited for, not submitted twice. Then the fidelity-aware add-on of that
    potential is fitted on the usable pairs and registered as a new model version (refused below
    20 usable pairs).
    """
    from alem.campaign.calibrate import (
        calibration_backend,
        calibration_hops,
        describe_row,
        fit_calibrated_version,
        run_calibration,
        screening_fidelity,
        unusable_counts,
    )
    from alem.campaign.fidelity_labels import calibration_log_for, calibration_pairs
    from alem.progress import maybe_progress

    if no_fit and fit_only:
        fail("--no-fit and --fit-only exclude each other", ExitCode.USAGE)
    config = load_config(campaign)
    fidelity = screening_fidelity(config)
    log = calibration_log_for(config, fidelity)
    summary: dict = {"fidelity": fidelity, "log": str(log.path)}
    if not fit_only:
        backend, preset = calibration_backend(config)
        hops = calibration_hops(None if hop else limit, hop or (), ion)
        done = log.rows()
        with maybe_progress(not as_json) as progress:
            task = progress.add_task(f"{fidelity} NEBs", total=len(hops), info="") if progress else None
            if progress is not None:
                progress.advance(task, sum(1 for h in hops if h.hop_id in done))

            def on_row(row: dict) -> None:
                if progress is not None:
                    progress.console.print(escape(describe_row(row)), highlight=False)
                    progress.advance(task)

            try:
                run = run_calibration(hops, backend, log, fidelity, preset, jobs or config.screening.max_running_jobs,
                                      poll_s, on_row)
            except KeyboardInterrupt:
                fail(f"stopped; {len(log.rows())} hops in {log.path}. NEBs already submitted keep running: run the "
                     "same command again to go on (they are waited for, not run twice)", ExitCode.FAILED)
        rows = [log.rows()[h.hop_id] for h in hops if h.hop_id in log.rows()]
        summary.update({"hops": len(hops), "run_now": len(run.written), "done_before": run.already_done,
                        "unusable": unusable_counts(rows)})
    if not no_fit:
        from alem.campaign.model_versions import load_current_model
        from alem.store import Store

        pairs = calibration_pairs(config, fidelity)
        with Store.open(config.store_path, create=False) as store:
            current = load_current_model(store, config)
            model, section = fit_calibrated_version(store, config, current, fidelity, pairs)
        summary.update({"model_version": model.version_id, "model_path": str(model.path),
                        "n_paired_hops": section["n_paired_hops"], "form": section["form"],
                        "cv_metrics": section["cv_metrics"]})
    if as_json:
        print_json(summary)
        return
    if "hops" in summary:
        unusable = ", ".join(f"{n} {reason}" for reason, n in summary["unusable"].items()) or "none"
        console.print(f"{summary['hops']} training hops: {summary['run_now']} NEBs run now, {summary['done_before']} "
                      f"done before; unusable: {unusable}. Log: {log.path}", highlight=False)
    if "model_version" in summary:
        metrics = summary["cv_metrics"]
        console.print(f"model version {summary['model_version']} ({summary['model_path']}) reads {fidelity} barriers: "
                      f"add-on fitted on {summary['n_paired_hops']} pairs ({summary['form']} form), grouped-CV MAE "
                      f"{metrics['mae_ev']:.3f} eV on them", highlight=False)
