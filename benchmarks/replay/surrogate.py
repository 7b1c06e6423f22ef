"""The replay benchmark's surrogate: a bootstrap ensemble of small MLP heads on fixed descriptors.

All members train at once as one batched network (weights stacked along a member axis), full
batch, so one refit takes a fraction of a second on a CPU core. Each member sees a bootstrap
resample of the labelled hops and its own initialisation; the member predictions form the
members x candidates table the campaign's BoTorch acquisition uses (``PredictionTable``).
"""

from __future__ import annotations

import numpy as np
import torch


class HeadEnsemble:
    def __init__(self, n_members: int = 8, hidden: int = 64, epochs: int = 300, learning_rate: float = 1e-2,
                 weight_decay: float = 1e-3, seed: int = 0) -> None:
        self.n_members, self.hidden, self.epochs = n_members, hidden, epochs
        self.learning_rate, self.weight_decay, self.seed = learning_rate, weight_decay, seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> HeadEnsemble:
        generator = torch.Generator().manual_seed(self.seed)
        self.x_mean, self.x_std = X.mean(0), X.std(0) + 1e-8
        self.y_mean, self.y_std = float(y.mean()), float(y.std() + 1e-8)
        x = torch.as_tensor((X - self.x_mean) / self.x_std, dtype=torch.float32)
        t = torch.as_tensor((y - self.y_mean) / self.y_std, dtype=torch.float32)
        n, d = x.shape
        m, h = self.n_members, self.hidden
        counts = torch.stack([torch.bincount(torch.randint(n, (n,), generator=generator), minlength=n) for _ in range(m)])
        weights = counts.float() / n  # bootstrap as per-sample weights: members x n
        self.w1 = (torch.randn(m, d, h, generator=generator) / d**0.5).requires_grad_()
        self.b1 = torch.zeros(m, 1, h, requires_grad=True)
        self.w2 = (torch.randn(m, h, 1, generator=generator) / h**0.5).requires_grad_()
        self.b2 = torch.zeros(m, 1, 1, requires_grad=True)
        params = [self.w1, self.b1, self.w2, self.b2]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        xb = x.unsqueeze(0).expand(m, n, d)
        for _ in range(self.epochs):
            optimizer.zero_grad()
            out = self._forward(xb)  # m x n
            loss = (weights * torch.nn.functional.smooth_l1_loss(out, t.expand(m, n), reduction="none")).sum(1).mean()
            loss.backward()
            optimizer.step()
        return self

    def _forward(self, xb: torch.Tensor) -> torch.Tensor:
        hidden = torch.nn.functional.silu(torch.bmm(xb, self.w1) + self.b1)
        return (torch.bmm(hidden, self.w2) + self.b2).squeeze(-1)

    @torch.no_grad()
    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Member predictions (members x hops, eV)."""
        x = torch.as_tensor((X - self.x_mean) / self.x_std, dtype=torch.float32)
        out = self._forward(x.unsqueeze(0).expand(self.n_members, *x.shape))
        return out.numpy() * self.y_std + self.y_mean


class LogTreeEnsemble:
    """Extremely randomised trees on log E_m, each tree a member (the replay's stand-in for the
    shipped model's tree component; with a cheap barrier among the features, for its
    fidelity-aware add-on). A refit takes about half a second."""

    def __init__(self, n_estimators: int = 100, max_features: float = 1.0, seed: int = 0) -> None:
        self.n_estimators, self.max_features, self.seed = n_estimators, max_features, seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogTreeEnsemble:
        from sklearn.ensemble import ExtraTreesRegressor

        self.model = ExtraTreesRegressor(self.n_estimators, max_features=self.max_features, random_state=self.seed, n_jobs=1)
        self.model.fit(X, np.log(np.maximum(y, 1e-3)))
        return self

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Member predictions (trees x hops, eV)."""
        return np.exp(np.stack([tree.predict(X) for tree in self.model.estimators_]))


class LogDeltaTrees(LogTreeEnsemble):
    """Extra trees on log(E_DFT / E_cheap), the shipped fidelity-aware add-on's ``log_delta`` form;
    the features end with the cheap barrier and its log (``with_cheap_barrier``'s layout)."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogDeltaTrees:
        from sklearn.ensemble import ExtraTreesRegressor

        from alem.inference.fidelity_aware import form_target

        self.model = ExtraTreesRegressor(self.n_estimators, max_features=self.max_features, random_state=self.seed, n_jobs=1)
        self.model.fit(X, form_target("log_delta", y, X[:, -2]))
        return self

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Member predictions (trees x hops, eV)."""
        from alem.inference.fidelity_aware import form_barrier

        return np.stack([form_barrier("log_delta", tree.predict(X), X[:, -2]) for tree in self.model.estimators_])


def joint_draws_of(members: np.ndarray, noise_scale_ev: float, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``n_draws x n_hops`` joint draws, as the shipped stack's rows are made
    (:meth:`alem.ensemble.Ensemble.sample`): each row takes one member (tree, head) for every hop,
    so the hops co-vary as the members make them, plus Laplace noise of scale ``noise_scale_ev``
    drawn per hop (the error the members share and do not show); barriers are not negative."""
    picks = rng.integers(len(members), size=n_draws)
    noise = rng.laplace(0.0, noise_scale_ev, (n_draws, members.shape[1]))
    return np.clip(members[picks] + noise, 0.0, None)


class PrequentialNoise:
    """The replay's per-hop noise scale: the mean absolute error of the ensemble's mean on hops
    predicted before their label came (a Laplace's mean absolute deviation is its scale). It
    starts from a 3-fold cross-validation of the initial labels and then follows the last
    ``window`` labelled hops' errors, as a campaign can measure them."""

    def __init__(self, X: np.ndarray, y: np.ndarray, initial: list[int], surrogate, seed: int, window: int = 100) -> None:
        initial = np.asarray(initial)
        folds = np.arange(len(initial)) % 3
        errors = []
        for fold in range(3):
            train, test = initial[folds != fold], initial[folds == fold]
            model = surrogate(seed=seed).fit(X[train], y[train])
            errors.extend(np.abs(model.predict_members(X[test]).mean(0) - y[test]))
        self.errors = list(errors)
        self.window = window

    def record(self, predicted_ev: np.ndarray, label_ev: np.ndarray) -> None:
        self.errors.extend(np.abs(predicted_ev - label_ev))

    def scale_ev(self) -> float:
        return float(np.mean(self.errors[-self.window :]))
