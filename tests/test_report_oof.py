"""The report's cross-validation parity plot reads a model's out-of-fold predictions with numpy
alone (alem/out_of_fold.py): the first report after a new model version loads no training code,
torch or scikit-learn, and plots the same numbers the training code reads from the file."""

from __future__ import annotations

import shutil

import numpy as np

from alem.campaign import init_campaign
from alem.model_dir import default_ensemble_path
from alem.out_of_fold import OOF_FILENAME
from alem.report import out_of_fold
from alem.store import Store
from tests._factories import HEAVY_MODULES, modules_loaded_by


def _versions(campaign_dir, *model_dirs):
    """A campaign whose model versions are ``model_dirs``, the last current."""
    config = init_campaign(campaign_dir)
    with Store.open(config.store_path) as store:
        for model_dir in model_dirs:
            store.add_model_version(model_dir, {})
    return config


def test_the_parity_plot_shows_the_numbers_the_training_code_reads(tmp_path):
    from alem.training.recipe import oof_mean_sigma

    shipped = default_ensemble_path()
    # a file written before the stack: the members only, their mixture's mean is plotted
    members_only = tmp_path / "members-only"
    shutil.copytree(shipped, members_only)
    with np.load(shipped / OOF_FILENAME) as raw:
        arrays = {key: raw[key] for key in raw.files}
    np.savez_compressed(members_only / OOF_FILENAME, **{k: v for k, v in arrays.items() if k not in ("mean", "sigma")})

    with Store.open(_versions(tmp_path / "a", members_only, shipped).store_path) as store:
        version, y, mean = out_of_fold(store)
        assert version == 2
        np.testing.assert_array_equal(y, arrays["y"])
        np.testing.assert_array_equal(mean, arrays["mean"])  # the stacked mean, bit for bit
        trained_y, trained_mean, _ = oof_mean_sigma(shipped)
        np.testing.assert_array_equal(mean, trained_mean)
        assert not np.array_equal(mean, np.clip(arrays["location"].mean(0), 0.0, None))  # not the members' mean
    with Store.open(_versions(tmp_path / "b", shipped, members_only).store_path) as store:
        version, y, mean = out_of_fold(store)
    assert version == 2
    np.testing.assert_array_equal(mean, np.clip(arrays["location"].mean(0), 0.0, None))
    np.testing.assert_array_equal(mean, oof_mean_sigma(members_only)[1])
    np.testing.assert_array_equal(y, trained_y)


def test_the_first_report_after_a_new_model_version_loads_no_training_code(tmp_path):
    config = _versions(tmp_path / "c", default_ensemble_path())
    figures = config.state_dir / "report_figures"
    assert not figures.exists()  # nothing kept: the report draws the cross-validation plot
    watch = (*HEAVY_MODULES, "alem.training", "sklearn", "lightgbm", "xgboost")
    assert modules_loaded_by(config.campaign_dir, "report", watch=watch) == {"exit": 0, "loaded": []}
    assert len(list(figures.glob("*.png.b64"))) == 4  # the CV plot, an empty parity plot, learning curve, history
