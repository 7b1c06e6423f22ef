"""Second attempt at issue 27 item 2, measured beside the GP correction (imported by ``run_sister.py``).

- **Diagnosis**: how strongly the stack's out-of-fold residuals of sister hops (same compound) are
  correlated, against random pairs of different compounds, and how that depends on hop similarity
  (|Δ hop length|, same anion coordination of the site, descriptor distance). If a hop's residual
  is barely correlated with its sisters', no model of the sisters' residuals can cut the error much:
  the Gaussian bound below says how much at most.
- **Second stage on sister labels**: a small model whose features are the stack's prediction and,
  per hop, summaries of its labelled sisters (nearest sister's label and distance, nearest sister by
  hop length, the sisters' mean out-of-sample residual, their count); its target is the stack's
  residual of the hop. Its training rows are the inner-fold held-out hops of the sister-aware
  protocol, each with sister features from its inner fold's training hops only (never itself); a
  hop with no labelled sister gets no correction, so the grouped protocol is unchanged by
  construction. The variant and its shrinkage are chosen by a compound-grouped CV over those rows.
- **σ recalibration**: one factor for σ of hops with labelled sisters, fitted on inner-fold rows
  (the coverage-matching factor of :func:`alem.metrics.fit_sigma_scale`, or the split-conformal
  90 % quantile of ``|r|/σ``).
- **P calibration**: Platt scaling (logistic on the stack's z-score) beside the isotonic map.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor
from sklearn.linear_model import HuberRegressor, LogisticRegression

from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV
from alem.training.cv import grouped_folds

#: Columns of the sister features (descriptor column 0 is the hop length, 10 the site's anion coordination).
FEATURES = ("stack_mean_ev", "nearest_label_minus_mean_ev", "nearest_residual_ev", "nearest_distance",
            "nearest_abs_dlength_a", "length_nearest_label_minus_mean_ev", "length_nearest_abs_dlength_a",
            "n_sisters", "sisters_mean_residual_ev", "nearest_same_site_coordination")
HOP_LENGTH, SITE_COORDINATION = 0, 10
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


class LengthRule:
    """The label of the sister closest in hop length, where that sister is within ``tolerance_a``
    (a near-identical path, e.g. a symmetry-related one listed twice); no correction otherwise."""

    def __init__(self, tolerance_a: float) -> None:
        self.tolerance_a = tolerance_a

    def fit(self, features: np.ndarray, target: np.ndarray) -> LengthRule:
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.where(features[:, 6] < self.tolerance_a, features[:, 5], 0.0)


class Columns:
    """A regressor on some of the feature columns."""

    def __init__(self, model, columns: list[int]) -> None:
        self.model, self.columns = model, columns

    def fit(self, features: np.ndarray, target: np.ndarray) -> Columns:
        self.model.fit(features[:, self.columns], target)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(features[:, self.columns])


def _gbm(loss: str, n_estimators: int = 150, leaf: int = 8) -> GradientBoostingRegressor:
    return GradientBoostingRegressor(loss=loss, n_estimators=n_estimators, max_depth=2, learning_rate=0.05,
                                     subsample=0.8, min_samples_leaf=leaf, random_state=0)


#: The declared variants (each also shrunk by every factor of :data:`LAMBDAS`, 0 being "no correction").
VARIANTS = {
    "gbm_huber": lambda: _gbm("huber"),
    "gbm_absolute": lambda: _gbm("absolute_error"),
    "extra_trees": lambda: ExtraTreesRegressor(300, min_samples_leaf=10, max_features=0.5, random_state=0, n_jobs=1),
    "huber_linear": lambda: HuberRegressor(alpha=1.0, max_iter=500),
    "gbm_length_label": lambda: Columns(_gbm("absolute_error", 100, 10), [5, 6, 3]),
    **{f"length_rule_{t}": (lambda t=t: LengthRule(t)) for t in (0.02, 0.05, 0.1, 0.2)},
}


def sister_features(data, targets: np.ndarray, labelled: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per target hop (``mean``: the stack's prediction of it), the summaries of its labelled
    sisters among ``labelled`` (never itself); and whether it has any (rows without are zeros)."""
    x, length = data.x, data.inputs.descriptors[:, HOP_LENGTH]
    coordination = np.round(data.inputs.descriptors[:, SITE_COORDINATION])
    residual = data.y - data.grouped_mean  # the residual store's residuals (out of sample)
    by_host: dict[str, list[int]] = {}
    for j in labelled:
        by_host.setdefault(data.groups[j], []).append(int(j))
    out, has = np.zeros((len(targets), len(FEATURES))), np.zeros(len(targets), dtype=bool)
    for k, i in enumerate(targets):
        sisters = np.array([j for j in by_host.get(data.groups[i], []) if j != i], dtype=int)
        if not len(sisters):
            continue
        has[k] = True
        distance = np.sqrt(((x[sisters] - x[i]) ** 2).mean(1))
        dlength = np.abs(length[sisters] - length[i])
        a, b = sisters[np.argmin(distance)], sisters[np.argmin(dlength)]
        out[k] = [mean[k], data.y[a] - mean[k], residual[a], distance.min(), abs(length[a] - length[i]),
                  data.y[b] - mean[k], dlength.min(), len(sisters), residual[sisters].mean(),
                  float(coordination[a] == coordination[i])]
    return out, has


def choose_stage2(features: np.ndarray, target: np.ndarray, groups: np.ndarray) -> tuple[str, float, dict]:
    """The variant and shrinkage with the lowest MAE in a compound-grouped 5-fold CV over the rows."""
    folds = grouped_folds(list(groups), 5, 0)
    scores = {}
    for name, make in VARIANTS.items():
        predicted = np.zeros(len(target))
        for q in range(5):
            fit, held = folds != q, folds == q
            predicted[held] = make().fit(features[fit], target[fit]).predict(features[held])
        for shrink in LAMBDAS:
            scores[f"{name} x {shrink}"] = float(np.abs(target - shrink * predicted).mean())
    best = min(scores, key=scores.get)
    name, shrink = best.split(" x ")
    return name, float(shrink), scores


class Stage2:
    """A chosen second stage: fitted on rows, applied to hops given their labelled sisters."""

    def __init__(self, data, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """``rows``: (held-out hops, their labelled hops, the stack's prediction of the held-out hops)."""
        self.data = data
        built = [(*sister_features(data, held, labelled, mean), held, mean) for held, labelled, mean in rows]
        self.features = np.vstack([f[h] for f, h, _, _ in built])
        self.target = np.concatenate([(data.y[i] - m)[h] for _, h, i, m in built])
        self.hops = np.concatenate([i[h] for _, h, i, _ in built])
        self.variant, self.shrink, self.scores = choose_stage2(self.features, self.target, data.groups[self.hops])
        self.model = VARIANTS[self.variant]().fit(self.features, self.target) if self.shrink > 0 else None

    def apply(self, targets: np.ndarray, labelled: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The corrected mean of ``targets`` and whether each had a labelled sister (else unchanged)."""
        features, has = sister_features(self.data, targets, labelled, mean)
        out = np.asarray(mean, dtype=float).copy()
        if self.model is not None and has.any():
            out[has] = np.clip(out[has] + self.shrink * self.model.predict(features[has]), 0.0, None)
        return out, has

    def chosen(self) -> dict:
        return {"variant": self.variant, "shrink": self.shrink, "inner_mae_ev": round(self.scores[f"{self.variant} x {self.shrink}"], 4),
                "inner_mae_ev_no_correction": round(self.scores[f"{self.variant} x 0.0"], 4), "n_rows": int(len(self.target))}


def sigma_factors(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """σ factors for hops with labelled sisters, fitted on inner-fold rows: the coverage-matching
    one (as the stack's own factor) and the split-conformal one (90 % quantile of ``|r|/σ`` over z at 90 %)."""
    from alem.metrics import fit_sigma_scale

    z = np.abs(y - mean) / sigma
    n = len(z)
    level = min(1.0, np.ceil(0.9 * (n + 1)) / n)
    return {"coverage_fit": fit_sigma_scale(y, mean, sigma),
            "conformal_90": float(np.quantile(z, level, method="higher") / stats.norm.ppf(0.95))}


def platt(train_mean: np.ndarray, train_sigma: np.ndarray, train_y: np.ndarray) -> LogisticRegression:
    """Logistic map of the stack's z-score ``(0.65 − μ)/σ`` to P(good), fitted on out-of-fold predictions."""
    z = ((GOOD_CONDUCTOR_THRESHOLD_EV - train_mean) / train_sigma)[:, None]
    return LogisticRegression(C=1e4).fit(z, train_y < GOOD_CONDUCTOR_THRESHOLD_EV)


def platt_prob(model: LogisticRegression, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return model.predict_proba(((GOOD_CONDUCTOR_THRESHOLD_EV - mean) / sigma)[:, None])[:, 1]


def _pairs(data, rows: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs (i in rows, j in columns) of distinct hops of the same compound."""
    same = (data.groups[rows][:, None] == data.groups[columns][None, :]) & (rows[:, None] != columns[None, :])
    i, j = np.nonzero(same)
    return rows[i], columns[j]


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    return round(float(np.corrcoef(a, b)[0, 1]), 3) if len(a) > 2 else None


def intraclass_correlation(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA ICC(1) of ``values`` grouped by ``groups`` (unequal group sizes)."""
    names = np.unique(groups)
    parts = [values[groups == g] for g in names]
    k, n = len(parts), len(values)
    grand = values.mean()
    between = sum(len(p) * (p.mean() - grand) ** 2 for p in parts) / (k - 1)
    within = sum(((p - p.mean()) ** 2).sum() for p in parts) / (n - k)
    n0 = (n - sum(len(p) ** 2 for p in parts) / n) / (k - 1)
    return float((between - within) / (between + (n0 - 1) * within))


def diagnosis(data, sfolds: np.ndarray, base_mean: np.ndarray) -> dict:
    """Residual correlations of sisters against random pairs, by hop similarity; the Gaussian bound
    on what the sisters' residuals can explain; an oracle per-compound offset (it reads test labels)."""
    y, groups = data.y, data.groups
    grouped_residual = y - data.grouped_mean
    sister_residual = y - base_mean
    multi = np.flatnonzero(sfolds >= 0)
    length = data.inputs.descriptors[:, HOP_LENGTH]
    coordination = np.round(data.inputs.descriptors[:, SITE_COORDINATION])
    i, j = _pairs(data, multi, multi)
    rng = np.random.default_rng(0)
    ri, rj = rng.choice(multi, 20000), rng.choice(multi, 20000)
    keep = groups[ri] != groups[rj]
    ri, rj = ri[keep], rj[keep]
    dlength = np.abs(length[i] - length[j])
    distance = np.sqrt(((data.x[i] - data.x[j]) ** 2).mean(1))
    quartiles = np.quantile(distance, [0.25, 0.5, 0.75])
    same_site = coordination[i] == coordination[j]
    bins = {
        "|dL| < 0.1 A": dlength < 0.1, "0.1 <= |dL| < 0.3 A": (dlength >= 0.1) & (dlength < 0.3),
        "0.3 <= |dL| < 0.6 A": (dlength >= 0.3) & (dlength < 0.6), "|dL| >= 0.6 A": dlength >= 0.6,
        "same site anion coordination": same_site, "different site anion coordination": ~same_site,
        "|dL| < 0.1 A and same site coordination": (dlength < 0.1) & same_site,
        "descriptor distance, lowest quarter": distance < quartiles[0],
        "descriptor distance, highest quarter": distance >= quartiles[2],
    }
    by_similarity = {name: {"n_pairs": int(m.sum()), "residual_corr": _corr(grouped_residual[i][m], grouped_residual[j][m]),
                            "label_corr": _corr(y[i][m], y[j][m]),
                            "mean_abs_residual_difference_ev": round(float(np.abs(grouped_residual[i] - grouped_residual[j])[m].mean()), 3)}
                     for name, m in bins.items()}
    # sister-aware: a held-out hop's residual against its training sisters' stored residuals
    ti, tj = [], []
    for f in range(int(sfolds.max()) + 1):
        a, b = _pairs(data, np.flatnonzero(sfolds == f), np.flatnonzero(sfolds != f))
        ti.append(a)
        tj.append(b)
    ti, tj = np.concatenate(ti), np.concatenate(tj)
    near = np.abs(length[ti] - length[tj]) < 0.1
    icc = intraclass_correlation(grouped_residual[multi], groups[multi])
    n_train_sisters = np.array([(ti == k).sum() for k in multi])
    explained = n_train_sisters * icc**2 / (1 + (n_train_sisters - 1) * icc)
    offsets = {g: sister_residual[multi][groups[multi] == g].mean() for g in np.unique(groups[multi])}
    oracle = np.abs(sister_residual[multi] - np.array([offsets[g] for g in groups[multi]])).mean()
    return {
        "n_sister_pairs_ordered": int(len(i)), "n_random_pairs": int(len(ri)),
        "grouped_residual_corr_sisters": _corr(grouped_residual[i], grouped_residual[j]),
        "grouped_residual_corr_random": _corr(grouped_residual[ri], grouped_residual[rj]),
        "label_corr_sisters": _corr(y[i], y[j]), "label_corr_random": _corr(y[ri], y[rj]),
        "icc_grouped_residual": round(icc, 3),
        "icc_sister_aware_residual": round(intraclass_correlation(sister_residual[multi], groups[multi]), 3),
        "icc_label": round(intraclass_correlation(y[multi], groups[multi]), 3),
        "sister_aware_residual_vs_training_sister_residual_corr": _corr(sister_residual[ti], grouped_residual[tj]),
        "same_within_0.1_A": _corr(sister_residual[ti][near], grouped_residual[tj][near]),
        "same_beyond_0.1_A": _corr(sister_residual[ti][~near], grouped_residual[tj][~near]),
        "by_similarity": by_similarity,
        "mean_training_sisters_per_held_out_hop": round(float(n_train_sisters.mean()), 2),
        "gaussian_bound_mae_factor": round(float(np.sqrt(1 - np.clip(explained, 0, 1)).mean()), 3),
        "oracle_compound_offset_mae_ev": round(float(oracle), 3),
    }
