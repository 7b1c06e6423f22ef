"""Evaluate an ensemble on a labelled hop file: metrics, parity plot, per-hop predictions."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alem.ensemble import Ensemble, EnsemblePrediction
from alem.hops.hop import Hop
from alem.metrics import barrier_metrics
from alem.parity import parity_plot


def write_predictions_csv(hops: Sequence[Hop], prediction: EnsemblePrediction, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["hop_id", "working_ion", "formula", "reference_ev", "predicted_ev", "sigma_ev", "prob_below_065", "abs_error_ev"])
        for i, hop in enumerate(hops):
            ref = hop.barrier_ev
            writer.writerow([
                hop.hop_id, hop.working_ion, hop.metadata.get("formula", hop.initial.composition.reduced_formula),
                "" if ref is None else f"{ref:.4f}", f"{prediction.mean_ev[i]:.4f}", f"{prediction.std_ev[i]:.4f}",
                f"{prediction.prob_good[i]:.4f}", "" if ref is None else f"{abs(prediction.mean_ev[i] - ref):.4f}",
            ])
    return path


def evaluate(hops: Sequence[Hop], ensemble: Ensemble, out_dir: Path, progress: bool = False) -> dict:
    """Write ``metrics.json``, ``parity.png`` and ``predictions.csv`` to ``out_dir``."""
    labelled = [h for h in hops if h.barrier_ev is not None]
    if not labelled:
        raise ValueError("no hop in the file has a reference barrier ('target'): nothing to evaluate against")
    prediction = ensemble.predict(labelled, progress=progress)
    y = np.array([h.barrier_ev for h in labelled])
    metrics = barrier_metrics(y, prediction.mean_ev, prediction.std_ev)
    metrics["model"] = str(ensemble.path) if ensemble.path else None
    metrics["n_unlabelled_skipped"] = len(hops) - len(labelled)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    parity_plot(y, prediction.mean_ev, prediction.std_ev, out_dir / "parity.png", metrics=metrics)
    write_predictions_csv(labelled, prediction, out_dir / "predictions.csv")
    return metrics
