"""The stack's non-GNN components: trees on hop descriptors, and a kernel model that also reads
the backbone's features (:mod:`alem.inference.kernel_model`).

Trees see the same physical descriptors as the GNN head (:mod:`alem.graphs.descriptors`) plus the
working ion as a one-hot vector. Barriers span 0.004–8.8 eV and their errors grow with them, so
trees may learn log E_m (``log_target``): the forest then averages in log space, a geometric mean
that the few multivalent hops above 4 eV cannot drag around (inner folds: 0.287 vs 0.302 eV).
Forests also give a spread, the standard deviation of the trees' barriers, that serves as their
predictive σ; boosted trees and the kernel model are point models.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor

from alem.errors import AlemError
from alem.graphs.descriptors import hop_descriptors
from alem.hops.hop import Hop
from alem.inference.kernel_model import BackboneSVR
from alem.model_dir import COMPONENT_INPUTS, TreeSpec

__all__ = ["COMPONENT_INPUTS", "TREE_KINDS", "ComponentInputs", "TreeSpec", "build_model"]

#: The working ions of the literature set; any other ion gets an all-zero one-hot block.
ION_VOCABULARY = ("Al", "Ca", "K", "Li", "Mg", "Na", "Rb", "Sr", "Zn")

TREE_KINDS = {
    "extra_trees": ExtraTreesRegressor,
    "random_forest": RandomForestRegressor,
    "gradient_boosting": GradientBoostingRegressor,
    "svr": BackboneSVR,
}


def build_model(spec: TreeSpec, seed: int, n_backbone_columns: int = 0):
    """The unfitted scikit-learn model of ``spec`` (seeded; the kernel model has no random state)."""
    if spec.kind == "svr":
        return BackboneSVR(n_backbone_columns=n_backbone_columns if spec.reads_backbone else 0, **spec.params)
    return TREE_KINDS[spec.kind](random_state=seed, **spec.params)


@dataclass(frozen=True)
class ComponentInputs:
    """What the stack's components read for ``n_hops`` hops: descriptors + ion one-hot, and (when
    a component needs them) the backbone's features."""

    descriptors: np.ndarray
    backbone: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.descriptors)

    def subset(self, index: np.ndarray) -> ComponentInputs:
        return ComponentInputs(self.descriptors[index], None if self.backbone is None else self.backbone[index])

    def for_spec(self, spec: TreeSpec) -> np.ndarray:
        if not spec.reads_backbone:
            return self.descriptors
        if self.backbone is None:
            raise ValueError(f"component {spec.name!r} reads backbone features, and none were computed")
        return np.hstack([self.descriptors, self.backbone])

    @property
    def n_backbone_columns(self) -> int:
        return 0 if self.backbone is None else self.backbone.shape[1]


def as_component_inputs(features: np.ndarray | ComponentInputs) -> ComponentInputs:
    """A plain descriptor matrix as :class:`ComponentInputs` (inputs pass through)."""
    return features if isinstance(features, ComponentInputs) else ComponentInputs(np.asarray(features))


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


#: Barriers are floored here before a log (the smallest literature barrier is 0.0035 eV).
LOG_FLOOR_EV = 1e-3


def fit_tree(spec: TreeSpec, features: np.ndarray | ComponentInputs, y_ev: np.ndarray, seed: int = 0):
    """The fitted scikit-learn model of ``spec`` on these hops' inputs and barriers (eV)."""
    inputs = as_component_inputs(features)
    target = np.log(np.maximum(y_ev, LOG_FLOOR_EV)) if spec.log_target else y_ev
    return build_model(spec, seed, inputs.n_backbone_columns).fit(inputs.for_spec(spec), target)


def save_trees(models: Sequence, path: Path) -> None:
    """Fitted scikit-learn components as one list in ``path`` (read by :func:`load_trees`)."""
    joblib.dump(list(models), path, compress=3)


def predict_trees(
    specs: Sequence[TreeSpec], models: Sequence, features: np.ndarray | ComponentInputs
) -> tuple[np.ndarray, np.ndarray]:
    """Each component's barrier and σ in eV (``n_components x n_hops``; σ 0 for point models,
    the spread of the trees' barriers for forests)."""
    inputs = as_component_inputs(features)
    means, sigmas = [], []
    for spec, model in zip(specs, models):
        x = inputs.for_spec(spec)
        to_ev = np.exp if spec.log_target else (lambda v: v)
        if isinstance(model, (ExtraTreesRegressor, RandomForestRegressor)):
            per_tree = forest_tree_predictions(model, x)
            means.append(to_ev(forest_mean(per_tree)))
            sigmas.append(to_ev(per_tree).std(0))
        else:
            means.append(to_ev(model.predict(x)))
            sigmas.append(np.zeros(len(inputs)))
    return np.asarray(means), np.asarray(sigmas)


def forest_tree_predictions(model, x: np.ndarray) -> np.ndarray:
    """``n_trees x n_hops``: each tree's prediction, ``x`` checked and made float32 once for all
    trees (as the forest's own ``predict`` does) rather than once per tree."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    if not len(x32):
        return np.zeros((len(model.estimators_), 0))
    return np.stack([tree.predict(x32, check_input=False) for tree in model.estimators_])


def forest_mean(per_tree: np.ndarray) -> np.ndarray:
    """The forest's ``predict`` from its trees' predictions, summed in tree order as scikit-learn
    sums them (bit for bit: the trees are run once for the mean and the spread, not twice)."""
    total = np.zeros(per_tree.shape[1])
    for row in per_tree:
        total += row
    return total / len(per_tree)
