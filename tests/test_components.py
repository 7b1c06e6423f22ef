"""The stack's components behind one interface (alem.inference.components): each kind fits on real
hops, predicts, saves into a model directory and loads back to the same predictions, and draws
joint samples that keep what the hops share (one member, one tree for every hop of a draw)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alem.graphs import GraphSettings
from alem.hops import load_training_hops
from alem.hops.io import load_shipped_cheap_barriers
from alem.inference.components import BarrierComponent, HopInputs
from alem.inference.draw_randomness import DrawRandomness
from alem.inference.stacking import combine_members
from alem.inference.tree_components import FidelityTreeComponent, TreeComponent
from alem.model_dir import TreeSpec

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shipped():
    from alem.ensemble import Ensemble

    return Ensemble.load()


@pytest.fixture(scope="module")
def small_inputs():
    hops = [h for h in load_training_hops() if h.n_sites <= 60][:40]
    inputs = HopInputs(hops, GraphSettings(descriptor_set="v2"), CPU, cheap_barriers=load_shipped_cheap_barriers())
    return inputs, np.array([h.barrier_ev for h in hops])


def test_tree_components_fit_predict_save_load_and_draw_whole_trees(small_inputs, tmp_path):
    everything, y_all = small_inputs
    inputs, y = everything.subset(np.arange(30)), y_all[:30]
    unseen, y_unseen = everything.subset(np.arange(30, 40)), y_all[30:]
    forest_spec = TreeSpec("et", "extra_trees", {"n_estimators": 25}, log_target=True)
    boosting_spec = TreeSpec("gb", "gradient_boosting", {"n_estimators": 20}, log_target=True)
    fitted = [TreeComponent(spec, position=k).fit(inputs, y, seed=1) for k, spec in enumerate((forest_spec, boosting_spec))]
    assert all(isinstance(c, BarrierComponent) for c in fitted)
    for component in fitted:  # card order: the siblings share trees.joblib
        component.save(tmp_path)
    loaded = TreeComponent.load_all(tmp_path, [forest_spec, boosting_spec])
    for before, after in zip(fitted, loaded):
        np.testing.assert_array_equal(after.predict(unseen).mean_ev, before.predict(unseen).mean_ev)
    forest, boosting = loaded
    prediction = forest.predict(unseen)
    assert (prediction.sigma_ev > 0).all() and np.isfinite(prediction.mean_ev).all()
    assert np.abs(np.log(prediction.mean_ev / y_unseen)).mean() < np.abs(np.log(np.exp(np.log(y).mean()) / y_unseen)).mean()
    # a forest's joint draw is one whole tree's barriers for every hop, never a patchwork of trees
    per_tree = np.exp(np.stack([tree.predict(unseen.descriptors) for tree in forest.model.estimators_]))
    draws = forest.sample(unseen, 60, DrawRandomness(0))
    assert draws.shape == (60, len(y_unseen))
    for draw in draws:
        assert np.isclose(per_tree, draw, rtol=1e-6).all(axis=1).any()
    assert len({tuple(np.round(d, 6)) for d in draws}) > 5  # different trees are drawn
    # a point model has no spread: every draw is its prediction
    point = boosting.predict(unseen).mean_ev
    np.testing.assert_allclose(boosting.sample(unseen, 3, DrawRandomness(0)), np.repeat(point[None], 3, 0))


def test_fidelity_trees_read_the_cheap_barrier_and_refuse_hops_without_one(small_inputs, tmp_path):
    inputs, y = small_inputs
    paired, _ = inputs.cheap_barriers_of("mlip:MACE-MP")
    assert paired.sum() >= 30
    part = inputs.subset(paired)
    spec = TreeSpec("et", "extra_trees", {"n_estimators": 20})
    component = FidelityTreeComponent(spec, "log_delta", "mlip:MACE-MP").fit(part, y[paired], seed=0)
    component.save(tmp_path)
    (loaded,) = FidelityTreeComponent.load_all(tmp_path, [spec], "log_delta", "mlip:MACE-MP")
    np.testing.assert_array_equal(loaded.predict(part).mean_ev, component.predict(part).mean_ev)
    assert np.abs(loaded.predict(part).mean_ev - y[paired]).mean() < np.abs(y[paired].mean() - y[paired]).mean()
    without = HopInputs(inputs.hops[:3], inputs.settings, CPU)
    with pytest.raises(ValueError, match="3 hops have no mlip:MACE-MP barrier"):
        component.predict(without)


def test_gnn_members_draw_one_member_per_draw_and_match_their_mixture(shipped):
    hops = [h for h in load_training_hops() if h.n_sites <= 60][:5]
    inputs = shipped.hop_inputs(hops, device="cpu")
    location, scale = shipped.gnn.member_predictions(inputs)
    draws = shipped.gnn.sample(inputs, 4000, DrawRandomness(3))
    mean, sigma = combine_members(location, scale, 1.0)
    np.testing.assert_allclose(draws.mean(0), location.mean(0), atol=0.03)
    np.testing.assert_allclose(draws.std(0), sigma, rtol=0.1)
    np.testing.assert_allclose(shipped.gnn.predict(inputs).mean_ev, mean)


def test_a_gnn_draw_takes_one_member_for_every_hop(shipped, monkeypatch):
    """Members that disagree a lot and are sure of themselves (tiny Laplace scales): every draw is
    one member's barriers for all hops, never one member's here and another's there."""
    hops = [h for h in load_training_hops() if h.n_sites <= 60][:3]
    inputs = shipped.hop_inputs(hops, device="cpu")
    location = np.array([[0.2, 0.4, 0.6], [1.0, 1.2, 1.4], [2.0, 2.2, 2.4]])
    monkeypatch.setattr(shipped.gnn, "member_predictions", lambda _: (location, np.full_like(location, 1e-4)))
    draws = shipped.gnn.sample(inputs, 200, DrawRandomness(0))
    nearest = np.abs(draws[:, None, :] - location[None]).max(axis=2).min(axis=1)
    assert (nearest < 0.01).all()
    assert len({int(np.argmin(np.abs(d - location).max(axis=1))) for d in draws}) == 3


def test_an_ensemble_draws_from_its_mixtures_reproducibly(shipped):
    hops = [h for h in load_training_hops() if h.n_sites <= 60][:4]
    pairs = load_shipped_cheap_barriers()
    cheap = {hops[0].hop_id: pairs[hops[0].hop_id]}
    first = shipped.sample(hops, 50, seed=7, cheap_barriers=cheap, device="cpu")
    again = shipped.sample(hops, 50, seed=7, cheap_barriers=cheap, device="cpu")
    assert first.shape == (50, 4) and (first >= 0).all()
    np.testing.assert_array_equal(first, again)
    prediction = shipped.predict(hops, cheap_barriers=cheap, device="cpu")
    # the draws scatter around the prediction (σ calibrated there, raw here: a loose check)
    assert (np.abs(np.median(first, 0) - prediction.mean_ev) < 2 * prediction.std_ev).all()
