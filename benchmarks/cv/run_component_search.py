"""The exploration that assembled run_stack.py's candidate components (issue: accuracy levers).

Each model below learns log E_m from the v2 descriptors + ion one-hot (and, where named, the
pre-trained backbone's features, :mod:`alem.inference.backbone_features`) and is scored two ways on
the folds of run_stack.py: out-of-fold over the 5 outer folds, and out-of-fold over the grouped
4-fold inner split of each outer training part (mean of the 5). This table was read, outer scores
included, before run_stack.py's candidate sets were declared: those sets are therefore not blind to
the outer folds; the choice among them is (run_stack.py's "selected on inner folds" row).

    python benchmarks/cv/run_component_search.py

Writes ``component_search.json`` and ``component_search.md`` beside this file (about 17 min on
2 cores beside other work, most of it the Gaussian process).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.decomposition import PCA
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, HistGradientBoostingRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alem.hops import load_training_hops
from alem.inference.kernel_model import BackboneSVR
from alem.inference.trees import LOG_FLOOR_EV, build_model
from alem.model_dir import default_pretrained_path
from alem.training.cv import grouped_folds
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet
from alem.training.trees import BACKBONE_SVR

HERE = Path(__file__).resolve().parent
N_OUTER, N_INNER, SEED = 5, 4, 0


class WithBackbonePCA(RegressorMixin, BaseEstimator):
    """Any regressor on ``[descriptors | PCA(backbone)]``; the last ``n_backbone_columns`` columns
    are the backbone's, reduced on the training hops only."""

    def __init__(self, estimator=None, n_backbone_columns: int = 0, n_components: int = 8):
        self.estimator = estimator
        self.n_backbone_columns = n_backbone_columns
        self.n_components = n_components

    def _reduced(self, x: np.ndarray) -> np.ndarray:
        cut = x.shape[1] - self.n_backbone_columns
        return np.hstack([x[:, :cut], self.pca_.transform(self.scaler_.transform(x[:, cut:]))])

    def fit(self, x: np.ndarray, y: np.ndarray):
        cut = x.shape[1] - self.n_backbone_columns
        self.scaler_ = StandardScaler().fit(x[:, cut:])
        self.pca_ = PCA(self.n_components, svd_solver="full").fit(self.scaler_.transform(x[:, cut:]))
        self.model_ = clone(self.estimator).fit(self._reduced(x), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict(self._reduced(x))


class GroupTuned(RegressorMixin, BaseEstimator):
    """Grid search on grouped 4-fold CV of the training hops it is given (the last column holds
    the hop's group code and is not a feature)."""

    def __init__(self, estimator=None, grid: dict | None = None):
        self.estimator = estimator
        self.grid = grid

    def fit(self, x: np.ndarray, y: np.ndarray):
        search = GridSearchCV(self.estimator, self.grid, cv=GroupKFold(N_INNER), scoring="neg_mean_absolute_error")
        self.model_ = search.fit(x[:, :-1], y, groups=x[:, -1]).best_estimator_
        self.best_params_ = search.best_params_
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict(x[:, :-1])


def candidates(n_backbone: int) -> dict[str, tuple[str, object]]:
    """Name -> (inputs, estimator); inputs: ``d`` descriptors, ``db`` + backbone, ``dg`` + group code."""
    extra_trees = ExtraTreesRegressor(300, max_features=0.5, n_jobs=1, random_state=0)
    boosting = GradientBoostingRegressor(loss="huber", n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8, random_state=0)
    gp_kernel = ConstantKernel(1.0) * Matern(length_scale=np.full(46, 3.0), nu=2.5) + WhiteKernel(0.1)
    hist = HistGradientBoostingRegressor(loss="absolute_error", max_iter=300, learning_rate=0.05, random_state=0)
    gp = GaussianProcessRegressor(gp_kernel, normalize_y=True, random_state=0)
    mlp = MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1e-2, max_iter=2000, random_state=0)
    return {
        "extra trees": ("d", extra_trees),
        "extra trees + backbone PCA(8)": ("db", WithBackbonePCA(extra_trees, n_backbone)),
        "gradient boosting (Huber)": ("d", boosting),
        "gradient boosting + backbone PCA(8)": ("db", WithBackbonePCA(boosting, n_backbone)),
        "HistGradientBoosting (L1)": ("d", hist),
        "k nearest neighbours (7, distance-weighted)": ("d", make_pipeline(StandardScaler(), KNeighborsRegressor(7, weights="distance"))),
        "kernel ridge (RBF)": ("d", make_pipeline(StandardScaler(), KernelRidge(alpha=0.3, kernel="rbf", gamma=0.02))),
        "Gaussian process (ARD Matérn 5/2)": ("d", make_pipeline(StandardScaler(), gp)),
        "MLP (64, 64)": ("d", make_pipeline(StandardScaler(), mlp)),
        "SVR (C 3, ε 0.05)": ("d", BackboneSVR()),
        "SVR, grid-searched on grouped inner folds": ("dg", GroupTuned(BackboneSVR(), {"C": [1, 3, 10, 30], "epsilon": [0.02, 0.1]})),
        "SVR + backbone PCA(4)": ("db", BackboneSVR(n_backbone, n_components=4)),
        "SVR + backbone PCA(8) (svr_backbone)": ("db", build_model(BACKBONE_SVR, 0, n_backbone)),
        "SVR + backbone PCA(16)": ("db", BackboneSVR(n_backbone, n_components=16)),
    }


def main() -> None:
    started = time.time()
    hops = load_training_hops()
    y = np.array([h.barrier_ev for h in hops])
    log_y = np.log(np.maximum(y, LOG_FLOOR_EV))
    groups = np.array([h.group for h in hops])
    group_code = np.unique(groups, return_inverse=True)[1].astype(float)[:, None]
    folds = grouped_folds(list(groups), N_OUTER, SEED)
    training_set = TrainingSet.prepare(hops, Pretrained.load(default_pretrained_path()), FinetuneConfig(), torch.device("cpu"))
    inputs = training_set.component_inputs(hops, [BACKBONE_SVR], torch.device("cpu"))
    matrices = {"d": inputs.descriptors, "db": np.hstack([inputs.descriptors, inputs.backbone]),
                "dg": np.hstack([inputs.descriptors, group_code])}
    rows = []
    for name, (kind, estimator) in candidates(inputs.n_backbone_columns).items():
        x, t0 = matrices[kind], time.time()
        outer, inner_mae = np.zeros_like(y), []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GP length scales at their bounds: uninformative descriptors
            for f in range(N_OUTER):
                train, test = np.flatnonzero(folds != f), folds == f
                outer[test] = np.exp(clone(estimator).fit(x[train], log_y[train]).predict(x[test]))
                inner = grouped_folds(list(groups[train]), N_INNER, SEED + 1)
                inner_pred = np.zeros(len(train))
                for g in range(N_INNER):
                    fit_on, predict_on = train[inner != g], train[inner == g]
                    inner_pred[inner == g] = np.exp(clone(estimator).fit(x[fit_on], log_y[fit_on]).predict(x[predict_on]))
                inner_mae.append(float(np.abs(inner_pred - y[train]).mean()))
        rows.append({"model": name, "inputs": kind, "outer_mae_ev": float(np.abs(outer - y).mean()),
                     "inner_mae_ev": float(np.mean(inner_mae)), "seconds": round(time.time() - t0, 1)})
        row = rows[-1]
        print(f"{name:45s} outer {row['outer_mae_ev']:.4f}  inner {row['inner_mae_ev']:.4f}  {row['seconds']:.0f} s", flush=True)
    results = {"n_hops": len(hops), "target": "log E_m", "rows": rows, "wall_time_s": round(time.time() - started, 1)}
    (HERE / "component_search.json").write_text(json.dumps(results, indent=2))
    lines = ["| model (log E_m) | inputs | outer MAE (eV) | inner MAE (eV) | s |", "|---|---|---|---|---|"]
    labels = {"d": "descriptors + ion", "db": "+ backbone", "dg": "descriptors + ion"}
    for r in rows:
        lines.append(f"| {r['model']} | {labels[r['inputs']]} | {r['outer_mae_ev']:.3f} | {r['inner_mae_ev']:.3f} | {r['seconds']:.0f} |")
    (HERE / "component_search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
