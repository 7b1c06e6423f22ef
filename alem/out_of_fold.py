"""A model's grouped cross-validation, kept with it as ``oof_predictions.npz``: written by the
training recipe, read by the report's parity plot, the calibration and the sister correction.

numpy alone reads and writes it: the report draws the parity plot of every new model version,
and importing the training code (torch, PyG, scikit-learn) to read one file cost a read command
about nine seconds.

Keys: ``hop_id``, ``y`` (reference barriers, eV), the GNN members' ``location`` and ``scale``
(``n_members x n_hops``), ``folds``, ``seconds`` (per member), the stacked ``mean`` and calibrated
``sigma``, and ``component_names`` / ``component_mean`` / ``component_sigma`` (one row per stacked
component). Files written before the stack existed hold the members only, no ``mean`` or ``sigma``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OOF_FILENAME = "oof_predictions.npz"


def members_mean_ev(location_ev: np.ndarray) -> np.ndarray:
    """Mean of a mixture of the members' Laplace distributions (``n_members x n_hops`` locations),
    clipped at 0: barriers are not negative."""
    return np.clip(location_ev.mean(0), 0.0, None)


@dataclass(frozen=True)
class OutOfFold:
    """The out-of-fold predictions of a model directory (every array as the file holds it)."""

    y_ev: np.ndarray
    mean_ev: np.ndarray
    #: The calibrated σ; None in a file written before the stack (the card's calibration makes it).
    sigma_ev: np.ndarray | None
    location_ev: np.ndarray
    scale_ev: np.ndarray


def read_out_of_fold(model_dir: Path) -> OutOfFold:
    """The out-of-fold predictions kept in ``model_dir`` (a file holding only the members gets
    their mixture's mean)."""
    with np.load(Path(model_dir) / OOF_FILENAME) as oof:
        if "mean" in oof.files:
            return OutOfFold(oof["y"], oof["mean"], oof["sigma"], oof["location"], oof["scale"])
        location = oof["location"]
        return OutOfFold(oof["y"], members_mean_ev(location), None, location, oof["scale"])


def write_out_of_fold(model_dir: Path, **arrays: np.ndarray) -> Path:
    """``oof_predictions.npz`` in ``model_dir`` with ``arrays`` (the keys above), compressed."""
    path = Path(model_dir) / OOF_FILENAME
    np.savez_compressed(path, **arrays)
    return path
