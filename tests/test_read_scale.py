"""Read commands at screening scale: the review page's literature index is kept in the campaign's
state directory and read back (building it read and described 559 hops, most of `alem review`'s
time), and rebuilt when the shipped data or the code that describes hops changes."""

from __future__ import annotations

import numpy as np

import alem.hops.io
from alem.review import neighbours
from alem.review.neighbours import INDEX_FILENAME, LiteratureIndex


def test_the_literature_index_is_kept_read_back_the_same_and_rebuilt_when_its_key_changes(tmp_path, monkeypatch):
    built = LiteratureIndex.shipped(keep_in=tmp_path)
    assert (tmp_path / INDEX_FILENAME).is_file()
    probe = alem.hops.io.load_training_hops()[:3]
    loads = []
    real_load = alem.hops.io.load_training_hops

    def counting_load(*args, **kwargs):
        loads.append(1)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(alem.hops.io, "load_training_hops", counting_load)
    kept = LiteratureIndex.shipped(keep_in=tmp_path)
    assert loads == []  # read back, not built
    np.testing.assert_array_equal(kept.features, built.features)
    np.testing.assert_array_equal(kept.own_nearest, built.own_nearest)
    for hop in probe:
        assert kept.nearest(hop, 5) == built.nearest(hop, 5)
        assert kept.typicality(0.5) == built.typicality(0.5)
    monkeypatch.setattr(neighbours, "_shipped_key", lambda: "another dataset or descriptor code")
    rebuilt = LiteratureIndex.shipped(keep_in=tmp_path)
    assert loads == [1]  # the key changed: built again (and kept under the new key)
    assert rebuilt.nearest(probe[0], 5) == built.nearest(probe[0], 5)
    LiteratureIndex.shipped(keep_in=tmp_path)
    assert loads == [1]
