"""Fixed hop features from the pre-trained backbone, for fast surrogate refits.

A retrospective active-learning benchmark refits its model hundreds of times; a GNN ensemble per
step is out of reach on a laptop. These features are what the barrier model starts from before
any barrier is seen — the pre-trained host embedding and the ion's path embeddings computed with
path convolutions initialised from the backbone — so a small head refit on them uses no label
information beyond the labels it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from alem.hops.hop import Hop
from alem.inference.device import pick_device
from alem.inference.hop_graphs import build_hop_graphs, host_context_tensors
from alem.model_dir import default_pretrained_path
from alem.training.finetune import FinetuneConfig, Pretrained, new_barrier_model


@torch.no_grad()
def frozen_path_features(
    hops: Sequence[Hop], pretrained_path: str | Path | None = None, device: str | None = None, progress: bool = False
) -> np.ndarray:
    """``n_hops x (4 * hidden + n_descriptors)`` features: mean, max and middle-image path
    embeddings, mean host embedding, and the hop's physical descriptors
    (:data:`alem.graphs.descriptors.DESCRIPTOR_NAMES`, unscaled)."""
    dev = pick_device(device)
    pretrained = Pretrained.load(pretrained_path or default_pretrained_path())
    model = new_barrier_model(pretrained, FinetuneConfig(freeze="frozen"), pretrained.backbone_config, pretrained.graph_settings)
    graphs = build_hop_graphs(hops, pretrained.graph_settings, progress)
    tensors = host_context_tensors(model, graphs, dev).to(dev)
    model.to(dev).eval()
    n_images = pretrained.graph_settings.n_images
    parts = []
    for index in torch.arange(tensors.n_hops, device=dev).split(128):
        inputs = tensors.batch(index)
        path_h = model.path_embeddings(inputs).view(len(index), n_images, -1)
        pooled = [path_h.mean(1), path_h.max(1).values, path_h[:, n_images // 2], inputs["host_pooled"], inputs["path_desc"]]
        parts.append(torch.cat(pooled, 1).cpu())
    return torch.cat(parts).numpy()
