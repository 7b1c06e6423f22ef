"""Stacking: one prediction from several barrier models (GNN ensemble, descriptor trees).

The path-aware GNN and trees on hand-made hop descriptors err differently (the GNN is best on
low barriers, the trees on the heavy tail of multivalent hops), so a weighted mean of the two
beats either. Weights are non-negative, sum to one and minimise the mean absolute error of
out-of-fold predictions (a small linear programme); σ is that of the mixture of the components'
predictive distributions, so the members' own spread and the components' disagreement both
count, times one calibration factor fitted on out-of-fold predictions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from alem.out_of_fold import members_mean_ev

#: Smallest σ a stacked prediction reports: point models (boosted trees) carry no spread of their
#: own, and a mixture of them alone would otherwise claim certainty.
SIGMA_FLOOR_EV = 0.01


def combine_members(location: np.ndarray, scale: np.ndarray, sigma_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and σ of the mixture of the members' Laplace distributions.

    Args:
        location: ``n_members x n_hops`` Laplace locations (eV).
        scale: ``n_members x n_hops`` Laplace scales (eV).
        sigma_scale: calibration factor applied to the mixture σ.

    Returns:
        ``(mean_ev, sigma_ev)``, each ``n_hops``; barriers are not negative, so the mean is clipped at 0.
    """
    variance = (2 * scale**2).mean(0) + location.var(0)
    return members_mean_ev(location), sigma_scale * np.sqrt(variance)


def combine_components(
    means_ev: np.ndarray, sigmas_ev: np.ndarray, weights: np.ndarray, sigma_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mixture of components.

    Args:
        means_ev: ``n_components x n_hops`` predicted means.
        sigmas_ev: ``n_components x n_hops`` predictive σ of each component (0 for a point model).
        weights: ``n_components`` non-negative weights summing to one.
        sigma_scale: calibration factor applied to the mixture σ.

    Returns:
        ``(mean_ev, sigma_ev)``, each ``n_hops``; the mean clipped at 0, σ at least
        :data:`SIGMA_FLOOR_EV` before calibration.
    """
    w = np.asarray(weights, dtype=float)[:, None]
    mean = (w * means_ev).sum(0)
    variance = (w * (sigmas_ev**2 + (means_ev - mean) ** 2)).sum(0)
    return np.clip(mean, 0.0, None), sigma_scale * np.maximum(np.sqrt(variance), SIGMA_FLOOR_EV)


def fit_stack_weights(predictions_ev: np.ndarray, y_ev: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that minimise the MAE of ``predictions_ev @ w``.

    Args:
        predictions_ev: ``n_hops x n_components`` out-of-fold predictions.
        y_ev: ``n_hops`` reference barriers.

    Returns:
        ``n_components`` weights.
    """
    n, k = predictions_ev.shape
    # variables: w (k), positive and negative residual parts (n each); minimise their sum
    cost = np.r_[np.zeros(k), np.ones(2 * n)] / n
    equality = np.zeros((n + 1, k + 2 * n))
    equality[:n, :k] = predictions_ev
    equality[:n, k : k + n] = -np.eye(n)
    equality[:n, k + n :] = np.eye(n)
    equality[n, :k] = 1.0
    rhs = np.r_[y_ev, 1.0]
    result = linprog(cost, A_eq=equality, b_eq=rhs, bounds=[(0, None)] * (k + 2 * n), method="highs")
    if not result.success:
        return np.full(k, 1.0 / k)
    weights = np.clip(result.x[:k], 0.0, None)
    return weights / weights.sum()


def cross_fitted_weights(predictions_ev: np.ndarray, y_ev: np.ndarray, folds: np.ndarray) -> dict[int, np.ndarray]:
    """Per fold, weights fitted on the other folds' out-of-fold predictions (never on that fold's
    labels): what the reported CV score of a stack uses when no inner folds were run."""
    return {int(f): fit_stack_weights(predictions_ev[folds != f], y_ev[folds != f]) for f in np.unique(folds)}
