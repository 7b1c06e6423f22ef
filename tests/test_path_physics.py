"""Hop descriptors v2: bond-valence and electrostatic profiles along a relaxed path."""

import numpy as np
import pytest

from alem.graphs.descriptors import DESCRIPTOR_SETS, hop_descriptors
from alem.graphs.path_physics import PATH_PHYSICS_NAMES, bv_r0_a
from alem.hops.hop import Hop
from tests._factories import make_li2o_vacancy_hop


def _named(hop: Hop) -> dict[str, float]:
    return dict(zip(DESCRIPTOR_SETS["v2"], hop_descriptors(hop, "v2")))


def test_v2_extends_v1_unchanged():
    hop = make_li2o_vacancy_hop()
    v1, v2 = hop_descriptors(hop, "v1"), hop_descriptors(hop, "v2")
    assert len(v2) == len(DESCRIPTOR_SETS["v2"]) == len(v1) + len(PATH_PHYSICS_NAMES)
    np.testing.assert_array_equal(v2[: len(v1)], v1)
    assert np.isfinite(v2).all()
    with pytest.raises(ValueError, match="unknown descriptor set 'v9'"):
        hop_descriptors(hop, "v9")


def test_li2o_site_is_bonded_like_lithium():
    # Li+ in Li2O sits in an O4 tetrahedron: its bond-valence sum is close to its valence (1).
    d = _named(make_li2o_vacancy_hop())
    # O'Keeffe & Brese's element-parameter estimate; the fitted Li-O pair value is 1.466 Å
    assert bv_r0_a("Li", "O") == pytest.approx(1.497, abs=0.005)
    assert 0.8 < d["bvs_site_over_valence"] < 1.2
    assert d["bv_mismatch_site"] < 0.05
    # the relaxed path never does worse than the straight one at its worst point
    assert d["bv_mismatch_rise_relaxed"] <= d["bv_mismatch_rise_straight"] + 1e-6
    # sideways freedom can only widen the bottleneck, and the hop costs electrostatic energy
    assert d["relaxed_bottleneck_a"] >= d["min_host_distance_a"] - 1e-6
    assert d["electrostatic_rise_straight_ev"] > 0


def test_reversed_hop_has_the_same_descriptors():
    hop = make_li2o_vacancy_hop()
    reverse = Hop(hop_id="rev", initial=hop.final, final=hop.initial, working_ion=hop.working_ion)
    np.testing.assert_allclose(hop_descriptors(hop, "v2"), hop_descriptors(reverse, "v2"), rtol=1e-4, atol=1e-5)
