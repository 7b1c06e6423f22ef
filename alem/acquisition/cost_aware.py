"""Cost-aware acquisition: utility per core-hour with BoTorch's ``InverseCostWeightedUtility``.

The cost model is a BoTorch ``GenericDeterministicModel`` that looks up each candidate's NEB cost
(core-hours, :mod:`alem.acquisition.costs`) by its index in the pool. The utility of a q-batch is
the acquisition value divided by the batch's summed cost — for log-scale acquisitions (discover's
log-EI) BoTorch's ``log=True`` form, log EI − log cost, i.e. EI per core-hour. A negative utility
(balanced's −μ + σ can be) is multiplied by the cost instead (BoTorch's rule), so an expensive hop
never gains from costing more.
"""

from __future__ import annotations

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.cost_aware import InverseCostWeightedUtility
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.models.deterministic import GenericDeterministicModel
from torch import Tensor


def candidate_cost_model(core_hours: Tensor) -> GenericDeterministicModel:
    """Cost of each candidate (X holds pool indices, ``... x q x 1``), ``... x q x 1`` core-hours."""
    costs = core_hours.to(torch.float64)
    return GenericDeterministicModel(lambda X: costs[X[..., 0].round().long()].unsqueeze(-1))


def _log_scale(acqf: AcquisitionFunction) -> bool:
    """Whether ``acqf``'s values are logarithms (qLogEI, or values that say so)."""
    return bool(getattr(acqf, "log_scale", isinstance(acqf, qLogExpectedImprovement)))


class CostAwareAcquisition(AcquisitionFunction):
    """``raw_acqf``'s value per unit cost through ``InverseCostWeightedUtility``."""

    def __init__(self, raw_acqf: AcquisitionFunction, core_hours: Tensor) -> None:
        super().__init__(model=raw_acqf.model)
        self.raw_acqf = raw_acqf
        self.utility = InverseCostWeightedUtility(
            candidate_cost_model(core_hours), use_mean=True, log=_log_scale(raw_acqf)
        )

    def forward(self, X: Tensor) -> Tensor:
        return self.utility(X, deltas=self.raw_acqf(X=X))

    # botorch declares X_pending a plain attribute; this acquisition forwards it to the wrapped one
    @property
    def X_pending(self) -> Tensor | None:  # type: ignore[override]
        return self.raw_acqf.X_pending

    def set_X_pending(self, X_pending: Tensor | None = None) -> None:
        self.raw_acqf.set_X_pending(X_pending=X_pending)
