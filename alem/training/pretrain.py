"""Multi-property pre-training of the backbone on bulk crystals (masked per-property losses)."""

from __future__ import annotations

import gzip
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from alem.graphs.crystal_graph import GraphSettings, crystal_graph
from alem.hops.io import atoms_dict_to_structure
from alem.inference.device import device_description, peak_memory_mb, pick_device
from alem.model_dir import BACKBONE_FILENAME, BACKBONE_KIND, BackboneCard
from alem.nn.backbone import BackboneConfig
from alem.nn.models import PropertyModel
from alem.nn.steps import gradient_step
from alem.progress import maybe_progress, track
from alem.training.provenance import file_sha256, git_commit, utc_now

PROPERTIES = ("bg", "fe", "gv", "ebg", "ph", "dc", "pz")


@dataclass
class PretrainConfig:
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    validation_fraction: float = 0.1
    seed: int = 0
    max_structures: int = 0  # 0 = all
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    graph: GraphSettings = field(default_factory=GraphSettings)


def read_corpus(path: Path, max_structures: int = 0, progress: bool = False) -> tuple[list, np.ndarray]:
    """Structures and their (n x 7) property matrix, NaN where a property was not published."""
    structures, targets = [], []
    with gzip.open(path, "rt") as handle:
        for line in track(handle, "reading corpus", None, progress):
            entry = json.loads(line)
            structures.append(atoms_dict_to_structure(entry["atoms"]))
            targets.append([entry["targets"].get(p, math.nan) for p in PROPERTIES])
            if max_structures and len(structures) >= max_structures:
                break
    return structures, np.array(targets, dtype=np.float32)


def masked_property_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over properties of each property's MSE over the structures that carry it."""
    mask = ~torch.isnan(target)
    sq = torch.where(mask, (pred - torch.nan_to_num(target)) ** 2, torch.zeros_like(pred))
    count = mask.sum(0)
    present = count > 0
    return (sq.sum(0)[present] / count[present]).mean()


def _graphs(structures, targets_std: np.ndarray, settings: GraphSettings, progress: bool) -> list[Data]:
    graphs = []
    for structure, y in track(zip(structures, targets_std), "building graphs", len(structures), progress):
        g = crystal_graph(structure, settings)
        g.y = torch.from_numpy(y)[None, :]
        graphs.append(g)
    return graphs


def _validation_mae(model, loader, device, std: np.ndarray) -> dict[str, float]:
    model.eval()
    abs_err = np.zeros(len(PROPERTIES))
    count = np.zeros(len(PROPERTIES))
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            pred = model(batch).cpu().numpy()
            y = batch.y.cpu().numpy()
            mask = ~np.isnan(y)
            abs_err += np.where(mask, np.abs(pred - np.nan_to_num(y)), 0).sum(0)
            count += mask.sum(0)
    model.train()
    # back to the published units of each property
    return {p: float(abs_err[i] / count[i] * std[i]) for i, p in enumerate(PROPERTIES) if count[i] > 0}


def pretrain(corpus_path: Path, out_dir: Path, config: PretrainConfig, progress: bool = True, device: str | None = None) -> dict:
    """Pre-train, write ``out_dir/backbone.pt`` and ``out_dir/model_card.json``; return the card."""
    started = time.time()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dev = pick_device(device)
    structures, targets = read_corpus(corpus_path, config.max_structures, progress)
    mean = np.nanmean(targets, axis=0)
    std = np.nanstd(targets, axis=0)
    std = np.where(std > 0, std, 1.0)
    graphs = _graphs(structures, (targets - mean) / std, config.graph, progress)

    order = rng.permutation(len(graphs))
    n_val = max(1, int(len(graphs) * config.validation_fraction))
    val = [graphs[i] for i in order[:n_val]]
    train = [graphs[i] for i in order[n_val:]]
    train_loader = DataLoader(train, batch_size=config.batch_size, shuffle=True)
    val_loader = DataLoader(val, batch_size=2 * config.batch_size)

    model = PropertyModel(config.backbone, len(PROPERTIES)).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total_steps = config.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=max(total_steps, 20))
    history = []
    with maybe_progress(progress) as bar:
        task = bar.add_task("pre-training", total=total_steps, info="") if bar else None
        for epoch in range(config.epochs):
            running, n_batches = 0.0, 0
            for batch in train_loader:
                batch = batch.to(dev)
                loss = masked_property_loss(model(batch), batch.y)
                gradient_step(loss, model, optimizer, scheduler)
                running += loss.item()
                n_batches += 1
                if bar:
                    bar.update(task, advance=1, info=f"epoch {epoch + 1} loss {running / n_batches:.3f}")
            val_mae = _validation_mae(model, val_loader, dev, std)
            history.append({"epoch": epoch + 1, "train_loss": running / max(n_batches, 1), "val_mae": val_mae})

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"backbone": model.backbone.state_dict(), "head": model.head.state_dict(),
         "backbone_config": config.backbone.as_dict(), "graph_settings": config.graph.as_dict()},
        out_dir / BACKBONE_FILENAME,
    )
    card = {
        "kind": BACKBONE_KIND,
        "architecture": "gated graph convolution (CGCNN-like) backbone, multi-task head",
        "properties": list(PROPERTIES),
        "data_file": corpus_path.name,
        "data_sha256": file_sha256(corpus_path),
        "n_structures": len(graphs),
        "n_train": len(train),
        "n_validation": len(val),
        "property_counts": {p: int((~np.isnan(targets[:, i])).sum()) for i, p in enumerate(PROPERTIES)},
        "property_mean": dict(zip(PROPERTIES, map(float, mean))),
        "property_std": dict(zip(PROPERTIES, map(float, std))),
        "epochs": config.epochs,
        "config": {k: v for k, v in asdict(config).items() if k not in ("backbone", "graph")},
        "backbone_config": config.backbone.as_dict(),
        "graph_settings": config.graph.as_dict(),
        "validation_mae": history[-1]["val_mae"] if history else {},
        "history": history,
        "wall_time_s": round(time.time() - started, 1),
        "device": device_description(dev),
        "peak_memory_mb": round(peak_memory_mb(dev), 1),
        "git_commit": git_commit(),
        "created": utc_now(),
    }
    BackboneCard(**card).save(out_dir)
    return card
