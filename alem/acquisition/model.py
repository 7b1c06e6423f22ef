"""The ensemble as a BoTorch model over a discrete pool of candidate hops.

Graph networks do not take a fixed-length X, so the pool is scored once and the model looks
predictions up: X is the candidate's index in the pool (a 1-d float feature) and ``forward``
gathers the members' predictions for those indices from a members x candidates table. BoTorch's
``EnsemblePosterior`` and ``IndexSampler`` then treat the members as posterior samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.models.ensemble import EnsembleModel
from torch import Tensor


@dataclass(frozen=True)
class PredictionTable:
    """Member predictions for a pool of hops (``member_ev``: n_members x n_hops, eV).

    ``std_ev`` is the ensemble's calibrated σ; members are spread around ``mean_ev`` so that
    their spread equals it (raw deep-ensemble spreads are usually too narrow).
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
    def from_prediction(cls, hop_ids: list[str], prediction, quantiles_per_member: int = 8) -> PredictionTable:
        """From an ``EnsemblePrediction``.

        Each member predicts a Laplace distribution (location, scale); the table holds
        ``quantiles_per_member`` evenly spaced quantiles of each, so its rows sample the ensemble's
        predictive mixture (member disagreement and each member's own noise) deterministically.
        """
        location = np.asarray(prediction.member_ev, dtype=float)
        scale = getattr(prediction, "member_scale_ev", None)
        if scale is None:
            member_ev = location
        else:
            u = (np.arange(quantiles_per_member) + 0.5) / quantiles_per_member
            laplace_quantiles = -np.sign(u - 0.5) * np.log1p(-2 * np.abs(u - 0.5))
            member_ev = (location[:, None, :] + np.asarray(scale, dtype=float)[:, None, :] * laplace_quantiles[None, :, None])
            member_ev = member_ev.reshape(-1, location.shape[1])
        return cls(
            tuple(hop_ids),
            member_ev,
            np.asarray(prediction.mean_ev, dtype=float),
            np.asarray(prediction.std_ev, dtype=float),
        )

    def __len__(self) -> int:
        return len(self.hop_ids)

    def calibrated_members(self) -> np.ndarray:
        """Members re-spread around ``mean_ev`` so their sample std equals ``std_ev``."""
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
