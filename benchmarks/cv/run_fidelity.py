"""Fidelity-aware prediction under grouped CV: what a MACE-MP NEB barrier adds to the stack (issue 9).

Same outer folds as the shipped model (its ``oof_predictions.npz``: grouped 5-fold by compound,
seed 0); the GNN's out-of-fold predictions are read from that file (no GNN is retrained), the
structure-only trees' too. For each target form (:data:`alem.inference.fidelity_aware.FORMS`) the
fidelity-aware trees get out-of-fold predictions on those folds, and the stack GNN + structure
trees + fidelity-aware trees gets LP weights.

Nested choice: inside each outer fold's training part, grouped 4-fold inner folds (those of
run_stack.py, seed 1) give inner out-of-fold predictions of every component (GNN from
``gnn_inner_v2_5members.npz``, 5 members per fit); the form with the lowest inner stacked MAE is chosen and
that outer fold's weights are fitted on the inner predictions; σ's factor per outer fold is
fitted on the other outer folds. The outer number of that is the honest one.

    python benchmarks/cv/run_fidelity.py     # ~5 CPU minutes, one core

Writes ``fidelity_results.json`` and ``fidelity_results.md`` beside this file.

Another potential (issue 24): ``--cheap-fidelity mlip:CHGNet`` reads the calibration pairs alem
ships (``alem/data/calibration/mlip_CHGNet.jsonl``, ``benchmarks/calibration/run_calibration.py``)
and scores the hops that have a usable one, on the same outer folds; ``--max-sites N`` keeps hops
of at most N atoms (the subset a calibration covers first), so the structure-only stack, the
potential-aware stack and the potential's own barrier are compared on the same hops. Writes
``fidelity_results_<potential>[_le<N>].json`` / ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from run_stack import KEYS, N_INNER, SEED, metrics_table, per_ion_mae, scored

from alem.hops import load_training_hops
from alem.hops.calibration_log import load_shipped_calibration_pairs, log_name
from alem.hops.fidelity import SHIPPED_CHEAP_FIDELITY, parse_fidelity
from alem.hops.io import load_shipped_cheap_barriers
from alem.inference.fidelity_aware import FORMS
from alem.inference.stacking import (
    combine_components,
    combine_members,
    cross_fitted_weights,
    fit_stack_weights,
)
from alem.inference.trees import tree_features
from alem.model_dir import OOF_FILENAME, default_pretrained_path
from alem.training.cv import grouped_folds
from alem.training.fidelity_aware import out_of_fold_fidelity_trees
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet
from alem.training.trees import DEFAULT_TREE_SPECS, DESCRIPTOR_TREE_SPECS, out_of_fold_trees

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE.parents[1] / "models" / "ensemble"
FORM_LABELS = {
    "feature": "(a) log E_m, cheap barrier as feature",
    "delta": "(b) Δ-model: E_m − E_cheap",
    "log_delta": "(c) log Δ: log(E_m / E_cheap)",
}


def cross_fitted(means: np.ndarray, sigmas: np.ndarray, y: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stacked mean and uncalibrated σ, each fold's weights fitted on the other folds."""
    mean, sigma = np.zeros_like(y), np.zeros_like(y)
    for f, w in cross_fitted_weights(means.T, y, folds).items():
        mean[folds == f], sigma[folds == f] = combine_components(means[:, folds == f], sigmas[:, folds == f], w)
    return mean, sigma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gnn-inner", type=Path, default=HERE / "gnn_inner_v2_5members.npz")
    parser.add_argument("--out", type=Path, help="default: fidelity_results[_<potential>][_le<N>].json beside this file")
    parser.add_argument("--cheap-fidelity", default=SHIPPED_CHEAP_FIDELITY, help="potential of the pairs (another: its calibration log)")
    parser.add_argument("--max-sites", type=int, help="only hops of at most this many atoms")
    args = parser.parse_args()
    started = time.time()
    fidelity = parse_fidelity(args.cheap_fidelity)
    shipped = fidelity.lower() == SHIPPED_CHEAP_FIDELITY.lower()
    suffix = ("" if shipped else "_" + log_name(fidelity).removesuffix(".jsonl")) + (f"_le{args.max_sites}" if args.max_sites else "")
    out = args.out or HERE / f"fidelity_results{suffix}.json"
    hops = load_training_hops()
    oof = np.load(MODEL_DIR / OOF_FILENAME)
    assert list(oof["hop_id"]) == [h.hop_id for h in hops]
    assert (oof["folds"] == grouped_folds([h.group for h in hops], 5, SEED)).all()
    inner_gnn = dict(np.load(args.gnn_inner))
    cheap = load_shipped_cheap_barriers() if shipped else load_shipped_calibration_pairs(fidelity)
    keep = np.array([h.hop_id in cheap and (args.max_sites is None or h.n_sites <= args.max_sites) for h in hops])
    # the same outer folds, cut to the hops with a pair (no GNN retrained: its out-of-fold predictions are cut too)
    hops = [h for h, k in zip(hops, keep, strict=True) if k]
    y, folds = oof["y"][keep], oof["folds"][keep]
    inner_gnn = {key: inner_gnn[key][..., keep] for key in ("location", "scale")}
    groups = np.array([h.group for h in hops])
    ions = np.array([h.working_ion for h in hops])
    cheap_ev = np.array([cheap[h.hop_id].barrier_ev for h in hops])
    print(f"{len(hops)} hops with a {fidelity} barrier" + (f", at most {args.max_sites} atoms" if args.max_sites else ""), flush=True)
    x = tree_features(hops, "v2")
    training_set = TrainingSet.prepare(hops, Pretrained.load(default_pretrained_path()), FinetuneConfig(), torch.device("cpu"))
    structure_inputs = training_set.component_inputs(hops, DEFAULT_TREE_SPECS, torch.device("cpu"))
    structure_means, structure_sigmas = oof["component_mean"][:, keep], oof["component_sigma"][:, keep]
    structure_names = [str(n) for n in oof["component_names"]]
    assert structure_names == ["gnn", *(s.name for s in DEFAULT_TREE_SPECS)], structure_names
    rows: list[dict] = []

    def add(name: str, mean: np.ndarray, sigma: np.ndarray | None, note: str = "") -> None:
        if sigma is None:
            m = scored(y, mean, np.full_like(mean, np.std(y)), None)
            for key in ("spearman_sigma_abs_err", "coverage_68", "coverage_90", "coverage_95", "nll"):
                m[key] = float("nan")
        else:
            m = scored(y, mean, sigma, folds)
        rows.append({"model": name, "note": note, **{k: m[k] for k in KEYS}, "per_ion_mae_ev": per_ion_mae(y, mean, ions)})
        print(f"{name:72s} MAE {m['mae_ev']:.3f}  R2 {m['r2']:.3f}  {time.time() - started:.0f}s", flush=True)

    add(f"{fidelity} NEB barrier as the prediction", cheap_ev, None)
    add("extra trees, structure only (shipped component)", structure_means[1], structure_sigmas[1])
    base_mean, base_sigma = cross_fitted(structure_means, structure_sigmas, y, folds)
    add(f"stack, structure only (shipped: {' + '.join(structure_names)})", base_mean, base_sigma)

    outer_fid: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for form in FORMS:
        means, sigmas = out_of_fold_fidelity_trees(DESCRIPTOR_TREE_SPECS, form, x, cheap_ev, y, folds)
        outer_fid[form] = (means, sigmas)
        add(f"extra trees {FORM_LABELS[form]}", means[0], sigmas[0])
        add(f"boosting {FORM_LABELS[form]}", means[1], None)
        all_means, all_sigmas = np.vstack([structure_means, means]), np.vstack([structure_sigmas, sigmas])
        mean, sigma = cross_fitted(all_means, all_sigmas, y, folds)
        add(f"stack + fidelity trees {FORM_LABELS[form]}", mean, sigma, note="weights cross-fitted on the other outer folds")

    # nested: form and weights of each outer fold from inner folds only
    mean, sigma = np.zeros_like(y), np.zeros_like(y)
    chosen, inner_maes, weights_per_fold = [], [], []
    for f in range(5):
        train = np.flatnonzero(folds != f)
        test = folds == f
        inner = grouped_folds(list(groups[train]), N_INNER, SEED + 1)
        g_mean, g_sigma = combine_members(inner_gnn["location"][:, f, train], inner_gnn["scale"][:, f, train], 1.0)
        t_means, t_sigmas = out_of_fold_trees(DEFAULT_TREE_SPECS, structure_inputs.subset(train), y[train], inner)
        per_form = {}
        for form in FORMS:
            fm, fs = out_of_fold_fidelity_trees(DESCRIPTOR_TREE_SPECS, form, x[train], cheap_ev[train], y[train], inner)
            inner_means = np.vstack([g_mean, t_means, fm])
            inner_sigmas = np.vstack([g_sigma, t_sigmas, fs])
            inner_mean, _ = cross_fitted(inner_means, inner_sigmas, y[train], inner)
            per_form[form] = (float(np.abs(inner_mean - y[train]).mean()), inner_means)
        best = min(per_form, key=lambda k: per_form[k][0])
        chosen.append(best)
        inner_maes.append({k: round(v[0], 4) for k, v in per_form.items()})
        w = fit_stack_weights(per_form[best][1].T, y[train])
        weights_per_fold.append([round(float(v), 3) for v in w])
        outer_means = np.vstack([structure_means, outer_fid[best][0]])
        outer_sigmas = np.vstack([structure_sigmas, outer_fid[best][1]])
        mean[test], sigma[test] = combine_components(outer_means[:, test], outer_sigmas[:, test], w)
        print(f"outer fold {f}: inner stacked MAE {inner_maes[-1]} -> {best}", flush=True)
    add("stack + fidelity trees, form and weights chosen on inner folds (nested)", mean, sigma,
        note=f"forms per outer fold {chosen}")

    results = {
        "n_hops": len(hops), "n_outer_folds": 5, "n_inner_folds": N_INNER, "seed": SEED,
        "cheap_fidelity": fidelity, "n_with_cheap_barrier": int(np.isfinite(cheap_ev).sum()), "max_sites": args.max_sites,
        "components": [*structure_names, *(f"fidelity_{s.name}" for s in DESCRIPTOR_TREE_SPECS)],
        "nested_forms_per_outer_fold": chosen, "nested_inner_mae_per_form": inner_maes,
        "nested_weights_per_outer_fold": weights_per_fold, "rows": rows,
        "wall_time_s": round(time.time() - started, 1),
    }
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    subset = f" of at most {results['max_sites']} atoms" if results.get("max_sites") else ""
    lines = [(f"Grouped {results['n_outer_folds']}-fold CV (the shipped model's folds) on {results['n_hops']} hops{subset}, "
             f"all {results['n_with_cheap_barrier']} with a {results['cheap_fidelity']} NEB barrier (relaxed endpoints). "
             "GNN out-of-fold predictions from models/ensemble/oof_predictions.npz (not retrained). "
             "σ's factor per outer fold fitted on the other outer folds. `nan`: a point model (no σ)."),
             "", *metrics_table(results["rows"])]
    lines += ["", (f"Nested choice (inner {results['n_inner_folds']}-fold): forms per outer fold "
              f"{results['nested_forms_per_outer_fold']}; inner stacked MAE per form {results['nested_inner_mae_per_form']}; "
              f"weights ({', '.join(results['components'])}) {results['nested_weights_per_outer_fold']}.")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
