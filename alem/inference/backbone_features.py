"""The pre-trained backbone's view of a hop, as fixed features for the stack's kernel model.

The GNN members learn their path side from a few hundred barriers; the backbone they share was
trained on 27,589 bulk structures and already places a migrating ion's neighbourhoods in a space
where chemically similar sites sit close together. Read out with the path convolutions reset to
copies of the backbone's (as every member starts) and no learned marker or image position, those
path embeddings are a deterministic function of the backbone and the hop, and carry no barrier
label: a model fitted on them inside a CV fold sees nothing of the other folds.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from alem.inference.hop_graphs import PathTensors
from alem.nn.models import BarrierModel


def backbone_probe(model: BarrierModel) -> BarrierModel:
    """A copy of ``model`` whose path side is what the backbone alone defines: path convolutions
    copied from the backbone's layers, marker and image-position terms zero."""
    probe = copy.deepcopy(model).cpu().eval()
    probe.init_path_layers_from_backbone()
    with torch.no_grad():
        probe.path_marker.zero_()
        probe.path_position.weight.zero_()
    return probe


@torch.no_grad()
def backbone_path_features(model: BarrierModel, tensors: PathTensors, device: torch.device, batch_size: int = 128) -> np.ndarray:
    """``n_hops x 4 * hidden`` features: the ion's path embeddings averaged over the images, their
    maximum, the middle image's, and the host's mean embedding.

    Args:
        model: a barrier model carrying the backbone to read (its path side is ignored).
        tensors: the hops' host context computed with that backbone
            (:func:`alem.inference.hop_graphs.host_context_tensors`).
        device: where to run.
        batch_size: hops per forward pass.
    """
    probe = backbone_probe(model).to(device)
    data = tensors.to(device)
    n_images = data.path_z.shape[1]
    parts = []
    for index in torch.arange(data.n_hops, device=device).split(batch_size):
        inputs = data.batch(index)
        path_h = probe.path_embeddings(inputs).view(len(index), n_images, -1)
        pooled = [path_h.mean(1), path_h.max(1).values, path_h[:, n_images // 2], inputs["host_pooled"]]
        parts.append(torch.cat(pooled, 1).cpu())
    hidden = probe.path_marker.numel()
    return torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros((0, 4 * hidden))
