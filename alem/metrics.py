"""Accuracy and uncertainty-quality metrics for barrier predictions."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

COVERAGE_LEVELS = (0.68, 0.90, 0.95)


def interval_coverage(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray, level: float) -> float:
    """Fraction of references inside the central Gaussian interval of probability ``level``."""
    half_width = stats.norm.ppf(0.5 + level / 2) * sigma
    return float(np.mean(np.abs(y - mean) <= half_width))


def gaussian_nll(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> float:
    return float(np.mean(0.5 * np.log(2 * math.pi * sigma**2) + 0.5 * ((y - mean) / sigma) ** 2))


def barrier_metrics(
    y_ev: np.ndarray, mean_ev: np.ndarray, sigma_ev: np.ndarray, threshold_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV
) -> dict[str, float]:
    """Regression, good-conductor classification (E_m < threshold) and calibration metrics."""
    y_ev, mean_ev, sigma_ev = map(lambda a: np.asarray(a, dtype=float), (y_ev, mean_ev, sigma_ev))
    err = mean_ev - y_ev
    ss_tot = float(np.sum((y_ev - y_ev.mean()) ** 2))
    true_good = y_ev < threshold_ev
    pred_good = mean_ev < threshold_ev
    tp = int(np.sum(true_good & pred_good))
    n_pred_good = int(pred_good.sum())
    n_true_good = int(true_good.sum())
    spearman = stats.spearmanr(sigma_ev, np.abs(err)).statistic if len(y_ev) > 2 else float("nan")
    out = {
        "n": int(len(y_ev)),
        "mae_ev": float(np.mean(np.abs(err))),
        "rmse_ev": float(np.sqrt(np.mean(err**2))),
        "r2": float(1 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "accuracy_065": float(np.mean(true_good == pred_good)),
        "precision_065": tp / n_pred_good if n_pred_good else float("nan"),
        "recall_065": tp / n_true_good if n_true_good else float("nan"),
        "spearman_sigma_abs_err": float(spearman),
        "nll": gaussian_nll(y_ev, mean_ev, sigma_ev),
        "mean_sigma_ev": float(np.mean(sigma_ev)),
    }
    for level in COVERAGE_LEVELS:
        out[f"coverage_{int(round(level * 100))}"] = interval_coverage(y_ev, mean_ev, sigma_ev, level)
    return out


def fit_sigma_scale(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> float:
    """One factor for σ that makes central intervals cover what they claim on held-out data.

    Chosen on a grid to minimise the squared miscoverage summed over 50–95 % levels: a factor
    from the NLL alone would be set by the few largest errors and make typical intervals too wide.
    """
    levels = np.array([0.5, 0.68, 0.8, 0.9, 0.95])
    z = np.abs(y - mean) / sigma
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 600))
    quantile = stats.norm.ppf(0.5 + levels / 2)
    coverage = (z[None, None, :] <= (grid[:, None, None] * quantile[None, :, None])).mean(-1)
    loss = ((coverage - levels[None, :]) ** 2).sum(1)
    return float(grid[int(np.argmin(loss))])
