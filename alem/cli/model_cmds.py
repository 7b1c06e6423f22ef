"""Model commands: predict, evaluate, train, pretrain.

Every failure of these commands is bad input (a hop file, a model directory, an option): exit code 2;
`predict` exits 1 when it left invalid hops out and predicted the rest."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from alem.cli.app import app
from alem.cli.common import ExitCode, WideOption, console, err_console, fail, print_json
from alem.cli.tables import Column, print_table

if TYPE_CHECKING:
    from alem.ensemble import Ensemble


def _load_ensemble(model: Path | None) -> Ensemble:
    from alem.ensemble import Ensemble, ModelNotFoundError

    try:
        return Ensemble.load(model)
    except ModelNotFoundError as exc:
        fail(str(exc), ExitCode.USAGE)


@app.command()
def predict(
    hop_files: list[Path] = typer.Argument(..., help="Hop files: Em-dataset JSON, pymatgen hop JSON, or initial/final CIF/POSCAR pairs."),
    ion: str | None = typer.Option(None, help="Working ion (default: the element on site 0)."),
    model: Path | None = typer.Option(None, help="Ensemble directory (default: the shipped models/ensemble)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
    cheap_barriers: Path | None = typer.Option(
        None, "--cheap-barriers", help="JSON {hop_id: barrier_ev} or CSV (hop_id, barrier_ev) of cheap NEB barriers, e.g. MLIP."
    ),
    cheap_fidelity: str | None = typer.Option(
        None, "--cheap-fidelity", help="Which potential produced --cheap-barriers, e.g. mlip:MACE-MP (the model needs an add-on of it)."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Predict nothing if any hop is invalid (default: predict the valid ones, list the others)."
    ),
    wide: WideOption = False,
) -> None:
    """Predict E_m (eV), its σ and P(E_m < 0.65 eV) for each hop.

    An invalid hop (no working ion, overlapping atoms, NaN coordinates, a malformed entry) is
    listed on stderr, one line each with its file, id and problem, and the valid hops are
    predicted. Exit code: 0 every hop predicted; 1 some hops invalid, the rest predicted; 2 nothing
    predicted (an unreadable file, no valid hop, or --strict and an invalid hop).
    """
    from alem.hops import HopError, read_hops
    from alem.hops.cheap_barriers import read_cheap_barriers

    if cheap_barriers is not None and cheap_fidelity is None:
        fail(f"{cheap_barriers}: say which potential produced these barriers with --cheap-fidelity (e.g. mlip:MACE-MP)", ExitCode.USAGE)
    invalid: list[str] = []
    try:
        hops = read_hops(hop_files, working_ion=ion, on_invalid="skip", problems=invalid)
        cheap = read_cheap_barriers(cheap_barriers, cheap_fidelity) if cheap_barriers is not None else None
    except HopError as exc:
        fail(f"{exc}\nnothing predicted", ExitCode.USAGE)
    for problem in invalid:  # soft_wrap: one line per hop, so a script can cut the id out
        err_console.print(f"[yellow]invalid hop[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if strict and invalid:
        fail(f"{len(invalid)} invalid hop(s); nothing predicted (--strict: one invalid hop stops the whole batch)", ExitCode.USAGE)
    if not hops:
        fail(f"no valid hop in {', '.join(map(str, hop_files))}; nothing predicted", ExitCode.USAGE)
    ensemble = _load_ensemble(model)
    if cheap is not None and not ensemble.cheap_fidelities:
        err_console.print(f"[yellow]warning:[/] {ensemble.path}: this model has no fidelity-aware part; cheap barriers ignored")
    prediction = ensemble.predict(hops, cheap_barriers=cheap, progress=not (as_json or as_csv) and len(hops) > 50)
    rows = [
        {
            "hop_id": h.hop_id,
            "working_ion": h.working_ion,
            "formula": h.initial.composition.reduced_formula,
            "hop_length_a": round(h.hop_length_a, 3),
            "barrier_ev": round(float(prediction.mean_ev[i]), 4),
            "sigma_ev": round(float(prediction.std_ev[i]), 4),
            "prob_below_065": round(float(prediction.prob_good[i]), 4),
            "reference_ev": h.barrier_ev,
            **({"cheap_ev": cheap[h.hop_id].barrier_ev if h.hop_id in cheap else None,
                "used_cheap_barrier": bool(prediction.used_cheap_barrier[i]),
                "cheap_barrier_note": prediction.cheap_barrier_note[i]} if cheap is not None else {}),
        }
        for i, h in enumerate(hops)
    ]
    if as_json:
        print_json(rows)
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    else:
        _print_predictions(rows, ensemble, cheap_fidelity if cheap is not None else None, wide)
    if invalid:
        err_console.print(f"{len(hops)} hop(s) predicted, {len(invalid)} invalid hop(s) left out", highlight=False)
        raise typer.Exit(ExitCode.FAILED)


def _print_predictions(rows: list[dict], ensemble: Ensemble, cheap_fidelity: str | None, wide: bool) -> None:
    columns = [
        Column("hop", whole=True), Column("ion", keep=2, whole=True), Column("formula", whole=True),
        Column("hop length (Å)", keep=1, justify="right"), Column("E_m (eV)", whole=True, justify="right"),
        Column("σ (eV)", whole=True, justify="right"), Column("P(E_m<0.65)", keep=4, justify="right"),
        Column("reference (eV)", keep=3, justify="right"),
    ]
    if cheap_fidelity is not None:
        columns.append(Column(f"{cheap_fidelity} (eV)", keep=5, justify="right"))
    table_rows = []
    for r in rows:
        cells = [
            r["hop_id"], r["working_ion"], r["formula"], f"{r['hop_length_a']:.2f}", f"{r['barrier_ev']:.3f}",
            f"{r['sigma_ev']:.3f}", f"{r['prob_below_065']:.2f}", "" if r["reference_ev"] is None else f"{r['reference_ev']:.3f}",
        ]
        if cheap_fidelity is not None:
            used = "" if r["cheap_ev"] is None else f"{r['cheap_ev']:.3f}" + (
                "" if r["used_cheap_barrier"] else f" (ignored: {r['cheap_barrier_note']})")
            cells.append(used)
        table_rows.append([escape(cell) for cell in cells])
    print_table(console, columns, table_rows, f"Predicted migration barriers ({len(ensemble.members)}-member ensemble)", wide)


@app.command()
def evaluate(
    dataset: Path = typer.Argument(..., help="Labelled hops in the Em dataset layout (or any hop file with barriers)."),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json, parity.png, predictions.csv."),
    model: Path | None = typer.Option(None, help="Ensemble directory (default: the shipped models/ensemble)."),
) -> None:
    """Score an ensemble on labelled hops: metrics.json, parity.png, predictions.csv."""
    from alem.evaluate import evaluate as run_evaluation
    from alem.hops import HopError, read_hops

    problems: list[str] = []
    try:
        # Hops with suspicious geometry are still scored (and reported): dropping them would
        # silently change what the metrics describe.
        hops = read_hops([dataset], on_invalid="warn", problems=problems)
    except HopError as exc:
        fail(str(exc), ExitCode.USAGE)
    for problem in problems:
        err_console.print(f"[yellow]warning:[/] {problem}")
    ensemble = _load_ensemble(model)
    try:
        metrics = run_evaluation(hops, ensemble, out, progress=True)
    except ValueError as exc:
        fail(f"{dataset}: {exc}", ExitCode.USAGE)
    table = Table(title=f"{dataset.name}: {metrics['n']} hops")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("mae_ev", "rmse_ev", "r2", "accuracy_065", "precision_065", "recall_065",
                "spearman_sigma_abs_err", "coverage_68", "coverage_90", "coverage_95", "nll"):
        table.add_row(key, f"{metrics[key]:.3f}")
    console.print(table)
    console.print(f"wrote {out / 'metrics.json'}, {out / 'parity.png'}, {out / 'predictions.csv'}")


@app.command()
def train(
    dataset: Path | None = typer.Argument(None, help="Labelled hops (default: the shipped 559 literature hops)."),
    out: Path = typer.Option(None, help="Output ensemble directory (default: models/ensemble)."),
    members: int = typer.Option(5, help="Ensemble members."),
    epochs: int = typer.Option(0, help="Epochs per member (0 = default)."),
    freeze: str = typer.Option("frozen", help="frozen | partial | none | scratch (see the docs: The model)."),
    pretrained: Path | None = typer.Option(None, help="Pre-trained backbone (default: models/pretrained)."),
    cv_folds: int = typer.Option(5, help="Grouped CV folds for out-of-fold metrics, stacking weights and σ calibration (0 = skip)."),
    trees: bool = typer.Option(True, "--trees/--no-trees", help="Stack descriptor trees with the GNN members (needs --cv-folds >= 2)."),
    seed: int = typer.Option(0),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)."),
) -> None:
    """Fine-tune an ensemble; with --cv-folds, first fit stacking weights and calibrate σ on grouped
    out-of-fold predictions."""
    from pydantic import ValidationError

    from alem.hops import HopError, load_training_hops, read_hops
    from alem.model_dir import EnsembleRecipe, FinetuneConfig, default_ensemble_path
    from alem.training.recipe import calibrated_ensemble

    problems: list[str] = []
    try:
        hops = read_hops([dataset], on_invalid="skip", problems=problems) if dataset else load_training_hops(problems=problems)
    except HopError as exc:
        fail(str(exc), ExitCode.USAGE)
    for problem in problems:
        err_console.print(f"[yellow]skipped:[/] {problem}")
    try:
        config = FinetuneConfig(freeze=freeze, **({"epochs": epochs} if epochs else {}))
    except ValidationError as exc:
        fail("; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors()), ExitCode.USAGE)
    if trees and cv_folds < 2:
        fail("stacking descriptor trees needs --cv-folds >= 2 to fit its weights (or pass --no-trees)", ExitCode.USAGE)
    out = out or default_ensemble_path()
    recipe = EnsembleRecipe(
        n_members=members, finetune=config, components=None if trees else [], cv_folds=cv_folds, seed=seed,
        pretrained_path=str(pretrained) if pretrained else None,
    )
    card = calibrated_ensemble(hops, out, recipe, device, progress=True)
    cv = card.get("cv_metrics", {})
    if cv:
        console.print(f"grouped {cv_folds}-fold CV: MAE {cv['mae_ev']:.3f} eV, R² {cv['r2']:.2f}, 68% coverage {cv['coverage_68']:.2f}")
    stack = card.get("stack")
    if stack:
        weights = ", ".join(f"{n} {w:.2f}" for n, w in zip(stack["components"], stack["weights"]))
        console.print(f"stacking weights: {weights}")
    console.print(f"saved {members}-member ensemble to {out}")


@app.command()
def pretrain(
    data: Path | None = typer.Option(None, help="Corpus (default: data/pretrain_multiprop.jsonl.gz)."),
    out: Path | None = typer.Option(None, help="Output directory (default: models/pretrained)."),
    epochs: int = typer.Option(12),
    max_structures: int = typer.Option(0, help="Use only the first N structures (0 = all)."),
    hidden: int = typer.Option(64, help="Backbone width."),
    layers: int = typer.Option(3, help="Backbone convolutions."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda when present)."),
) -> None:
    """Multi-property pre-training of the backbone on bulk crystals (7 properties, masked losses)."""
    from alem import shipped_dir
    from alem.model_dir import default_pretrained_path
    from alem.nn.backbone import BackboneConfig
    from alem.training.pretrain import PretrainConfig
    from alem.training.pretrain import pretrain as run_pretrain

    data = data or shipped_dir("data") / "pretrain_multiprop.jsonl.gz"
    if not data.exists():
        fail(f"{data}: pre-training corpus not found", ExitCode.USAGE)
    config = PretrainConfig(epochs=epochs, max_structures=max_structures, backbone=BackboneConfig(hidden=hidden, n_layers=layers))
    card = run_pretrain(data, out or default_pretrained_path(), config, progress=True, device=device)
    table = Table(title=f"pre-training: validation MAE per property ({card['wall_time_s']:.0f} s on {card['device']})")
    table.add_column("property")
    table.add_column("MAE", justify="right")
    for prop, mae in card["validation_mae"].items():
        table.add_row(prop, f"{mae:.4f}")
    console.print(table)
