"""Fitting the fidelity-aware add-on of a model (:mod:`alem.inference.fidelity_aware`).

The add-on is fitted from what a stacked model already has, its grouped out-of-fold predictions
(GNN members and structure-only trees, ``oof_predictions.npz``), plus paired cheap barriers of the
training hops: the fidelity-aware trees get out-of-fold predictions on the *same* folds, then
non-negative weights over all components (LP on those predictions, as for the structure-only
stack) and one σ factor for the fidelity-aware mixture. No GNN is retrained.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn

from alem.hops.fidelity import SHIPPED_CHEAP_FIDELITY, CheapBarrier
from alem.hops.hop import Hop
from alem.inference.fidelity_aware import (
    FIDELITY_CARD_KEY,
    FIDELITY_TREES_FILENAME,
    FORMS,
    fit_fidelity_trees,
    predict_fidelity_trees,
    usable_cheap_barriers,
    warn_unmatched,
)
from alem.inference.stacking import combine_components, cross_fitted_weights, fit_stack_weights
from alem.inference.trees import TreeSpec, save_trees, tree_features
from alem.metrics import barrier_metrics, fit_sigma_scale
from alem.model_dir import FIDELITY_REFERENCE_FILENAME
from alem.training.trees import DESCRIPTOR_TREE_SPECS

#: The card's list of add-ons beyond the first (:attr:`alem.model_dir.ModelCard.fidelity_addons`).
FIDELITY_ADDONS_KEY = "fidelity_addons"
#: Fewer paired hops than this and the add-on is not fitted (its weights and σ would be noise).
MIN_PAIRED_HOPS = 20


def out_of_fold_fidelity_trees(
    specs: Sequence[TreeSpec], form: str, features: np.ndarray, cheap_ev: np.ndarray, y_ev: np.ndarray,
    folds: np.ndarray, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Barrier and σ of each fidelity-aware component for every hop, from trees fitted on the
    other folds (``n_components x n_hops`` each)."""
    means = np.zeros((len(specs), len(y_ev)))
    sigmas = np.zeros_like(means)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        models = fit_fidelity_trees(specs, form, features[train], cheap_ev[train], y_ev[train], seed)
        means[:, test], sigmas[:, test] = predict_fidelity_trees(form, models, features[test], cheap_ev[test])
    return means, sigmas


@dataclass
class FidelityAddon:
    """A fitted add-on: the trees (fitted on every paired hop) and the card section."""

    models: list
    card_section: dict
    #: out-of-fold fidelity-aware mean and calibrated σ of the paired hops (cross-fitted weights).
    oof_mean_ev: np.ndarray
    oof_sigma_ev: np.ndarray
    paired: np.ndarray  # boolean per training hop


def fit_fidelity_addon(
    hop_ids: Sequence[str],
    features: np.ndarray,
    y_ev: np.ndarray,
    folds: np.ndarray,
    structure_means_ev: np.ndarray,
    structure_sigmas_ev: np.ndarray,
    cheap_barriers: Mapping[str, CheapBarrier],
    cheap_fidelity: str,
    forms: Sequence[str] = FORMS,
    specs: Sequence[TreeSpec] = DESCRIPTOR_TREE_SPECS,
    seed: int = 0,
) -> FidelityAddon | None:
    """Fit the add-on on the training hops that have a cheap barrier of ``cheap_fidelity``.

    Args:
        hop_ids: the training hops.
        features: their structure tree features.
        y_ev: their DFT barriers.
        folds: their grouped CV folds (those of the model's out-of-fold predictions).
        structure_means_ev: ``n_components x n_hops`` out-of-fold means of the structure-only stack
            components (GNN first), uncalibrated.
        structure_sigmas_ev: their σ, same shape.
        cheap_barriers: paired cheap barriers by hop id; other potentials are ignored (warned).
        forms: target forms tried; the one with the lowest cross-fitted out-of-fold MAE of the
            stack is kept (the procedure benchmarks/cv/run_fidelity.py scores under nested CV).

    Returns:
        None when fewer than :data:`MIN_PAIRED_HOPS` hops are paired.
    """
    paired, cheap_ev = usable_cheap_barriers(list(hop_ids), cheap_barriers, cheap_fidelity)
    if paired.sum() < MIN_PAIRED_HOPS:
        return None
    x, c, y, f = features[paired], cheap_ev[paired], y_ev[paired], folds[paired]
    candidates = {}
    for form in forms:
        tree_means, tree_sigmas = out_of_fold_fidelity_trees(specs, form, x, c, y, f, seed)
        means = np.vstack([structure_means_ev[:, paired], tree_means])
        sigmas = np.vstack([structure_sigmas_ev[:, paired], tree_sigmas])
        oof_mean, oof_sigma = cross_fitted_stack(means, sigmas, y, f)
        candidates[form] = (float(np.abs(oof_mean - y).mean()), means, sigmas, oof_mean, oof_sigma)
    form = min(candidates, key=lambda k: candidates[k][0])
    _, means, sigmas, oof_mean, oof_sigma = candidates[form]
    weights = fit_stack_weights(means.T, y)
    mixed_mean, mixed_sigma = combine_components(means, sigmas, weights)
    sigma_scale = fit_sigma_scale(y, mixed_mean, mixed_sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = barrier_metrics(y, oof_mean, oof_sigma)
    section = {
        "cheap_fidelity": cheap_fidelity,
        "form": form,
        "cv_mae_per_form": {k: round(v[0], 4) for k, v in candidates.items()},
        "tree_specs": [s.as_dict() for s in specs],
        "n_components_structure": int(structure_means_ev.shape[0]),
        "weights": [float(w) for w in weights],
        "sigma_scale": float(sigma_scale),
        "n_paired_hops": int(paired.sum()),
        "cv_metrics": {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in metrics.items()},
        "method": "trees on descriptors + ion + cheap barrier; weights over structure-only components and these "
                  "trees minimise the MAE of grouped out-of-fold predictions; σ factor fitted on them",
    }
    models = fit_fidelity_trees(specs, form, x, c, y, seed)
    return FidelityAddon(models, section, oof_mean, oof_sigma, paired)


def add_fidelity_addon(
    model_dir: Path, hops: Sequence[Hop], cheap_barriers: Mapping[str, CheapBarrier] | None = None,
    cheap_fidelity: str = SHIPPED_CHEAP_FIDELITY, seed: int = 0,
) -> dict | None:
    """Fit the add-on of ``cheap_fidelity`` for a stacked model directory from its out-of-fold
    predictions and paired cheap barriers (default: the MACE-MP pairs shipped with alem), and add
    it. The card's first add-on (``fidelity_aware``, trees in ``fidelity_trees.joblib``, with the
    fidelity-aware reference predictions) is written when the model has none or has one of the same
    potential; an add-on of another potential joins ``fidelity_addons`` (replacing one of the same
    potential there) with its own trees file. Files the structure-only prediction reads keep their
    content. Returns the section, or None when the model has no stack or too few hops are paired."""
    from alem.hops.io import load_shipped_cheap_barriers
    from alem.model_dir import OOF_FILENAME, REFERENCE_FILENAME, ModelCard, fidelity_trees_filename

    card = ModelCard.load(model_dir).as_dict()
    if not card.get("stack") or not (model_dir / OOF_FILENAME).exists():
        return None
    cheap_barriers = load_shipped_cheap_barriers() if cheap_barriers is None else cheap_barriers
    oof = np.load(model_dir / OOF_FILENAME)
    by_id = {h.hop_id: h for h in hops}
    ordered = [by_id[str(i)] for i in oof["hop_id"]]
    features = tree_features(ordered, card["stack"].get("descriptor_set", card["graph_settings"]["descriptor_set"]))
    warn_unmatched(cheap_barriers, [cheap_fidelity])
    addon = fit_fidelity_addon(
        [h.hop_id for h in ordered], features, oof["y"], oof["folds"], oof["component_mean"], oof["component_sigma"],
        cheap_barriers, cheap_fidelity, seed=seed,
    )
    if addon is None:
        return None
    first = card.get(FIDELITY_CARD_KEY)
    primary = first is None or first["cheap_fidelity"].lower() == cheap_fidelity.lower()
    trees_file = FIDELITY_TREES_FILENAME if primary else fidelity_trees_filename(cheap_fidelity)
    save_trees(addon.models, model_dir / trees_file)
    section = {**addon.card_section, "sklearn_version": sklearn.__version__, "trees_file": trees_file}
    if primary:
        card[FIDELITY_CARD_KEY] = section
    else:
        others = [a for a in card.get(FIDELITY_ADDONS_KEY) or [] if a["cheap_fidelity"].lower() != cheap_fidelity.lower()]
        card[FIDELITY_ADDONS_KEY] = [*others, section]
    ModelCard.model_validate(card).save(model_dir)
    if primary:
        reference = json.loads((model_dir / REFERENCE_FILENAME).read_text())
        # the last reference hops get no cheap barrier: the reference covers both paths
        with_cheap = {i: cheap_barriers[i] for i in reference["hop_ids"][:-2] if i in cheap_barriers}
        write_fidelity_reference(model_dir, [by_id[i] for i in reference["hop_ids"]], with_cheap)
    return section


def write_fidelity_reference(model_dir: Path, hops: Sequence[Hop], cheap_barriers: Mapping[str, CheapBarrier]) -> Path:
    """``reference_predictions_fidelity.json``: the model's fidelity-aware predictions of ``hops``
    with the cheap barriers they were given (a test proves the model keeps predicting them)."""
    from alem.ensemble import Ensemble

    given = {h.hop_id: cheap_barriers[h.hop_id] for h in hops if h.hop_id in cheap_barriers}
    prediction = Ensemble.load(model_dir).predict(hops, cheap_barriers=given, device="cpu")
    reference = {
        "hop_ids": [h.hop_id for h in hops],
        "cheap_barriers": {k: {"fidelity": v.fidelity, "barrier_ev": v.barrier_ev} for k, v in given.items()},
        "mean_ev": [float(v) for v in prediction.mean_ev],
        "std_ev": [float(v) for v in prediction.std_ev],
        "used_cheap_barrier": [bool(v) for v in np.asarray(prediction.used_cheap_barrier)],
    }
    path = model_dir / FIDELITY_REFERENCE_FILENAME
    path.write_text(json.dumps(reference, indent=2))
    return path


def cross_fitted_stack(means: np.ndarray, sigmas: np.ndarray, y: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stacked out-of-fold mean and calibrated σ, fold k's weights and σ factor fitted on the
    other folds only (the honest CV score of a stack)."""
    mean, sigma = np.zeros_like(y), np.zeros_like(y)
    for fold, w in cross_fitted_weights(means.T, y, folds).items():
        this = folds == fold
        mean[this], sigma[this] = combine_components(means[:, this], sigmas[:, this], w)
    calibrated = np.empty_like(sigma)
    for fold in np.unique(folds):
        rest, this = folds != fold, folds == fold
        calibrated[this] = sigma[this] * fit_sigma_scale(y[rest], mean[rest], sigma[rest])
    return mean, calibrated


__all__ = [
    "FIDELITY_CARD_KEY",
    "FIDELITY_REFERENCE_FILENAME",
    "FidelityAddon",
    "add_fidelity_addon",
    "cross_fitted_stack",
    "fit_fidelity_addon",
    "fit_fidelity_trees",
    "out_of_fold_fidelity_trees",
]
