"""The full fine-tuning recipe: grouped CV for out-of-fold metrics and σ calibration, then the
ensemble on all hops with that calibration in its card."""

from __future__ import annotations

from collections.abc import Sequence
import json
from pathlib import Path

import numpy as np

import torch

from alem.ensemble import combine_members
from alem.hops.hop import Hop
from alem.training.cv import CVResult, cross_validate
from alem.training.device import pick_device
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet, default_pretrained_path, train_ensemble


def cv_card_entries(result: CVResult, n_folds: int) -> dict:
    """What a model card records of a grouped CV: ensemble and single-model out-of-fold metrics
    and the σ calibration fitted on them."""
    metrics, scale = result.metrics()
    single, _ = result.metrics(member=0)
    return {
        "cv_metrics": metrics,
        "cv_metrics_single_member": single,
        "cv_folds": n_folds,
        "cv_grouping": "compound (sys_name without its _N suffix)",
        "calibration": {"sigma_scale": scale, "method": "coverage-matched scale on grouped out-of-fold predictions"},
    }


def calibrated_ensemble(
    hops: Sequence[Hop],
    out_dir: Path,
    config: FinetuneConfig,
    n_members: int = 5,
    cv_folds: int = 5,
    pretrained_path: Path | None = None,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    labelled = [h for h in hops if h.barrier_ev is not None]
    extra: dict = {}
    result = None
    if cv_folds >= 2:
        dev = pick_device(device)
        pretrained = None if config.freeze == "scratch" else Pretrained.load(pretrained_path or default_pretrained_path())
        training_set = TrainingSet.prepare(labelled, pretrained, config, dev, progress)
        result = cross_validate(labelled, training_set, config, n_members, cv_folds, seed, dev, progress)
        extra = cv_card_entries(result, cv_folds)
        del training_set
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    path = train_ensemble(
        labelled, out_dir, n_members, config, pretrained_path, seed=seed, device=device, progress=progress, extra_card=extra
    )
    if result is not None:
        # kept with the model: the honest parity plot of a model is its out-of-fold one
        np.savez_compressed(
            path / "oof_predictions.npz", hop_id=np.array([h.hop_id for h in labelled]), y=result.y_ev,
            location=result.member_location_ev, scale=result.member_scale_ev, folds=result.folds,
            seconds=np.array(result.seconds_per_member),
        )
        write_cv_parity(path)
    return json.loads((path / "model_card.json").read_text())


def write_cv_parity(model_dir: Path) -> Path:
    """``cv_parity.png`` of a model directory from its stored out-of-fold predictions."""
    from alem.evaluate import parity_plot

    card = json.loads((model_dir / "model_card.json").read_text())
    oof = np.load(model_dir / "oof_predictions.npz")
    mean, sigma = combine_members(oof["location"], oof["scale"], card["calibration"]["sigma_scale"])
    title = f"grouped {card.get('cv_folds', '?')}-fold CV, out-of-fold ({card['n_members']}-member ensemble)"
    return parity_plot(oof["y"], mean, sigma, model_dir / "cv_parity.png", title=title, metrics=card["cv_metrics"])
