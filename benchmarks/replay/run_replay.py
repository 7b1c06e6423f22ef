"""Retrospective active learning on alem's 556 literature hops, labels hidden.

For each seed a random 10 % of the hops start labelled; each step refits the surrogate
(``surrogate.HeadEnsemble``: a bootstrap ensemble of small heads, NOT the fine-tuned GNN ensemble,
which is far too slow to refit ~550 times on a laptop) on fixed per-hop features -- either
``descriptors.hop_descriptor`` (``--features descriptor``) or the frozen pre-trained GNN's path
features (``--features gnn``, ``alem.training.features.frozen_path_features``: no barrier label
has touched them) -- then a batch of 10 is labelled,
chosen by each of alem's BoTorch strategies (the campaign's own ``alem.acquisition.select_batch``)
or at random. Recorded per step: (a) MAE on the still-unlabelled hops, (b) the fraction of all
good hops (E_m < 0.65 eV) labelled so far. The full-data reference error is the surrogate's
grouped 5-fold CV MAE with every label.

    python benchmarks/replay/run_replay.py                      # descriptor features -> ./descriptor/
    python benchmarks/replay/run_replay.py --features gnn       # frozen GNN features -> ./gnn/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from descriptors import descriptor_matrix  # noqa: E402
from surrogate import HeadEnsemble, PrequentialNoise, joint_draws_of  # noqa: E402

from alem.acquisition import PredictionTable, SelectionRequest, select_batch  # noqa: E402
from alem.acquisition.strategies import DISCOVER_FORM, EXPLORE_FORM  # noqa: E402
from alem.hops import GOOD_CONDUCTOR_THRESHOLD_EV, load_training_hops  # noqa: E402
from alem.training.cv import grouped_folds  # noqa: E402

STRATEGIES = ("random", "explore", "discover", "balanced")


def full_data_cv_mae(X: np.ndarray, y: np.ndarray, groups: list[str], seed: int, surrogate=HeadEnsemble) -> float:
    folds = grouped_folds(groups, 5, seed=seed)
    errors = np.empty_like(y)
    for fold in np.unique(folds):
        test = folds == fold
        model = surrogate(seed=seed).fit(X[~test], y[~test])
        errors[test] = np.abs(model.predict_members(X[test]).mean(0) - y[test])
    return float(errors.mean())


def run_one(X, y, ids, strategy, seed, initial, batch, max_labels, progress=None, task=None,
            threshold_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV, hop_cost: np.ndarray | None = None,
            cost_aware: bool = False, surrogate=HeadEnsemble, held_out: tuple[np.ndarray, np.ndarray] | None = None,
            joint_draws: int = 0, discover_form: str = DISCOVER_FORM, explore_form: str = EXPLORE_FORM,
            select=select_batch) -> dict:
    """One replay: labels added in batches by ``strategy`` until ``max_labels``; hops below
    ``threshold_ev`` count as good (for the found fraction and for discover's target).
    ``hop_cost`` (per hop, e.g. core-hours of its NEB) adds the labels' cumulative cost to the
    curve; ``cost_aware`` makes the selection divide its utility by it. ``surrogate(seed=...)``
    builds the per-step model (``fit``, ``predict_members``). ``held_out`` (features, labels of
    hops that are never in the pool) adds the model's MAE on them to the curve. ``joint_draws``:
    the acquisition's rows are that many joint draws (:func:`surrogate.joint_draws`: a member per
    row shared by every hop, plus per-hop Laplace noise) instead of the members themselves.
    ``discover_form``, ``explore_form``: what discover and explore maximise (``SelectionRequest``).
    ``select``: the batch selection (``select_batch``, or ``select_batch_botorch`` for variants
    that swap BoTorch acquisition functions)."""
    rng = np.random.default_rng(1000 + seed)
    labelled = list(initial)
    good = y < threshold_ev
    curve = {"n_labels": [], "mae_remainder": [], "found_good_fraction": []}
    if held_out is not None:
        curve["mae_held_out"] = []
    noise = PrequentialNoise(X, y, initial, surrogate, seed) if joint_draws else None
    if hop_cost is not None:
        curve["label_cost"] = []
    costs = {ids[k]: float(hop_cost[k]) for k in range(len(ids))} if cost_aware else {}
    while True:
        mask = np.zeros(len(y), bool)
        mask[labelled] = True
        model = surrogate(seed=seed).fit(X[mask], y[mask])
        members = model.predict_members(X)
        curve["n_labels"].append(int(mask.sum()))
        curve["mae_remainder"].append(float(np.abs(members.mean(0)[~mask] - y[~mask]).mean()))
        curve["found_good_fraction"].append(float(good[mask].sum() / good.sum()))
        if held_out is not None:
            curve["mae_held_out"].append(float(np.abs(model.predict_members(held_out[0]).mean(0) - held_out[1]).mean()))
        if hop_cost is not None:
            curve["label_cost"].append(float(hop_cost[mask].sum()))
        if progress is not None:
            progress.advance(task)
        if mask.sum() + batch > max_labels:
            return curve
        if strategy == "random":
            new = rng.choice(np.flatnonzero(~mask), size=batch, replace=False).tolist()
        else:
            rows = members
            if noise is not None:
                rows = joint_draws_of(members, noise.scale_ev(), joint_draws, np.random.default_rng([seed, len(labelled)]))
            table = PredictionTable.from_members(ids, rows)
            picks = select(table, SelectionRequest(strategy, batch, avoid=[ids[k] for k in labelled], threshold_ev=threshold_ev,
                                                   cost_core_hours_of=costs, discover_form=discover_form,
                                                   explore_form=explore_form))
            new = [p.index for p in picks]
            if noise is not None:
                noise.record(members.mean(0)[new], y[new])
        labelled.extend(new)


def labels_to_reach(curve: dict, key: str, target: float, below: bool) -> int | None:
    for n, value in zip(curve["n_labels"], curve[key]):
        if (value <= target) if below else (value >= target):
            return n
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--initial-fraction", type=float, default=0.10)
    parser.add_argument("--max-fraction", type=float, default=0.90)
    parser.add_argument("--features", choices=("descriptor", "gnn"), default="descriptor")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/replay/<features>/")
    args = parser.parse_args()

    from rich.progress import Progress

    started = time.time()
    hops = load_training_hops()
    if args.features == "gnn":
        from alem.training.features import frozen_path_features

        X = frozen_path_features(hops, progress=True)
        feature_text = f"{X.shape[1]} frozen pre-trained GNN path features (alem.training.features)"
    else:
        X = descriptor_matrix(hops)
        feature_text = f"{X.shape[1]} hop descriptors (benchmarks/replay/descriptors.py)"
    args.out = args.out or HERE / args.features
    y = np.array([h.barrier_ev for h in hops])
    ids = [h.hop_id for h in hops]
    groups = [h.group or h.hop_id for h in hops]
    n = len(hops)
    n_initial = round(args.initial_fraction * n)
    max_labels = int(args.max_fraction * n)
    steps = (max_labels - n_initial) // args.batch + 1
    results: dict = {
        "n_hops": n,
        "n_good": int((y < GOOD_CONDUCTOR_THRESHOLD_EV).sum()),
        "threshold_ev": GOOD_CONDUCTOR_THRESHOLD_EV,
        "batch": args.batch,
        "initial_labels": n_initial,
        "features": args.features,
        "surrogate": f"bootstrap ensemble of 8 MLP heads (64 hidden) on {feature_text}",
        "full_data_cv_mae": [],
        "runs": {s: [] for s in STRATEGIES},
    }
    with Progress() as progress:
        task = progress.add_task("replay", total=args.seeds * (len(STRATEGIES) * steps + 5))
        for seed in range(args.seeds):
            results["full_data_cv_mae"].append(full_data_cv_mae(X, y, groups, seed))
            progress.advance(task, 5)
            initial = np.random.default_rng(seed).choice(n, size=n_initial, replace=False).tolist()
            for strategy in STRATEGIES:
                curve = run_one(X, y, ids, strategy, seed, initial, args.batch, max_labels, progress, task)
                results["runs"][strategy].append({"seed": seed, **curve})
    reference = float(np.mean(results["full_data_cv_mae"]))
    summary = {}
    for strategy, runs in results["runs"].items():
        reach = [labels_to_reach(r, "mae_remainder", reference, below=True) for r in runs]
        found = [labels_to_reach(r, "found_good_fraction", 0.9, below=False) for r in runs]
        summary[strategy] = {
            "labels_to_full_data_error": reach,
            "labels_to_90pct_good": found,
            "fraction_to_full_data_error": [None if v is None else v / n for v in reach],
            "fraction_to_90pct_good": [None if v is None else v / n for v in found],
        }
    results["summary"] = summary
    results["wall_time_s"] = round(time.time() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    from report import write_markdown, write_plots

    write_plots(results, args.out)
    write_markdown(results, args.out / "results.md")
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
