"""Systematic search (Optuna, TPE) of the extra-trees component on inner folds only.

The objective is the mean MAE over the grouped 4-fold inner CVs of the five outer training parts
(the same inner folds as run_stack.py), so no outer-fold label is seen. The best trial is then
scored once on the outer folds beside the shipped default, which makes that outer number a test
number for the search. Budget: ``--trials`` trials or ``--minutes`` of wall time, whichever ends first.

    python benchmarks/cv/tune_trees.py --trials 40 --minutes 12

Writes ``tune_trees.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optuna

from alem.hops import load_training_hops
from alem.inference.trees import TreeSpec, tree_features
from alem.training.cv import grouped_folds
from alem.training.trees import DEFAULT_TREE_SPECS, out_of_fold_trees

HERE = Path(__file__).resolve().parent


def cv_mae(spec: TreeSpec, x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> float:
    return float(np.abs(out_of_fold_trees([spec], x, y, folds)[0][0] - y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=12.0)
    args = parser.parse_args()
    hops = load_training_hops()
    y = np.array([h.barrier_ev for h in hops])
    groups = np.array([h.group for h in hops])
    outer = grouped_folds(list(groups), 5, 0)
    x = tree_features(hops, "v2")
    inner = [(np.flatnonzero(outer != f), grouped_folds(list(groups[outer != f]), 4, 1)) for f in range(5)]

    def inner_mae(spec: TreeSpec) -> float:
        return float(np.mean([cv_mae(spec, x[train], y[train], folds) for train, folds in inner]))

    def objective(trial: optuna.Trial) -> float:
        spec = TreeSpec("extra_trees", "extra_trees", {
            "n_estimators": trial.suggest_categorical("n_estimators", [150, 300, 500]),
            "max_features": trial.suggest_float("max_features", 0.15, 1.0),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 6),
            "max_depth": trial.suggest_categorical("max_depth", [None, 8, 12, 20]),
            "n_jobs": 1,
        }, log_target=trial.suggest_categorical("log_target", [True, False]))
        return inner_mae(spec)

    started = time.time()
    default = DEFAULT_TREE_SPECS[0]
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial({"n_estimators": 300, "max_features": 0.5, "min_samples_leaf": 1, "max_depth": None, "log_target": True})
    study.optimize(objective, n_trials=args.trials, timeout=args.minutes * 60)
    best = study.best_params
    tuned = TreeSpec("extra_trees", "extra_trees", {k: v for k, v in best.items() if k != "log_target"} | {"n_jobs": 1},
                     log_target=best["log_target"])
    result = {
        "n_trials": len(study.trials), "wall_time_s": round(time.time() - started, 1),
        "search_space": "n_estimators {150,300,500}, max_features [0.15,1], min_samples_leaf 1..6, max_depth {None,8,12,20}, log_target",
        "default": default.as_dict(), "default_inner_mae_ev": study.trials[0].value,
        "best": tuned.as_dict(), "best_inner_mae_ev": study.best_value,
        "default_outer_mae_ev": cv_mae(default, x, y, outer), "best_outer_mae_ev": cv_mae(tuned, x, y, outer),
    }
    (HERE / "tune_trees.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    main()
