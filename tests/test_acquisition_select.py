"""BoTorch acquisition over a hand-made ensemble table."""

import numpy as np
import pytest
import torch

from alem.acquisition import CandidatePoolModel, PredictionTable, SelectionRequest, select_batch


def _table(means, stds, n_members=8, seed=0) -> PredictionTable:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_members, len(means)))
    z = (z - z.mean(axis=0)) / z.std(axis=0, ddof=1)  # exact mean/std per hop
    members = np.asarray(means)[None, :] + np.asarray(stds)[None, :] * z
    return PredictionTable.from_members([f"h{k}" for k in range(len(means))], members)


def test_model_posterior_matches_the_table():
    table = _table([0.3, 1.0, 2.0], [0.1, 0.5, 0.2])
    posterior = CandidatePoolModel(table).posterior(torch.tensor([[2.0], [0.0]], dtype=torch.float64))
    np.testing.assert_allclose(posterior.mean.squeeze(-1).numpy(), [2.0, 0.3], atol=1e-9)
    np.testing.assert_allclose(posterior.variance.sqrt().squeeze(-1).numpy(), [0.2, 0.1], atol=1e-9)


def test_calibrated_std_rescales_member_spread():
    raw = _table([1.0, 1.0], [0.1, 0.2])
    calibrated = PredictionTable(raw.hop_ids, raw.member_ev, raw.mean_ev, raw.std_ev * 3)
    np.testing.assert_allclose(calibrated.calibrated_members().std(axis=0, ddof=1), [0.3, 0.6])


def test_explore_picks_the_most_uncertain_hop():
    table = _table([0.5, 1.0, 1.5, 0.2, 3.0], [0.1, 0.2, 0.9, 0.15, 0.3])
    (first,) = select_batch(table, SelectionRequest("explore", 1))
    assert first.hop_id == "h2" and first.std_ev == pytest.approx(0.9)


def test_discover_prefers_low_mean_at_equal_uncertainty():
    table = _table([1.2, 0.4, 0.9, 2.0], [0.2] * 4)
    assert select_batch(table, SelectionRequest("discover", 1))[0].hop_id == "h1"
    assert select_batch(table, SelectionRequest("discover", 1, avoid=["h1"]))[0].hop_id == "h2"


def test_balanced_trades_mean_against_uncertainty():
    # h0: low mean, certain; h1: higher mean but very uncertain -> -mu + sigma favours h1
    table = _table([0.5, 0.7, 1.5], [0.05, 0.6, 0.1])
    (first,) = select_batch(table, SelectionRequest("balanced", 1))
    assert first.hop_id == "h1"


def test_batches_never_repeat_and_respect_avoid_and_pending():
    table = _table(list(np.linspace(0.1, 2.0, 12)), list(np.linspace(0.9, 0.1, 12)))
    picks = select_batch(table, SelectionRequest("explore", 6, avoid=["h0"], pending=["h1"]))
    ids = [p.hop_id for p in picks]
    assert len(ids) == len(set(ids)) == 6
    assert "h0" not in ids and "h1" not in ids
    assert ids[0] == "h2"  # the most uncertain hop still allowed


@pytest.mark.parametrize("strategy", ["explore", "discover", "balanced"])
def test_pending_hops_condition_the_batch_avoided_ones_do_not(strategy):
    """h1 is h0's twin (same member predictions: whatever h0's NEB shows, h1's would too); h2 is
    independent and, alone, a little worse. Merely avoided, h0 leaves h1 the best pick; pending,
    h0 makes its twin worthless to the batch, so h2 is picked."""
    rng = np.random.default_rng(0)
    twin = rng.normal(0.5, 0.3, 8)
    other = rng.normal(0.5, 0.3, 8)
    other = (other - other.mean()) / other.std(ddof=1) * twin.std(ddof=1) + twin.mean() + 0.05
    table = PredictionTable.from_members(["h0", "h1", "h2"], np.stack([twin, twin, other], axis=1))
    (avoided,) = select_batch(table, SelectionRequest(strategy, 1, avoid=["h0"]))
    (conditioned,) = select_batch(table, SelectionRequest(strategy, 1, pending=["h0"]))
    assert avoided.hop_id == "h1" and conditioned.hop_id == "h2"
    # the score of a pick made with h0 pending is the value of the joint batch {h0, pick}
    (joint_first, joint_second) = select_batch(table, SelectionRequest(strategy, 2, avoid=["h1"]))
    assert {joint_first.hop_id, joint_second.hop_id} == {"h0", "h2"}
    assert conditioned.score == pytest.approx(joint_second.score, rel=1e-6)


def test_pool_smaller_than_batch_returns_what_is_left():
    table = _table([0.5, 1.0, 1.5], [0.1, 0.2, 0.3])
    picks = select_batch(table, SelectionRequest("discover", 5, avoid=["h0"]))
    assert sorted(p.hop_id for p in picks) == ["h1", "h2"]
    assert select_batch(table, SelectionRequest("discover", 5, avoid=["h0", "h1", "h2"])) == []


def test_host_cap_is_respected():
    stds = [0.9, 0.6, 0.5, 0.3, 0.2, 0.1]
    table = _table([1.0] * 6, stds)
    host_of = {"h0": "A", "h1": "A", "h2": "A", "h3": "B", "h4": "B", "h5": "C"}
    picks = select_batch(table, SelectionRequest("explore", 4, max_per_host=1, host_of=host_of))
    hosts = [host_of[p.hop_id] for p in picks]
    assert sorted(hosts) == ["A", "B", "C"]  # only three hosts: the batch stops at three
    assert picks[0].hop_id == "h0"


def test_cost_weight_penalises_large_supercells():
    table = _table([1.0, 1.0], [0.5, 0.4])
    sizes = {"h0": 400, "h1": 20}
    assert select_batch(table, SelectionRequest("explore", 1, n_sites_of=sizes))[0].hop_id == "h0"
    cheap = select_batch(table, SelectionRequest("explore", 1, cost_weight=0.1, n_sites_of=sizes))[0]
    assert cheap.hop_id == "h1"
    unpenalised = select_batch(table, SelectionRequest("explore", 1, avoid=["h0"], n_sites_of=sizes))[0]
    assert cheap.score == pytest.approx(unpenalised.score - 0.1 * 20 / 100)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'greedy'"):
        select_batch(_table([1.0], [0.1]), SelectionRequest("greedy", 1))


def test_table_from_an_ensemble_prediction_rows_are_its_draws_recalibrated():
    from types import SimpleNamespace

    location = np.array([[0.4, 1.0], [0.6, 1.0]])  # 2 members x 2 hops
    prediction = SimpleNamespace(member_ev=location, mean_ev=location.mean(0), std_ev=np.array([0.2, 0.5]))
    draws = np.random.default_rng(0).laplace(np.tile(location, (8, 1)), 0.1)  # 16 joint draws
    table = PredictionTable.from_prediction(["a", "b"], prediction, draws)
    assert table.member_ev.shape == (16, 2)
    calibrated = table.calibrated_members()
    np.testing.assert_allclose(calibrated.mean(axis=0), [0.5, 1.0], atol=1e-12)
    np.testing.assert_allclose(calibrated.std(axis=0, ddof=1), [0.2, 0.5])
    assert select_batch(table, SelectionRequest("explore", 1))[0].hop_id == "b"
    # without draws the rows are the members' locations
    assert PredictionTable.from_prediction(["a", "b"], prediction).member_ev.shape == (2, 2)


def test_explore_scores_a_hop_by_its_sigma_given_the_pending_hops():
    rng = np.random.default_rng(0)
    shared, own, other = (z - z.mean() for z in rng.standard_normal((3, 512)))
    # h1 moves with the pending h0 (r = 0.95) and has the larger σ; h2 is independent of both
    rows = np.c_[shared, 1.2 * (0.95 * shared + np.sqrt(1 - 0.95**2) * own), 0.7 * other]
    table = PredictionTable(("h0", "h1", "h2"), rows, np.ones(3), rows.std(axis=0, ddof=1))
    (alone,) = select_batch(table, SelectionRequest("explore", 1, avoid=["h0"]))
    assert alone.hop_id == "h1" and alone.score == pytest.approx(table.std_ev[1], rel=1e-3)
    (given,) = select_batch(table, SelectionRequest("explore", 1, pending=["h0"]))
    residual = np.linalg.lstsq(np.c_[shared], rows[:, 1], rcond=None)[1][0] / (len(shared) - 1)
    assert given.hop_id == "h2" and given.score == pytest.approx(table.std_ev[2], rel=1e-3)
    assert np.sqrt(residual) < given.score  # h1's σ given h0 is about 1.2·√(1 − 0.95²) ≈ 0.37


def _correlated_pool(n_hops=160, n_rows=32, seed=3) -> PredictionTable:
    """Rows from 4 shared components plus per-hop noise; h5 is h3 listed twice."""
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(np.log(0.6), 0.5, n_hops)
    rows = mean + rng.standard_normal((n_rows, 4)) @ rng.normal(0, 0.1, (4, n_hops)) + rng.laplace(0, 0.1, (n_rows, n_hops))
    rows[:, 5] = rows[:, 3]
    return PredictionTable(tuple(f"h{k}" for k in range(n_hops)), rows, rows.mean(0) + 0.01, rows.std(0, ddof=1) * 1.3)


_ALL_HOPS = [f"h{k}" for k in range(160)]
_REQUEST_VARIANTS = {
    "plain": {},
    "pending": {"pending": ["h3", "h7", "h11"]},
    "host cap": {"avoid": ["h1"], "pending": ["h3"], "max_per_host": 2, "host_of": {h: f"x{k % 7}" for k, h in enumerate(_ALL_HOPS)}},
    "supercell penalty, thresholds per hop": {
        "cost_weight": 0.05, "n_sites_of": {h: 50 + k % 90 for k, h in enumerate(_ALL_HOPS)},
        "threshold_ev_of": {h: 0.3 for h in _ALL_HOPS[::2]},
    },
    "per core-hour": {"pending": ["h2"], "cost_core_hours_of": {h: 10.0 + k % 13 for k, h in enumerate(_ALL_HOPS)}},
}


@pytest.mark.parametrize("variant", list(_REQUEST_VARIANTS))
@pytest.mark.parametrize("strategy", ["explore", "explore integrated_variance", "discover", "discover good_hops", "balanced"])
def test_the_vectorised_batch_is_botorchs_greedy_batch(strategy, variant):
    """select_batch (one pass over the rows per pick) chooses the same hops in the same order with
    the same scores as BoTorch's optimize_acqf_discrete on the acquisition functions themselves."""
    from alem.acquisition.selection import select_batch_botorch

    table = _correlated_pool()
    strategy, _, form = strategy.partition(" ")
    forms = {"explore_form": form} if strategy == "explore" and form else {"discover_form": form or "log_ei"}
    request = SelectionRequest(strategy, 6, **_REQUEST_VARIANTS[variant], **forms)
    fast, slow = select_batch(table, request), select_batch_botorch(table, request)
    assert [p.hop_id for p in fast] == [p.hop_id for p in slow] and len(fast) == 6
    np.testing.assert_allclose([p.score for p in fast], [p.score for p in slow], rtol=1e-9, atol=1e-12)


def test_discover_forms_differ_where_improvement_and_probability_disagree():
    """A hop surely just below the threshold against one far from sure but with a larger expected
    margin: qLogEI takes the margin, the expected number of good hops takes the sure one."""
    table = _table([0.2, 0.45], [0.02, 0.6], n_members=256)
    log_ei = select_batch(table, SelectionRequest("discover", 1, threshold_ev=0.3, discover_form="log_ei"))
    good_hops = select_batch(table, SelectionRequest("discover", 1, threshold_ev=0.3, discover_form="good_hops"))
    assert log_ei[0].hop_id == "h1" and good_hops[0].hop_id == "h0"
    assert good_hops[0].score == pytest.approx(1.0, abs=1e-3)  # one good hop expected in the batch
    with pytest.raises(ValueError, match="unknown discover form"):
        select_batch(table, SelectionRequest("discover", 1, discover_form="max"))


def test_integrated_variance_is_the_pool_variance_a_label_removes_by_gaussian_conditioning():
    """Each hop's value, given two pending hops, is tr K|P − tr K|P,hop computed directly: K the
    calibrated rows' covariance (+ jitter), conditioned by the Gaussian formula with explicit inverses."""
    from alem.acquisition.greedy import greedy_values
    from alem.acquisition.strategies import CONDITIONAL_JITTER_EV2

    table = _correlated_pool(n_hops=12, n_rows=40, seed=5)
    K = np.cov(table.calibrated_members(), rowvar=False) + CONDITIONAL_JITTER_EV2 * np.eye(12)

    def conditioned(K, hops):
        return K - K[:, hops] @ np.linalg.inv(K[np.ix_(hops, hops)]) @ K[hops, :]

    given_pending = conditioned(K, [3, 7])
    free = [i for i in range(12) if i not in (3, 7)]
    expected = np.array([np.trace(given_pending) - np.trace(conditioned(given_pending, [i])) for i in free])
    values = greedy_values("explore", table, np.full(12, 0.65), explore_form="integrated_variance")
    values.condition_on(3)
    values.condition_on(7)
    np.testing.assert_allclose(values.values()[free], expected, rtol=1e-6, atol=1e-8 * expected.max())
    assert values.values()[5] < 1e-3 * expected.max()  # h5 is h3 listed twice: nothing left to learn


def test_integrated_variance_picks_a_representative_hop_over_an_outlier():
    """Twenty hops move together (one shared uncertain component, σ 0.3 each) and one outlier is
    more uncertain (σ 0.6) but alone: conditional σ takes the outlier, integrated variance a hop of
    the group, whose label tells about all twenty."""
    rng = np.random.default_rng(1)
    shared = rng.standard_normal(256)
    group = 0.25 * shared[:, None] + 0.17 * rng.standard_normal((256, 20))
    rows = 0.5 + np.c_[0.6 * rng.standard_normal(256), group]
    table = PredictionTable.from_members([f"h{k}" for k in range(21)], rows)
    (uncertain,) = select_batch(table, SelectionRequest("explore", 1))
    (representative,) = select_batch(table, SelectionRequest("explore", 1, explore_form="integrated_variance"))
    assert uncertain.hop_id == "h0" and representative.hop_id != "h0"
    with pytest.raises(ValueError, match="unknown explore form"):
        select_batch(table, SelectionRequest("explore", 1, explore_form="alc"))
