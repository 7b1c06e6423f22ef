"""A kernel model for the stack: support-vector regression on hop descriptors and a few principal
components of the backbone's features (:mod:`alem.inference.backbone_features`).

Trees split on one descriptor at a time; an RBF kernel compares whole hops, so it errs where the
trees do not, and the backbone components tell it which hosts resemble each other. Principal
components are fitted on the training hops only (inside each CV fold), so the 256 backbone
columns cannot swamp the 46 descriptor ones, and the fit stays a second on 500 hops.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR


class BackboneSVR(RegressorMixin, BaseEstimator):
    """RBF support-vector regression on ``[descriptors | PCA(backbone features)]``, standardised.

    Args:
        n_backbone_columns: how many of the input's last columns are backbone features (0: none,
            descriptors only).
        n_components: principal components kept of the backbone columns (fewer when fitted on
            fewer hops).
        C: SVR regularisation.
        epsilon: SVR insensitive-tube half-width, in target units.
    """

    def __init__(self, n_backbone_columns: int = 0, n_components: int = 8, C: float = 3.0, epsilon: float = 0.05):
        self.n_backbone_columns = n_backbone_columns
        self.n_components = n_components
        self.C = C
        self.epsilon = epsilon

    def _split(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = np.asarray(features, dtype=float)
        cut = features.shape[1] - self.n_backbone_columns
        return features[:, :cut], features[:, cut:]

    def _inputs(self, features: np.ndarray) -> np.ndarray:
        descriptors, backbone = self._split(features)
        if self.n_backbone_columns:
            backbone = self.pca_.transform(self.backbone_scaler_.transform(backbone))
        return self.scaler_.transform(np.hstack([descriptors, backbone]))

    def fit(self, features: np.ndarray, target: np.ndarray) -> BackboneSVR:
        descriptors, backbone = self._split(features)
        if self.n_backbone_columns:
            self.backbone_scaler_ = StandardScaler().fit(backbone)
            # full SVD: deterministic, and cheap at a few hundred hops x 256 columns; a campaign's
            # first handful of hops keeps as many components as it can
            n_components = min(self.n_components, *backbone.shape)
            self.pca_ = PCA(n_components, svd_solver="full").fit(self.backbone_scaler_.transform(backbone))
            backbone = self.pca_.transform(self.backbone_scaler_.transform(backbone))
        self.scaler_ = StandardScaler().fit(np.hstack([descriptors, backbone]))
        self.svr_ = SVR(C=self.C, epsilon=self.epsilon).fit(self._inputs(features), target)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.svr_.predict(self._inputs(features))
