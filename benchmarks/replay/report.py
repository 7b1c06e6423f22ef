"""Plots and the markdown table of a replay benchmark ``results.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

COLOURS = {"random": "0.5", "explore": "tab:blue", "discover": "tab:red", "balanced": "tab:green"}


def _band(ax, runs, key, label, colour, n_hops):
    length = min(len(r[key]) for r in runs)
    x = np.array(runs[0]["n_labels"][:length]) / n_hops * 100
    values = np.array([r[key][:length] for r in runs])
    ax.plot(x, values.mean(0), color=colour, label=label)
    ax.fill_between(x, values.min(0), values.max(0), color=colour, alpha=0.15)


def write_plots(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = results["n_hops"]
    reference = float(np.mean(results["full_data_cv_mae"]))
    paths = []
    for key, ylabel, name in (
        ("mae_remainder", "MAE on unlabelled hops (eV)", "error_vs_labels.png"),
        ("found_good_fraction", f"good hops found (E_m < {results['threshold_ev']} eV)", "good_found_vs_labels.png"),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for strategy, runs in results["runs"].items():
            _band(ax, runs, key, strategy, COLOURS.get(strategy, "k"), n)
        if key == "mae_remainder":
            ax.axhline(reference, color="k", ls="--", lw=1, label=f"full-data CV MAE {reference:.3f}")
        else:
            ax.axhline(0.9, color="k", ls="--", lw=1, label="90 %")
            first = results["runs"]["random"][0]
            labels = np.array(first["n_labels"])
            oracle = np.minimum(1.0, first["found_good_fraction"][0] + (labels - labels[0]) / results["n_good"])
            ax.plot(labels / n * 100, oracle, color="k", ls=":", lw=1, label="oracle (knows the barriers)")
        ax.set_xlabel(f"labelled hops (% of {n})")
        ax.set_ylabel(ylabel)
        ax.set_title(f"replay, batches of {results['batch']}, {len(results['full_data_cv_mae'])} seeds (band: min-max)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _cell(values: list) -> str:
    shown = [f"{v * 100:.0f} %" if v is not None else "not reached" for v in values]
    reached = [v for v in values if v is not None]
    mean = f"mean {np.mean(reached) * 100:.0f} %" if len(reached) == len(values) else f"{len(reached)}/{len(values)} seeds"
    return f"{mean} ({', '.join(shown)})"


def write_markdown(results: dict, path: Path) -> None:
    reference = float(np.mean(results["full_data_cv_mae"]))
    n, n_good = results["n_hops"], results["n_good"]
    lines = [
        f"Replay benchmark: {n} hops ({n_good} good, E_m < {results['threshold_ev']} eV = {n_good / n:.0%}), "
        f"start {results['initial_labels']} random labels, batches of {results['batch']}, "
        f"{len(results['full_data_cv_mae'])} seeds. Surrogate: {results['surrogate']}. "
        f"Full-data reference error (grouped 5-fold CV MAE, all labels): {reference:.3f} eV.",
        "",
        "| strategy | labels to reach the full-data error on the unlabelled rest | labels to find 90 % of good hops |",
        "|---|---|---|",
    ]
    for strategy, row in results["summary"].items():
        lines.append(f"| {strategy} | {_cell(row['fraction_to_full_data_error'])} | {_cell(row['fraction_to_90pct_good'])} |")
    first = results["runs"]["random"][0]
    oracle = first["n_labels"][0] + max(0.0, 0.9 - first["found_good_fraction"][0]) * n_good
    lines.append("")
    lines.append(
        "Fractions are of all hops; per-seed values in brackets. Plots: error_vs_labels.png, "
        f"good_found_vs_labels.png. An oracle that labels good hops first needs {oracle / n:.0%} of the labels "
        f"for 90 % of the good hops (they are {n_good / n:.0%} of all hops)."
    )
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    data = json.loads((folder / "results.json").read_text())
    write_plots(data, folder)
    write_markdown(data, folder / "results.md")
