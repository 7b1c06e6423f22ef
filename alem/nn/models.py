"""Complete networks: the multi-property pre-training model and the path-aware barrier model."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from alem.graphs.descriptors import DESCRIPTOR_NAMES
from alem.nn.backbone import Backbone, BackboneConfig
from alem.nn.heads import PathHead, PropertyHead
from alem.nn.layers import GatedConv

N_DESCRIPTORS = len(DESCRIPTOR_NAMES)


class PropertyModel(nn.Module):
    """Backbone + multi-task head (pre-training on bulk properties)."""

    def __init__(self, backbone_config: BackboneConfig, n_properties: int):
        super().__init__()
        self.backbone = Backbone(backbone_config)
        self.head = PropertyHead(backbone_config.hidden, n_properties)

    def forward(self, batch: Batch) -> torch.Tensor:
        h = self.backbone.layer_embeddings(batch.z, batch.edge_index, batch.edge_dist)[-1]
        return self.head(global_mean_pool(h, batch.batch))


class BarrierModel(nn.Module):
    """Path-aware barrier model: (location, Laplace scale) of E_m in eV per hop.

    The backbone embeds the host. The migrating ion at each image is a path node that, layer by
    layer, gathers messages from the host atoms around it through its own path convolutions
    (initialised from the backbone's). With a frozen backbone the host side is a fixed function
    of the hop, so it can be computed once (:meth:`host_context`) and training touches only the
    path side: that is what makes ensembles and cross-validation affordable on a laptop.
    """

    def __init__(self, backbone_config: BackboneConfig, n_images: int, n_descriptors: int = N_DESCRIPTORS, dropout: float = 0.1):
        super().__init__()
        hidden = backbone_config.hidden
        self.n_images = n_images
        self.backbone = Backbone(backbone_config)
        self.path_layers = nn.ModuleList(
            GatedConv(hidden, backbone_config.n_rbf) for _ in range(backbone_config.n_layers)
        )
        self.path_marker = nn.Parameter(torch.zeros(hidden))
        self.path_position = nn.Linear(1, hidden, bias=False)
        self.head = PathHead(hidden, n_images, n_descriptors, dropout=dropout)

    def init_path_layers_from_backbone(self) -> None:
        for path_layer, layer in zip(self.path_layers, self.backbone.layers):
            path_layer.load_state_dict(copy.deepcopy(layer.state_dict()))

    def host_context(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """What the path side needs from the host, computed by the backbone.

        Args:
            batch: a PyG batch of ``n_hops`` hop graphs.

        Returns:
            ``(src_h, host_pooled)``: per path edge, the sending host atom's embedding after each
            backbone layer (``n_path_edges x n_layers x hidden``), and each hop's mean host
            embedding (``n_hops x hidden``).
        """
        embeddings = self.backbone.layer_embeddings(batch.z, batch.edge_index, batch.edge_dist)
        src = batch.path_edge_index[0]
        src_h = torch.stack([h[src] for h in embeddings[1:]], dim=1)
        host_pooled = global_mean_pool(embeddings[-1], batch.batch, size=batch.num_graphs)
        return src_h, host_pooled

    def path_embeddings(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings of the path nodes (``n_hops * n_images x hidden``, images of a hop contiguous)."""
        # |t - 1/2| keeps the images symmetric under reversing the hop's direction
        centred_t = (inputs["path_t"] - 0.5).abs()[:, None]
        h = self.backbone.embedding(inputs["path_z"]) + self.path_marker + self.path_position(centred_t)
        # the radial basis of the path edges, unless computed already for several members
        edge_attr = inputs["path_edge_attr"] if "path_edge_attr" in inputs else self.backbone.rbf(inputs["path_dist"])
        lengths = inputs.get("path_dst_lengths")
        for index, layer in enumerate(self.path_layers):
            h = layer(h, inputs["src_h"][:, index], inputs["path_dst"], edge_attr, lengths)
        return h

    def path_forward(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Barrier from the host context and the path inputs.

        Args:
            src_h: ``n_path_edges x n_layers x hidden`` host embeddings (:meth:`host_context`).
            path_dst: ``n_path_edges`` receiving path node, ``hop * n_images + image``.
            path_dist: ``n_path_edges`` host atom - ion distance (Å).
            path_z: ``n_hops * n_images`` atomic number of the migrating ion.
            path_t: ``n_hops * n_images`` image position along the path, 0..1.
            host_pooled: ``n_hops x hidden`` mean host embedding.
            path_desc: ``n_hops x n_descriptors`` hop descriptors.
            path_edge_attr: (optional) the radial basis of ``path_dist`` under this model's backbone.
            path_dst_lengths: (optional) where ``path_dst`` is sorted, the number of edges of
                every path node (``n_hops * n_images``).

        Returns:
            ``(location_ev, scale_ev)``, each ``n_hops``: the Laplace location and scale of E_m.
        """
        h = self.path_embeddings(inputs)
        n_graphs = inputs["host_pooled"].shape[0]
        return self.head(h.view(n_graphs, self.n_images, -1), inputs["host_pooled"], inputs["path_desc"])

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(location_ev, scale_ev)``, each ``n_hops``, for a PyG batch of hop graphs."""
        src_h, host_pooled = self.host_context(batch)
        return self.path_forward(
            src_h=src_h,
            path_dst=batch.path_edge_index[1],
            path_dist=batch.path_dist,
            path_z=batch.path_z,
            path_t=batch.path_t,
            host_pooled=host_pooled,
            path_desc=batch.path_desc,
        )
