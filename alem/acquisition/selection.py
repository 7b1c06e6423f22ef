"""Choosing a batch of hops: BoTorch's discrete optimiser, plus the campaign's rules.

* No hop twice: hops already proposed, approved, computing or done are ``X_avoid`` (and, while
  still waiting for their result, pending points the batch is conditioned on).
* Cost: an NEB costs more on a larger supercell. With ``cost_weight`` w the score is
  ``acquisition(X) − w · n_sites/100`` through BoTorch's ``PenalizedAcquisitionFunction``; the
  penalty is in the acquisition's own units (eV for explore/balanced, log-EI for discover).
* Cost per core-hour: with ``cost_core_hours_of`` (NEB core-hours per hop, e.g. from
  :func:`alem.acquisition.costs.cost_of`) the acquisition is divided by the batch's cost through
  BoTorch's ``InverseCostWeightedUtility`` (:mod:`alem.acquisition.cost_aware`). ``cost_weight``
  still works alone or together with it (the penalty is applied first).
* ``max_per_host``: the greedy sequential batch (what ``optimize_acqf_discrete`` does for q > 1)
  is run one pick at a time so that hops of a host that reached its cap leave the choices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.penalized import PenalizedAcquisitionFunction
from botorch.optim.optimize import optimize_acqf_discrete

from alem.acquisition.cost_aware import CostAwareAcquisition
from alem.acquisition.model import CandidatePoolModel, PredictionTable
from alem.acquisition.strategies import build_acquisition
from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV


@dataclass(frozen=True)
class Selection:
    """One chosen hop and why: the (marginal, greedy) acquisition score and the prediction."""

    hop_id: str
    index: int
    score: float
    mean_ev: float
    std_ev: float


@dataclass(frozen=True)
class SelectionRequest:
    strategy: str
    batch_size: int
    #: Hops that must not be chosen (already proposed, approved, submitted or done).
    avoid: Sequence[str] = ()
    #: Hops whose calculation is coming (proposed/approved/running): conditioned on, never chosen.
    pending: Sequence[str] = ()
    max_per_host: int = 0
    cost_weight: float = 0.0
    #: host label per hop id (for max_per_host); hops without one form their own host.
    host_of: dict[str, str] = field(default_factory=dict)
    #: supercell size per hop id (for cost_weight).
    n_sites_of: dict[str, int] = field(default_factory=dict)
    threshold_ev: float = GOOD_CONDUCTOR_THRESHOLD_EV
    #: discover's threshold per hop id where it is not ``threshold_ev`` (hops of another working ion).
    threshold_ev_of: dict[str, float] = field(default_factory=dict)
    #: NEB cost (core-hours) per hop id; empty = no cost-awareness. Every pool hop needs one.
    cost_core_hours_of: dict[str, float] = field(default_factory=dict)


class SupercellCost(torch.nn.Module):
    """Penalty of a q-batch: Σ n_sites/100 of its hops (X holds candidate indices)."""

    def __init__(self, n_sites: torch.Tensor) -> None:
        super().__init__()
        self.hundreds_of_sites: torch.Tensor
        self.register_buffer("hundreds_of_sites", n_sites.to(torch.float64) / 100.0)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.hundreds_of_sites[X[..., 0].round().long()].sum(dim=-1)


def _indices(table: PredictionTable, hop_ids: Sequence[str]) -> torch.Tensor | None:
    where = table.index_of()
    found = sorted({where[h] for h in hop_ids if h in where})
    return torch.tensor(found, dtype=torch.float64).unsqueeze(-1) if found else None


def _with_cost(acqf: AcquisitionFunction, table: PredictionTable, request: SelectionRequest) -> AcquisitionFunction:
    if request.cost_core_hours_of:
        missing = [h for h in table.hop_ids if h not in request.cost_core_hours_of]
        if missing:
            raise ValueError(f"cost_core_hours_of needs the cost of every hop; missing {missing[:3]}")
        core_hours = torch.tensor([float(request.cost_core_hours_of[h]) for h in table.hop_ids])
        if not bool((core_hours > 0).all()):
            raise ValueError("NEB costs must be positive core-hours")
        return CostAwareAcquisition(_with_penalty(acqf, table, request), core_hours)
    return _with_penalty(acqf, table, request)


def _with_penalty(acqf: AcquisitionFunction, table: PredictionTable, request: SelectionRequest) -> AcquisitionFunction:
    if request.cost_weight <= 0:
        return acqf
    missing = [h for h in table.hop_ids if h not in request.n_sites_of]
    if missing:
        raise ValueError(f"cost_weight needs the supercell size of every hop; missing {missing[:3]}")
    n_sites = torch.tensor([request.n_sites_of[h] for h in table.hop_ids])
    return PenalizedAcquisitionFunction(acqf, SupercellCost(n_sites), regularization_parameter=request.cost_weight)


def select_batch(table: PredictionTable, request: SelectionRequest) -> list[Selection]:
    """Choose up to ``batch_size`` hops of ``table`` for ``request.strategy`` (fewer if the pool
    runs out). Returns them in the order they were picked."""
    model = CandidatePoolModel(table)
    pending = _indices(table, request.pending)
    thresholds = torch.tensor([request.threshold_ev_of.get(h, request.threshold_ev) for h in table.hop_ids], dtype=torch.float64)
    acqf = _with_cost(build_acquisition(request.strategy, model, thresholds, pending), table, request)
    avoid = set(request.avoid) | set(request.pending)
    available = [k for k, hop_id in enumerate(table.hop_ids) if hop_id not in avoid]
    if not available or request.batch_size <= 0:
        return []
    choices = model.choices()
    X_avoid = _indices(table, sorted(avoid))
    if request.max_per_host <= 0:
        q = min(request.batch_size, len(available))
        picked, values = optimize_acqf_discrete(acqf, q=q, choices=choices, unique=True, X_avoid=X_avoid)
        picks = [(int(x.item()), float(v)) for x, v in zip(picked[:, 0], values.reshape(-1))]
    else:
        picks = _greedy_with_host_cap(acqf, table, request, available)
    return [
        Selection(table.hop_ids[k], k, score, float(table.mean_ev[k]), float(table.std_ev[k])) for k, score in picks
    ]


def _greedy_with_host_cap(
    acqf: AcquisitionFunction, table: PredictionTable, request: SelectionRequest, available: list[int]
) -> list[tuple[int, float]]:
    base_pending = acqf.X_pending
    per_host: Counter[str] = Counter()
    picks: list[tuple[int, float]] = []

    def host(k: int) -> str:
        return request.host_of.get(table.hop_ids[k], table.hop_ids[k])

    try:
        for _ in range(request.batch_size):
            taken = {k for k, _ in picks}
            allowed = [k for k in available if k not in taken and per_host[host(k)] < request.max_per_host]
            if not allowed:
                break
            choices = torch.tensor(allowed, dtype=torch.float64).unsqueeze(-1)
            best, value = optimize_acqf_discrete(acqf, q=1, choices=choices)
            k = int(best[0, 0].item())
            picks.append((k, float(value.reshape(-1)[0])))
            per_host[host(k)] += 1
            chosen = torch.tensor([p for p, _ in picks], dtype=torch.float64).unsqueeze(-1)
            acqf.set_X_pending(chosen if base_pending is None else torch.cat([base_pending, chosen], dim=-2))
    finally:
        acqf.set_X_pending(base_pending)
    return picks
