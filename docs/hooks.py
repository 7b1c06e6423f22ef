"""MkDocs hooks: the pages' tables of numbers are written at build time from the files that hold them.

A page asks for a table with an HTML comment on a line of its own, ``<!-- generated: NAME -->``
(NAME one of :data:`GENERATORS`); the build replaces it with the table, read from the shipped model
card (``models/*/model_card.json``) or a benchmark's committed JSON. So the site never shows a
hand-copied number that a new model or a re-run benchmark has made stale, and an unknown NAME or
a missing file fails the build. ``tests/test_docs.py`` checks the tables against the files too.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.MULTILINE)


class GeneratedPageError(ValueError):
    """A page asks for a table this module does not make."""


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _load(relative: str) -> dict:
    return json.loads((REPO / relative).read_text())


# --- the model card ---------------------------------------------------------------------------

#: Columns of a metrics table: card key and heading (the key's description is the legend).
METRIC_COLUMNS = [("n", "n"), ("mae_ev", "MAE eV"), ("rmse_ev", "RMSE eV"), ("r2", "R²"), ("accuracy_065", "acc"),
                  ("precision_065", "prec"), ("recall_065", "rec"), ("spearman_sigma_abs_err", "ρ(σ,|err|)"),
                  ("coverage_68", "cov 68"), ("coverage_90", "cov 90"), ("coverage_95", "cov 95"), ("nll", "NLL")]


def _settings_table(section: BaseModel) -> str:
    """Every set field of a card section whose value is a plain value: key, value, what it means."""
    rows = []
    described = type(section).model_fields
    data = section.model_dump(mode="json")
    for key, value in data.items():
        if isinstance(value, dict | list) and key not in ("components", "weights", "properties"):
            continue
        if isinstance(value, list):
            value = ", ".join(_num(v) for v in value)
        info = described.get(key)
        rows.append([f"`{key}`", _num(value, 4), info.description if info and info.description else ""])
    return _table(["key", "value", "meaning"], rows)


def _metrics_rows(card) -> list[tuple[str, Any]]:
    rows = [("stack (the shipped combination)", card.cv_metrics), ("GNN members alone", card.cv_metrics_gnn_ensemble),
            ("one GNN member", card.cv_metrics_single_member)]
    rows += [(f"component `{name}`", metrics) for name, metrics in (card.cv_metrics_components or {}).items()]
    if card.fidelity_aware and card.fidelity_aware.cv_metrics:
        rows.append((f"with a cheap barrier ({card.fidelity_aware.cheap_fidelity})", card.fidelity_aware.cv_metrics))
    return [(name, metrics) for name, metrics in rows if metrics is not None]


def model_card_page(model_dir: Path | None = None) -> str:
    """The shipped ensemble's card (``models/ensemble/model_card.json``) as tables."""
    from alem.model_dir import BarrierMetrics, ModelCard

    directory = model_dir or REPO / "models" / "ensemble"
    card = ModelCard.load(directory)
    shown = directory.relative_to(REPO) if directory.is_relative_to(REPO) else directory
    out = [f"Read from `{shown}/model_card.json` when this site was built "
           f"(created {card.created}, alem commit `{(card.git_commit or '?')[:10]}`).", ""]
    out += ["## Summary", "", _table(["card", "value"], [
        ["kind", card.kind], ["GNN members", card.n_members], ["training hops", card.n_training_hops],
        ["training fidelities", ", ".join(f"{k}: {v}" for k, v in (card.training_fidelities or {}).items())],
        ["stack components", ", ".join(card.stack.components) if card.stack else "GNN only"],
        ["stacking weights", ", ".join(_num(w) for w in card.stack.weights) if card.stack else "–"],
        ["σ factor", _num(card.calibration.sigma_scale)],
        ["cheap-fidelity add-ons", ", ".join(f"{a.cheap_fidelity} ({a.n_paired_hops} pairs)" for a in card.addons) or "none"],
        ["trained on", f"{card.device}, {_num(card.wall_time_s, 0)} s, peak {_num(card.peak_memory_mb, 0)} MiB"],
    ]), ""]
    folds = f"grouped {card.cv_folds}-fold CV" if card.cv_folds else "CV"
    out += ["## Cross-validated accuracy", "",
            f"Out-of-fold metrics on the training hops ({folds}, folds by {card.cv_grouping or 'compound'}). "
            f"Stack: {card.cv_metrics.method if card.cv_metrics and card.cv_metrics.method else 'out-of-fold'}.", ""]
    rows = [[name] + [_num(getattr(metrics, key)) for key, _ in METRIC_COLUMNS] for name, metrics in _metrics_rows(card)]
    out += [_table(["model"] + [head for _, head in METRIC_COLUMNS], rows), ""]
    fields = BarrierMetrics.model_fields
    out += ["Columns: " + "; ".join(f"**{head}** {fields[key].description}" for key, head in METRIC_COLUMNS) + ".", ""]
    for title, section in (("Graph settings", card.graph_settings), ("Backbone", card.backbone_config),
                           ("Fine-tuning", card.finetune_config), ("Calibration", card.calibration),
                           ("Stack", card.stack),
                           *((f"Fidelity-aware add-on: {a.cheap_fidelity}", a) for a in card.addons)):
        if section is not None:
            out += [f"## {title}", "", _settings_table(section), ""]
    if card.stack:
        out += ["Stack components beside the GNN:", "",
                _table(["name", "kind", "reads", "log target", "parameters"],
                       [[s.name, s.kind, s.inputs, _num(s.log_target), json.dumps(s.params)] for s in card.stack.tree_specs]), ""]
    backbone = _load("models/pretrained/model_card.json")
    out += ["## Pre-trained backbone", "",
            f"`models/pretrained`: {backbone.get('n_structures')} structures, {backbone.get('epochs')} epochs on "
            f"{backbone.get('device')}; last epoch's validation MAE per property (published units):", "",
            _table(list(backbone["validation_mae"]), [[_num(v) for v in backbone["validation_mae"].values()]])]
    return "\n".join(out)


# --- benchmarks -------------------------------------------------------------------------------

ROW_COLUMNS = [("mae_ev", "MAE eV"), ("mae_below_1p5_ev", "MAE, E_m < 1.5"), ("r2", "R²"), ("accuracy_065", "acc"),
               ("precision_065", "prec"), ("spearman_sigma_abs_err", "ρ(σ,|err|)"), ("coverage_68", "cov 68"),
               ("coverage_90", "cov 90"), ("coverage_95", "cov 95"), ("nll", "NLL")]


def rows_table(relative: str) -> str:
    """A CV benchmark's ``rows`` (one model each, its out-of-fold metrics); – where a model has no σ."""
    data = _load(relative)
    rows = [[row["model"]] + [_num(row.get(key)) for key, _ in ROW_COLUMNS] for row in data["rows"]]
    return _table(["model"] + [head for _, head in ROW_COLUMNS], rows) + f"\n\nFrom `{relative}` ({data['n_hops']} hops)."


def card_cv_row() -> str:
    from alem.model_dir import ModelCard

    metrics = ModelCard.load(REPO / "models" / "ensemble").cv_metrics
    return _table(["model"] + [head for key, head in ROW_COLUMNS if key != "mae_below_1p5_ev"],
                  [["shipped stack, its card (cross-fitted weights)"]
                   + [_num(getattr(metrics, key)) for key, _ in ROW_COLUMNS if key != "mae_below_1p5_ev"]])


def functional_table() -> str:
    relative = "benchmarks/cv/functional_results.json"
    data = _load(relative)
    groups = ["GGA+U", "SCAN", "GGA+U and SCAN", "all"]
    stacks = {row["variant"]: row for row in data["rows"] if row["model"].startswith("stack")}
    labels = {**data["variants"], "nested choice": "variant chosen per outer fold on inner folds"}
    rows = []
    for variant, label in labels.items():
        diff = data["stack_difference_to_pooled"].get(variant, {})
        cells = []
        for group in groups:
            cell = _num(stacks[variant]["mae_ev"][group])
            if group in diff and group != "all":
                cell += f" ({diff[group]['delta_mae_ev']:+.3f} ± {diff[group]['se_ev']:.3f})"
            cells.append(cell)
        rows.append([label] + cells)
    n = data["n_per_functional"]
    header = ["variant", f"GGA+U ({n['GGA+U']})", f"SCAN ({n['SCAN']})", "GGA+U and SCAN", f"all ({data['n_hops']})"]
    return _table(header, rows) + f"\n\nMAE of the stack in eV (paired difference to the pooled stack ± standard error); from `{relative}`."


def speed_table() -> str:
    relative = "benchmarks/speed/results_cpu.json"
    data = _load(relative)
    keys = ["device", "n_hops", "prepare_graphs_and_host_context_s", "finetune_s_per_member", "finetune_ensemble_of_5_s",
            "fit_trees_s", "inference_hops_per_s_end_to_end", "inference_hops_per_s_model_only", "graph_building_hops_per_s",
            "peak_memory_mb"]
    return _table(["quantity", "value"], [[f"`{k}`", _num(data[k], 1)] for k in keys if k in data]) + f"\n\nFrom `{relative}`."


def select_speed_table() -> str:
    relative = "benchmarks/acquisition/select_speed.json"
    data = _load(relative)
    rows = [[f"{r['n_hops']:,}", r["strategy"], r["batch"], _num(r["cpu_s"], 2), _num(r["wall_s"], 2),
             _num(r.get("before_wall_s"), 1)] for r in data["results"]]
    check = data["botorch_check"]
    same = ", ".join(f"{name} {'yes' if equal else 'NO'}" for name, equal in check["same_batch"].items())
    return (_table(["hops", "strategy", "batch", "CPU s", "wall s", "before (wall s)"], rows)
            + f"\n\n{data['table']}; {data['pending']} pending hops; {data['machine']}. Same batch as BoTorch's "
            + f"`optimize_acqf_discrete` at {check['n_hops']:,} hops: {same}.\n\nFrom `{relative}`.")


def bulk_import_table() -> str:
    relative = "benchmarks/candidates/bulk_import.json"
    data = _load(relative)
    keys = ["n_hosts", "hosts_added", "hosts_skipped", "candidate_hops_stored", "hops_already_known", "cli_wall_seconds",
            "store_and_dataset_seconds"]
    rows = [[f"`{k}`", _num(data[k], 2)] for k in keys]
    rows += [[f"`per_host_seconds.{k}`", _num(v, 3)] for k, v in data["per_host_seconds"].items()]
    return _table(["quantity", "value"], rows) + f"\n\n{data['what']} ({data['machine']}, {data['date']}); from `{relative}`."


def neb_checks_table() -> str:
    path = REPO / "benchmarks" / "neb_checks" / "run_neb_checks.py"
    spec = importlib.util.spec_from_file_location("run_neb_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = [REPO / "benchmarks" / "neb_checks" / name for name in ("results.json", "results_literature.json")]
    return module.markdown_table(files) + "\n\nFrom `benchmarks/neb_checks/results.json` and `results_literature.json`."


def calibration_table() -> str:
    path = REPO / "benchmarks" / "calibration" / "run_calibration.py"
    spec = importlib.util.spec_from_file_location("run_calibration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.markdown_table(REPO / "alem" / "data" / "calibration" / "mlip_CHGNet.jsonl")


def scale_table() -> str:
    path = REPO / "benchmarks" / "scale" / "run_scale.py"
    spec = importlib.util.spec_from_file_location("run_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_table(_load("benchmarks/scale/results.json")) + "\nFrom `benchmarks/scale/results.json`."


def _fractions(values: list[float | None]) -> str:
    done = [v for v in values if v is not None]
    if not done:
        return "not reached"
    mean = f"{100 * sum(done) / len(done):.0f} %"
    return mean if len(done) == len(values) else f"{mean} ({len(values) - len(done)} of {len(values)} seeds never)"


def replay_table(features: str) -> str:
    relative = f"benchmarks/replay/{features}/results.json"
    data = _load(relative)
    full = sum(data["full_data_cv_mae"]) / len(data["full_data_cv_mae"])
    rows = [[name, _fractions(s["fraction_to_full_data_error"]), _fractions(s["fraction_to_90pct_good"])]
            for name, s in data["summary"].items()]
    return (_table(["strategy", f"labels to the full-data error ({full:.3f} eV), mean over seeds", "labels to 90 % of good hops"], rows)
            + f"\n\nFractions of the {data['n_hops']} hops; from `{relative}`.")


def two_fidelity_table() -> str:
    relative = "benchmarks/replay/two_fidelity/results.json"
    data = _load(relative)

    def mean(values: list[float | None]) -> str:
        done = [v for v in values if v is not None]
        return "–" if len(done) < len(values) else f"{sum(done) / len(done):,.0f}"

    rows = [[name, _fractions(s["fraction_to_full_data_error"]), mean(s["cost_to_full_data_error"]),
             _fractions(s["fraction_to_90pct_fast"]), mean(s["cost_to_90pct_fast"])] for name, s in data["summary"].items()]
    fast = f"DFT labels to 90 % of fast hops (< {data['fast_threshold_ev']} eV)"
    header = ["strategy", "DFT labels to the full-data error", "cost", fast, "cost"]
    return _table(header, rows) + (f"\n\nFractions of the {data['n_hops']} hops, mean over {data['seeds']} seeds; a DFT label costs "
                                   f"{data['dft_cost']:.0f}, a cheap one {data['cheap_cost']:.0f}; from `{relative}`.")


GENERATORS: dict[str, Callable[[], str]] = {
    "model-card": model_card_page,
    "cv-stack": lambda: rows_table("benchmarks/cv/stack_results.json"),
    "cv-card": card_cv_row,
    "cv-fidelity": lambda: rows_table("benchmarks/cv/fidelity_results.json"),
    "cv-fidelity-le60": lambda: rows_table("benchmarks/cv/fidelity_results_le60.json"),
    "cv-functional": functional_table,
    "speed": speed_table,
    "select-speed": select_speed_table,
    "bulk-import": bulk_import_table,
    "neb-checks": neb_checks_table,
    "calibration-chgnet": calibration_table,
    "replay-descriptor": lambda: replay_table("descriptor"),
    "replay-gnn": lambda: replay_table("gnn"),
    "replay-two-fidelity": two_fidelity_table,
    "scale": scale_table,
}


def expand(markdown: str) -> str:
    """``markdown`` with every ``<!-- generated: NAME -->`` line replaced by its table."""

    def generated(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise GeneratedPageError(f"unknown generated table {name!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(generated, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' hook signature)
    return expand(markdown)
