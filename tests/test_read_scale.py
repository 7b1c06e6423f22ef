"""Read commands at screening scale: the review page's literature index is shipped built in the
package (and kept in the campaign's state directory when the shipped one is stale: building it read
and described 559 hops, most of `alem review`'s time), and a question about a few hosts reads
only their columns of the kept joint rows."""

from __future__ import annotations

import numpy as np
import pytest

import alem.hops.io
from alem import PACKAGE_DATA
from alem.acquisition import PredictionTable
from alem.campaign import kept_rows
from alem.review import neighbours
from alem.review.neighbours import INDEX_FILENAME, REBUILD_COMMAND, SHIPPED_INDEX, LiteratureIndex


@pytest.fixture
def counted_loads(monkeypatch) -> list[int]:
    """Each reading of the shipped training hops (what building the index does) appends a 1."""
    loads: list[int] = []
    real_load = alem.hops.io.load_training_hops

    def counting_load(*args, **kwargs):
        loads.append(1)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(alem.hops.io, "load_training_hops", counting_load)
    return loads


def test_the_literature_index_is_kept_read_back_the_same_and_rebuilt_when_its_key_changes(tmp_path, monkeypatch, counted_loads):
    monkeypatch.setattr(neighbours, "SHIPPED_INDEX", "no-such-index.npz")  # as when the shipped one is stale
    built = LiteratureIndex.shipped(keep_in=tmp_path)
    assert (tmp_path / INDEX_FILENAME).is_file() and counted_loads == [1]
    probe = alem.hops.io.load_training_hops()[:3]
    counted_loads.clear()
    kept = LiteratureIndex.shipped(keep_in=tmp_path)
    assert counted_loads == []  # read back, not built
    np.testing.assert_array_equal(kept.features, built.features)
    np.testing.assert_array_equal(kept.own_nearest, built.own_nearest)
    for hop in probe:
        assert kept.nearest(hop, 5) == built.nearest(hop, 5)
        assert kept.typicality(0.5) == built.typicality(0.5)
    shipped = LiteratureIndex._read(PACKAGE_DATA / "literature_index.npz", neighbours._shipped_key())
    if shipped is not None:  # (stale: the next test says so) the shipped index is the one built here
        np.testing.assert_array_equal(shipped.features, built.features)
        assert shipped.references == built.references
    monkeypatch.setattr(neighbours, "_shipped_key", lambda: "another dataset or descriptor code")
    rebuilt = LiteratureIndex.shipped(keep_in=tmp_path)
    assert counted_loads == [1]  # the key changed: built again (and kept under the new key)
    assert rebuilt.nearest(probe[0], 5) == built.nearest(probe[0], 5)
    LiteratureIndex.shipped(keep_in=tmp_path)
    assert counted_loads == [1]


def test_the_shipped_literature_index_is_current_and_read_by_a_first_review(tmp_path, counted_loads):
    # a change to the dataset or to the code that describes hops makes it stale: rebuild and commit it
    path = PACKAGE_DATA / SHIPPED_INDEX
    assert LiteratureIndex._read(path, neighbours._shipped_key()) is not None, f"{path} is stale; rebuild it: {REBUILD_COMMAND}"
    index = LiteratureIndex.shipped(keep_in=tmp_path / "state")
    assert counted_loads == [] and not (tmp_path / "state").exists()  # nothing built, nothing kept
    assert len(index.references) == len(index.features) > 500


def _table(n_rows: int, hop_ids: list[str]) -> PredictionTable:
    rng = np.random.default_rng(3)
    rows = rng.normal(0.5, 0.2, (n_rows, len(hop_ids)))
    return PredictionTable(tuple(hop_ids), rows, rows.mean(axis=0), rows.std(axis=0, ddof=1))


def test_a_few_columns_of_the_kept_rows_are_read_alone_and_a_torn_or_foreign_file_is_refused(tmp_path, monkeypatch):
    hop_ids = [f"hop-{k}" for k in range(300)]
    table = _table(64, hop_ids)
    path = tmp_path / "model-1.npz"
    kept_rows.write_rows(path, table, "digest", "labels")
    asked = ["hop-7", "hop-250", "hop-3"]
    members_read: list[str] = []
    real_getitem = np.lib.npyio.NpzFile.__getitem__

    def counting_getitem(self, key):
        members_read.append(key)
        return real_getitem(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", counting_getitem)
    few = kept_rows.read_rows(path, asked, "digest", covering=hop_ids)
    assert "rows_ev" not in members_read  # the rows array is mapped, only the asked columns read
    columns = [hop_ids.index(h) for h in asked]
    assert few.hop_ids == tuple(asked) and few.member_ev.flags.c_contiguous
    np.testing.assert_array_equal(few.member_ev, table.member_ev[:, columns])
    np.testing.assert_array_equal(few.std_ev, table.std_ev[columns])
    np.testing.assert_array_equal(few.calibrated_members(), table.calibrated_members()[:, columns])
    whole = kept_rows.read_rows(path, hop_ids, "digest", labels="labels")
    np.testing.assert_array_equal(whole.member_ev, table.member_ev)
    assert kept_rows.read_rows(path, asked, "digest", covering=[*hop_ids, "hop-new"]) is None  # a hop added since
    assert kept_rows.read_rows(path, asked, "another digest") is None
    assert kept_rows.read_rows(path, asked, "digest", labels="other labels") is None
    data = path.read_bytes()
    for cut in (len(data) - 10, len(data) // 2, 100):  # a torn file is recomputed, never trusted
        torn = tmp_path / f"torn-{cut}.npz"
        torn.write_bytes(data[:cut])
        assert kept_rows.read_rows(torn, asked, "digest") is None
    with np.load(path) as arrays:  # the same arrays written compressed: not mapped, so not read either
        np.savez_compressed(tmp_path / "compressed.npz", **{k: arrays[k] for k in arrays.files})
    assert kept_rows.read_rows(tmp_path / "compressed.npz", asked, "digest") is None


def test_a_few_hops_calibrated_rows_are_bit_for_bit_the_whole_tables_columns():
    # `alem show HOST_ID` calibrates its hops' columns alone, `alem hosts` all of them: the answers
    # must agree to the bit, though a reduction across a wide array rounds differently from a narrow one
    from alem.campaign.host_rows import HostRows

    hop_ids = [f"hop-{k}" for k in range(2000)]
    table = _table(64, hop_ids)
    whole = HostRows(table, "whole").calibrated_ev
    np.testing.assert_allclose(whole, table.calibrated_members(), rtol=0, atol=1e-12)
    for columns in ([5], [7, 1500, 3], list(range(0, 2000, 37))):
        few = PredictionTable(tuple(hop_ids[k] for k in columns), np.ascontiguousarray(table.member_ev[:, columns]),
                              table.mean_ev[columns], table.std_ev[columns])
        np.testing.assert_array_equal(HostRows(few, "few").calibrated_ev, whole[:, columns])
