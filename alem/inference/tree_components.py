"""The scikit-learn components of a stack as :class:`~alem.inference.components.BarrierComponent`:
descriptor trees and the kernel model (:mod:`alem.inference.trees`), and the trees of the
fidelity-aware add-on that also read a cheap barrier (:mod:`alem.inference.fidelity_aware`).

A model directory keeps the components of one kind together, in one list file in card order
(``trees.joblib``, ``fidelity_trees.joblib``): each component knows its file and its position in it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

from alem.inference.components import BarrierComponent, ComponentPrediction, HopInputs
from alem.inference.draw_randomness import DrawRandomness
from alem.inference.fidelity_aware import fit_fidelity_trees, form_barrier, predict_fidelity_trees, with_cheap_barrier
from alem.inference.trees import fit_tree, load_trees, predict_trees, save_trees
from alem.model_dir import FIDELITY_TREES_FILENAME, TREES_FILENAME, TreeSpec


def _forest_draws(model, x: np.ndarray, to_ev, n_draws: int, randomness: DrawRandomness,
                  point_ev: Callable[[], np.ndarray]) -> np.ndarray:
    """Joint draws of a fitted model: a forest's tree picked per draw (one tree for every hop),
    a point model's prediction (``point_ev()``) repeated."""
    if isinstance(model, (ExtraTreesRegressor, RandomForestRegressor)):
        picks = randomness.choices.integers(len(model.estimators_), size=n_draws)
        per_tree = {int(k): to_ev(model.estimators_[k].predict(x)) for k in np.unique(picks)}
        return np.stack([per_tree[int(k)] for k in picks]) if n_draws else np.zeros((0, len(x)))
    return np.repeat(point_ev()[None], n_draws, axis=0)


class _SavedInList(BarrierComponent):
    """A component kept at :attr:`position` of a list file shared with its siblings."""

    file: str
    position: int
    model: object | None

    def save(self, model_dir: Path) -> None:
        path = Path(model_dir) / self.file
        # siblings before this one were written first (card order); keep them
        models = load_trees(path) if self.position and path.exists() else []
        if len(models) < self.position:
            raise ValueError(f"{path}: components before position {self.position} not written yet")
        save_trees([*models[: self.position], self.model], path)


class TreeComponent(_SavedInList):
    """One descriptor-tree or kernel-model component (:class:`~alem.model_dir.TreeSpec`)."""

    file = TREES_FILENAME

    def __init__(self, spec: TreeSpec, model=None, position: int = 0):
        self.spec, self.model, self.position = spec, model, position
        self.name = spec.name

    def _x(self, inputs: HopInputs) -> np.ndarray:
        return inputs.component_inputs(self.spec.reads_backbone).for_spec(self.spec)

    def fit(self, inputs: HopInputs, y_ev: np.ndarray, seed: int = 0) -> TreeComponent:
        self.model = fit_tree(self.spec, inputs.component_inputs(self.spec.reads_backbone), y_ev, seed)
        return self

    def predict(self, inputs: HopInputs) -> ComponentPrediction:
        key = (self.name, id(self))
        if key not in inputs.computed:  # predict and sample share it, and a subset of the hops cuts it
            means, sigmas = predict_trees([self.spec], [self.model], inputs.component_inputs(self.spec.reads_backbone))
            inputs.computed[key] = (means[0], sigmas[0])
        mean, sigma = cast(tuple[np.ndarray, np.ndarray], inputs.computed[key])
        return ComponentPrediction(mean, sigma)

    def sample(self, inputs: HopInputs, n_draws: int, randomness: DrawRandomness) -> np.ndarray:
        to_ev = np.exp if self.spec.log_target else (lambda v: v)
        return _forest_draws(self.model, self._x(inputs), to_ev, n_draws, randomness, lambda: self.predict(inputs).mean_ev)

    @classmethod
    def load_all(cls, model_dir: Path, specs: Sequence[TreeSpec]) -> list[TreeComponent]:
        """The components ``specs`` saved in ``model_dir`` (one read of their file)."""
        models = load_trees(Path(model_dir) / cls.file) if specs else []
        return [cls(spec, model, k) for k, (spec, model) in enumerate(zip(specs, models, strict=True))]


class FidelityTreeComponent(_SavedInList):
    """One tree of the fidelity-aware add-on: reads the descriptors and a cheap barrier of
    ``cheap_fidelity`` (every hop it sees must have one) and learns the target ``form``."""

    file = FIDELITY_TREES_FILENAME

    def __init__(self, spec: TreeSpec, form: str, cheap_fidelity: str, model=None, position: int = 0,
                 file: str = FIDELITY_TREES_FILENAME):
        self.spec, self.form, self.cheap_fidelity, self.model, self.position = spec, form, cheap_fidelity, model, position
        self.file = file  # one file per add-on (potential)
        self.name = f"{spec.name}+{cheap_fidelity}"

    def _cheap_ev(self, inputs: HopInputs) -> np.ndarray:
        used, cheap_ev = inputs.cheap_barriers_of(self.cheap_fidelity)
        if not used.all():
            raise ValueError(f"{self.name}: {int((~used).sum())} hops have no {self.cheap_fidelity} barrier")
        return cheap_ev

    def fit(self, inputs: HopInputs, y_ev: np.ndarray, seed: int = 0) -> FidelityTreeComponent:
        (self.model,) = fit_fidelity_trees([self.spec], self.form, inputs.descriptors, self._cheap_ev(inputs), y_ev, seed)
        return self

    def predict(self, inputs: HopInputs) -> ComponentPrediction:
        means, sigmas = predict_fidelity_trees(self.form, [self.model], inputs.descriptors, self._cheap_ev(inputs))
        return ComponentPrediction(means[0], sigmas[0])

    def sample(self, inputs: HopInputs, n_draws: int, randomness: DrawRandomness) -> np.ndarray:
        cheap_ev = self._cheap_ev(inputs)
        x = with_cheap_barrier(inputs.descriptors, cheap_ev)
        return _forest_draws(self.model, x, lambda target: form_barrier(self.form, target, cheap_ev), n_draws, randomness,
                             lambda: self.predict(inputs).mean_ev)

    @classmethod
    def load_all(cls, model_dir: Path, specs: Sequence[TreeSpec], form: str, cheap_fidelity: str,
                 file: str = FIDELITY_TREES_FILENAME) -> list[FidelityTreeComponent]:
        models = load_trees(Path(model_dir) / file) if specs else []
        return [cls(spec, form, cheap_fidelity, model, k, file) for k, (spec, model) in enumerate(zip(specs, models, strict=True))]
