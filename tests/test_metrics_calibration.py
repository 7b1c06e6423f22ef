"""`alem.metrics` against hand-computed numbers; σ calibration: the fitted scale restores coverage,
the ensemble's mixture σ, and the scale a real CV fitted is the one `predict` applies."""

import json
import math
import shutil

import numpy as np
import pytest
from scipy import stats

from alem.ensemble import Ensemble, combine_members
from alem.inference.stacking import combine_components
from alem.metrics import barrier_metrics, fit_sigma_scale, interval_coverage

# four hops, numbers exact in binary floating point (no accidental ties or near-ties)
Y_EV = [0.25, 0.5, 0.75, 1.0]
MEAN_EV = [0.5, 1.0, 0.5, 0.5]  # errors +0.25, +0.5, -0.25, -0.5
SIGMA_EV = [0.25, 0.25, 0.5, 0.125]  # |error| / σ = 1, 2, 0.5, 4


def test_barrier_metrics_match_hand_computed_values():
    m = barrier_metrics(Y_EV, MEAN_EV, SIGMA_EV)
    assert m["n"] == 4
    assert m["mae_ev"] == pytest.approx(1.5 / 4)
    assert m["rmse_ev"] == pytest.approx(math.sqrt(0.625 / 4))
    # SS_res = 0.625, SS_tot = 2 × (0.375² + 0.125²) = 0.3125
    assert m["r2"] == pytest.approx(1 - 0.625 / 0.3125)
    # good = E_m < 0.65 eV. True good: hops 1, 2. Predicted good: 1, 3, 4. One true positive.
    assert m["precision_065"] == pytest.approx(1 / 3)
    assert m["recall_065"] == pytest.approx(1 / 2)
    assert m["accuracy_065"] == pytest.approx(1 / 4)
    # ranks of σ: 2.5 2.5 4 1; ranks of |error|: 1.5 3.5 1.5 3.5 -> ρ = -3 / sqrt(4.5 × 4)
    assert m["spearman_sigma_abs_err"] == pytest.approx(-3 / math.sqrt(18))
    # z = 1, 2, 0.5, 4 against z_68 = 0.994, z_90 = 1.645, z_95 = 1.960
    assert (m["coverage_68"], m["coverage_90"], m["coverage_95"]) == (0.25, 0.5, 0.5)
    nll = sum(0.5 * math.log(2 * math.pi * s**2) + 0.5 * z**2 for s, z in zip(SIGMA_EV, (1, 2, 0.5, 4))) / 4
    assert m["nll"] == pytest.approx(nll)
    assert m["mean_sigma_ev"] == pytest.approx(0.28125)


def test_undefined_metrics_are_nan_not_made_up():
    m = barrier_metrics([1.0, 1.0], [0.9, 0.9], [0.1, 0.1])  # no spread, nothing good, two hops
    assert math.isnan(m["r2"]) and math.isnan(m["precision_065"]) and math.isnan(m["recall_065"])
    assert math.isnan(m["spearman_sigma_abs_err"])


@pytest.mark.parametrize("true_over_reported", [2.0, 0.5])
def test_fitted_sigma_scale_restores_coverage(true_over_reported):
    """Errors drawn with a σ ``true_over_reported`` times the reported one: the intervals are too
    narrow (or too wide); the fitted factor brings every central interval back to its level."""
    rng = np.random.default_rng(0)
    n = 4000
    sigma = rng.uniform(0.1, 0.5, n)
    mean = rng.uniform(0.0, 1.5, n)
    y = mean + rng.normal(0.0, true_over_reported * sigma)
    assert abs(interval_coverage(y, mean, sigma, 0.68) - 0.68) > 0.25  # miscalibrated as made
    scale = fit_sigma_scale(y, mean, sigma)
    assert scale == pytest.approx(true_over_reported, rel=0.05)
    for level in (0.5, 0.68, 0.9, 0.95):
        assert interval_coverage(y, mean, scale * sigma, level) == pytest.approx(level, abs=0.02)


def test_combine_members_is_the_laplace_mixture_mean_and_sigma():
    location = np.array([[0.2, -0.1], [0.4, -0.3]])  # 2 members x 2 hops
    scale = np.array([[0.1, 0.2], [0.3, 0.2]])
    mean, sigma = combine_members(location, scale, sigma_scale=2.0)
    # hop 1: mean 0.3; variance = mean(2 b²) + var(location) = 0.1 + 0.01
    # hop 2: mean -0.2 clipped to 0 (no negative barriers); variance = 0.08 + 0.01
    assert mean == pytest.approx([0.3, 0.0])
    assert sigma == pytest.approx([2.0 * math.sqrt(0.11), 2.0 * 0.3])


def test_cv_fits_the_scale_in_the_card_and_predict_applies_it(scratch_ensemble, tmp_path):
    from alem.hops import load_training_hops

    card = json.loads((scratch_ensemble / "model_card.json").read_text())
    oof = np.load(scratch_ensemble / "oof_predictions.npz")
    # the shipped combination: GNN members mixed with the trees by the card's stacking weights
    gnn_mean, gnn_sigma = combine_members(oof["location"], oof["scale"], 1.0)
    np.testing.assert_allclose(oof["component_mean"][0], gnn_mean)
    weights = np.asarray(card["stack"]["weights"])
    mean, raw_sigma = combine_components(oof["component_mean"], oof["component_sigma"], weights)
    fitted = fit_sigma_scale(oof["y"], mean, raw_sigma)
    assert card["calibration"]["sigma_scale"] == pytest.approx(fitted)
    # the reported CV numbers are those of the stored (cross-fitted) out-of-fold predictions
    assert card["cv_metrics"]["coverage_68"] == pytest.approx(interval_coverage(oof["y"], oof["mean"], oof["sigma"], 0.68))
    assert card["cv_metrics"]["mae_ev"] == pytest.approx(np.mean(np.abs(oof["mean"] - oof["y"])))

    hops = [h for h in load_training_hops() if h.n_sites <= 60][30:34]
    ensemble = Ensemble.load(scratch_ensemble)
    assert ensemble.sigma_scale == pytest.approx(fitted)
    prediction = ensemble.predict(hops)
    _, unscaled = combine_components(prediction.component_ev, prediction.component_sigma_ev, weights)
    assert prediction.std_ev == pytest.approx(fitted * unscaled)
    assert prediction.prob_good == pytest.approx(stats.norm.cdf((0.65 - prediction.mean_ev) / prediction.std_ev))

    # the same weights with another scale in the card: same means, σ in proportion
    other = tmp_path / "rescaled"
    shutil.copytree(scratch_ensemble, other)
    card["calibration"]["sigma_scale"] = 3.0 * fitted
    (other / "model_card.json").write_text(json.dumps(card))
    rescaled = Ensemble.load(other).predict(hops)
    assert rescaled.mean_ev == pytest.approx(prediction.mean_ev)
    assert rescaled.std_ev == pytest.approx(3.0 * prediction.std_ev)
