"""Fitting the stack's tree components (:mod:`alem.inference.trees` holds what predicts with them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np

from alem.inference.trees import TreeSpec, predict_trees

#: The tree components of the shipped recipe (chosen on inner folds, benchmarks/cv/run_stack.py).
DEFAULT_TREE_SPECS = (
    TreeSpec("extra_trees", "extra_trees", {"n_estimators": 300, "max_features": 0.5, "n_jobs": 1}, log_target=True),
    TreeSpec(
        "gradient_boosting",
        "gradient_boosting",
        {"loss": "huber", "n_estimators": 300, "learning_rate": 0.05, "max_depth": 3, "subsample": 0.8},
        log_target=True,
    ),
)
#: Barriers are floored here before a log (the smallest literature barrier is 0.0035 eV).
LOG_FLOOR_EV = 1e-3


def save_trees(models: Sequence, path: Path) -> None:
    joblib.dump(list(models), path, compress=3)


def fit_trees(specs: Sequence[TreeSpec], features: np.ndarray, y_ev: np.ndarray, seed: int = 0) -> list:
    """One fitted estimator per spec, in order."""
    models = []
    for spec in specs:
        target = np.log(np.maximum(y_ev, LOG_FLOOR_EV)) if spec.log_target else y_ev
        models.append(spec.build(seed).fit(features, target))
    return models


def out_of_fold_trees(
    specs: Sequence[TreeSpec], features: np.ndarray, y_ev: np.ndarray, folds: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each component's barrier and σ for every hop, predicted by trees fitted on the other folds
    (``n_components x n_hops`` each)."""
    means = np.zeros((len(specs), len(y_ev)))
    sigmas = np.zeros_like(means)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        means[:, test], sigmas[:, test] = predict_trees(specs, fit_trees(specs, features[train], y_ev[train], seed), features[test])
    return means, sigmas
