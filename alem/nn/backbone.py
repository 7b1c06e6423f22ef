"""The backbone: element embedding plus gated graph convolutions over a crystal. Pre-trained on
bulk properties, then shared by the barrier model (where it embeds the host)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from alem.nn.layers import GatedConv, GaussianRBF

MAX_Z = 100


@dataclass(frozen=True)
class BackboneConfig:
    hidden: int = 64
    n_layers: int = 3
    n_rbf: int = 40
    #: The largest distance any edge may have (path edges reach further than host edges).
    cutoff_a: float = 6.0

    def as_dict(self) -> dict:
        return asdict(self)


class Backbone(nn.Module):
    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(MAX_Z + 1, config.hidden)
        self.rbf = GaussianRBF(config.cutoff_a, config.n_rbf)
        self.layers = nn.ModuleList(GatedConv(config.hidden, config.n_rbf) for _ in range(config.n_layers))

    def layer_embeddings(self, z: torch.Tensor, edge_index: torch.Tensor, edge_dist: torch.Tensor) -> list[torch.Tensor]:
        """Node embeddings after the element embedding and after every convolution (L+1 tensors)."""
        h = self.embedding(z)
        src, dst = edge_index
        edge_attr = self.rbf(edge_dist)
        embeddings = [h]
        for layer in self.layers:
            h = layer(h, h[src], dst, edge_attr)
            embeddings.append(h)
        return embeddings

    def set_frozen(self, n_frozen_layers: int) -> None:
        """Freeze the element embedding and the first ``n_frozen_layers`` convolutions
        (``-1``: everything; ``0``: nothing)."""
        for p in self.parameters():
            p.requires_grad_(True)
        if n_frozen_layers == 0:
            return
        frozen = list(self.layers) if n_frozen_layers < 0 else list(self.layers[:n_frozen_layers])
        for module in [self.embedding, *frozen]:
            for p in module.parameters():
                p.requires_grad_(False)
