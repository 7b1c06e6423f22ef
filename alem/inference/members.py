"""One GNN member's barrier prediction for many hops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from alem.graphs.crystal_graph import HopData
from alem.inference.hop_graphs import PathTensors
from alem.nn.models import BarrierModel


@torch.no_grad()
def predict_member(
    model: BarrierModel,
    data: Sequence[HopData] | PathTensors,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """One member's Laplace location and scale for every hop.

    Args:
        model: a fine-tuned member.
        data: ``n_hops`` hop graphs, or (frozen backbone) their :class:`PathTensors`.
        device: where to run the model.
        batch_size: hops per forward pass.

    Returns:
        ``(location_ev, scale_ev)``, each a float array of shape ``n_hops``, in input order.
    """
    model.to(device).eval()
    locations, scales = [], []
    if isinstance(data, PathTensors):
        data = data.to(device)
        for index in torch.arange(data.n_hops, device=device).split(batch_size):
            location, scale = model.path_forward(**data.batch(index))
            locations.append(location.cpu())
            scales.append(scale.cpu())
    else:
        for batch in DataLoader(list(data), batch_size=batch_size):
            location, scale = model(batch.to(device))
            locations.append(location.cpu())
            scales.append(scale.cpu())
    return torch.cat(locations).numpy(), torch.cat(scales).numpy()
