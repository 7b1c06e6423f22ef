"""Task heads on top of the backbone."""

from __future__ import annotations

import torch
from torch import nn

from alem.nn.layers import mlp


class PropertyHead(nn.Module):
    """Multi-task head for pre-training: pooled crystal embedding -> one value per property."""

    def __init__(self, hidden: int, n_properties: int):
        super().__init__()
        self.net = mlp([hidden, hidden, n_properties])

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class PathHead(nn.Module):
    """Barrier from the migrating ion's embeddings at its images along the path.

    A per-image energy whose soft maximum above the endpoints mimics the NEB definition of the
    barrier, plus mean/max/middle-image pooling, the host's mean embedding and the hop's physical
    descriptors (:mod:`alem.graphs.descriptors`), standardised with statistics of the training
    hops. Outputs a location (eV) and a Laplace scale (eV) per hop.
    """

    def __init__(self, hidden: int, n_images: int, n_descriptors: int, dropout: float = 0.1):
        super().__init__()
        self.n_images = n_images
        self.image_energy = mlp([hidden, hidden, 1])
        self.register_buffer("desc_mean", torch.zeros(n_descriptors))
        self.register_buffer("desc_std", torch.ones(n_descriptors))
        self.net = mlp([4 * hidden + n_descriptors + 1, 2 * hidden, hidden, 2], dropout=dropout)

    def set_descriptor_scaling(self, descriptors: torch.Tensor) -> None:
        self.desc_mean.copy_(descriptors.mean(0))
        self.desc_std.copy_(descriptors.std(0).clamp(min=1e-3))

    def forward(
        self, path_h: torch.Tensor, host_pooled: torch.Tensor, path_desc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        energy = self.image_energy(path_h).squeeze(-1)
        ends = 0.5 * (energy[:, 0] + energy[:, -1])
        rise = torch.logsumexp(4.0 * energy, dim=1) / 4.0 - ends
        middle = path_h[:, self.n_images // 2]
        desc = (path_desc - self.desc_mean) / self.desc_std
        features = torch.cat([path_h.mean(1), path_h.max(1).values, middle, host_pooled, desc, rise[:, None]], dim=1)
        out = self.net(features)
        return out[:, 0] + rise, nn.functional.softplus(out[:, 1]) + 0.01
