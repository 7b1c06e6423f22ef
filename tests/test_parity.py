"""One parity plot (alem.parity) for alem evaluate, a model's CV parity and the campaign report."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from alem.hops.hop import GOOD_CONDUCTOR_THRESHOLD_EV as GOOD_EV
from alem.parity import draw_parity, parity_plot


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_axes_follow_the_barriers_not_a_huge_error_bar(ax):
    reference, predicted, sigma = np.array([0.2, 0.9, 1.5]), np.array([0.3, 0.8, 1.9]), np.array([0.1, 0.1, 25.0])
    draw_parity(ax, reference, predicted, sigma, title="t")
    assert ax.get_xlim() == ax.get_ylim() == pytest.approx((0.0, 1.9 * 1.08))
    vertical = [line for line in ax.get_lines() if list(line.get_xdata()) == [GOOD_EV, GOOD_EV]]
    horizontal = [line for line in ax.get_lines() if list(line.get_ydata()) == [GOOD_EV, GOOD_EV]]
    assert len(vertical) == len(horizontal) == 1


def test_small_barriers_still_show_the_good_conductor_line_and_no_points_show_the_message(ax):
    draw_parity(ax, np.array([0.1, 0.2]), np.array([0.15, 0.1]))
    assert ax.get_xlim()[1] == pytest.approx(1.08)  # at least 1 eV, so 0.65 eV is inside
    fig, empty = plt.subplots()
    draw_parity(empty, np.array([]), np.array([]), empty="no NEB results yet")
    assert [t.get_text() for t in empty.texts] == ["no NEB results yet"] and not empty.get_lines()
    plt.close(fig)


def test_parity_plot_writes_a_png_with_its_metrics(tmp_path):
    metrics = {"n": 3, "mae_ev": 0.1, "r2": 0.5, "coverage_68": 0.66}
    path = parity_plot(np.array([0.2, 0.5, 1.0]), np.array([0.3, 0.4, 1.1]), np.array([0.1, 0.1, 0.1]),
                       tmp_path / "sub" / "parity.png", metrics=metrics)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
