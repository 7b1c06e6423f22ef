"""Grouped cross-validation: out-of-fold ensemble predictions, metrics and σ calibration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from alem.hops.hop import Hop
from alem.inference.members import predict_member
from alem.inference.stacking import combine_members
from alem.metrics import barrier_metrics, fit_sigma_scale
from alem.training.finetune import FinetuneConfig, TrainingSet, fit_members


def grouped_folds(groups: Sequence[str], n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per item; items of one group share a fold. Groups are shuffled, then each goes
    to the currently smallest fold (largest groups first) so folds stay balanced."""
    rng = np.random.default_rng(seed)
    names, inverse, counts = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True, return_counts=True)
    order = rng.permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_of_group = np.empty(len(names), dtype=int)
    sizes = np.zeros(n_folds, dtype=int)
    for g in order:
        f = int(np.argmin(sizes))
        fold_of_group[g] = f
        sizes[f] += counts[g]
    return fold_of_group[inverse]


def sister_folds(groups: Sequence[str], n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per item for the sister-aware protocol: each compound with two or more items
    spreads them over consecutive folds from a random start (a random order within the compound),
    so a fold holds out about ``1/n_folds`` of the compound's hops (at least one for small
    compounds) while its others stay in training; items of single-item compounds get -1 (always
    training: they have no sister to be measured with)."""
    rng = np.random.default_rng(seed)
    names, inverse, counts = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True, return_counts=True)
    folds = np.full(len(inverse), -1, dtype=int)
    for g in np.flatnonzero(counts >= 2):
        members = rng.permutation(np.flatnonzero(inverse == g))
        start = int(rng.integers(n_folds))
        folds[members] = (start + np.arange(len(members))) % n_folds
    return folds


@dataclass
class CVResult:
    y_ev: np.ndarray
    member_location_ev: np.ndarray  # n_members x n_hops, each hop predicted by its fold's models
    member_scale_ev: np.ndarray
    folds: np.ndarray
    seconds_per_member: list[float]

    def ensemble(self, sigma_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        return combine_members(self.member_location_ev, self.member_scale_ev, sigma_scale)

    def single_member(self, member: int = 0, sigma_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        return combine_members(self.member_location_ev[member : member + 1], self.member_scale_ev[member : member + 1], sigma_scale)

    def metrics(self, calibrate: bool = True, member: int | None = None) -> tuple[dict, float]:
        """Metrics of the ensemble (or one member) with σ recalibrated on these out-of-fold
        predictions; returns (metrics, sigma_scale)."""
        mean, sigma = self.ensemble() if member is None else self.single_member(member)
        scale = fit_sigma_scale(self.y_ev, mean, sigma) if calibrate else 1.0
        metrics = barrier_metrics(self.y_ev, mean, sigma * scale)
        metrics["sigma_scale"] = scale
        metrics["nll_uncalibrated"] = barrier_metrics(self.y_ev, mean, sigma)["nll"]
        return metrics, scale


def cross_validate(
    hops: Sequence[Hop],
    training_set: TrainingSet,
    config: FinetuneConfig,
    n_members: int,
    n_folds: int = 5,
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = False,
) -> CVResult:
    """Grouped k-fold CV (groups = compound), an ensemble trained per fold."""
    device = device or torch.device("cpu")
    groups = [h.group or h.hop_id for h in hops]
    folds = grouped_folds(groups, n_folds, seed)
    y = np.array([h.barrier_ev for h in hops], dtype=float)
    location = np.zeros((n_members, len(hops)))
    scale = np.zeros((n_members, len(hops)))
    seconds: list[float] = []
    for fold in range(n_folds):
        train_idx = np.flatnonzero(folds != fold)
        test_idx = np.flatnonzero(folds == fold)
        models, secs = fit_members(
            training_set, train_idx, config, n_members, seed * 100 + fold, device, progress, f"fold {fold + 1}/{n_folds}"
        )
        seconds += secs
        test_items = training_set.items(test_idx)
        for m, model in enumerate(models):
            location[m, test_idx], scale[m, test_idx] = predict_member(model, test_items, device)
    return CVResult(y, location, scale, folds, seconds)
