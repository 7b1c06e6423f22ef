"""The barrier network (alem.nn) on small real hops: batching hops together changes no hop's
prediction, the frozen-backbone path (host context computed once) gives the same barriers as the
whole-graph forward, and a hop walked backwards is the same path read from the other end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _factories import make_li2o_vacancy_hop, make_tiny_hop, rocksalt_hop
from torch_geometric.data import Batch

from alem.graphs import GraphSettings
from alem.graphs.crystal_graph import hop_graph
from alem.hops import Hop
from alem.inference.hop_graphs import host_context_tensors
from alem.nn.backbone import BackboneConfig
from alem.nn.models import BarrierModel

SETTINGS = GraphSettings(descriptor_set="v2")


def tiny_model(seed: int = 0) -> BarrierModel:
    """A small untrained model with every parameter random (the marker and image-position terms
    start at zero in a real model; random here so they take part in what is checked)."""
    torch.manual_seed(seed)
    model = BarrierModel(BackboneConfig(hidden=16, n_layers=2, n_rbf=12), SETTINGS.n_images, SETTINGS.n_descriptors, dropout=0.0)
    with torch.no_grad():
        model.path_marker.normal_()
        model.path_position.weight.normal_()
    return model.eval()


def different_hops() -> list[Hop]:
    return [make_tiny_hop("tiny-a", 0.4), make_li2o_vacancy_hop(), rocksalt_hop("rs-near"), make_tiny_hop("tiny-b", 0.3)]


@torch.no_grad()
def test_a_batch_of_hops_predicts_what_each_hop_predicts_alone_and_the_path_tensors_agree():
    model = tiny_model()
    graphs = [hop_graph(hop, SETTINGS) for hop in different_hops()]
    # hops of different sizes batched together: PyG offsets every index; nothing may leak between hops
    location, scale = model(Batch.from_data_list(graphs))
    alone = [model(Batch.from_data_list([g])) for g in graphs]
    np.testing.assert_allclose(location.numpy(), [a[0].item() for a in alone], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scale.numpy(), [a[1].item() for a in alone], rtol=1e-5, atol=1e-6)
    assert len(set(np.round(location.numpy(), 5))) == len(graphs)  # the hops are told apart
    # the frozen-backbone route: host context once per hop, then the path side alone
    tensors = host_context_tensors(model, graphs, torch.device("cpu"), batch_size=3)
    cached_location, cached_scale = model.path_forward(**tensors.model_inputs())
    np.testing.assert_allclose(cached_location.numpy(), location.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cached_scale.numpy(), scale.numpy(), rtol=1e-5, atol=1e-6)
    # a subset of the cached hops is cut out by indexing and predicts what those hops predict
    index = torch.tensor([2, 0])
    part_location, _ = model.path_forward(**tensors.batch(index))
    np.testing.assert_allclose(part_location.numpy(), location.numpy()[[2, 0]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make_hop, lopsided", [(lambda: make_tiny_hop("tiny", 0.4), True), (lambda: rocksalt_hop("rs-far", neighbor_rank=1), False)]
)
@torch.no_grad()
def test_reversing_a_hop_gives_the_same_path_read_from_the_other_end(make_hop, lopsided):
    hop = make_hop()
    reverse = Hop(f"{hop.hop_id}-reverse", hop.final, hop.initial, hop.working_ion)
    forward_graph, reverse_graph = hop_graph(hop, SETTINGS), hop_graph(reverse, SETTINGS)
    model = tiny_model()
    n_images = SETTINGS.n_images

    def image_embeddings(graph) -> np.ndarray:
        batch = Batch.from_data_list([graph])
        src_h, host_pooled = model.host_context(batch)
        inputs = {"src_h": src_h, "path_dst": batch.path_edge_index[1], "path_dist": batch.path_dist,
                  "path_z": batch.path_z, "path_t": batch.path_t}
        return model.path_embeddings(inputs).view(n_images, -1).numpy()

    forward, backward = image_embeddings(forward_graph), image_embeddings(reverse_graph)
    np.testing.assert_allclose(backward, forward[::-1], rtol=1e-4, atol=1e-5)
    # each image sees the same host atoms at the same distances, in the opposite order
    for image in range(n_images):
        seen = np.sort(forward_graph.path_dist[forward_graph.path_edge_index[1] == image].numpy())
        seen_back = np.sort(reverse_graph.path_dist[reverse_graph.path_edge_index[1] == n_images - 1 - image].numpy())
        np.testing.assert_allclose(seen_back, seen, atol=1e-5)
    if lopsided:  # the ends see different hosts, so the order of the images is what was checked
        assert not np.allclose(forward[0], forward[-1], atol=1e-3)
