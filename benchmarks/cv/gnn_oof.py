"""Out-of-fold GNN predictions for the stacking benchmark (run_stack.py).

``--level outer``: grouped 5-fold CV (the folds of results.md), an ensemble per fold.
``--level inner``: inside each outer fold's training part, a grouped 4-fold CV (one member per
fit), so that stacking weights for an outer fold can be fitted without its labels.

    python benchmarks/cv/gnn_oof.py --level outer --members 5 --out benchmarks/cv/gnn_outer_v2.npz
    python benchmarks/cv/gnn_oof.py --level inner --members 1 --out benchmarks/cv/gnn_inner_v2.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from alem.hops import load_training_hops
from alem.inference.device import pick_device
from alem.inference.members import predict_member
from alem.model_dir import default_pretrained_path
from alem.training.cv import grouped_folds
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet, fit_members

N_OUTER, N_INNER, SEED = 5, 4, 0


def inner_folds(groups: np.ndarray, outer: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of an outer fold's training part and their inner fold numbers (grouped)."""
    train = np.flatnonzero(outer != fold)
    return train, grouped_folds(list(groups[train]), N_INNER, SEED + 1)


def fit_predict(training_set, train, test, config, members, seed, device):
    models, seconds = fit_members(training_set, train, config, members, seed, device)
    items = training_set.items(test)
    out = [predict_member(m, items, device) for m in models]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--level", choices=["outer", "inner"], required=True)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--freeze", default="frozen")
    parser.add_argument("--descriptor-set", default="v2")
    parser.add_argument("--pretrained", type=Path, help="pre-trained backbone (default: models/pretrained)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = pick_device()
    hops = load_training_hops()
    groups = np.array([h.group for h in hops])
    outer = grouped_folds(list(groups), N_OUTER, SEED)
    config = FinetuneConfig(freeze=args.freeze, epochs=args.epochs, descriptor_set=args.descriptor_set)
    pretrained = None if args.freeze == "scratch" else Pretrained.load(args.pretrained or default_pretrained_path())
    training_set = TrainingSet.prepare(hops, pretrained, config, device)
    started = time.time()
    location = np.full((args.members, N_OUTER, len(hops)), np.nan)
    scale = np.full_like(location, np.nan)
    all_seconds = []
    for fold in range(N_OUTER):
        if args.level == "outer":
            train, test = np.flatnonzero(outer != fold), np.flatnonzero(outer == fold)
            loc, sc, secs = fit_predict(training_set, train, test, config, args.members, SEED * 100 + fold, device)
            location[:, fold, test], scale[:, fold, test] = loc, sc
            all_seconds += secs
        else:
            train, inner = inner_folds(groups, outer, fold)
            for g in range(N_INNER):
                a, b = train[inner != g], train[inner == g]
                loc, sc, secs = fit_predict(training_set, a, b, config, args.members, 1000 + fold * 10 + g, device)
                location[:, fold, b], scale[:, fold, b] = loc, sc
                all_seconds += secs
        print(f"fold {fold + 1}/{N_OUTER} done after {time.time() - started:.0f} s", flush=True)
    np.savez_compressed(args.out, hop_id=np.array([h.hop_id for h in hops]), y=np.array([h.barrier_ev for h in hops]),
                        outer_folds=outer, location=location, scale=scale, seconds=np.array(all_seconds),
                        level=args.level, descriptor_set=args.descriptor_set)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
