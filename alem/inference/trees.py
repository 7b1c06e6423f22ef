"""Tree models on hop descriptors: the stack's second kind of component.

Trees see the same physical descriptors as the GNN head (:mod:`alem.graphs.descriptors`) plus the
working ion as a one-hot vector. Barriers span 0.004–8.8 eV and their errors grow with them, so
trees may learn log E_m (``log_target``): the forest then averages in log space, a geometric mean
that the few multivalent hops above 4 eV cannot drag around (inner folds: 0.287 vs 0.302 eV).
Forests also give a spread, the standard deviation of the trees' barriers, that serves as their
predictive σ; boosted trees are point models.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor

from alem.errors import AlemError
from alem.graphs.descriptors import hop_descriptors
from alem.hops.hop import Hop

#: The working ions of the literature set; any other ion gets an all-zero one-hot block.
ION_VOCABULARY = ("Al", "Ca", "K", "Li", "Mg", "Na", "Rb", "Sr", "Zn")

TREE_KINDS = {
    "extra_trees": ExtraTreesRegressor,
    "random_forest": RandomForestRegressor,
    "gradient_boosting": GradientBoostingRegressor,
}


@dataclass(frozen=True)
class TreeSpec:
    """One tree component: its name in the card, its kind (:data:`TREE_KINDS`) and parameters."""

    name: str
    kind: str
    params: dict = field(default_factory=dict)
    log_target: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def build(self, seed: int):
        if self.kind not in TREE_KINDS:
            raise ValueError(f"unknown tree kind {self.kind!r} (known: {', '.join(TREE_KINDS)})")
        return TREE_KINDS[self.kind](random_state=seed, **self.params)


def _with_ion_one_hot(hops: Sequence[Hop], descriptors: np.ndarray) -> np.ndarray:
    ions = np.array([[h.working_ion == ion for ion in ION_VOCABULARY] for h in hops], dtype=np.float32)
    return np.hstack([descriptors, ions.reshape(len(hops), len(ION_VOCABULARY))]).astype(np.float32)


def tree_features(hops: Sequence[Hop], descriptor_set: str) -> np.ndarray:
    """``n_hops x (n_descriptors + n_ions)``: the hop descriptors and the ion one-hot."""
    descriptors = np.stack([hop_descriptors(h, descriptor_set) for h in hops]) if hops else np.zeros((0, 0))
    return _with_ion_one_hot(hops, descriptors)


def tree_features_from_graphs(hops: Sequence[Hop], graphs: Sequence) -> np.ndarray:
    """:func:`tree_features` reusing the descriptors already held by the hops' graphs."""
    descriptors = np.concatenate([g.path_desc.numpy() for g in graphs]) if graphs else np.zeros((0, 0), np.float32)
    return _with_ion_one_hot(hops, descriptors)


class TreeVersionError(AlemError, RuntimeError):
    """Tree models pickled by another scikit-learn than the one installed."""


def load_trees(path: Path) -> list:
    """Fitted tree models saved by :func:`alem.training.trees.save_trees`. They were pickled by the
    scikit-learn named in the card's ``stack.sklearn_version``; another version is refused with one
    message (:class:`TreeVersionError`), because scikit-learn does not promise that its pickles
    load across versions."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", sklearn.exceptions.InconsistentVersionWarning)
        try:
            return joblib.load(path)
        except sklearn.exceptions.InconsistentVersionWarning as exc:
            raise TreeVersionError(
                f"{path}: tree models pickled by scikit-learn {exc.original_sklearn_version}, "
                f"this is {sklearn.__version__}; retrain (alem train) or install that version"
            ) from None


def predict_trees(specs: Sequence[TreeSpec], models: Sequence, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each tree component's barrier and σ in eV (``n_components x n_hops``; σ 0 for boosted
    trees, the spread of the trees' barriers for forests)."""
    means, sigmas = [], []
    for spec, model in zip(specs, models):
        to_ev = np.exp if spec.log_target else (lambda v: v)
        means.append(to_ev(model.predict(features)))
        if isinstance(model, (ExtraTreesRegressor, RandomForestRegressor)):
            per_tree = np.stack([to_ev(tree.predict(features)) for tree in model.estimators_])
            sigmas.append(per_tree.std(0))
        else:
            sigmas.append(np.zeros(len(features)))
    return np.asarray(means), np.asarray(sigmas)
