"""Hops -> graphs, and the frozen-backbone host context computed once per hop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch_geometric.loader import DataLoader

from alem.graphs.crystal_graph import GraphSettings, HopData, hop_graph
from alem.hops.hop import Hop
from alem.nn.models import BarrierModel
from alem.progress import track


def build_hop_graphs(hops: Sequence[Hop], settings: GraphSettings, progress: bool = False) -> list[HopData]:
    """One :class:`~alem.graphs.crystal_graph.HopData` per hop, in order (a progress bar when asked)."""
    return [hop_graph(h, settings) for h in track(hops, "building hop graphs", len(hops), progress)]


@dataclass
class PathTensors:
    """Everything the path side of a :class:`BarrierModel` needs, for many hops at once, when the
    backbone is frozen: the host context is computed once and batches are cut out by indexing
    (collating thousands of tiny PyG objects per epoch would cost more than the training)."""

    src_h: torch.Tensor  # n_edges x n_layers x hidden
    edge_hop: torch.Tensor  # n_edges, which hop each path edge belongs to
    dst_local: torch.Tensor  # n_edges, which image of its hop the edge feeds
    path_dist: torch.Tensor  # n_edges
    path_z: torch.Tensor  # n_hops x n_images
    path_t: torch.Tensor  # n_images
    host_pooled: torch.Tensor  # n_hops x hidden
    path_desc: torch.Tensor  # n_hops x n_descriptors
    y: torch.Tensor  # n_hops, NaN where unknown

    @property
    def n_hops(self) -> int:
        return self.path_z.shape[0]

    def to(self, device: torch.device) -> PathTensors:
        return PathTensors(**{k: v.to(device) for k, v in self.__dict__.items()})

    def subset(self, hop_index: torch.Tensor) -> PathTensors:
        """The hops ``hop_index`` (no repeats), renumbered 0..k-1 in that order."""
        position = torch.full((self.n_hops,), -1, dtype=torch.long, device=hop_index.device)
        position[hop_index] = torch.arange(len(hop_index), device=hop_index.device)
        edge_position = position[self.edge_hop]
        keep = edge_position >= 0
        return PathTensors(
            src_h=self.src_h[keep],
            edge_hop=edge_position[keep],
            dst_local=self.dst_local[keep],
            path_dist=self.path_dist[keep],
            path_z=self.path_z[hop_index],
            path_t=self.path_t,
            host_pooled=self.host_pooled[hop_index],
            path_desc=self.path_desc[hop_index],
            y=self.y[hop_index],
        )

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Inputs of :meth:`BarrierModel.path_forward` for all hops held."""
        n_images = self.path_z.shape[1]
        return {
            "src_h": self.src_h,
            "path_dst": self.edge_hop * n_images + self.dst_local,
            "path_dist": self.path_dist,
            "path_z": self.path_z.reshape(-1),
            "path_t": self.path_t.repeat(self.n_hops),
            "host_pooled": self.host_pooled,
            "path_desc": self.path_desc,
        }

    def batch(self, hop_index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inputs of :meth:`BarrierModel.path_forward` for the hops ``hop_index`` (no repeats)."""
        return self.subset(hop_index).model_inputs()

    def consecutive_batches(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """:meth:`batch` of hops ``0..batch_size-1``, ``batch_size..2*batch_size-1``, ... in order.
        Where a hop's edges are contiguous and hops in order (as :func:`host_context_tensors` and
        the feature cache write them) a batch is a slice, not a masked copy of every edge: cutting
        a pool into batches was then a tenth of predicting it."""
        starts = range(0, self.n_hops, batch_size)
        edge_hop = self.edge_hop
        if len(edge_hop) > 1 and bool((edge_hop[1:] < edge_hop[:-1]).any()):
            return [self.batch(torch.arange(s, min(s + batch_size, self.n_hops), device=edge_hop.device)) for s in starts]
        offsets = torch.searchsorted(edge_hop, torch.arange(0, self.n_hops + batch_size, batch_size, device=edge_hop.device)).tolist()
        n_images = self.path_z.shape[1]
        batches = []
        for k, start in enumerate(starts):
            stop, edges = min(start + batch_size, self.n_hops), slice(offsets[k], offsets[k + 1])
            path_dst = (edge_hop[edges] - start) * n_images + self.dst_local[edges]
            batch = {
                "src_h": self.src_h[edges],
                "path_dst": path_dst,
                "path_dist": self.path_dist[edges],
                "path_z": self.path_z[start:stop].reshape(-1),
                "path_t": self.path_t.repeat(stop - start),
                "host_pooled": self.host_pooled[start:stop],
                "path_desc": self.path_desc[start:stop],
            }
            if len(path_dst) < 2 or bool((path_dst[1:] >= path_dst[:-1]).all()):  # sorted: summed by segments
                batch["path_dst_lengths"] = torch.bincount(path_dst, minlength=(stop - start) * n_images)
            batches.append(batch)
        return batches


@torch.no_grad()
def host_context_tensors(
    model: BarrierModel, graphs: Sequence[HopData], device: torch.device, batch_size: int = 32
) -> PathTensors:
    """Run the (frozen) backbone of ``model`` once per hop and keep what the path side needs.

    Args:
        model: a barrier model whose backbone is frozen (its path side is not used here).
        graphs: ``n_hops`` hop graphs, all with the same number of images.
        device: where to run the backbone.
        batch_size: hops per forward pass.

    Returns:
        :class:`PathTensors` of the ``n_hops`` hops, on the CPU; ``y`` is NaN where a graph has no
        barrier.
    """
    model.to(device).eval()
    keys = ("src_h", "edge_hop", "dst_local", "path_dist", "path_z", "host_pooled", "path_desc", "y")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    offset = 0
    n_images = graphs[0].path_z.numel() if graphs else 0
    for batch in DataLoader(list(graphs), batch_size=batch_size):
        batch = batch.to(device)
        src_h, host_pooled = model.host_context(batch)
        dst = batch.path_edge_index[1]
        parts["src_h"].append(src_h.cpu())
        parts["edge_hop"].append((dst // n_images + offset).cpu())
        parts["dst_local"].append((dst % n_images).cpu())
        parts["path_dist"].append(batch.path_dist.cpu())
        parts["path_z"].append(batch.path_z.view(-1, n_images).cpu())
        parts["host_pooled"].append(host_pooled.cpu())
        parts["path_desc"].append(batch.path_desc.cpu())
        y = batch.y.view(-1).cpu() if "y" in batch and len(batch.y) == batch.num_graphs else torch.full((batch.num_graphs,), float("nan"))
        parts["y"].append(y)
        offset += batch.num_graphs
    cat = {k: torch.cat(v) for k, v in parts.items()}
    return PathTensors(path_t=torch.linspace(0.0, 1.0, n_images), **cat)

