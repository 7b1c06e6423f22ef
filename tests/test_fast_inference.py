"""Rescoring's fast path gives the predictions of the plain one: the shipped ensemble on real
hops of the shipped dataset, its members run on cached path tensors (consecutive batches cut as
slices, messages summed by segments, the radial basis shared by the members, the receiver's part
of each convolution computed per receiver) against the same members run hop graph by hop graph
through the full network, and each convolution against its concatenated textbook form."""

import numpy as np
import pytest
import torch
from torch_geometric.utils import scatter

from alem.ensemble import Ensemble
from alem.hops import load_training_hops
from alem.inference.feature_cache import FeatureCache
from alem.inference.hop_graphs import build_hop_graphs
from alem.inference.members import PATH_TENSOR_BATCH, predict_member

#: Float32 arithmetic in another order (per-receiver products, segment sums): rounding only.
FLOAT32_TOLERANCE_EV = 1e-5


@pytest.fixture(scope="module")
def shipped():
    return Ensemble.load()


@pytest.fixture(scope="module")
def hops():
    # every 9th hop of the shipped set: hosts of 2 to 200 sites, Li to Al
    return load_training_hops()[::9][:60]


def test_members_on_cached_path_tensors_equal_the_full_network_on_hop_graphs(shipped, hops, tmp_path):
    assert shipped.gnn.frozen  # the shipped members read the frozen backbone's path tensors
    with FeatureCache(tmp_path / "cache.sqlite") as cache:
        shipped.predict(hops, device="cpu", cache=cache)  # fills the cache
        inputs = shipped.hop_inputs(hops, device="cpu", cache=cache)
        location, scale = shipped.gnn.member_predictions(inputs)
        assert cache.hits == len(hops) and "graphs" not in inputs.__dict__
    graphs = build_hop_graphs(hops, shipped.settings)
    for k, member in enumerate(shipped.members):
        # the plain path: a PyG batch of hop graphs through backbone and path side
        plain_location, plain_scale = predict_member(member, graphs, torch.device("cpu"), batch_size=7)
        np.testing.assert_allclose(location[k], plain_location, rtol=0, atol=FLOAT32_TOLERANCE_EV)
        np.testing.assert_allclose(scale[k], plain_scale, rtol=0, atol=FLOAT32_TOLERANCE_EV)
    assert np.ptp(location) > 0.5  # real, varied predictions, not a constant


def test_batches_are_slices_of_the_masked_batches(shipped, hops):
    tensors = shipped.hop_inputs(hops[:25], device="cpu").path_tensors
    batches = tensors.consecutive_batches(10)
    assert [len(b["host_pooled"]) for b in batches] == [10, 10, 5]
    for k, batch in enumerate(batches):
        masked = tensors.batch(torch.arange(10 * k, min(10 * k + 10, 25)))
        for name, value in masked.items():
            assert torch.equal(batch[name], value), name
        n_images = tensors.path_z.shape[1]
        assert torch.equal(batch["path_dst_lengths"], torch.bincount(masked["path_dst"], minlength=len(masked["path_z"])))
        assert len(batch["path_dst_lengths"]) == len(batch["host_pooled"]) * n_images
    shuffled = tensors.subset(torch.tensor([3, 1, 2]))  # a hop's edges before an earlier hop's: masked batches
    (batch,) = shuffled.consecutive_batches(PATH_TENSOR_BATCH)
    assert "path_dst_lengths" not in batch
    for name, value in shuffled.batch(torch.arange(3)).items():
        assert torch.equal(batch[name], value), name


def test_a_convolution_equals_its_concatenated_form(shipped, hops):
    member = shipped.members[0]
    tensors = shipped.hop_inputs(hops[:12], device="cpu").path_tensors
    (inputs,) = tensors.consecutive_batches(PATH_TENSOR_BATCH)
    layer = member.path_layers[1]
    generator = torch.Generator().manual_seed(0)
    h_dst = torch.randn(len(inputs["path_z"]), member.path_marker.numel(), generator=generator)
    h_src, dst = inputs["src_h"][:, 1], inputs["path_dst"]
    edge_attr = member.backbone.rbf(inputs["path_dist"])
    with torch.no_grad():
        z = layer.linear(torch.cat([h_dst[dst], h_src, edge_attr], dim=-1))
        gate, filt = layer.message_norm(z).chunk(2, dim=-1)
        update = scatter(torch.sigmoid(gate) * torch.nn.functional.softplus(filt), dst, dim=0, dim_size=len(h_dst), reduce="sum")
        textbook = h_dst + torch.nn.functional.silu(layer.out_norm(update))
        scattered = layer(h_dst, h_src, dst, edge_attr)
        by_segments = layer(h_dst, h_src, dst, edge_attr, inputs["path_dst_lengths"])
    torch.testing.assert_close(scattered, textbook, rtol=0, atol=1e-5)
    torch.testing.assert_close(by_segments, textbook, rtol=0, atol=1e-5)
    assert torch.equal(by_segments, scattered)  # the same sums in the same order


def test_the_forest_is_run_once_for_its_mean_and_spread_and_gives_scikit_learns_numbers(shipped, hops, monkeypatch):
    from sklearn.tree import DecisionTreeRegressor

    from alem.inference.trees import predict_trees

    (forest,) = [c for c in shipped.structure.components if c.name == "extra_trees"]
    x = shipped.hop_inputs(hops, device="cpu").component_inputs(forest.spec.reads_backbone)
    features = x.for_spec(forest.spec)
    expected_mean = np.exp(forest.model.predict(features))
    expected_sigma = np.stack([np.exp(tree.predict(features)) for tree in forest.model.estimators_]).std(0)
    calls = []
    predict = DecisionTreeRegressor.predict
    monkeypatch.setattr(DecisionTreeRegressor, "predict", lambda self, *a, **k: (calls.append(1), predict(self, *a, **k))[1])
    mean, sigma = predict_trees([forest.spec], [forest.model], x)
    assert len(calls) == len(forest.model.estimators_)  # each tree once, not once more for the mean
    assert np.array_equal(mean[0], expected_mean) and np.array_equal(sigma[0], expected_sigma)
    assert np.ptp(mean[0]) > 0.1


def test_a_prediction_pass_keeps_freed_blocks_for_reuse_and_predicts_the_same_bits():
    """A posterior pass sets glibc's thresholds so that its batches' temporaries reuse freed heap
    memory (alem.inference.allocator); glibc takes them, and predictions before and after are the
    same bits. In a fresh process: the setting is made once per process."""
    import subprocess
    import sys

    script = """
import numpy as np
from alem.ensemble import Ensemble
from alem.hops import load_training_hops
from alem.inference.allocator import keep_freed_blocks
hops = load_training_hops()[::50][:8]
ensemble = Ensemble.load()
before = ensemble.predict(hops)
assert keep_freed_blocks.cache_info().currsize == 0, "set before any pass"
prediction, draws = next(ensemble.posterior_chunks([hops], {h.group or h.hop_id for h in hops}, 4))
assert keep_freed_blocks.cache_info().currsize == 1, "the pass did not set the thresholds"
assert keep_freed_blocks() is True, "glibc refused the thresholds"
after = ensemble.predict(hops)
for name in ("mean_ev", "std_ev", "member_ev"):
    assert np.array_equal(getattr(before, name), getattr(after, name)), name
    assert np.array_equal(getattr(prediction, name), getattr(after, name)), name
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
