"""Stacking of the GNN ensemble with descriptor trees: weights, mixture σ, saved trees."""

import json

import joblib
import numpy as np
import pytest
import sklearn.base
import torch

from alem.inference.kernel_model import BackboneSVR
from alem.inference.stacking import SIGMA_FLOOR_EV, combine_components, cross_fitted_weights, fit_stack_weights
from alem.inference.trees import ComponentInputs, TreeSpec, load_trees, predict_trees
from alem.training.finetune import FinetuneConfig, check_stack_fits_config
from alem.training.trees import BACKBONE_SVR, DEFAULT_TREE_SPECS, default_tree_specs, fit_trees, out_of_fold_trees


def test_weights_recover_a_known_mixture():
    rng = np.random.default_rng(0)
    a, b, c = rng.uniform(0, 2, (3, 200))
    y = 0.3 * a + 0.7 * b  # c is noise the weights must ignore
    w = fit_stack_weights(np.stack([a, b, c], 1), y)
    np.testing.assert_allclose(w, [0.3, 0.7, 0.0], atol=1e-6)


def test_weights_are_a_convex_combination_that_prefers_the_better_model():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 2, 300)
    good, bad = y + rng.laplace(0, 0.05, 300), y + rng.laplace(0, 0.5, 300)
    w = fit_stack_weights(np.stack([good, bad], 1), y)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
    assert w[0] > 0.8


def test_mixture_mean_and_sigma_by_hand():
    means = np.array([[1.0, 0.2], [3.0, 0.2]])
    # two point models 2 eV apart, equal weights: mean 2, σ = half the gap
    mean, sigma = combine_components(means, np.zeros_like(means), np.array([0.5, 0.5]))
    np.testing.assert_allclose(mean, [2.0, 0.2])
    np.testing.assert_allclose(sigma, [1.0, SIGMA_FLOOR_EV])
    # each component with σ 1: variances add to the disagreement; the calibration factor multiplies
    mean, sigma = combine_components(means, np.ones_like(means), np.array([0.5, 0.5]), sigma_scale=2.0)
    np.testing.assert_allclose(sigma, [2 * np.sqrt(2.0), 2.0])
    # negative means are clipped: barriers are not negative
    assert combine_components(np.array([[-0.5]]), np.zeros((1, 1)), np.array([1.0]))[0][0] == 0.0


def test_cross_fitted_weights_never_see_their_own_fold():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 2, 100)
    predictions = np.stack([y + rng.normal(0, 0.1, 100), y + rng.normal(0, 0.3, 100)], 1)
    folds = np.repeat(np.arange(4), 25)
    before = cross_fitted_weights(predictions, y, folds)
    changed = y.copy()
    changed[folds == 0] += 5.0  # relabel fold 0: only the other folds' weights may move
    after = cross_fitted_weights(predictions, changed, folds)
    np.testing.assert_allclose(after[0], before[0])
    assert not np.allclose(after[1], before[1])


def test_log_target_forest_gives_geometric_means_and_a_spread():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (120, 3)).astype(np.float32)
    y = np.exp(2 * x[:, 0] - 1)
    specs = [TreeSpec("et", "extra_trees", {"n_estimators": 50}, log_target=True),
             TreeSpec("gb", "gradient_boosting", {"n_estimators": 50}, log_target=True)]
    models = fit_trees(specs, x[:100], y[:100])
    means, sigmas = predict_trees(specs, models, x[100:])
    assert means.shape == sigmas.shape == (2, 20)
    assert (means > 0).all()  # exp of a log prediction
    assert np.abs(means[0] - y[100:]).mean() < 0.15
    assert (sigmas[0] > 0).all() and (sigmas[1] == 0).all()
    with pytest.raises(ValueError, match="unknown component kind 'oak'"):
        TreeSpec("x", "oak")
    with pytest.raises(ValueError, match="only the svr kind reads backbone features"):
        TreeSpec("x", "extra_trees", inputs="descriptors+backbone")


def test_backbone_svr_reads_descriptors_and_principal_components_of_the_backbone():
    rng = np.random.default_rng(1)
    descriptors = rng.uniform(0, 1, (150, 3))
    hidden_site = rng.normal(size=(150, 1))
    # the barrier depends on a direction spread over 40 backbone columns, not on one column
    backbone = hidden_site @ rng.normal(size=(1, 40)) + 0.05 * rng.normal(size=(150, 40))
    y = np.exp(0.5 * descriptors[:, 0] + 0.6 * hidden_site[:, 0])
    inputs = ComponentInputs(descriptors, backbone)
    folds = np.arange(150) % 3
    with_backbone, _ = out_of_fold_trees([BACKBONE_SVR], inputs, y, folds)
    without = TreeSpec("svr", "svr", {"n_components": 4}, log_target=True)
    descriptors_only, sigma = out_of_fold_trees([without], inputs, y, folds)
    assert np.abs(with_backbone[0] - y).mean() < 0.6 * np.abs(descriptors_only[0] - y).mean()
    assert (sigma == 0).all()  # a point model
    model = fit_trees([BACKBONE_SVR], inputs, y)[0]
    assert isinstance(model, BackboneSVR) and model.n_backbone_columns == 40 and model.pca_.n_components_ == 8
    np.testing.assert_array_equal(fit_trees([BACKBONE_SVR], inputs, y)[0].predict(np.hstack([descriptors, backbone])),
                                  model.predict(np.hstack([descriptors, backbone])))  # deterministic
    few = fit_trees([BACKBONE_SVR], inputs.subset(np.arange(5)), y[:5])[0]  # 5 hops: 5 components, not 8
    assert few.pca_.n_components_ == 5 and np.isfinite(few.predict(np.hstack([descriptors, backbone]))).all()
    with pytest.raises(ValueError, match="reads backbone features, and none were computed"):
        fit_trees([BACKBONE_SVR], descriptors, y)


def test_backbone_components_need_the_frozen_pretrained_backbone():
    check_stack_fits_config(DEFAULT_TREE_SPECS, FinetuneConfig(freeze="frozen"))
    # the recipe's default for other strategies stacks descriptor trees only, and is accepted
    assert default_tree_specs("frozen") == DEFAULT_TREE_SPECS
    for freeze in ("none", "partial", "scratch"):
        assert not any(spec.reads_backbone for spec in default_tree_specs(freeze))
        check_stack_fits_config(default_tree_specs(freeze), FinetuneConfig(freeze=freeze))
    for freeze in ("none", "partial", "scratch"):
        with pytest.raises(ValueError, match=f"need freeze='frozen', not '{freeze}'"):
            check_stack_fits_config(DEFAULT_TREE_SPECS, FinetuneConfig(freeze=freeze))


def test_trees_pickled_by_another_sklearn_are_refused(tmp_path, monkeypatch):
    models = fit_trees(DEFAULT_TREE_SPECS[:1], np.random.default_rng(0).uniform(size=(30, 4)), np.linspace(0.1, 1, 30))
    monkeypatch.setattr(sklearn.base, "__version__", "0.0.1")
    joblib.dump(models, tmp_path / "trees.joblib")
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match=r"trees.joblib: tree models pickled by scikit-learn 0.0.1"):
        load_trees(tmp_path / "trees.joblib")


@pytest.mark.slow
def test_stacked_ensemble_trains_saves_and_predicts_with_its_weights(tmp_path):
    from alem.ensemble import Ensemble
    from alem.hops import load_training_hops
    from alem.inference.stacking import combine_members
    from alem.model_dir import Calibration, Combination, EnsembleRecipe, default_pretrained_path
    from alem.out_of_fold import OOF_FILENAME
    from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet, train_ensemble
    from alem.training.recipe import calibrated_ensemble

    hops = load_training_hops()[:48]
    card = calibrated_ensemble(hops, tmp_path / "ens", EnsembleRecipe(n_members=2, finetune=FinetuneConfig(epochs=3), cv_folds=3),
                               progress=False)
    stack = card["stack"]
    assert stack["components"] == ["gnn", "extra_trees", "svr_backbone"]
    assert sum(stack["weights"]) == pytest.approx(1.0) and min(stack["weights"]) >= 0
    assert card["cv_metrics"]["n"] == 48 and set(card["cv_metrics_components"]) == {"extra_trees", "svr_backbone"}
    oof = np.load(tmp_path / "ens" / OOF_FILENAME)
    assert np.isfinite(oof["mean"]).all() and (oof["sigma"] > 0).all()
    assert card["cv_metrics"]["mae_ev"] == pytest.approx(np.abs(oof["mean"] - oof["y"]).mean())
    # alem train's recipe adds the fidelity-aware part from the shipped MACE-MP pairs of these hops
    assert card["fidelity_aware"]["cheap_fidelity"] == "mlip:MACE-MP" and card["fidelity_aware"]["n_paired_hops"] == 48
    assert (tmp_path / "ens" / "fidelity_trees.joblib").is_file() and (tmp_path / "ens" / "reference_predictions_fidelity.json").is_file()

    ensemble = Ensemble.load(tmp_path / "ens")
    prediction = ensemble.predict(hops[:6])
    # the kernel model reads, at prediction, the backbone features it was fitted on in training
    config = FinetuneConfig(epochs=3)
    training_set = TrainingSet.prepare(hops[:6], Pretrained.load(default_pretrained_path()), config, torch.device("cpu"))
    trained_on = training_set.component_inputs(hops[:6], DEFAULT_TREE_SPECS, torch.device("cpu"))
    predicted_from = ensemble.hop_inputs(hops[:6], device="cpu").component_inputs(reads_backbone=True)
    assert trained_on.backbone.shape == (6, 4 * ensemble.members[0].path_marker.numel())
    np.testing.assert_allclose(predicted_from.backbone, trained_on.backbone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predicted_from.descriptors, trained_on.descriptors)
    gnn_mean, _ = combine_members(prediction.member_ev, prediction.member_scale_ev, 1.0)
    np.testing.assert_allclose(prediction.component_ev[0], gnn_mean)
    expected = np.clip(np.asarray(stack["weights"]) @ prediction.component_ev, 0, None)
    np.testing.assert_allclose(prediction.mean_ev, expected, rtol=1e-6)

    # retraining (as the loop does) refits the trees and keeps the parent's weights
    inherited = Combination(stack=stack, calibration=Calibration(sigma_scale=card["calibration"]["sigma_scale"]))
    retrained = train_ensemble(hops, tmp_path / "v2", EnsembleRecipe(n_members=1, finetune=FinetuneConfig(epochs=2)), inherited,
                               progress=False)
    assert (retrained / "trees.joblib").is_file()
    assert json.loads((retrained / "model_card.json").read_text())["stack"]["weights"] == stack["weights"]
