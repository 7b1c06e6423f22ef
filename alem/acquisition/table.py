"""Posterior rows of a pool of hops: the table the acquisition, the host answers and the kept
rows share (numpy only, so a read command that shows kept rows loads neither torch nor BoTorch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
