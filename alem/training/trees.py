"""Fitting the stack's tree components (:mod:`alem.inference.trees` holds what predicts with them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alem.inference.trees import ComponentInputs, TreeSpec, as_component_inputs, fit_tree, predict_trees

EXTRA_TREES = TreeSpec("extra_trees", "extra_trees", {"n_estimators": 300, "max_features": 0.5, "n_jobs": 1}, log_target=True)
GRADIENT_BOOSTING = TreeSpec(
    "gradient_boosting",
    "gradient_boosting",
    {"loss": "huber", "n_estimators": 300, "learning_rate": 0.05, "max_depth": 3, "subsample": 0.8},
    log_target=True,
)
BACKBONE_SVR = TreeSpec(
    "svr_backbone", "svr", {"n_components": 8, "C": 3.0, "epsilon": 0.05}, log_target=True, inputs="descriptors+backbone"
)
#: Trees on descriptors alone: the previous shipped recipe, and what the fidelity-aware add-on
#: fits beside a cheap barrier (:mod:`alem.training.fidelity_aware`).
DESCRIPTOR_TREE_SPECS = (EXTRA_TREES, GRADIENT_BOOSTING)
#: The non-GNN components of the shipped recipe, chosen on inner folds among declared candidate
#: sets (benchmarks/cv/run_stack.py): boosting dropped, the backbone kernel model added.
DEFAULT_TREE_SPECS = (EXTRA_TREES, BACKBONE_SVR)


def default_tree_specs(freeze: str) -> tuple[TreeSpec, ...]:
    """The recipe's components for a freezing strategy: the kernel model reads the pre-trained
    backbone, which only a frozen backbone keeps in every member, so other strategies stack the
    descriptor trees of :data:`DESCRIPTOR_TREE_SPECS` instead."""
    return DEFAULT_TREE_SPECS if freeze == "frozen" else DESCRIPTOR_TREE_SPECS


def fit_trees(specs: Sequence[TreeSpec], features: np.ndarray | ComponentInputs, y_ev: np.ndarray, seed: int = 0) -> list:
    """One fitted estimator per spec, in order."""
    inputs = as_component_inputs(features)
    return [fit_tree(spec, inputs, y_ev, seed) for spec in specs]


def out_of_fold_trees(
    specs: Sequence[TreeSpec], features: np.ndarray | ComponentInputs, y_ev: np.ndarray, folds: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each component's barrier and σ for every hop, predicted by models fitted on the other folds
    (``n_components x n_hops`` each)."""
    inputs = as_component_inputs(features)
    means = np.zeros((len(specs), len(y_ev)))
    sigmas = np.zeros_like(means)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        models = fit_trees(specs, inputs.subset(train), y_ev[train], seed)
        means[:, test], sigmas[:, test] = predict_trees(specs, models, inputs.subset(test))
    return means, sigmas
