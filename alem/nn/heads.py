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
    barrier, plus mean/max/middle-image pooling, the host's mean embedding and the bottleneck
    profile (hop length and the ion's nearest-host distance per image, sorted so the hop's
    direction does not matter). Outputs a location (eV) and a Laplace scale (eV) per hop.
    """

    def __init__(self, hidden: int, n_images: int, dropout: float = 0.1):
        super().__init__()
        self.n_images = n_images
        self.image_energy = mlp([hidden, hidden, 1])
        self.net = mlp([4 * hidden + (1 + n_images) + 1, 2 * hidden, hidden, 2], dropout=dropout)

    def forward(
        self, path_h: torch.Tensor, host_pooled: torch.Tensor, path_desc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        energy = self.image_energy(path_h).squeeze(-1)
        ends = 0.5 * (energy[:, 0] + energy[:, -1])
        rise = torch.logsumexp(4.0 * energy, dim=1) / 4.0 - ends
        middle = path_h[:, self.n_images // 2]
        desc = torch.cat([path_desc[:, :1], torch.sort(path_desc[:, 1:], dim=1).values], dim=1)
        features = torch.cat([path_h.mean(1), path_h.max(1).values, middle, host_pooled, desc, rise[:, None]], dim=1)
        out = self.net(features)
        return out[:, 0] + rise, nn.functional.softplus(out[:, 1]) + 0.01
