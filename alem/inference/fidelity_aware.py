"""Fidelity-aware prediction: a DFT barrier predicted from the structure *and* a cheap barrier.

A universal potential's NEB barrier (e.g. MACE-MP) is a poor DFT barrier on its own (MAE 0.37 eV,
R² 0.09 on the literature hops) but it carries what the descriptors miss, so trees that also see it
predict DFT better. A model directory may hold such an add-on beside the structure-only stack:
``fidelity_trees.joblib`` (trees on the hop descriptors + ion + the cheap barrier) and the card's
``fidelity_aware`` section (which potential, the target form, stack weights over the structure-only
components *and* these trees, its own σ factor). Hops without a cheap barrier of that potential
keep the structure-only prediction.

Target forms (chosen on inner folds, ``benchmarks/cv/run_fidelity.py``):

- ``feature``: trees learn log E_m with the cheap barrier as two extra features (it and its log);
- ``delta``: trees learn E_m − E_cheap, the prediction is E_cheap + Δ;
- ``log_delta``: trees learn log(E_m / E_cheap), the prediction is E_cheap · exp(Δ).

A model fitted on one potential's barriers must be fed barriers of that potential: another
potential's NEB barriers have another error pattern, and the trees' Δ would be wrong for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

from alem.hops.fidelity import CheapBarrier, barriers_of_hop, parse_fidelity
from alem.inference.trees import build_model
from alem.model_dir import FIDELITY_TREES_FILENAME, TreeSpec

__all__ = ["FIDELITY_CARD_KEY", "FIDELITY_TREES_FILENAME"]

#: The card's section of the add-on (:attr:`alem.model_dir.ModelCard.fidelity_aware`).
FIDELITY_CARD_KEY = "fidelity_aware"
FORMS = ("feature", "delta", "log_delta")
#: Barriers are floored here before a log (the smallest MACE-MP barrier of the training set is 0.025 eV).
LOG_FLOOR_EV = 1e-3
#: A cheap barrier below this is not fed to an add-on: the hop keeps its structure-only prediction.
#: The log-Δ form multiplies the cheap barrier by a learned factor, so a near-zero MLIP barrier
#: (a flat or collapsed path, a relaxed-away endpoint, far more often than a real 0.02 eV barrier:
#: 5 of 556 MACE-MP training pairs and 3 of 556 DFT labels are below 0.05 eV) would drag the
#: prediction towards zero whatever the structure says.
CHEAP_BARRIER_FLOOR_EV = 0.05


def with_cheap_barrier(features: np.ndarray, cheap_ev: np.ndarray) -> np.ndarray:
    """Structure features with the cheap barrier and its log appended as two columns."""
    cheap = np.asarray(cheap_ev, dtype=np.float32).reshape(-1, 1)
    return np.hstack([features, cheap, np.log(np.maximum(cheap, LOG_FLOOR_EV))]).astype(np.float32)


def form_target(form: str, y_ev: np.ndarray, cheap_ev: np.ndarray) -> np.ndarray:
    """What the trees of ``form`` learn from the DFT barriers ``y_ev`` and the cheap ones."""
    def log(values: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(values, LOG_FLOOR_EV))

    if form == "feature":
        return log(y_ev)
    if form == "delta":
        return y_ev - cheap_ev
    if form == "log_delta":
        return log(y_ev) - log(cheap_ev)
    raise ValueError(f"unknown fidelity-aware form {form!r} (known: {', '.join(FORMS)})")


def form_barrier(form: str, target: np.ndarray, cheap_ev: np.ndarray) -> np.ndarray:
    """The DFT barrier (eV) a tree's output of ``form`` stands for; barriers are not negative."""
    if form == "feature":
        return np.exp(target)
    if form == "delta":
        return np.clip(cheap_ev + target, 0.0, None)
    if form == "log_delta":
        return np.maximum(cheap_ev, LOG_FLOOR_EV) * np.exp(target)
    raise ValueError(f"unknown fidelity-aware form {form!r} (known: {', '.join(FORMS)})")


def fit_fidelity_trees(
    specs: Sequence[TreeSpec], form: str, features: np.ndarray, cheap_ev: np.ndarray, y_ev: np.ndarray, seed: int = 0
) -> list:
    """One fitted estimator per spec learning ``form``'s target (the spec's ``log_target`` is
    replaced by the form)."""
    x = with_cheap_barrier(features, cheap_ev)
    target = form_target(form, y_ev, cheap_ev)
    return [build_model(spec, seed).fit(x, target) for spec in specs]


def predict_fidelity_trees(form: str, models: Sequence, features: np.ndarray, cheap_ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each fidelity-aware tree model's barrier and σ in eV (``n_models x n_hops``): forests give
    the spread of their trees' barriers, boosted trees σ 0 (point models)."""
    x = with_cheap_barrier(features, cheap_ev)
    means, sigmas = [], []
    for model in models:
        means.append(form_barrier(form, model.predict(x), cheap_ev))
        if isinstance(model, (ExtraTreesRegressor, RandomForestRegressor)):
            per_tree = np.stack([form_barrier(form, tree.predict(x), cheap_ev) for tree in model.estimators_])
            # reduced along a contiguous axis per hop: the same bits for a hop alone as among many
            # (numpy sums a single column in another order than many side by side)
            sigmas.append(np.ascontiguousarray(per_tree.T).std(axis=1))
        else:
            sigmas.append(np.zeros(len(x)))
    return np.asarray(means), np.asarray(sigmas)


def _barrier_of(value, wanted: str) -> CheapBarrier | None:
    return next((b for b in barriers_of_hop(value) if parse_fidelity(b.fidelity).lower() == wanted), None)


def unusable_cheap_reason(barrier_ev: float) -> str | None:
    """Why a cheap barrier is not fed to an add-on (None: it is)."""
    if not np.isfinite(barrier_ev):
        return f"barrier {barrier_ev} is not finite"
    if barrier_ev < CHEAP_BARRIER_FLOOR_EV:
        return f"barrier {barrier_ev:.3f} eV is below the {CHEAP_BARRIER_FLOOR_EV} eV floor"
    return None


def usable_cheap_barriers(
    hop_ids: Sequence[str], cheap_barriers: Mapping[str, CheapBarrier | Sequence[CheapBarrier]] | None,
    model_fidelity: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(used, cheap_ev)`` per hop: whether the hop has a usable cheap barrier of the potential
    ``model_fidelity`` (finite, not below :data:`CHEAP_BARRIER_FLOOR_EV`), and that barrier (NaN
    where not). Barriers of other potentials are never mixed in (:func:`cheap_barrier_notes` says
    what happened to each hop's)."""
    used = np.zeros(len(hop_ids), dtype=bool)
    cheap_ev = np.full(len(hop_ids), np.nan)
    if not cheap_barriers or model_fidelity is None:
        return used, cheap_ev
    wanted = parse_fidelity(model_fidelity).lower()
    for i, hop_id in enumerate(hop_ids):
        cheap = _barrier_of(cheap_barriers.get(hop_id), wanted)
        if cheap is not None and unusable_cheap_reason(float(cheap.barrier_ev)) is None:
            used[i], cheap_ev[i] = True, float(cheap.barrier_ev)
    return used, cheap_ev


def cheap_barrier_notes(
    hop_ids: Sequence[str], cheap_barriers: Mapping[str, CheapBarrier | Sequence[CheapBarrier]] | None,
    model_fidelities: Sequence[str],
) -> list[str]:
    """Per hop, what became of its cheap barriers (the prediction's provenance): ``""`` when it
    has none, ``"used mlip:CHGNet 0.412 eV"``, or why the structure-only prediction was kept
    (below the floor, not finite, no add-on of that potential). The first add-on with a usable
    barrier is the one used (the order of ``model_fidelities``)."""
    wanted = [parse_fidelity(f).lower() for f in model_fidelities]
    notes = []
    for hop_id in hop_ids:
        given = barriers_of_hop((cheap_barriers or {}).get(hop_id))
        if not given:
            notes.append("")
            continue
        reasons = []
        for fidelity in wanted:
            cheap = next((b for b in given if parse_fidelity(b.fidelity).lower() == fidelity), None)
            if cheap is None:
                continue
            reason = unusable_cheap_reason(float(cheap.barrier_ev))
            if reason is None:
                reasons = [f"used {cheap.fidelity} {cheap.barrier_ev:.3f} eV"]
                break
            reasons.append(f"{cheap.fidelity} {reason}")
        others = sorted({b.fidelity for b in given if parse_fidelity(b.fidelity).lower() not in wanted})
        if not (reasons and reasons[0].startswith("used")):
            reasons += [f"no add-on for {f}" for f in others]
            reasons.append("structure-only")
        notes.append("; ".join(reasons))
    return notes


def unmatched_cheap_fidelities(
    cheap_barriers: Mapping[str, CheapBarrier | Sequence[CheapBarrier]] | None, model_fidelities: Sequence[str]
) -> list[str]:
    """Potentials of the given cheap barriers that no add-on of the model reads."""
    wanted = {parse_fidelity(f).lower() for f in model_fidelities}
    given = {b.fidelity for value in (cheap_barriers or {}).values() for b in barriers_of_hop(value)}
    return sorted(f for f in given if parse_fidelity(f).lower() not in wanted)


def warn_unmatched(cheap_barriers, model_fidelities: Sequence[str], stacklevel: int = 3) -> None:
    """One warning naming the potentials whose barriers no add-on reads (structure-only for their
    hops); none for a model without add-ons (its callers say that it reads no cheap barrier)."""
    others = unmatched_cheap_fidelities(cheap_barriers, model_fidelities)
    if others and model_fidelities:
        warnings.warn(
            f"cheap barriers of {', '.join(others)} ignored: this model's fidelity-aware add-ons were "
            f"fitted on {', '.join(model_fidelities)} barriers and are fed only those (structure-only prediction used; "
            "`alem calibrate` pairs another potential)",
            stacklevel=stacklevel,
        )
