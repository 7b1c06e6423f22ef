"""The hop-feature cache (alem.inference.feature_cache) with the shipped ensemble and a real SQLite
file: a hit is bit-identical to computing, it survives a restart, a second model version with the
same frozen backbone reuses every row, and another featurisation or backbone misses."""

import numpy as np
import pytest
import torch

from alem.ensemble import Ensemble
from alem.hops import load_training_hops
from alem.inference import feature_cache
from alem.inference.feature_cache import FeatureCache

FIELDS = ("mean_ev", "std_ev", "member_ev", "member_scale_ev", "prob_good", "component_ev", "component_sigma_ev")


@pytest.fixture(scope="module")
def hops():
    small = sorted(load_training_hops(), key=lambda h: len(h.initial))[:6]
    return [*small, small[2]]  # one hop listed twice: one row, read for both


def _identical(a, b) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in FIELDS)


def _retrained(ensemble: Ensemble) -> Ensemble:
    """A second model version: the same frozen backbone, other GNN heads (as a retraining makes them)."""
    other = Ensemble.load(ensemble.path)
    with torch.no_grad():
        for member in other.members:
            member.head.net[-1].bias.add_(0.05)
    return other


def test_a_hit_is_bit_identical_and_survives_a_restart(hops, tmp_path):
    ensemble = Ensemble.load()
    computed = ensemble.predict(hops)
    path = tmp_path / "state" / "feature_cache.sqlite"
    with FeatureCache(path) as cache:
        cold = ensemble.predict(hops, cache=cache)
        assert (cache.hits, cache.misses, len(cache)) == (1, 6, 6)  # the repeated hop is computed once
    assert _identical(cold, computed)
    with FeatureCache(path) as cache:  # a new process would open the same file
        inputs = ensemble.hop_inputs(hops, cache=cache)
        warm = ensemble._predict(inputs)
        assert (cache.hits, cache.misses) == (7, 0)
        assert "graphs" not in inputs.__dict__  # no graph was built for a cached hop
    assert _identical(warm, computed)


def test_a_new_model_version_with_the_same_backbone_reuses_every_row(hops, tmp_path):
    first = Ensemble.load()
    second = _retrained(first)
    with FeatureCache(tmp_path / "cache.sqlite") as cache:
        first.predict(hops, cache=cache)
        rescored = second.predict(hops, cache=cache)
        assert cache.misses == 6 and cache.hits == 1 + 7  # the second version computed nothing
    assert _identical(rescored, second.predict(hops))
    assert not np.array_equal(rescored.member_ev, first.predict(hops).member_ev)  # its own heads were run


def test_another_featurisation_or_backbone_misses(hops, tmp_path, monkeypatch):
    ensemble = Ensemble.load()
    path = tmp_path / "cache.sqlite"
    with FeatureCache(path) as cache:
        ensemble.predict(hops, cache=cache)
    monkeypatch.setattr(feature_cache, "FEATURISATION_VERSION", feature_cache.FEATURISATION_VERSION + 1)
    with FeatureCache(path) as cache:
        recomputed = ensemble.predict(hops, cache=cache)
        assert (cache.hits, cache.misses, len(cache)) == (1, 6, 12)
    assert _identical(recomputed, ensemble.predict(hops))
    other_backbone = Ensemble.load()
    with torch.no_grad():
        for member in other_backbone.members:
            next(member.backbone.parameters()).mul_(1.01)
    with FeatureCache(path) as cache:
        other = other_backbone.predict(hops, cache=cache)
        assert (cache.hits, cache.misses) == (1, 6)
    assert _identical(other, other_backbone.predict(hops))


def test_featurised_in_chunks_each_written_when_done(hops, tmp_path, monkeypatch):
    from alem.inference import components

    ensemble = Ensemble.load()
    computed = ensemble.predict(hops)
    monkeypatch.setattr(components, "CACHE_CHUNK_HOPS", 4)
    written = []
    put = FeatureCache.put
    monkeypatch.setattr(FeatureCache, "put", lambda self, rows, *keys: (written.append(len(rows)), put(self, rows, *keys)))
    with FeatureCache(tmp_path / "cache.sqlite") as cache:
        chunked = ensemble.predict(hops, cache=cache)
        assert written == [4, 2] and len(cache) == 6
    for name in FIELDS:  # other batches of the backbone: equal to float32 rounding
        np.testing.assert_allclose(getattr(chunked, name), getattr(computed, name), rtol=1e-5, atol=1e-6)


def test_rows_written_by_an_older_alem_are_read_and_moved_to_the_raw_layout(hops, tmp_path):
    import io
    import sqlite3

    ensemble = Ensemble.load()
    computed = ensemble.predict(hops)
    path = tmp_path / "cache.sqlite"
    with FeatureCache(path) as cache:
        ensemble.predict(hops, cache=cache)
    # the file as alem wrote it before the raw layout: every row an .npz archive in hop_features
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT * FROM {feature_cache.TABLE}").fetchall()
        assert all(blob.startswith(feature_cache.ROW_FORMAT) for *_, blob in rows)
        npz_rows = []
        for *keys, blob in rows:
            buffer = io.BytesIO()
            np.savez(buffer, **feature_cache.HopFeatures.from_bytes(blob).__dict__)
            npz_rows.append((*keys, buffer.getvalue()))
        conn.execute(f"DELETE FROM {feature_cache.TABLE}")
        conn.executemany(f"INSERT INTO {feature_cache.NPZ_TABLE} VALUES (?, ?, ?, ?)", npz_rows)
    with FeatureCache(path) as cache:
        old = ensemble.predict(hops, cache=cache)
        assert (cache.hits, cache.misses, len(cache)) == (7, 0, 6)
    assert _identical(old, computed)
    with sqlite3.connect(path) as conn:  # moved: each row is opened the slow way once
        assert conn.execute(f"SELECT COUNT(*) FROM {feature_cache.NPZ_TABLE}").fetchone() == (0,)
        assert conn.execute(f"SELECT COUNT(*) FROM {feature_cache.TABLE}").fetchone() == (6,)


def test_a_row_reads_back_every_array_bit_for_bit():
    rng = np.random.default_rng(0)
    row = feature_cache.HopFeatures(
        src_h=rng.normal(size=(17, 3, 4)).astype(np.float32), dst_local=np.arange(17), path_dist=rng.random(17).astype(np.float32),
        path_z=np.full(5, 3), host_pooled=rng.normal(size=4).astype(np.float32), path_desc=rng.random(6).astype(np.float32),
        descriptors=rng.random(15).astype(np.float32), backbone_features=rng.normal(size=16),
    )
    back = feature_cache.HopFeatures.from_bytes(row.to_bytes())
    for name, array in row.__dict__.items():
        assert getattr(back, name).dtype == array.dtype and np.array_equal(getattr(back, name), array), name
    with pytest.raises(ValueError, match="not a hop-features row"):
        feature_cache.HopFeatures.from_bytes(b"PK\x03\x04")


def test_a_stored_hop_is_read_by_its_kept_key_and_a_changed_one_never_by_its_old_row(hops, tmp_path):
    """Hops read from a real store carry the content key kept with them: their features are read
    by it without building their structures (bit-identical to computing from the hops as given);
    a hop whose structures are replaced drops the key, so its features are those of its new
    content, never its old row's; a copy made with ``dataclasses.replace`` or by pickling keeps
    the same key or computes it again."""
    import dataclasses
    import pickle

    from alem.hops.content_key import hop_content_key
    from alem.store import Store

    ensemble = Ensemble.load()
    distinct = hops[:6]
    with Store.open(tmp_path / "alem.sqlite") as store:
        ids = store.add_hops(distinct)
        cold, warm = store.load_hops(ids), store.load_hops(ids)
    assert [hop_content_key(h) for h in warm] == [hop_content_key(dataclasses.replace(h)) for h in distinct]
    with FeatureCache(tmp_path / "cache.sqlite") as cache:
        assert _identical(ensemble.predict(cold, cache=cache), ensemble.predict(distinct))
        assert _identical(ensemble.predict(warm, cache=cache), ensemble.predict(distinct))
        assert (cache.hits, cache.misses) == (6, 6)
        assert not any("initial" in h.__dict__ or "final" in h.__dict__ for h in warm)  # read by key: no structure built
        first, other = warm[0], warm[1]
        copied = pickle.loads(pickle.dumps(first))
        assert copied.content_key == first.content_key and copied.initial == distinct[0].initial
        assert hop_content_key(dataclasses.replace(first, barrier_ev=0.5)) == first.content_key
        first.initial, first.final, first.working_ion = other.initial, other.final, other.working_ion  # another hop under its id
        assert first.content_key is None and hop_content_key(first) == hop_content_key(other) != hop_content_key(distinct[0])
        changed = ensemble.predict([first, other, warm[2]], cache=cache)
        assert (cache.hits, cache.misses) == (9, 6)  # the changed hop read from the other hop's row
    for name in ("mean_ev", "std_ev", "member_ev"):  # the same inputs (float32 sums of one batch may differ in the last bit)
        column = getattr(changed, name)[..., :2]
        np.testing.assert_allclose(column[..., 0], column[..., 1], rtol=1e-6, err_msg=name)
    assert abs(changed.mean_ev[0] - ensemble.predict(distinct).mean_ev[0]) > 1e-3  # not its old row's prediction
