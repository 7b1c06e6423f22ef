"""The cheap stage of a two-fidelity campaign: which candidates to screen first, and how much
promise is left in the pool.

Screening (an MLIP NEB per candidate) is cheap but not free; under a budget the hops the model is
least sure about gain most from a cheap look, because the fidelity-aware model
(:mod:`alem.inference.fidelity_aware`) then narrows their σ the most. ``expected_good_hops`` is the
campaign's remaining promise, Σ P(E_m < threshold) over the still-unlabelled pool, which the stop
rule compares against a floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats

from alem.acquisition.model import PredictionTable

ScreeningOrder = Literal["uncertain", "all"]
SCREENING_ORDERS: tuple[str, ...] = ("uncertain", "all")


def screening_order(table: PredictionTable, hop_ids: Sequence[str], limit: int, order: ScreeningOrder = "uncertain") -> list[str]:
    """Up to ``limit`` of ``hop_ids`` to screen next: the largest predicted σ first
    (``"uncertain"``; ties keep pool order) or simply pool order (``"all"``). Every hop id must be
    in ``table``."""
    if order not in SCREENING_ORDERS:
        raise ValueError(f"unknown screening order {order!r} (choose one of {', '.join(SCREENING_ORDERS)})")
    where = table.index_of()
    missing = [h for h in hop_ids if h not in where]
    if missing:
        raise ValueError(f"hops without a prediction cannot be ordered: {', '.join(missing[:3])}")
    pool = list(dict.fromkeys(hop_ids))
    if order == "uncertain":
        sigma = np.array([table.std_ev[where[h]] for h in pool])
        pool = [pool[k] for k in np.argsort(-sigma, kind="stable")]
    return pool[: max(limit, 0)]


def expected_good_hops(table: PredictionTable, threshold_ev: float) -> float:
    """Σ over the table's hops of P(E_m < ``threshold_ev``) under each hop's Gaussian (μ, σ): how
    many good hops the pool is still expected to hold."""
    sigma = np.maximum(np.asarray(table.std_ev, dtype=float), 1e-9)
    return float(stats.norm.cdf((threshold_ev - np.asarray(table.mean_ev, dtype=float)) / sigma).sum())
