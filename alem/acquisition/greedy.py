"""Each strategy's greedy-step acquisition value for the whole pool at once, from the posterior rows.

BoTorch builds a batch greedily (``optimize_acqf_discrete``): at each step it scores every
remaining candidate as a batch of one, with the pending and already-picked hops as
``X_pending``, and takes the best. Through a model posterior per block of 2048 candidates that
costs minutes at 10^5 hops. The acquisition functions of :mod:`alem.acquisition.strategies` have
closed forms in the ``n_rows x n_hops`` rows matrix, so here one greedy step is one or two
vectorised passes over the rows (column block by column block, float64), with no per-candidate
Python:

* explore (``qConditionalStandardDeviation``): σ(hop | P) by an incremental Cholesky of the rows'
  covariance (plus BoTorch-side jitter): adding a hop to P costs one matrix-vector product.
* balanced (``qUpperConfidenceBound``): the mean over rows of max(u_hop, max over P of u), with
  u = μ + √(βπ/2)·|y − μ| of the objective −E_m.
* discover (``qLogExpectedImprovement``): logmeanexp over rows of BoTorch's ``fatmax`` of the
  log smoothed improvements of the hop and of P; P's part of the fat max is summed once per row
  and only the (row, hop) entries that beat P's best in that row need a sum over P.

The acquisition functions stay the definition: the tests compare every strategy's batch and
scores with ``optimize_acqf_discrete`` on small pools.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from botorch.acquisition.logei import TAU_MAX, TAU_RELU
from botorch.utils.safe_math import log_fatplus

from alem.acquisition.model import PredictionTable
from alem.acquisition.strategies import (
    BALANCED_BETA,
    CONDITIONAL_JITTER_EV2,
    DISCOVER_FORM,
    DISCOVER_FORMS,
    EXPLORE_FORM,
    EXPLORE_FORMS,
    GOOD_HOP_SMOOTHING_EV,
    STRATEGIES,
)

#: Hops per column block: 256 rows x 8192 hops of float64 is 16 MB per temporary.
BLOCK_HOPS = 8192


class CalibratedRows:
    """The table's calibrated rows (:meth:`PredictionTable.calibrated_members`) without
    materialising them: ``mean_ev + (raw − raw_mean) · scale``, produced per column block."""

    def __init__(self, table: PredictionTable) -> None:
        self.raw = table.member_ev
        self.n_rows, self.n_hops = self.raw.shape
        self.raw_mean = np.empty(self.n_hops)
        raw_std = np.zeros(self.n_hops)
        for cols in self.slices():
            block = np.asarray(self.raw[:, cols], dtype=np.float64)
            self.raw_mean[cols] = block.mean(axis=0)
            if self.n_rows > 1:
                raw_std[cols] = (block - self.raw_mean[None, cols]).std(axis=0, ddof=1)
        self.mean_ev = np.asarray(table.mean_ev, dtype=np.float64)
        self.scale = np.divide(table.std_ev, raw_std, out=np.zeros_like(raw_std), where=raw_std > 1e-12)

    def slices(self) -> Iterator[slice]:
        for start in range(0, self.n_hops, BLOCK_HOPS):
            yield slice(start, min(start + BLOCK_HOPS, self.n_hops))

    def deviation(self, cols: slice | np.ndarray) -> np.ndarray:
        """Calibrated rows minus their hop's mean, ``n_rows x len(cols)``."""
        block = np.asarray(self.raw[:, cols], dtype=np.float64)
        return (block - self.raw_mean[None, cols]) * self.scale[None, cols]

    def columns(self, cols: slice | np.ndarray) -> np.ndarray:
        return self.mean_ev[None, cols] + self.deviation(cols)

    def blocks(self) -> Iterator[tuple[slice, np.ndarray]]:
        for cols in self.slices():
            yield cols, self.columns(cols)


class GreedyValues:
    """Acquisition value of every pool hop as a batch of one, given the conditioned-on hops."""

    def __init__(self, rows: CalibratedRows) -> None:
        self.rows = rows
        self.conditioned: list[int] = []

    def condition_on(self, index: int) -> None:
        """Add a pending or just-picked hop to the set every later value is conditioned on."""
        self.conditioned.append(index)

    def values(self) -> np.ndarray:
        raise NotImplementedError


class ExploreValues(GreedyValues):
    """σ of each hop given the conditioned-on hops' barriers (``qConditionalStandardDeviation``)."""

    def __init__(self, rows: CalibratedRows) -> None:
        super().__init__(rows)
        denominator = max(rows.n_rows - 1, 1)
        self.denominator = denominator
        self.residual_var = np.empty(rows.n_hops)
        for cols in rows.slices():
            deviation = rows.deviation(cols)
            self.residual_var[cols] = np.einsum("ij,ij->j", deviation, deviation) / denominator
        self.residual_var += CONDITIONAL_JITTER_EV2
        self.cholesky_columns: list[np.ndarray] = []

    def _projections(self, pivot: np.ndarray) -> np.ndarray:
        """Row-space vectors whose products with the centred rows one pass computes (k x n_rows);
        the first is the pivot hop's centred rows, which give its covariance column."""
        return pivot[None, :]

    def condition_on(self, index: int) -> None:
        super().condition_on(index)
        vectors = self._projections(self.rows.deviation(np.array([index]))[:, 0])
        self.projected = np.empty((len(vectors), self.rows.n_hops))
        for cols in self.rows.slices():
            self.projected[:, cols] = vectors @ self.rows.deviation(cols) / self.denominator
        covariance = self.projected[0].copy()
        covariance[index] += CONDITIONAL_JITTER_EV2
        for column in self.cholesky_columns:
            covariance -= column * column[index]
        new_column = covariance / math.sqrt(max(self.residual_var[index], 1e-300))
        self.cholesky_columns.append(new_column)
        self.residual_var -= new_column**2

    def values(self) -> np.ndarray:
        return np.sqrt(np.clip(self.residual_var, 0.0, None))


class IntegratedVarianceValues(ExploreValues):
    """Posterior variance of the whole pool removed by each hop's label, given the conditioned-on
    hops (``qIntegratedVarianceReduction``): ``Σ_j K'[i, j]² / K'[i, i]``.

    With D the centred rows (``n_rows x n_hops``), G = DDᵀ, K = DᵀD/(n−1) + jitter·I, and the
    conditioned covariance K' = K − Σ_k l_k l_kᵀ (the Cholesky columns of :class:`ExploreValues`),
    ``Σ_j K'[i, j]² = Σ_j K[i, j]² − 2 Σ_k l_k[i] (K l_k)[i] + Σ_kl l_k[i] l_l[i] (l_k · l_l)``.
    The first term costs one pass with G (O(n_hops · n_rows²)) at the start. For a new column
    l = (K e_p − Σ_k l_k l_k[p]) / l[p], K l needs K² e_p = Dᵀ(G d_p)/(n−1)² + 2·jitter·Ĉ e_p +
    jitter²·e_p, whose D-product rides in explore's own pass over the rows; the rest is O(n_hops)
    per earlier column."""

    def __init__(self, rows: CalibratedRows) -> None:
        super().__init__(rows)
        self.gram = np.zeros((rows.n_rows, rows.n_rows))
        for cols in rows.slices():
            deviation = rows.deviation(cols)
            self.gram += deviation @ deviation.T
        jitter = CONDITIONAL_JITTER_EV2
        variance = self.residual_var - jitter  # the rows' own variance, K[i, i] − jitter
        self.squared_sum = np.empty(rows.n_hops)  # Σ_j K[i, j]²
        for cols in rows.slices():
            deviation = rows.deviation(cols)
            rows_squared = np.einsum("ij,ij->j", self.gram @ deviation, deviation) / self.denominator**2
            self.squared_sum[cols] = rows_squared + 2 * jitter * variance[cols] + jitter**2
        self.cross = np.zeros(rows.n_hops)  # Σ_k l_k[i] (K l_k)[i]
        self.quadratic = np.zeros(rows.n_hops)  # Σ_kl l_k[i] l_l[i] (l_k · l_l)
        self.times_k: list[np.ndarray] = []  # K l_k per Cholesky column

    def _projections(self, pivot: np.ndarray) -> np.ndarray:
        return np.stack([pivot, self.gram @ pivot / self.denominator])

    def condition_on(self, index: int) -> None:
        super().condition_on(index)
        jitter = CONDITIONAL_JITTER_EV2
        covariance, k_squared = self.projected  # Ĉ e_p, and Dᵀ G d_p/(n−1)²
        k_squared = k_squared + 2 * jitter * covariance
        k_squared[index] += jitter**2
        *earlier, new = self.cholesky_columns
        for column, times_k in zip(earlier, self.times_k):
            k_squared -= times_k * column[index]
        times_k = k_squared / new[index] if new[index] > 0 else np.zeros_like(new)  # K l
        self.times_k.append(times_k)
        self.cross += new * times_k
        overlap = sum((column * (column @ new) for column in earlier), np.zeros(self.rows.n_hops))
        self.quadratic += new * (2 * overlap + new * (new @ new))

    def values(self) -> np.ndarray:
        squared_sum = np.clip(self.squared_sum - 2 * self.cross + self.quadratic, 0.0, None)
        return np.divide(squared_sum, self.residual_var, out=np.zeros_like(squared_sum), where=self.residual_var > 0)


class BalancedValues(GreedyValues):
    """Mean over rows of the best UCB sample of the hop and the conditioned-on hops (``qUpperConfidenceBound``)."""

    def __init__(self, rows: CalibratedRows, beta: float = BALANCED_BETA) -> None:
        super().__init__(rows)
        self.beta_prime = math.sqrt(beta * math.pi / 2)
        self.objective_mean = np.empty(rows.n_hops)
        for cols, block in rows.blocks():
            self.objective_mean[cols] = (-block).mean(axis=0)

    def _ucb_samples(self, cols: slice | np.ndarray) -> np.ndarray:
        objective = -self.rows.columns(cols)
        mean = self.objective_mean[cols]
        return mean[None, :] + self.beta_prime * np.abs(objective - mean[None, :])

    def values(self) -> np.ndarray:
        best_conditioned = None
        if self.conditioned:
            best_conditioned = self._ucb_samples(np.array(self.conditioned)).max(axis=1, keepdims=True)
        out = np.empty(self.rows.n_hops)
        for cols in self.rows.slices():
            samples = self._ucb_samples(cols)
            if best_conditioned is not None:
                samples = np.maximum(samples, best_conditioned)
            out[cols] = samples.mean(axis=0)
        return out


class DiscoverValues(GreedyValues):
    """log E[fat max of the smoothed improvements threshold − E_m of the hop and the
    conditioned-on hops] over the rows (``qLogExpectedImprovement`` with ``best_f = 0``).

    The rows' log improvements are computed once (``n_rows x n_hops`` float64: 200 MB at 10^5
    hops); a step is then a few elementwise passes over them."""

    def __init__(self, rows: CalibratedRows, threshold_ev: np.ndarray) -> None:
        super().__init__(rows)
        threshold_ev = np.asarray(threshold_ev, dtype=np.float64)
        self.log_improvement = torch.empty(rows.n_rows, rows.n_hops, dtype=torch.float64)
        for cols, block in rows.blocks():
            below = torch.from_numpy(threshold_ev[None, cols] - block)
            self.log_improvement[:, cols] = log_fatplus(below, tau=TAU_RELU)
        self.log_improvement_max = float(self.log_improvement.max()) if rows.n_hops else 0.0

    def values(self) -> np.ndarray:
        out = torch.empty(self.rows.n_hops, dtype=torch.float64)
        if not self.conditioned:
            for cols in self.rows.slices():
                out[cols] = _log_mean_exp(self.log_improvement[:, cols])
            return out.numpy()
        others = self.log_improvement[:, self.conditioned]  # rows x m
        best_other = others.amax(dim=1, keepdim=True)  # rows x 1
        others_sum = _fat_tail((best_other - others) / TAU_MAX).sum(dim=1, keepdim=True)
        # log mean over rows of exp(fatmax), stabilised by one constant at or above every entry's
        # max (log improvements lie within a few tens of units, far from exp's range limits)
        shift = max(float(best_other.max()), self.log_improvement_max)
        row_weight = torch.exp(best_other - shift)
        for cols in self.rows.slices():
            hop = self.log_improvement[:, cols]  # rows x b
            # the hop at or below the others' best in a row: fatmax = best + τ log(pareto(hop) + Σ pareto(others)),
            # so exp(fatmax − shift) = exp(best − shift) · (pareto(hop) + Σ pareto(others))^τ
            gap = (best_other - hop).clamp_(min=0.0).div_(TAU_MAX)
            term = _fat_tail(gap).add_(others_sum).pow_(TAU_MAX).mul_(row_weight)
            beats = hop > best_other
            if bool(beats.any()):  # the hop is the max: fatmax = hop + τ log(1 + Σ pareto(hop − others))
                row, col = beats.nonzero(as_tuple=True)
                top = hop[row, col].unsqueeze(-1)
                total = 1.0 + _fat_tail((top - others[row]) / TAU_MAX).sum(dim=-1, keepdim=True)
                term[row, col] = (torch.exp(top - shift) * total.pow(TAU_MAX)).squeeze(-1)
            out[cols] = term.mean(dim=0).log_().add_(shift)
        return out.numpy()


def _fat_tail(x: torch.Tensor) -> torch.Tensor:
    """BoTorch's ``_pareto(x, alpha=2)`` (fatmax's weight of an element x·τ below the max):
    2 / (2 + 2x + x²), without its argument check."""
    return x.square().add_(x, alpha=2.0).add_(2.0).reciprocal_().mul_(2.0)


def _log_mean_exp(x: torch.Tensor) -> torch.Tensor:
    """log of the mean of exp over the rows (dim 0), stabilised by the column's max."""
    top = x.amax(dim=0, keepdim=True)
    return (x - top).exp_().mean(dim=0).log_().add_(top[0])


class GoodHopsValues(GreedyValues):
    """Expected number of good hops among the hop and the conditioned-on hops (``qExpectedGoodHops``):
    each hop's smoothed P(E_m < t) is computed once; a step adds the conditioned-on hops' sum."""

    def __init__(self, rows: CalibratedRows, threshold_ev: np.ndarray) -> None:
        super().__init__(rows)
        threshold_ev = np.asarray(threshold_ev, dtype=np.float64)
        self.probability = np.empty(rows.n_hops)
        for cols, block in rows.blocks():
            below = torch.from_numpy((threshold_ev[None, cols] - block) / GOOD_HOP_SMOOTHING_EV)
            self.probability[cols] = torch.sigmoid(below).mean(dim=0).numpy()

    def values(self) -> np.ndarray:
        return self.probability + self.probability[self.conditioned].sum()


def greedy_values(
    strategy: str, table: PredictionTable, threshold_ev: np.ndarray, discover_form: str = DISCOVER_FORM,
    explore_form: str = EXPLORE_FORM,
) -> GreedyValues:
    rows = CalibratedRows(table)
    if strategy == "explore" and explore_form == "integrated_variance":
        return IntegratedVarianceValues(rows)
    if strategy == "explore":
        if explore_form not in EXPLORE_FORMS:
            raise ValueError(f"unknown explore form {explore_form!r} (choose one of {', '.join(EXPLORE_FORMS)})")
        return ExploreValues(rows)
    if strategy == "discover" and discover_form == "good_hops":
        return GoodHopsValues(rows, threshold_ev)
    if strategy == "discover":
        if discover_form != "log_ei":
            raise ValueError(f"unknown discover form {discover_form!r} (choose one of {', '.join(DISCOVER_FORMS)})")
        return DiscoverValues(rows, threshold_ev)
    if strategy == "balanced":
        return BalancedValues(rows)
    raise ValueError(f"unknown strategy {strategy!r} (choose one of {', '.join(STRATEGIES)})")
