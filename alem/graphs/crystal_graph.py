"""Graphs of bulk crystals (pre-training) and of hops (host + the ion along its path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure
from torch_geometric.data import Data

from alem.graphs.descriptors import descriptor_names, hop_descriptors
from alem.graphs.neighbors import periodic_neighbors
from alem.hops.hop import Hop


class GraphSettings(BaseModel):
    """How a structure becomes a graph. Part of every model card (its ``graph_settings``): a model
    only understands graphs built with its own settings. Keys a card holds beyond these are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    cutoff_a: float = Field(5.0, description="host-host edge cutoff, Å")
    max_neighbors: int = Field(12, description="at most this many host neighbours per atom")
    #: Path nodes see more of the host: the bottleneck is what sets the barrier.
    path_cutoff_a: float = Field(6.0, description="host-to-path-node edge cutoff, Å")
    path_max_neighbors: int = Field(16, description="at most this many host atoms feed one path node")
    #: Images of the ion along its straight path, endpoints included (MODEL-3 used 5).
    n_images: int = Field(5, description="path nodes: images of the ion along its straight path, endpoints included")
    #: ``v1`` for cards written before descriptor sets existed.
    descriptor_set: str = Field("v1", description="physical descriptors the head reads (alem.graphs.descriptors.DESCRIPTOR_SETS)")

    def as_dict(self) -> dict:
        """Every setting, defaults included (what a freshly written card records)."""
        return self.model_dump(mode="json")

    @property
    def n_descriptors(self) -> int:
        return len(descriptor_names(self.descriptor_set))


class HopData(Data):
    """A hop graph: the host as an ordinary graph, plus ``n_images`` path nodes (the migrating ion
    along its path) that receive messages from the host atoms around them (``path_edge_index``:
    row 0 host atom, row 1 path node)."""

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "path_edge_index":
            return torch.tensor([[self.num_nodes], [self.path_z.numel()]])
        return super().__inc__(key, value, *args, **kwargs)


def _atomic_numbers(structure: Structure) -> np.ndarray:
    return np.array([site.specie.Z for site in structure], dtype=np.int64)


def _host_edges(cart: np.ndarray, lattice: np.ndarray, settings: GraphSettings) -> tuple[torch.Tensor, torch.Tensor]:
    centers, neighbors, distances = periodic_neighbors(
        cart, cart, lattice, settings.cutoff_a, settings.max_neighbors, exclude_self=True
    )
    edge_index = torch.from_numpy(np.stack([neighbors, centers]))
    return edge_index, torch.from_numpy(distances).float()


def crystal_graph(structure: Structure, settings: GraphSettings) -> Data:
    """Every site a node; directed edges neighbour -> centre within the cutoff."""
    edge_index, edge_dist = _host_edges(structure.cart_coords, structure.lattice.matrix, settings)
    return Data(
        z=torch.from_numpy(_atomic_numbers(structure)),
        edge_index=edge_index,
        edge_dist=edge_dist,
        num_nodes=len(structure),
    )


def hop_graph(hop: Hop, settings: GraphSettings) -> HopData:
    """The host (sites 1..N-1) plus the migrating ion at ``n_images`` points of its straight path.

    Host atoms see only host neighbours, so the host's embedding is that of the host alone; the
    ion's images see the host atoms around them and never each other.
    """
    host = hop.host
    lattice = host.lattice.matrix
    host_cart = host.cart_coords
    path_cart = hop.path_frac_coords(settings.n_images) @ lattice
    edge_index, edge_dist = _host_edges(host_cart, lattice, settings)
    path_center, path_src, path_dist = periodic_neighbors(
        host_cart, path_cart, lattice, settings.path_cutoff_a, settings.path_max_neighbors, exclude_self=False
    )
    data = HopData(
        z=torch.from_numpy(_atomic_numbers(host)),
        edge_index=edge_index,
        edge_dist=edge_dist,
        num_nodes=len(host),
        path_z=torch.full((settings.n_images,), hop.initial[0].specie.Z, dtype=torch.long),
        path_t=torch.linspace(0.0, 1.0, settings.n_images),
        path_edge_index=torch.from_numpy(np.stack([path_src, path_center])),
        path_dist=torch.from_numpy(path_dist).float(),
        path_desc=torch.from_numpy(hop_descriptors(hop, settings.descriptor_set))[None, :],
    )
    if hop.barrier_ev is not None:
        data.y = torch.tensor([hop.barrier_ev], dtype=torch.float32)
    return data
