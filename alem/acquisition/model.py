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

import torch
from botorch.models.ensemble import EnsembleModel
from torch import Tensor

from alem.acquisition.table import PredictionTable

__all__ = ["POSTERIOR_DRAWS", "CandidatePoolModel", "PredictionTable"]

#: Posterior rows per pool. Per-hop means and σ are exact whatever the number (the rows are
#: re-spread to the calibrated prediction), so the rows are for the joint terms: the correlation
#: of two hops estimated from n rows has a standard error ≈ 1/√n, 0.06 at 256, well below the
#: gap between unrelated (|r| ≲ 0.3) and duplicate (r ≈ 1) hops; the conditional σ of a
#: candidate given a few tens of pending hops needs n well above their number; and 256 rows of a
#: 10^5-hop pool are 200 MB of float64, still fine on a login node.
POSTERIOR_DRAWS = 256


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
