"""The ensemble as a BoTorch model over a discrete pool of candidate hops.

Graph networks do not take a fixed-length X, so the pool is scored once and the model looks
predictions up: X is the candidate's index in the pool (a 1-d float feature) and ``forward``
gathers the posterior's draws for those indices from a draws x candidates table. BoTorch's
``EnsemblePosterior`` then treats each row as one posterior sample.

Each row is one joint draw of the whole stack as a function over the pool
(:meth:`alem.ensemble.Ensemble.sample`): a GNN member, a tree of a forest or the kernel model
picked with the stack's weights, shared by every hop of the row, and the member's Laplace noise
drawn per hop (once per group of duplicate hops). So two hops co-vary in the rows as the model's
components make them co-vary, which is what batch acquisition with pending points reasons about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.models.ensemble import EnsembleModel
from torch import Tensor

#: Posterior rows per pool. Per-hop means and σ are exact whatever the number (the rows are
#: re-spread to the calibrated prediction), so the rows are for the joint terms: the correlation
#: of two hops estimated from n rows has a standard error ≈ 1/√n, 0.06 at 256, well below the
#: gap between unrelated (|r| ≲ 0.3) and duplicate (r ≈ 1) hops; the conditional σ of a
#: candidate given a few tens of pending hops needs n well above their number; and 256 rows of a
#: 10^5-hop pool are 200 MB of float64, still fine on a login node.
POSTERIOR_DRAWS = 256


@dataclass(frozen=True)
class PredictionTable:
    """Posterior rows for a pool of hops (``member_ev``: n_rows x n_hops, eV).

    ``std_ev`` is the ensemble's calibrated σ; rows are spread around ``mean_ev`` so that
    their spread equals it (:meth:`calibrated_members`).
    """

    hop_ids: tuple[str, ...]
    member_ev: np.ndarray
    mean_ev: np.ndarray
    std_ev: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.hop_ids)
        if self.member_ev.ndim != 2 or self.member_ev.shape[1] != n:
            raise ValueError(f"member_ev must be n_members x {n}, got {self.member_ev.shape}")
        if self.mean_ev.shape != (n,) or self.std_ev.shape != (n,):
            raise ValueError("mean_ev and std_ev need one value per hop")
        if not (np.all(np.isfinite(self.member_ev)) and np.all(np.isfinite(self.std_ev))):
            raise ValueError("predictions contain NaN or infinite values")

    @classmethod
    def from_members(cls, hop_ids: list[str], member_ev: np.ndarray) -> PredictionTable:
        member_ev = np.asarray(member_ev, dtype=float)
        return cls(tuple(hop_ids), member_ev, member_ev.mean(axis=0), member_ev.std(axis=0, ddof=1))

    @classmethod
    def from_prediction(cls, hop_ids: list[str], prediction, draws_ev: np.ndarray | None = None) -> PredictionTable:
        """From an ``EnsemblePrediction`` and joint draws of the same hops
        (:meth:`alem.ensemble.Ensemble.posterior`, ``n_draws x n_hops``); without draws the rows
        are the GNN members' locations (their disagreement only)."""
        rows = prediction.member_ev if draws_ev is None else draws_ev
        return cls(
            tuple(hop_ids),
            np.asarray(rows, dtype=float),
            np.asarray(prediction.mean_ev, dtype=float),
            np.asarray(prediction.std_ev, dtype=float),
        )

    def __len__(self) -> int:
        return len(self.hop_ids)

    def calibrated_members(self) -> np.ndarray:
        """Rows re-spread around ``mean_ev`` so their sample std equals ``std_ev``: one affine map
        per hop, so the rows' correlations are kept and each hop's mean and σ are exactly the
        calibrated prediction's."""
        deviation = self.member_ev - self.member_ev.mean(axis=0, keepdims=True)
        raw_std = deviation.std(axis=0, ddof=1) if self.member_ev.shape[0] > 1 else np.zeros(len(self))
        scale = np.divide(self.std_ev, raw_std, out=np.zeros_like(raw_std), where=raw_std > 1e-12)
        return self.mean_ev[None, :] + deviation * scale[None, :]

    def index_of(self) -> dict[str, int]:
        return {hop_id: k for k, hop_id in enumerate(self.hop_ids)}


class CandidatePoolModel(EnsembleModel):
    """BoTorch ensemble model whose inputs are candidate indices (``... x n x 1`` float tensor)."""

    def __init__(self, table: PredictionTable) -> None:
        super().__init__()
        members = torch.as_tensor(table.calibrated_members(), dtype=torch.float64)
        self.members_ev: Tensor
        self.register_buffer("members_ev", members)  # s x n_candidates
        self._num_outputs = 1

    @property
    def n_members(self) -> int:
        return int(self.members_ev.shape[0])

    @property
    def n_candidates(self) -> int:
        return int(self.members_ev.shape[1])

    def choices(self) -> Tensor:
        """All candidates as an ``n x 1`` tensor, for ``optimize_acqf_discrete``."""
        return torch.arange(self.n_candidates, dtype=torch.float64).unsqueeze(-1)

    def forward(self, X: Tensor) -> Tensor:
        index = X[..., 0].round().long()  # batch x n
        if index.numel() and (index.min() < 0 or index.max() >= self.n_candidates):
            raise IndexError(f"candidate index out of range 0..{self.n_candidates - 1}")
        values = self.members_ev[:, index]  # s x batch x n
        return values.movedim(0, -2).unsqueeze(-1)  # batch x s x n x 1
