"""The backbone: element embedding plus gated graph convolutions over a crystal. Pre-trained on
bulk properties, then shared by the barrier model (where it embeds the host)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from alem.nn.layers import GatedConv, GaussianRBF

MAX_Z = 100


class BackboneConfig(BaseModel):
    """Size of the graph backbone. Part of every model card (its ``backbone_config``) and of the
    pre-trained checkpoint: members load only into a backbone of the same shape."""

    model_config = ConfigDict(frozen=True, extra="allow")

    hidden: int = Field(64, description="width of every node embedding")
    n_layers: int = Field(3, description="gated graph convolutions")
    n_rbf: int = Field(40, description="Gaussian radial basis functions per edge distance")
    #: The largest distance any edge may have (path edges reach further than host edges).
    cutoff_a: float = Field(6.0, description="largest edge distance the radial basis covers, Å")

    def as_dict(self) -> dict:
        """Every setting, defaults included."""
        return self.model_dump(mode="json")


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
