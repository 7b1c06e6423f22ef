"""Acquisition strategies: which BoTorch acquisition function each strategy name means.

* ``explore``  -- ``qPosteriorStandardDeviation``: the hops the ensemble disagrees on most; a batch
  is built greedily with the chosen hops as pending points, so members that already disagree on
  a chosen hop add little for a similar one.
* ``discover`` -- ``qLogExpectedImprovement`` of −E_m over ``best_f = −0.65 eV``: the expected
  amount by which a hop's barrier falls below the good-conductor threshold (log scale). The
  threshold, not the lowest barrier seen so far, is the reference because the campaign wants every
  good hop, not only the single best one.
* ``balanced`` -- ``qUpperConfidenceBound`` of −E_m with β = 1, i.e. about −μ + σ per hop: low
  predicted barriers and uncertain ones score alike.

All objectives act on ensemble members through ``GenericMCObjective(-Y)`` (BoTorch maximises).
Monte-Carlo averages run over every member exactly once (``MemberSampler``), so scores are exact
ensemble averages, identical whatever the size of the pool or the batch being scored.
"""

from __future__ import annotations

from typing import get_args

import torch
from botorch.acquisition import (
    AcquisitionFunction,
    qLogExpectedImprovement,
    qPosteriorStandardDeviation,
    qUpperConfidenceBound,
)
from botorch.acquisition.objective import GenericMCObjective
from botorch.sampling.index_sampler import IndexSampler

from alem.acquisition.model import CandidatePoolModel
from alem.config import Strategy
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV

#: The strategy names are written once, where a campaign's settings accept them.
StrategyName = Strategy
STRATEGIES: tuple[str, ...] = get_args(Strategy)

#: β of the balanced strategy's UCB (≈ one σ of optimism).
BALANCED_BETA = 1.0


class MemberSampler(IndexSampler):
    """BoTorch's ensemble sampler, with every member taken once instead of random draws of
    members (random draws differ between candidates of one evaluation and add noise to ranks)."""

    def __init__(self, n_members: int) -> None:
        super().__init__(sample_shape=torch.Size([n_members]))

    def _construct_base_samples(self, posterior) -> None:
        shape = self.sample_shape + posterior.batch_shape
        if self.base_samples is None or self.base_samples.shape != shape:
            members = torch.arange(self.sample_shape[0], device=posterior.device)
            members = members.view(-1, *([1] * len(posterior.batch_shape))).expand(shape)
            self.register_buffer("base_samples", members.contiguous())


def _negative_barrier(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
    return -samples[..., 0]


def negative_barrier() -> GenericMCObjective:
    return GenericMCObjective(_negative_barrier)


def build_acquisition(
    strategy: str,
    model: CandidatePoolModel,
    threshold_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV,
    pending: torch.Tensor | None = None,
) -> AcquisitionFunction:
    """The BoTorch acquisition function for ``strategy`` on the candidate pool ``model``.

    ``pending``: ``m x 1`` indices of hops already on their way to a calculation (proposed,
    approved or running); the batch is chosen conditioned on them.
    """
    sampler = MemberSampler(model.n_members)
    objective = negative_barrier()
    if strategy == "explore":
        return qPosteriorStandardDeviation(model, sampler=sampler, objective=objective, X_pending=pending)
    if strategy == "discover":
        return qLogExpectedImprovement(
            model, best_f=-threshold_ev, sampler=sampler, objective=objective, X_pending=pending
        )
    if strategy == "balanced":
        return qUpperConfidenceBound(
            model, beta=BALANCED_BETA, sampler=sampler, objective=objective, X_pending=pending
        )
    raise ValueError(f"unknown strategy {strategy!r} (choose one of {', '.join(STRATEGIES)})")
