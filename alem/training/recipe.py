"""The full fine-tuning recipe: grouped CV for out-of-fold metrics, stacking weights and σ
calibration, then the ensemble (GNN members + descriptor trees) on all hops with those in its card."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alem.hops.fidelity import CheapBarrier
from alem.hops.hop import Hop
from alem.inference.device import pick_device
from alem.inference.stacking import combine_components, combine_members, fit_stack_weights
from alem.inference.trees import TreeSpec
from alem.metrics import barrier_metrics, fit_sigma_scale
from alem.model_dir import (
    CV_PARITY_FILENAME,
    REFERENCE_FILENAME,
    Combination,
    EnsembleRecipe,
    ModelCard,
    TrainingRecord,
    default_pretrained_path,
)
from alem.out_of_fold import read_out_of_fold, write_out_of_fold
from alem.parity import parity_plot
from alem.training.cv import CVResult, cross_validate
from alem.training.fidelity_aware import add_fidelity_addon, cross_fitted_stack
from alem.training.finetune import Pretrained, TrainingSet, check_stack_fits_config, train_ensemble
from alem.training.sister import add_sister_correction
from alem.training.trees import default_tree_specs, out_of_fold_trees

#: Hops whose predictions are stored with a model, so a test can prove the model still predicts
#: what it predicted when it was trained (descriptor or graph code drifting would change them).
N_REFERENCE_HOPS = 8
WEIGHTS_METHOD = "non-negative, sum-to-one weights minimising the MAE of grouped out-of-fold predictions"


@dataclass
class StackCV:
    """Out-of-fold predictions of every stack component on the GNN's CV folds."""

    names: tuple[str, ...]
    means_ev: np.ndarray  # n_components x n_hops, GNN first
    sigmas_ev: np.ndarray
    specs: tuple[TreeSpec, ...]

    def weights(self, y_ev: np.ndarray) -> np.ndarray:
        return fit_stack_weights(self.means_ev.T, y_ev)

    def cross_fitted(self, y_ev: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stacked out-of-fold mean and calibrated σ where fold k's weights and σ factor were
        fitted on the other folds only: the honest CV score of the stack."""
        return cross_fitted_stack(self.means_ev, self.sigmas_ev, y_ev, folds)


def stack_cross_validation(
    hops: Sequence[Hop], training_set: TrainingSet, gnn: CVResult, specs: Sequence[TreeSpec], seed: int = 0,
    device: torch.device | None = None,
) -> StackCV:
    """Tree components' out-of-fold predictions on the GNN's folds, beside the GNN ensemble's."""
    inputs = training_set.component_inputs(hops, specs, device or pick_device())
    means, sigmas = out_of_fold_trees(specs, inputs, gnn.y_ev, gnn.folds, seed)
    gnn_mean, gnn_sigma = gnn.ensemble()
    return StackCV(("gnn", *(s.name for s in specs)), np.vstack([gnn_mean, means]), np.vstack([gnn_sigma, sigmas]), tuple(specs))


def cv_card_entries(result: CVResult, n_folds: int, stack: StackCV | None = None) -> dict:
    """What a model card records of a grouped CV: out-of-fold metrics of the shipped combination
    and of each ingredient, the σ calibration and (with trees) the stacking weights."""
    gnn_metrics, gnn_scale = result.metrics()
    single, _ = result.metrics(member=0)
    entries = {
        "cv_metrics_gnn_ensemble": gnn_metrics,
        "cv_metrics_single_member": single,
        "cv_folds": n_folds,
        "cv_grouping": "compound (sys_name without its _N suffix)",
    }
    if stack is None:
        calibration = {"sigma_scale": gnn_scale, "method": "coverage-matched scale on grouped out-of-fold predictions"}
        return _json_safe({**entries, "cv_metrics": gnn_metrics, "calibration": calibration})
    y = result.y_ev
    mean, sigma = stack.cross_fitted(y, result.folds)
    weights = stack.weights(y)
    final_mean, final_sigma = combine_components(stack.means_ev, stack.sigmas_ev, weights)
    scale = fit_sigma_scale(y, final_mean, final_sigma)
    components = {}
    for name, m, s in zip(stack.names[1:], stack.means_ev[1:], stack.sigmas_ev[1:]):
        if np.all(s == 0):  # a point model: only its accuracy means anything
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Spearman of a constant σ, dropped just below
                point = barrier_metrics(y, m, np.ones_like(m))
            components[name] = {k: v for k, v in point.items() if not k.startswith(("coverage", "nll", "spearman", "mean_sigma"))}
        else:
            s = np.maximum(s, 1e-3)
            components[name] = barrier_metrics(y, m, s * fit_sigma_scale(y, m, s))
    return _json_safe({
        **entries,
        "cv_metrics": {**barrier_metrics(y, mean, sigma), "method": "stack weights and σ factor of each fold fitted on the other folds"},
        "cv_metrics_components": components,
        "calibration": {"sigma_scale": scale, "method": "coverage-matched scale on grouped out-of-fold stacked predictions"},
        "stack": {
            "components": list(stack.names),
            "weights": [float(w) for w in weights],
            "weights_method": WEIGHTS_METHOD,
            "tree_specs": [s.as_dict() for s in stack.specs],
        },
    })


def _json_safe(value):
    """NaN (an undefined metric, e.g. precision with no predicted positive) as None: cards are
    strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def calibrated_ensemble(
    hops: Sequence[Hop],
    out_dir: Path,
    recipe: EnsembleRecipe,
    device: str | None = None,
    progress: bool = True,
    cheap_barriers: Mapping[str, CheapBarrier] | None = None,
) -> dict:
    """Grouped CV (GNN ensemble per fold, trees on the same folds), then the final ensemble.
    The recipe's ``components`` None: its default for ``finetune.freeze``
    (:func:`alem.training.trees.default_tree_specs`); empty: GNN members only. A stacked ensemble gets the
    fidelity-aware add-on (:mod:`alem.inference.fidelity_aware`) when enough hops have a paired cheap barrier
    of the recipe's ``cheap_fidelity`` (default pairs: the MACE-MP barriers shipped for the literature hops).
    Returns the model card."""
    labelled = [h for h in hops if h.barrier_ev is not None]
    config, seed = recipe.finetune, recipe.seed
    tree_specs = default_tree_specs(config.freeze) if recipe.components is None else tuple(recipe.components)
    check_stack_fits_config(tree_specs, config)
    extra: dict = {}
    result = stack = None
    if recipe.cv_folds >= 2:
        dev = pick_device(device)
        pretrained = None if config.freeze == "scratch" else Pretrained.load(recipe.pretrained_path or default_pretrained_path())
        training_set = TrainingSet.prepare(labelled, pretrained, config, dev, progress)
        result = cross_validate(labelled, training_set, config, recipe.n_members, recipe.cv_folds, seed, dev, progress)
        stack = stack_cross_validation(labelled, training_set, result, tree_specs, seed, dev) if tree_specs else None
        extra = cv_card_entries(result, recipe.cv_folds, stack)
        del training_set
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    elif tree_specs:
        raise ValueError("stacking weights need a cross-validation: use cv_folds >= 2 or no tree_specs")
    combination = Combination.model_validate({key: extra.pop(key) for key in ("stack", "calibration") if key in extra})
    path = train_ensemble(
        labelled, out_dir, recipe, combination, TrainingRecord.model_validate(extra), device=device, progress=progress,
    )
    if result is not None:
        card = ModelCard.load(path)
        # kept with the model: the honest parity plot of a model is its out-of-fold one
        if stack is not None:
            mean, sigma = stack.cross_fitted(result.y_ev, result.folds)
        else:
            mean, sigma = combine_members(result.member_location_ev, result.member_scale_ev, card.sigma_scale)
        write_out_of_fold(
            path, hop_id=np.array([h.hop_id for h in labelled]), y=result.y_ev,
            location=result.member_location_ev, scale=result.member_scale_ev, folds=result.folds,
            seconds=np.array(result.seconds_per_member), mean=mean, sigma=sigma,
            component_names=np.array(stack.names if stack else ("gnn",)),
            component_mean=stack.means_ev if stack else mean[None], component_sigma=stack.sigmas_ev if stack else sigma[None],
        )
        write_cv_parity(path)
    write_reference_predictions(path, labelled[:N_REFERENCE_HOPS], device)
    if stack is not None:
        add_fidelity_addon(path, labelled, cheap_barriers, recipe.cheap_fidelity, seed)
        # the residual store is the grouped out-of-fold residuals just written
        add_sister_correction(path, labelled, device=device)
    return ModelCard.load(path).as_dict()


def write_reference_predictions(model_dir: Path, hops: Sequence[Hop], device: str | None = None) -> Path:
    """``reference_predictions.json``: the freshly trained ensemble's prediction for ``hops``."""
    from alem.ensemble import Ensemble

    prediction = Ensemble.load(model_dir).predict(hops, device=device)
    reference = {
        "hop_ids": [h.hop_id for h in hops],
        "mean_ev": [float(v) for v in prediction.mean_ev],
        "std_ev": [float(v) for v in prediction.std_ev],
    }
    path = model_dir / REFERENCE_FILENAME
    path.write_text(json.dumps(reference, indent=2))
    return path


def oof_mean_sigma(model_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, out-of-fold mean, calibrated σ) stored with a model; files written before the
    stack existed hold only the GNN members, combined here with the card's calibration."""
    oof = read_out_of_fold(model_dir)
    if oof.sigma_ev is not None:
        return oof.y_ev, oof.mean_ev, oof.sigma_ev
    mean, sigma = combine_members(oof.location_ev, oof.scale_ev, ModelCard.load(model_dir).sigma_scale)
    return oof.y_ev, mean, sigma


def write_cv_parity(model_dir: Path) -> Path:
    """``cv_parity.png`` of a model directory from its stored out-of-fold predictions."""
    card = ModelCard.load(model_dir)
    y, mean, sigma = oof_mean_sigma(model_dir)
    what = f"{card.n_members}-member GNN ensemble" + (" + descriptor trees (stacked)" if card.stack else "")
    title = f"grouped {card.cv_folds or '?'}-fold CV, out-of-fold ({what})"
    metrics = card.cv_metrics.as_dict() if card.cv_metrics else None
    return parity_plot(y, mean, sigma, model_dir / CV_PARITY_FILENAME, title=title, metrics=metrics)
