"""The ``materials`` strategy: hops whose labels are expected to settle their hosts' classification.

A host is *good* when its percolation barrier is below the campaign's threshold. On each joint
posterior row (:class:`~alem.acquisition.PredictionTable`) the host's network is solved
(computed hops fixed), so each row says good or not: ``G``, a boolean per row. The same rows hold
every candidate hop's barrier ``E``. Both are read from the rows alone, with no model in the loop:

* what a label is expected to change: ``E|ΔP| = Σ_k p_k |P(G | E in bin k) − P(G)|`` over ``k``
  equal-count bins of the hop's values across the rows (:func:`expected_prob_change`);
* what it is expected to settle: the information ``I(G; E | C)`` in bits, the expected drop in the
  entropy of the host's classification once the label is known, given the cells ``C`` of the hops
  already on their way to a result (pending and already picked, binned the same way)
  (:func:`information_gain`). The rows carry the model's correlations, so a hop whose value moves
  with a pending one's settles little more.

The batch is greedy: each pick maximises the information per core-hour (information alone when no
cost is given) among hops whose host is below ``max_per_host``; a hop with no information about
any host's class (every row agrees, or it is on no host's network) is never proposed. Only the
hop's own host is counted (its neighbours' classes move with it only through the model's
correlations, which the next round's rows then carry).

This is not a BoTorch acquisition function: the quantity is a function of a whole host's rows,
solved by the percolation rule, not of a hop's posterior, so it is scored here directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Equal-count bins of a hop's values over the rows: 4 bins of 64 rows at 256 rows keeps the
#: plug-in estimate's upward bias ((bins − 1) / (2 n ln 2) ≈ 0.01 bit) well below a useful gain.
N_VALUE_BINS = 4
#: Information (bits) below which a hop is taken to settle nothing.
MIN_GAIN_BITS = 1e-6


def value_bins(values_ev: np.ndarray, n_bins: int = N_VALUE_BINS) -> np.ndarray:
    """Bin index (0..n_bins-1) of each row's value, bins of equal count; equal values share a bin
    (a hop fixed at its result is one bin)."""
    values = np.asarray(values_ev, dtype=float)
    edges = np.quantile(values, np.arange(1, n_bins) / n_bins)
    return np.searchsorted(edges, values, side="left")


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h, nan=0.0)


def conditional_entropy(good: np.ndarray, cells: np.ndarray) -> float:
    """H(G | cell) in bits: the entropy of the classification left within each cell of rows."""
    good = np.asarray(good, dtype=bool)
    _, cell_of_row = np.unique(cells, return_inverse=True)
    counts = np.bincount(cell_of_row)
    goods = np.bincount(cell_of_row, weights=good.astype(float))
    return float(np.sum(counts / len(good) * _binary_entropy(goods / counts)))


def host_entropy(good: np.ndarray) -> float:
    """H(G) in bits of a host's classification over the rows."""
    return float(_binary_entropy(np.array([np.mean(good)]))[0])


def information_gain(good: np.ndarray, values_ev: np.ndarray, given_cells: np.ndarray | None = None) -> float:
    """I(G; bin(E) | given cells) in bits: how much knowing the hop's barrier is expected to
    settle the host's good/not-good classification, given the hops already known or coming."""
    cells = np.zeros(len(good), dtype=np.int64) if given_cells is None else np.asarray(given_cells, dtype=np.int64)
    joint = cells * N_VALUE_BINS + value_bins(values_ev)
    return max(conditional_entropy(good, cells) - conditional_entropy(good, joint), 0.0)


def expected_prob_change(good: np.ndarray, values_ev: np.ndarray) -> float:
    """E|ΔP(good)|: how far the host's P(good) is expected to move once the hop's barrier is known."""
    good = np.asarray(good, dtype=float)
    bins = value_bins(values_ev)
    counts = np.bincount(bins, minlength=N_VALUE_BINS)
    goods = np.bincount(bins, weights=good, minlength=N_VALUE_BINS)
    seen = counts > 0
    return float(np.sum(counts[seen] / len(good) * np.abs(goods[seen] / counts[seen] - good.mean())))


def cells_of(columns_ev: Sequence[np.ndarray], n_rows: int) -> np.ndarray:
    """One integer cell per row from the bins of several hops' values (no hop: one cell)."""
    cells = np.zeros(n_rows, dtype=np.int64)
    for column in columns_ev:
        cells = cells * N_VALUE_BINS + value_bins(column)
        _, cells = np.unique(cells, return_inverse=True)  # keep the labels small
    return cells


@dataclass(frozen=True)
class MaterialsPick:
    hop_id: str
    host: str
    #: bits of the host's classification expected to be settled (given pending and earlier picks)
    gain_bits: float
    #: gain per core-hour when costs are known, else the gain: what the greedy choice maximised
    score: float


def select_materials_batch(
    good_of_host: Mapping[str, np.ndarray],
    values_of_hop: Mapping[str, np.ndarray],
    host_of_hop: Mapping[str, str],
    candidates: Sequence[str],
    batch_size: int,
    pending: Sequence[str] = (),
    max_per_host: int = 0,
    cost_core_hours_of: Mapping[str, float] | None = None,
) -> list[MaterialsPick]:
    """Greedy batch of ``candidates`` maximising the information about their hosts' classes
    (per core-hour with ``cost_core_hours_of``), given ``pending`` hops; ``max_per_host`` 0: no cap.

    ``good_of_host``: G per row for hosts still uncertain; ``values_of_hop``: each hop's barrier
    per row (same rows); hops on no such host score nothing.
    """
    known: dict[str, list[np.ndarray]] = {}
    for hop_id in pending:
        host = host_of_hop.get(hop_id)
        if host is not None and host in good_of_host and hop_id in values_of_hop:
            known.setdefault(host, []).append(values_of_hop[hop_id])
    per_host: Counter[str] = Counter()  # the cap counts this batch's picks, as select_batch's does
    picks: list[MaterialsPick] = []
    left = [h for h in candidates if host_of_hop.get(h) in good_of_host and h in values_of_hop]
    while len(picks) < batch_size:
        best: MaterialsPick | None = None
        cells_by_host: dict[str, np.ndarray] = {}
        for hop_id in left:
            host = host_of_hop[hop_id]
            if max_per_host and per_host[host] >= max_per_host:
                continue
            good = good_of_host[host]
            if host not in cells_by_host:
                cells_by_host[host] = cells_of(known.get(host, []), len(good))
            gain = information_gain(good, values_of_hop[hop_id], cells_by_host[host])
            if gain < MIN_GAIN_BITS:
                continue
            score = gain / cost_core_hours_of[hop_id] if cost_core_hours_of else gain
            if best is None or score > best.score:
                best = MaterialsPick(hop_id, host, gain, score)
        if best is None:
            break
        picks.append(best)
        left.remove(best.hop_id)
        per_host[best.host] += 1
        known.setdefault(best.host, []).append(values_of_hop[best.hop_id])
    return picks
