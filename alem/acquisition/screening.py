"""The cheap stage of a two-fidelity campaign: which candidates to screen first, and how much
promise is left in the pool.

Screening (an MLIP NEB per candidate) is cheap but not free; under a budget the hops the model is
least sure about gain most from a cheap look, because the fidelity-aware model
(:mod:`alem.inference.fidelity_aware`) then narrows their σ the most. ``expected_good_hops`` is the
campaign's remaining promise, Σ P(E_m < threshold) over the still-unlabelled pool, which the stop
rule compares against a floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

ScreeningOrder = Literal["uncertain", "all"]
SCREENING_ORDERS: tuple[str, ...] = ("uncertain", "all")


def screening_order(
    hop_ids: Sequence[str], std_ev_of: Mapping[str, float], limit: int | None = None, order: ScreeningOrder = "uncertain"
) -> list[str]:
    """The hops to screen next, at most ``limit`` (None: all).

    Args:
        hop_ids: the pool, in pool order (duplicates dropped).
        std_ev_of: predicted σ (eV) per hop id; hops without one come last, in pool order.
        order: ``"uncertain"``: largest σ first (ties keep pool order); ``"all"``: pool order.
    """
    if order not in SCREENING_ORDERS:
        raise ValueError(f"unknown screening order {order!r} (choose one of {', '.join(SCREENING_ORDERS)})")
    pool = list(dict.fromkeys(hop_ids))
    if order == "uncertain":
        scored = [h for h in pool if h in std_ev_of]
        sigma = np.array([std_ev_of[h] for h in scored], dtype=float)
        pool = [scored[k] for k in np.argsort(-sigma, kind="stable")] + [h for h in pool if h not in std_ev_of]
    return pool if limit is None else pool[: max(limit, 0)]


def expected_good_hops(mean_ev: ArrayLike, std_ev: ArrayLike, threshold_ev: float) -> float:
    """Σ P(E_m < ``threshold_ev``) over hops with Gaussian predictions (μ, σ) (shapes ``n_hops``):
    how many good hops the pool is still expected to hold. σ = 0 counts as a step."""
    mean = np.asarray(mean_ev, dtype=float)
    sigma = np.maximum(np.asarray(std_ev, dtype=float), 1e-12)
    # ndtr is the standard normal CDF (what scipy.stats.norm.cdf computes) without loading scipy.stats: a second of `alem status`
    return float(ndtr((threshold_ev - mean) / sigma).sum())
