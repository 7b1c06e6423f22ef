"""Nested grouped CV of the stacked model and of every ingredient (issue: accuracy levers).

Outer folds: the grouped 5-fold split of results.md (folds by compound, seed 0), 556 hops.
Inside each outer fold's training part, a grouped 4-fold split gives out-of-fold predictions of
every component; the stacking weights of that outer fold are fitted on those inner predictions
only, so the outer-fold score of the stack is a test number for the weights. σ's calibration
factor of an outer fold is fitted on the other outer folds' stacked predictions.

Which components ship is chosen the same way: per outer fold, among the declared candidate sets
(:data:`CANDIDATE_SETS`), the one whose stack scores best on that fold's inner folds (weights
cross-fitted over the inner folds) predicts the outer fold; the "selected on inner folds" row is
therefore a test number for the choice too. Rows of single candidate sets are not: several were
looked at.

GNN predictions: outer from the shipped model's ``oof_predictions.npz`` (``alem train``'s grouped
CV, 5 members per fold); inner from ``gnn_oof.py --level inner --members 5`` (an ensemble of 5 per
inner fit, like the outer predictions the weights are applied to; ``gnn_inner_v2.npz`` holds the
earlier one-member inner fits). Trees and the kernel model are fitted here (about a minute).

    python benchmarks/cv/run_stack.py --gnn-outer models/ensemble/oof_predictions.npz \
        --gnn-inner benchmarks/cv/gnn_inner_v2_5members.npz --gnn-outer-v1 benchmarks/cv/gnn_outer_v1.npz

Writes ``stack_results.json`` and ``stack_results.md`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor

from alem.hops import load_training_hops
from alem.inference.stacking import combine_components, combine_members, cross_fitted_weights, fit_stack_weights
from alem.inference.trees import TreeSpec, tree_features
from alem.metrics import barrier_metrics, fit_sigma_scale
from alem.model_dir import default_pretrained_path
from alem.training.cv import grouped_folds
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet
from alem.training.trees import BACKBONE_SVR, EXTRA_TREES, GRADIENT_BOOSTING, out_of_fold_trees

HERE = Path(__file__).resolve().parent
N_OUTER, N_INNER, SEED = 5, 4, 0
#: Every non-GNN component measured (log E_m targets, v2 descriptors + ion; backbone features of
#: the shipped pre-trained backbone where named).
COMPONENTS = (
    EXTRA_TREES,
    GRADIENT_BOOSTING,
    TreeSpec("svr_descriptors", "svr", {"n_components": 8, "C": 3.0, "epsilon": 0.05}, log_target=True),
    BACKBONE_SVR,
)
#: The stacks a choice is made among (GNN first where present), declared before the selection.
CANDIDATE_SETS = {
    "GNN + extra trees": ("gnn", "extra_trees"),
    "GNN + extra trees + boosting (shipped before)": ("gnn", "extra_trees", "gradient_boosting"),
    "GNN + extra trees + SVR on descriptors": ("gnn", "extra_trees", "svr_descriptors"),
    "GNN + extra trees + SVR on descriptors and backbone": ("gnn", "extra_trees", "svr_backbone"),
    "GNN + extra trees + boosting + SVR on descriptors and backbone": ("gnn", "extra_trees", "gradient_boosting", "svr_backbone"),
}
#: Stacks reported to show what each part adds (not candidates: the GNN stays in what ships).
ABLATION_SETS = {
    "extra trees + boosting (no GNN)": ("extra_trees", "gradient_boosting"),
    "extra trees + SVR on descriptors and backbone (no GNN)": ("extra_trees", "svr_backbone"),
    "GNN + SVR on descriptors and backbone (no trees)": ("gnn", "svr_backbone"),
}
KEYS = ("mae_ev", "mae_below_1p5_ev", "rmse_ev", "r2", "accuracy_065", "precision_065", "recall_065",
        "spearman_sigma_abs_err", "coverage_68", "coverage_90", "coverage_95", "nll")


def outer_gnn(path: Path, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ensemble mean and (uncalibrated) mixture σ per hop from an outer-level GNN file."""
    data = np.load(path)
    location, scale = data["location"], data["scale"]
    if location.ndim == 3:  # members x folds x hops, NaN outside each fold's test part
        location, scale = np.nansum(location, axis=1), np.nansum(scale, axis=1)
    assert np.allclose(data["y"], y)
    return combine_members(location, scale, 1.0)


def inner_gnn(path: Path, fold: int, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(path)
    location, scale = data["location"][:, fold, train], data["scale"][:, fold, train]
    assert np.isfinite(location).all()
    return combine_members(location, scale, 1.0)


def scored(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray, folds: np.ndarray | None) -> dict:
    """Metrics with σ calibrated per fold on the other folds (or on all, when ``folds`` is None,
    for components that are only ever reported, never combined)."""
    sigma = np.maximum(sigma, 1e-3)
    if folds is None:
        calibrated = sigma * fit_sigma_scale(y, mean, sigma)
    else:
        calibrated = np.empty_like(sigma)
        for f in np.unique(folds):
            rest, this = folds != f, folds == f
            calibrated[this] = sigma[this] * fit_sigma_scale(y[rest], mean[rest], sigma[rest])
    metrics = barrier_metrics(y, mean, calibrated)
    low = y < 1.5
    metrics["mae_below_1p5_ev"] = float(np.abs(mean - y)[low].mean())
    return metrics


def per_ion_mae(y, mean, ions) -> dict:
    return {ion: round(float(np.abs(mean - y)[ions == ion].mean()), 3) for ion in sorted(set(ions))}


def descriptor_baselines(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions of plain descriptor models (no stacking)."""
    models = {
        "random forest (500 trees)": lambda: RandomForestRegressor(500, max_features=0.33, n_jobs=1, random_state=0),
        "HistGradientBoosting (L1)": lambda: HistGradientBoostingRegressor(
            loss="absolute_error", max_iter=300, learning_rate=0.05, random_state=0
        ),
        "GradientBoosting (Huber)": lambda: GradientBoostingRegressor(
            loss="huber", n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8, random_state=0
        ),
        "extra trees (300)": lambda: ExtraTreesRegressor(300, max_features=0.5, n_jobs=1, random_state=0),
    }
    out = {}
    for name, make in models.items():
        pred = np.zeros_like(y)
        for f in range(N_OUTER):
            tr = folds != f
            pred[~tr] = make().fit(x[tr], y[tr]).predict(x[~tr])
        out[name] = pred
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gnn-outer", type=Path, required=True)
    parser.add_argument("--gnn-inner", type=Path, required=True)
    parser.add_argument("--gnn-outer-v1", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "stack_results.json")
    args = parser.parse_args()
    started = time.time()
    hops = load_training_hops()
    y = np.array([h.barrier_ev for h in hops])
    ions = np.array([h.working_ion for h in hops])
    groups = np.array([h.group for h in hops])
    folds = grouped_folds(list(groups), N_OUTER, SEED)
    x1, x2 = tree_features(hops, "v1"), tree_features(hops, "v2")
    rows: list[dict] = []

    def add(name: str, mean: np.ndarray, sigma: np.ndarray | None, note: str = "", cross_fitted: bool = True) -> None:
        if sigma is None:
            m = scored(y, mean, np.full_like(mean, np.std(y)), None)
            for key in ("spearman_sigma_abs_err", "coverage_68", "coverage_90", "coverage_95", "nll"):
                m[key] = float("nan")
        else:
            m = scored(y, mean, sigma, folds if cross_fitted else None)
        rows.append({"model": name, "note": note, **{k: m[k] for k in KEYS}, "per_ion_mae_ev": per_ion_mae(y, mean, ions)})
        print(f"{name:70s} MAE {m['mae_ev']:.3f}  R2 {m['r2']:.3f}", flush=True)

    mean_pred = np.zeros_like(y)
    for f in range(N_OUTER):
        mean_pred[folds == f] = y[folds != f].mean()
    add("predict the training-fold mean", mean_pred, None)
    for label, x in (("v1 descriptors (24)", x1), ("v2 descriptors (37)", x2)):
        for name, pred in descriptor_baselines(x, y, folds).items():
            add(f"{name}, {label} + ion", pred, None)
    pretrained = Pretrained.load(default_pretrained_path())
    training_set = TrainingSet.prepare(hops, pretrained, FinetuneConfig(), torch.device("cpu"))
    inputs = training_set.component_inputs(hops, COMPONENTS, torch.device("cpu"))
    assert np.allclose(inputs.descriptors, x2)
    tree_means, tree_sigmas = out_of_fold_trees(COMPONENTS, inputs, y, folds)
    for k, spec in enumerate(COMPONENTS):
        sigma = tree_sigmas[k] if spec.kind in ("extra_trees", "random_forest") else None
        reads = "v2 descriptors + ion + backbone PCA(8)" if spec.reads_backbone else "v2 descriptors + ion"
        add(f"{spec.name}, log E_m, {reads} (stack component)", tree_means[k], sigma)

    gnn_v2_mean, gnn_v2_sigma = outer_gnn(args.gnn_outer, y)
    add("GNN ensemble (5 members, frozen backbone), v2 descriptors in the head", gnn_v2_mean, gnn_v2_sigma)
    if args.gnn_outer_v1:
        gnn_v1_mean, gnn_v1_sigma = outer_gnn(args.gnn_outer_v1, y)
        add("GNN ensemble (5 members), v1 descriptors (shipped before)", gnn_v1_mean, gnn_v1_sigma)
        add("plain average: GNN v1 ensemble + random forest v1 (issue's reference)",
            0.5 * (gnn_v1_mean + descriptor_baselines(x1, y, folds)["random forest (500 trees)"]), None)

    names = ["gnn", *(spec.name for spec in COMPONENTS)]
    outer_means = np.vstack([gnn_v2_mean, tree_means])
    outer_sigmas = np.vstack([gnn_v2_sigma, tree_sigmas])
    inner_cache: dict[int, tuple] = {}
    for f in range(N_OUTER):
        train = np.flatnonzero(folds != f)
        inner = grouped_folds(list(groups[train]), N_INNER, SEED + 1)
        g_mean, _ = inner_gnn(args.gnn_inner, f, train)
        t_means, _ = out_of_fold_trees(COMPONENTS, inputs.subset(train), y[train], inner)
        inner_cache[f] = (train, inner, np.vstack([g_mean, t_means]))

    def stacked(index: list[int], f: int) -> tuple[np.ndarray, float, list[float]]:
        """Outer-fold predictions (weights fitted on the inner predictions) and the inner score."""
        train, inner, inner_means = inner_cache[f]
        w = fit_stack_weights(inner_means[index].T, y[train])
        inner_pred = np.zeros(len(train))
        for g, wg in cross_fitted_weights(inner_means[index].T, y[train], inner).items():
            inner_pred[inner == g] = inner_means[index][:, inner == g].T @ wg
        return w, float(np.abs(inner_pred - y[train]).mean()), [round(float(v), 3) for v in w]

    weights_report, inner_scores = {}, {}
    for name, parts in {**CANDIDATE_SETS, **ABLATION_SETS}.items():
        index = [names.index(p) for p in parts]
        mean, sigma = np.zeros_like(y), np.zeros_like(y)
        weights_report[name], inner_scores[name] = [], []
        for f in range(N_OUTER):
            w, inner_mae, rounded = stacked(index, f)
            weights_report[name].append(rounded)
            inner_scores[name].append(round(inner_mae, 4))
            test = folds == f
            mean[test], sigma[test] = combine_components(outer_means[index][:, test], outer_sigmas[index][:, test], w)
        add(f"stack (nested weights): {name}", mean, sigma, note=f"weights per outer fold {weights_report[name]}")
    mean, sigma = np.zeros_like(y), np.zeros_like(y)
    chosen = []
    for f in range(N_OUTER):
        best = min(CANDIDATE_SETS, key=lambda name: inner_scores[name][f])
        chosen.append(best)
        index = [names.index(p) for p in CANDIDATE_SETS[best]]
        w, _, _ = stacked(index, f)
        test = folds == f
        mean[test], sigma[test] = combine_components(outer_means[index][:, test], outer_sigmas[index][:, test], w)
    add("stack selected on inner folds among the candidate sets (test number for the choice)", mean, sigma,
        note=f"chosen per outer fold: {chosen}")

    results = {
        "n_hops": len(hops), "n_outer_folds": N_OUTER, "n_inner_folds": N_INNER, "seed": SEED,
        "components": names,
        "tree_specs": [s.as_dict() for s in COMPONENTS],
        "candidate_sets": {k: list(v) for k, v in CANDIDATE_SETS.items()},
        "inner_stack_mae_per_outer_fold": inner_scores,
        "chosen_per_outer_fold": chosen,
        "stack_weights_per_outer_fold": weights_report, "rows": rows,
        "wall_time_s": round(time.time() - started, 1),
    }
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def metrics_table(rows: list[dict]) -> list[str]:
    """Markdown table lines of benchmark rows (one per model, the metrics of :data:`KEYS`)."""
    head = ["| model | MAE (eV) | MAE E_m<1.5 | RMSE | R² | acc@0.65 | prec | rec | ρ(σ,\\|err\\|) | cov68 | cov90 | cov95 | NLL |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    return head + [f"| {r['model']} | " + " | ".join(f"{r[k]:.3f}" for k in KEYS) + " |" for r in rows]


def markdown(results: dict) -> str:
    lines = [f"Grouped {results['n_outer_folds']}-fold CV (folds by compound, seed {results['seed']}) on {results['n_hops']} hops; "
             f"stack weights fitted on grouped {results['n_inner_folds']}-fold inner folds of each outer training part; "
             "σ's factor per outer fold fitted on the other outer folds. `nan`: a point model (no σ).", "", *metrics_table(results["rows"])]
    lines += ["", "Per-ion MAE (eV):", "", "| model | " + " | ".join(results["rows"][0]["per_ion_mae_ev"]) + " |",
              "|---|" + "---|" * len(results["rows"][0]["per_ion_mae_ev"])]
    for r in results["rows"]:
        lines.append(f"| {r['model']} | " + " | ".join(f"{v:.3f}" for v in r["per_ion_mae_ev"].values()) + " |")
    lines += ["", "Inner-fold stack MAE per outer fold (weights cross-fitted over the inner folds; what the choice reads):", ""]
    for name, scores in results["inner_stack_mae_per_outer_fold"].items():
        lines.append(f"- {name}: {scores} (mean {np.mean(scores):.4f})")
    lines += ["", f"Chosen per outer fold: {results['chosen_per_outer_fold']}", ""]
    lines += ["Stack weights per outer fold (components in the row name's order):", ""]
    for name, w in results["stack_weights_per_outer_fold"].items():
        lines.append(f"- {name}: {w}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
