"""Parity plots: predicted against reference barriers, drawn one way everywhere (``alem evaluate``,
the CV parity stored with a model, the campaign report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def draw_parity(
    ax: Axes,
    reference_ev: np.ndarray,
    predicted_ev: np.ndarray,
    sigma_ev: np.ndarray | None = None,
    *,
    title: str = "",
    metrics: dict | None = None,
    empty: str = "nothing to plot",
    xlabel: str = "reference $E_m$ (eV)",
    ylabel: str = "predicted $E_m$ ± σ (eV)",
) -> None:
    """Points (with σ error bars when given), the diagonal and the 0.65 eV good-conductor lines.

    Args:
        ax: matplotlib axes to draw on.
        reference_ev: ``n`` reference barriers (x).
        predicted_ev: ``n`` predicted barriers (y).
        sigma_ev: ``n`` predictive σ, drawn as error bars; None for none.
        title: axes title.
        metrics: :func:`alem.metrics.barrier_metrics` of the points, written in a corner.
        empty: text shown instead when there is no point.
    """
    reference_ev, predicted_ev = np.asarray(reference_ev, dtype=float), np.asarray(predicted_ev, dtype=float)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if not len(reference_ev):
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        return
    # the axes follow the barriers, not the widest error bar (a few huge σ would squash the plot)
    top = float(max(np.max(reference_ev), np.max(predicted_ev), 1.0)) * 1.08
    ax.errorbar(reference_ev, predicted_ev, yerr=sigma_ev, fmt="o", ms=3, alpha=0.55, elinewidth=0.7,
                color="#1f5f9e", ecolor="#7fa7cf")
    ax.plot([0, top], [0, top], "k--", lw=1)
    ax.axvline(GOOD_CONDUCTOR_THRESHOLD_EV, color="#c0392b", lw=0.8, ls=":")
    ax.axhline(GOOD_CONDUCTOR_THRESHOLD_EV, color="#c0392b", lw=0.8, ls=":")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    if metrics:
        ax.text(
            0.03, 0.97,
            f"n = {metrics['n']}\nMAE = {metrics['mae_ev']:.3f} eV\nR² = {metrics['r2']:.2f}\n"
            f"68% coverage = {metrics['coverage_68']:.2f}",
            transform=ax.transAxes, va="top", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
    if title:
        ax.set_title(title, fontsize=10)


def parity_plot(
    y_ev: np.ndarray, mean_ev: np.ndarray, sigma_ev: np.ndarray, path: Path, title: str = "", metrics: dict | None = None
) -> Path:
    """:func:`draw_parity` of ``n`` hops saved as a PNG at ``path``; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=130)
    draw_parity(ax, y_ev, mean_ev, sigma_ev, title=title or "alem ensemble: parity", metrics=metrics)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
