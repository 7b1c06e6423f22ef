"""Fitting the sister-label correction into a model directory (:mod:`alem.inference.sister_correction`).

After a grouped CV the residual store is the stack's grouped out-of-fold residuals of the training
hops (no hop's residual comes from a model that saw its compound); a loop retraining, which runs no
CV, carries its parent's store and adds the campaign's new labels with their residuals against the
parent's stack (the parent had not seen them). The hyper-parameters are the ones chosen on inner
folds of the sister-aware protocol (``benchmarks/cv/run_sister.py``), passed on from parent to child.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alem.hops.hop import Hop
from alem.inference.sister_correction import ResidualStore, SisterModel, SisterParams, host_of, residual_of
from alem.model_dir import OOF_FILENAME, ModelCard, SisterCorrectionSection, card_path

if TYPE_CHECKING:
    from alem.ensemble import Ensemble

#: Chosen on the sister-aware protocol's folds (benchmarks/cv/sister_results.json, "shipped_choice").
SIGMA_FACTOR = 1.046
DEFAULT_SISTER_PARAMS = SisterParams("ev", 0.03, 3.0, narrow_sigma=False, sigma_factor=SIGMA_FACTOR)
METHOD = (
    "GP on the stack's residuals, kernel host identity x squared exponential over standardised descriptors; "
    "residual store: grouped out-of-fold residuals of the training hops (campaign labels: against the stack "
    "that had not seen them); hyper-parameters chosen on the sister-aware protocol (benchmarks/cv/run_sister.py)"
)


def add_sister_correction(
    model_dir: Path, hops: Sequence[Hop], params: SisterParams = DEFAULT_SISTER_PARAMS, cv: dict[str, Any] | None = None,
    device: str | None = None,
) -> SisterCorrectionSection:
    """Write the correction into ``model_dir`` from its stored grouped out-of-fold predictions of
    ``hops`` (its training hops): ``sister_residuals.npz`` and the card's ``sister_correction``.
    A model trained without a CV has no out-of-sample residual of its training hops: its store
    starts empty (campaign labels fill it) and ``hops`` only set the descriptors' standardisation."""
    from alem.ensemble import Ensemble

    oof_file = model_dir / OOF_FILENAME
    if oof_file.is_file():
        oof = np.load(oof_file)
        by_id = {h.hop_id: h for h in hops}
        ordered = [by_id[str(h)] for h in oof["hop_id"]]
        y, oof_mean = oof["y"], oof["mean"]
    else:
        ordered, y, oof_mean = list(hops), None, None
    descriptors = Ensemble.load(model_dir).hop_inputs(ordered, device=device).descriptors.astype(float)
    mean, std = descriptors.mean(0), np.maximum(descriptors.std(0), 1e-6)
    if y is None:
        store = ResidualStore.empty(descriptors.shape[1])
    else:
        store = ResidualStore(
            [h.hop_id for h in ordered], np.array([host_of(h) for h in ordered], dtype=object),
            (descriptors - mean) / std, residual_of(y, oof_mean, params.space),
        )
    model = SisterModel(params, mean, std, store)
    return _write(model_dir, model, cv)


def carry_sister_correction(
    parent: Ensemble, model_dir: Path, hops: Sequence[Hop], device: str | None = None
) -> SisterCorrectionSection | None:
    """Give a retrained ``model_dir`` its parent's correction: the parent's store plus the labelled
    ``hops`` the parent was not trained on (and had no residual of), with their residuals against
    the parent's stack. None (nothing written): the parent has no correction."""
    if parent.sister is None:
        return None
    known = set(parent.sister.store.hop_ids) | set(parent.model_card.training_hop_ids or ())
    fresh = [h for h in hops if h.barrier_ev is not None and h.hop_id not in known]
    model = parent.sister
    if fresh:
        inputs = parent.hop_inputs(fresh, device=device)
        stack = parent._predict(inputs)  # the parent's stack, before any correction
        model = model.with_labels([h.hop_id for h in fresh], [host_of(h) for h in fresh], inputs.descriptors,
                                  np.array([h.barrier_ev for h in fresh], dtype=float), stack.mean_ev)
    section = parent.model_card.sister_correction
    return _write(model_dir, model, section.cv if section else None)


def _write(model_dir: Path, model: SisterModel, cv: dict[str, Any] | None) -> SisterCorrectionSection:
    model.save(model_dir)
    section = SisterCorrectionSection(
        **model.params.as_dict(), descriptor_mean=[float(v) for v in model.descriptor_mean],
        descriptor_std=[float(v) for v in model.descriptor_std], n_residuals=len(model.store), cv=cv, method=METHOD,
    )
    # the card's JSON gets one key more, every other key as it was written
    card = json.loads(card_path(model_dir).read_text())
    card["sister_correction"] = section.model_dump(mode="json")
    card_path(model_dir).write_text(json.dumps(card, indent=2))
    ModelCard.load(model_dir)  # still a valid card
    return section
