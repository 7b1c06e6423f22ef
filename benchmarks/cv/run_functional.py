"""Functionals as fidelities under grouped CV: does the model need to know a label's functional
(issue 21, item 3)?

The literature set mixes DFT functionals (GGA 490, GGA+U 41, SCAN 17, LDA 8 of the 556 training
hops). The question: on the GGA+U and SCAN hops, does (a) the functional as a model input, (b)
training on GGA only, or (c) training on the test hop's own functional only, beat the pooled model
the shipped stack is (all functionals, structure only)?

Measured with the stack's cheap components, refitted here for every variant: the extra trees on
descriptors and the kernel model (SVR on descriptors + pre-trained backbone features) of
``DEFAULT_TREE_SPECS``. The GNN members are NOT refitted: their out-of-fold predictions come from
the shipped model's ``oof_predictions.npz`` (outer) and ``gnn_inner_v2_5members.npz`` (inner),
both trained pooled without the functional, and enter every variant's stack unchanged. The
"functional input" variant appends a one-hot of the functional (GGA, GGA+U, SCAN, LDA) to the
components' descriptors.

Folds: the shipped model's grouped 5-fold split by compound (seed 0). Per variant the stack's
weights are cross-fitted on the other outer folds. The nested row chooses, per outer fold, the
variant whose stack (weights cross-fitted on the inner folds) has the lowest inner MAE on the
GGA+U and SCAN hops of that fold's training part (grouped 4-fold inner split, seed 1), fits
the weights on the inner predictions and predicts the outer fold: a test number for the choice.
Differences to the pooled stack are paired (same hops) with their standard error.

    nice python benchmarks/cv/run_functional.py     # ~5 minutes on one core

Writes ``functional_results.json`` and ``functional_results.md`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from run_stack import N_INNER, SEED, inner_gnn

from alem.hops import load_training_hops
from alem.inference.stacking import combine_components, cross_fitted_weights, fit_stack_weights
from alem.inference.trees import ComponentInputs, predict_trees
from alem.model_dir import OOF_FILENAME, default_pretrained_path
from alem.training.cv import grouped_folds
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet
from alem.training.trees import DEFAULT_TREE_SPECS, fit_trees

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE.parents[1] / "models" / "ensemble"
FUNCTIONALS = ("GGA", "GGA+U", "SCAN", "LDA")
#: The hops the question is about.
MINORITY = ("GGA+U", "SCAN")
#: Fewer training hops of its own functional than this: the hop is predicted by the pooled fit.
MIN_OWN_TRAINING = 5
#: Hops (over outer and inner fits) that fell back to the pooled fit, per variant.
FALLBACKS: dict[str, int] = {}
VARIANTS = {
    "pooled": "all functionals, structure only (shipped)",
    "functional_input": "all functionals + functional one-hot as input",
    "gga_only": "trained on GGA hops only",
    "own_functional_only": "trained on the test hop's own functional only",
}


def with_functional(inputs: ComponentInputs, xc: np.ndarray) -> ComponentInputs:
    one_hot = np.stack([xc == f for f in FUNCTIONALS], axis=1).astype(np.float32)
    return ComponentInputs(np.hstack([inputs.descriptors, one_hot]), inputs.backbone)


def variant_oof(variant: str, inputs: ComponentInputs, y: np.ndarray, xc: np.ndarray,
                folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold means and σ (``n_components x n_hops``) of the components under ``variant``."""
    if variant == "functional_input":
        inputs = with_functional(inputs, xc)
    means = np.zeros((len(DEFAULT_TREE_SPECS), len(y)))
    sigmas = np.zeros_like(means)
    for fold in np.unique(folds):
        test = folds == fold
        if variant == "own_functional_only":
            groups = [(xc == f, xc == f) for f in FUNCTIONALS]
        elif variant == "gga_only":
            groups = [(xc == "GGA", np.ones_like(test))]
        else:
            groups = [(np.ones_like(test), np.ones_like(test))]
        for train_mask, test_mask in groups:
            train, where = (folds != fold) & train_mask, test & test_mask
            if not where.any():
                continue
            if train.sum() < MIN_OWN_TRAINING:  # no (or almost no) hop of that functional outside the fold
                train = folds != fold
                FALLBACKS[variant] = FALLBACKS.get(variant, 0) + int(where.sum())
            models = fit_trees(DEFAULT_TREE_SPECS, inputs.subset(train), y[train])
            means[:, where], sigmas[:, where] = predict_trees(DEFAULT_TREE_SPECS, models, inputs.subset(where))
    return means, sigmas


def stacked(gnn: tuple[np.ndarray, np.ndarray], components: tuple[np.ndarray, np.ndarray], y: np.ndarray,
            folds: np.ndarray) -> np.ndarray:
    """Stacked mean, each fold's weights fitted on the other folds."""
    means = np.vstack([gnn[0], components[0]])
    sigmas = np.vstack([gnn[1], components[1]])
    out = np.zeros_like(y)
    for f, w in cross_fitted_weights(means.T, y, folds).items():
        out[folds == f] = combine_components(means[:, folds == f], sigmas[:, folds == f], w)[0]
    return out


def mae_by_functional(y: np.ndarray, mean: np.ndarray, xc: np.ndarray) -> dict[str, float]:
    err = np.abs(mean - y)
    out = {f: round(float(err[xc == f].mean()), 4) for f in FUNCTIONALS}
    out["GGA+U and SCAN"] = round(float(err[np.isin(xc, MINORITY)].mean()), 4)
    out["all"] = round(float(err.mean()), 4)
    return out


def paired_difference(y: np.ndarray, mean: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean of |error| - |reference error| over ``mask`` and its standard error (eV)."""
    d = (np.abs(mean - y) - np.abs(reference - y))[mask]
    return {"delta_mae_ev": round(float(d.mean()), 4), "se_ev": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gnn-inner", type=Path, default=HERE / "gnn_inner_v2_5members.npz")
    parser.add_argument("--out", type=Path, default=HERE / "functional_results.json")
    args = parser.parse_args()
    started = time.time()
    torch.set_num_threads(1)
    hops = load_training_hops()
    oof = np.load(MODEL_DIR / OOF_FILENAME)
    assert list(oof["hop_id"]) == [h.hop_id for h in hops]
    y, folds = oof["y"], oof["folds"]
    groups = np.array([h.group for h in hops])
    assert (folds == grouped_folds(list(groups), 5, SEED)).all()
    xc = np.array([h.provenance.fidelity.split(":", 1)[1] for h in hops])
    minority = np.isin(xc, MINORITY)
    training_set = TrainingSet.prepare(hops, Pretrained.load(default_pretrained_path()), FinetuneConfig(), torch.device("cpu"))
    inputs = training_set.component_inputs(hops, DEFAULT_TREE_SPECS, torch.device("cpu"))
    print(f"features ready {time.time() - started:.0f}s", flush=True)
    gnn_names = [str(n) for n in oof["component_names"]]
    assert gnn_names[0] == "gnn"
    gnn = (oof["component_mean"][0], oof["component_sigma"][0])

    outer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    stacks: dict[str, np.ndarray] = {}
    for variant in VARIANTS:
        outer[variant] = variant_oof(variant, inputs, y, xc, folds)
        stacks[variant] = stacked(gnn, outer[variant], y, folds)
        for name, mean in (("extra trees", outer[variant][0][0]), ("kernel model", outer[variant][0][1]),
                           ("stack (GNN + both)", stacks[variant])):
            rows.append({"variant": variant, "model": name, "mae_ev": mae_by_functional(y, mean, xc)})
        print(f"{variant:20s} stack MAE {rows[-1]['mae_ev']}  {time.time() - started:.0f}s", flush=True)

    # nested: the variant of each outer fold chosen on its inner folds (GGA+U and SCAN inner MAE)
    nested = np.zeros_like(y)
    chosen, inner_maes = [], []
    for f in range(5):
        train = np.flatnonzero(folds != f)
        test = folds == f
        inner = grouped_folds(list(groups[train]), N_INNER, SEED + 1)
        g_inner = inner_gnn(args.gnn_inner, f, train)
        sub = inputs.subset(train)
        per_variant = {}
        for variant in VARIANTS:
            c_inner = variant_oof(variant, sub, y[train], xc[train], inner)
            mean = stacked(g_inner, c_inner, y[train], inner)
            per_variant[variant] = (float(np.abs(mean - y[train])[minority[train]].mean()), c_inner)
        best = min(per_variant, key=lambda k: per_variant[k][0])
        chosen.append(best)
        inner_maes.append({k: round(v[0], 4) for k, v in per_variant.items()})
        w = fit_stack_weights(np.vstack([g_inner[0], per_variant[best][1][0]]).T, y[train])
        nested[test] = combine_components(np.vstack([gnn[0], outer[best][0]])[:, test],
                                          np.vstack([gnn[1], outer[best][1]])[:, test], w)[0]
        print(f"outer fold {f}: inner GGA+U/SCAN MAE {inner_maes[-1]} -> {best}", flush=True)
    rows.append({"variant": "nested choice", "model": "stack (GNN + both)", "mae_ev": mae_by_functional(y, nested, xc)})
    stacks["nested choice"] = nested

    differences = {
        name: {
            "GGA+U": paired_difference(y, mean, stacks["pooled"], xc == "GGA+U"),
            "SCAN": paired_difference(y, mean, stacks["pooled"], xc == "SCAN"),
            "GGA+U and SCAN": paired_difference(y, mean, stacks["pooled"], minority),
            "all": paired_difference(y, mean, stacks["pooled"], np.ones_like(minority)),
        }
        for name, mean in stacks.items() if name != "pooled"
    }
    results = {
        "n_hops": len(hops), "n_per_functional": {f: int((xc == f).sum()) for f in FUNCTIONALS},
        "n_outer_folds": 5, "n_inner_folds": N_INNER, "seed": SEED,
        "components_refitted": [s.name for s in DEFAULT_TREE_SPECS],
        "gnn": "out-of-fold predictions of the shipped model (pooled, no functional input), not refitted",
        "variants": VARIANTS, "rows": rows,
        "stack_difference_to_pooled": differences,
        "own_functional_fallbacks": {"min_training_hops": MIN_OWN_TRAINING, "predictions_from_pooled_fit": dict(FALLBACKS)},
        "nested_variant_per_outer_fold": chosen, "nested_inner_minority_mae": inner_maes,
        "wall_time_s": round(time.time() - started, 1),
    }
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    n = results["n_per_functional"]
    columns = [*FUNCTIONALS, "GGA+U and SCAN", "all"]
    lines = [
        f"Grouped {results['n_outer_folds']}-fold CV by compound (the shipped model's folds), {results['n_hops']} hops "
        f"({', '.join(f'{k} {v}' for k, v in n.items())}). Refitted per variant: {', '.join(results['components_refitted'])}; "
        f"GNN: {results['gnn']}. MAE in eV.",
        "",
        "| variant | model | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for row in results["rows"]:
        cells = " | ".join(f"{row['mae_ev'][c]:.3f}" for c in columns)
        lines.append(f"| {results['variants'].get(row['variant'], row['variant'])} | {row['model']} | {cells} |")
    lines += ["", "Stack minus pooled stack, paired over the same hops (mean Δ|error| ± standard error, eV; negative = better):", "",
              "| variant | GGA+U | SCAN | GGA+U and SCAN | all |", "|---|---|---|---|---|"]
    for name, diff in results["stack_difference_to_pooled"].items():
        cells = " | ".join(f"{diff[k]['delta_mae_ev']:+.3f} ± {diff[k]['se_ev']:.3f}" for k in ("GGA+U", "SCAN", "GGA+U and SCAN", "all"))
        lines.append(f"| {results['variants'].get(name, name)} | {cells} |")
    fallback = results["own_functional_fallbacks"]
    lines += ["", f"'Own functional only': a hop whose functional has fewer than {fallback['min_training_hops']} training hops "
              f"outside its fold is predicted by the pooled fit ({fallback['predictions_from_pooled_fit']} predictions, "
              "outer and inner fits together)."]
    lines += ["", f"Nested choice (inner {results['n_inner_folds']}-fold, lowest inner GGA+U/SCAN MAE): "
              f"{results['nested_variant_per_outer_fold']}; inner MAE per variant {results['nested_inner_minority_mae']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
