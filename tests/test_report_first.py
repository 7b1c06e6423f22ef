"""The first report after a new model version, at screening scale: its cross-validation parity
plot reads the model's out-of-fold predictions with numpy alone (alem/out_of_fold.py), so it loads
no training code, torch or scikit-learn, and plots the numbers the training code reads from the
file; the hosts plot of thousands of hosts (redrawn after every new version) ranks them with each
one's ±σ bar."""

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


def test_a_screening_campaigns_hosts_plot_ranks_every_host_with_its_sigma_bar(monkeypatch):
    """Beyond HOSTS_NAMED_ON_PLOT hosts the plot ranks them by barrier: each predicted host a
    marker at its mean and a bar of ±σ (drawn as one line collection), each computed host a
    filled marker at its barrier; a host without a barrier is left out."""
    import alem.report as report

    rng = np.random.default_rng(7)
    n = report.HOSTS_NAMED_ON_PLOT + 25
    mean, std = rng.uniform(0.1, 1.5, n), rng.uniform(0.01, 0.3, n)
    hosts = [
        {"host_id": k, "formula": f"Li{k}O", "good_barrier_ev": 0.65, "hops_predicted": k % 3 != 0,
         "percolation_barrier_ev": float(mean[k]),
         "spread": {"mean_ev": float(mean[k]), "std_ev": float(std[k])} if k % 3 else None}
        for k in range(n)
    ]
    hosts.append({"host_id": n, "formula": "LiX", "good_barrier_ev": 0.65, "hops_predicted": True,
                  "percolation_barrier_ev": None, "spread": None})
    drawn = []
    monkeypatch.setattr(report, "_png", lambda fig: drawn.append(fig) or "png")
    assert report.hosts_png(hosts) == "png"
    (ax,) = drawn[0].axes
    rank_of = {k: rank for rank, k in enumerate(np.argsort(mean, kind="stable"))}
    predicted = [k for k in range(n) if k % 3]
    (bars,) = [c for c in ax.collections if len(c.get_segments()) == len(predicted)]
    expected = sorted((rank_of[k], mean[k] - std[k], mean[k] + std[k]) for k in predicted)
    got = sorted((s[0, 0], s[0, 1], s[1, 1]) for s in bars.get_segments())
    np.testing.assert_allclose(got, expected)
    markers = {line.get_markerfacecolor(): line for line in ax.lines if len(line.get_xdata()) > 1}
    computed = sorted((rank_of[k], mean[k]) for k in range(n) if k % 3 == 0)
    np.testing.assert_allclose(sorted(zip(markers["tab:blue"].get_xdata(), markers["tab:blue"].get_ydata())), computed)
    assert len(markers["white"].get_xdata()) == len(predicted)
