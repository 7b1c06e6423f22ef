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

:func:`select_batch` runs that greedy batch on the whole pool at once (:mod:`alem.acquisition.greedy`:
one or two vectorised passes over the posterior rows per pick; the penalty and cost wrappers act
on the vector of values through the same BoTorch classes). :func:`select_batch_botorch` is the
same batch through ``optimize_acqf_discrete`` and the acquisition functions themselves: the
definition the fast path is tested against, minutes at 10^5 hops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.penalized import PenalizedAcquisitionFunction
from botorch.optim.optimize import optimize_acqf_discrete

from alem.acquisition.cost_aware import CostAwareAcquisition
from alem.acquisition.greedy import greedy_values
from alem.acquisition.model import CandidatePoolModel, PredictionTable
from alem.acquisition.strategies import DISCOVER_FORM, EXPLORE_FORM, build_acquisition
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
    #: what discover maximises (:data:`alem.acquisition.strategies.DISCOVER_FORMS`).
    discover_form: str = DISCOVER_FORM
    #: what explore maximises (:data:`alem.acquisition.strategies.EXPLORE_FORMS`).
    explore_form: str = EXPLORE_FORM


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


#: Relative difference under which two hops' values are a tie (float rounding of the same value).
TIE_TOLERANCE = 1e-12


class PoolValues(AcquisitionFunction):
    """Looks up one precomputed acquisition value per pool hop (X holds pool indices, q = 1), so
    the penalty and cost-per-core-hour wrappers act on the vectorised values as on BoTorch's."""

    def __init__(self, n_hops: int, log_scale: bool) -> None:
        super().__init__(model=None)  # type: ignore[arg-type]
        self.values = torch.zeros(n_hops, dtype=torch.float64)
        self.log_scale = log_scale  # discover's values are log-EI (cost divides as log EI − log cost)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.values[X[..., 0].round().long()].sum(dim=-1)


def select_batch(table: PredictionTable, request: SelectionRequest) -> list[Selection]:
    """Choose up to ``batch_size`` hops of ``table`` for ``request.strategy`` (fewer if the pool
    runs out). Returns them in the order they were picked: the greedy batch of
    :func:`select_batch_botorch`, computed for the whole pool at once."""
    n_hops = len(table)
    thresholds = np.array([request.threshold_ev_of.get(h, request.threshold_ev) for h in table.hop_ids], dtype=float)
    values = greedy_values(request.strategy, table, thresholds, request.discover_form, request.explore_form)
    avoid = set(request.avoid) | set(request.pending)
    available = np.fromiter((hop_id not in avoid for hop_id in table.hop_ids), dtype=bool, count=n_hops)
    if not available.any() or request.batch_size <= 0:
        return []
    where = table.index_of() if request.pending else {}
    for k in sorted({where[h] for h in request.pending if h in where}):
        values.condition_on(k)
    lookup = PoolValues(n_hops, log_scale=request.strategy == "discover" and request.discover_form == "log_ei")
    scorer = _with_cost(lookup, table, request)
    every_hop = torch.arange(n_hops, dtype=torch.float64).view(n_hops, 1, 1)
    host_code = np.zeros(n_hops, dtype=np.int64)
    if request.max_per_host > 0:
        _, host_code = np.unique([request.host_of.get(h, h) for h in table.hop_ids], return_inverse=True)
    per_host: Counter[int] = Counter()
    picks: list[tuple[int, float]] = []
    for _ in range(request.batch_size):
        if not available.any():
            break
        lookup.values = torch.from_numpy(values.values())
        with torch.no_grad():
            scores = scorer(every_hop).numpy()
        scores = np.where(available, scores, -np.inf)
        best = scores.max()
        # values equal up to rounding are a tie, which goes to the first hop in pool order (as
        # optimize_acqf_discrete's argmax does for exact ties)
        k = int(np.argmax(scores >= best - TIE_TOLERANCE * max(1.0, abs(best)) if np.isfinite(best) else scores))
        picks.append((k, float(scores[k])))
        available[k] = False
        per_host[int(host_code[k])] += 1
        if request.max_per_host > 0 and per_host[int(host_code[k])] >= request.max_per_host:
            available[host_code == host_code[k]] = False
        values.condition_on(k)
    return [
        Selection(table.hop_ids[k], k, score, float(table.mean_ev[k]), float(table.std_ev[k])) for k, score in picks
    ]


def select_batch_botorch(table: PredictionTable, request: SelectionRequest) -> list[Selection]:
    """:func:`select_batch` through BoTorch's ``optimize_acqf_discrete`` on the acquisition
    functions of :mod:`alem.acquisition.strategies` (the definition; slow on large pools)."""
    model = CandidatePoolModel(table)
    pending = _indices(table, request.pending)
    thresholds = torch.tensor([request.threshold_ev_of.get(h, request.threshold_ev) for h in table.hop_ids], dtype=torch.float64)
    acqf = build_acquisition(request.strategy, model, thresholds, pending, request.discover_form, request.explore_form)
    acqf = _with_cost(acqf, table, request)
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
