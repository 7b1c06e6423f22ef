"""Costs per fidelity, cost-aware selection (BoTorch's InverseCostWeightedUtility) and the
screening stage's order and remaining promise."""

import numpy as np
import pytest

from alem.acquisition import PredictionTable, SelectionRequest, select_batch
from alem.acquisition.costs import DEFAULT_FIDELITY_COSTS, FidelityCost, cost_of
from alem.acquisition.screening import expected_good_hops, screening_order
from alem.hops import load_training_hops


def _twin_table(means, stds, n_members=8, seed=0) -> PredictionTable:
    """Hops with equal (mean, σ) get identical member columns: exactly equal utility."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n_members)
    z = (z - z.mean()) / z.std(ddof=1)
    members = np.asarray(means)[None, :] + np.asarray(stds)[None, :] * z[:, None]
    return PredictionTable.from_members([f"h{k}" for k in range(len(means))], members)


def test_costs_grow_with_supercell_size_and_fidelity():
    hops = sorted(load_training_hops()[:40], key=lambda h: len(h.initial))
    small, large = len(hops[0].initial), len(hops[-1].initial)
    assert small < large
    assert cost_of("dft:GGA", large) > cost_of("dft:GGA", small)
    assert cost_of("dft:GGA", 100) == pytest.approx(DEFAULT_FIDELITY_COSTS["dft"].core_hours_per_100_atoms)
    assert cost_of("dft:SCAN", 100) > cost_of("dft:GGA+U", 100) == cost_of("dft:GGA", 100)  # full fidelity first
    assert cost_of("mlip:MACE-MP", large) < 1e-3 * cost_of("dft:GGA", small)
    custom = {"dft": FidelityCost(10.0, 3.0)}
    assert cost_of("DFT:GGA", 200, custom) == pytest.approx(80.0)
    with pytest.raises(KeyError, match="no cost for fidelity mlip:CHGNet"):
        cost_of("mlip:CHGNet", 50, custom)
    with pytest.raises(ValueError, match="positive"):
        FidelityCost(0.0, 1.0)


@pytest.mark.parametrize("strategy", ["explore", "discover", "balanced"])
def test_cost_aware_selection_prefers_the_cheaper_hop_at_equal_utility(strategy):
    table = _twin_table([0.5, 0.5, 1.8], [0.3, 0.3, 0.05])
    assert select_batch(table, SelectionRequest(strategy, 1))[0].hop_id == "h0"  # a tie: pool order
    costs = {"h0": cost_of("dft:GGA", 160), "h1": cost_of("dft:GGA", 80), "h2": cost_of("dft:GGA", 80)}
    picks = select_batch(table, SelectionRequest(strategy, 2, cost_core_hours_of=costs))
    assert picks[0].hop_id == "h1"
    # equal costs change nothing
    flat = {h: 500.0 for h in table.hop_ids}
    assert select_batch(table, SelectionRequest(strategy, 1, cost_core_hours_of=flat))[0].hop_id == "h0"


def test_cost_aware_selection_trades_utility_against_cost():
    # h0 is twice as uncertain as h1 but costs ten times more: per core-hour h1 wins
    table = _twin_table([1.0, 1.0], [0.6, 0.3])
    assert select_batch(table, SelectionRequest("explore", 1))[0].hop_id == "h0"
    costs = {"h0": 1000.0, "h1": 100.0}
    assert select_batch(table, SelectionRequest("explore", 1, cost_core_hours_of=costs))[0].hop_id == "h1"
    assert select_batch(table, SelectionRequest("explore", 1, cost_core_hours_of={"h0": 1000.0, "h1": 600.0}))[0].hop_id == "h0"
    with pytest.raises(ValueError, match="missing"):
        select_batch(table, SelectionRequest("explore", 1, cost_core_hours_of={"h0": 1.0}))


@pytest.fixture(scope="module")
def real_table():
    from alem.ensemble import Ensemble

    hops = load_training_hops()[100:110]
    prediction = Ensemble.load().predict(hops, device="cpu")
    return PredictionTable.from_prediction([h.hop_id for h in hops], prediction)


def test_screening_order_puts_the_most_uncertain_first(real_table):
    pool = list(real_table.hop_ids[2:])
    sigma = dict(zip(real_table.hop_ids, real_table.std_ev))
    order = screening_order(pool, sigma, limit=4, order="uncertain")
    assert len(order) == 4 and order[0] == max(pool, key=sigma.get)
    assert [sigma[h] for h in order] == sorted((sigma[h] for h in pool), reverse=True)[:4]
    assert screening_order(pool, sigma, limit=3, order="all") == pool[:3]
    assert screening_order(pool, sigma, limit=0) == []
    assert screening_order(["unscored", *pool[:2]], sigma)[-1] == "unscored"  # no prediction: last
    with pytest.raises(ValueError, match="unknown screening order"):
        screening_order(pool, sigma, order="random")


def test_expected_good_hops_sums_the_probabilities(real_table):
    from scipy import stats

    mean, std = real_table.mean_ev, real_table.std_ev
    expected = sum(stats.norm.cdf((0.3 - m) / s) for m, s in zip(mean, std))
    assert expected_good_hops(mean, std, 0.3) == pytest.approx(expected)
    assert expected_good_hops(mean, std, 0.3) < expected_good_hops(mean, std, 0.65) < len(real_table)
    assert expected_good_hops([0.65, 0.65], [0.2, 0.4], 0.65) == pytest.approx(1.0)
    assert expected_good_hops([0.5, 0.8], [0.0, 0.0], 0.65) == pytest.approx(1.0)  # σ = 0: a step
