"""A pool's joint posterior computed chunk by chunk (alem.ensemble.Ensemble.posterior_chunks) is
exactly, bit for bit, the whole pool's: draw-level choices come from the seed, per-hop noise from a
stream keyed by the hop (alem.inference.draw_randomness), so duplicates share their noise across
chunks, and the add-on and sister-corrected hops get the columns one call gives them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alem.acquisition import PredictionTable
from alem.hops import load_training_hops
from alem.hops.io import load_shipped_cheap_barriers
from alem.inference.draw_randomness import DrawRandomness, hop_noise_keys
from alem.inference.feature_cache import FeatureCache
from alem.inference.sister_correction import host_of

N_DRAWS = 64
SEED = 5


def _translated(hop, hop_id: str):
    """The same hop with the cell's origin moved: a symmetry-equivalent copy."""
    initial, final = hop.initial.copy(), hop.final.copy()
    for structure in (initial, final):
        structure.translate_sites(list(range(len(structure))), [0.25, 0.125, 0.5], frac_coords=True, to_unit_cell=True)
    return dataclasses.replace(hop, hop_id=hop_id, initial=initial, final=final)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """21 unlabelled hops: 18 new hops of known hosts (the shipped residual store corrects them),
    two with a MACE-MP barrier (the fidelity-aware add-on), one sister of a campaign label, and two
    copies of the first hop (the same hop again, far from it; a translated copy) so duplicates fall
    in different chunks."""
    from alem.ensemble import Ensemble

    literature = load_training_hops()
    small = [h for h in literature if h.n_sites <= 60][:19]
    hops = [dataclasses.replace(h, hop_id=f"pool-{k}", barrier_ev=None) for k, h in enumerate(small[:18])]
    label = dataclasses.replace(small[18], hop_id="label-1", group="campaign host")
    hops.insert(9, dataclasses.replace(small[18], hop_id="sister-1", group="campaign host", barrier_ev=None))
    hops.insert(6, _translated(hops[0], "translated"))
    hops.append(dataclasses.replace(hops[0], hop_id="again"))
    pairs = load_shipped_cheap_barriers()
    cheap = {f"pool-{k}": pairs[small[k].hop_id] for k in (3, 12) if small[k].hop_id in pairs}
    assert len(cheap) == 2
    ensemble = Ensemble.load()
    cache = FeatureCache(tmp_path_factory.mktemp("cache") / "features.sqlite")
    ensemble.posterior(hops, N_DRAWS, SEED, cheap, "cpu", labelled=[label], cache=cache)  # every hop's features cached
    return ensemble, hops, cheap, label, cache


def _chunks(ensemble, hops, chunk_hops):
    return [hops[start:stop] for start, stop in ensemble.chunk_bounds(len(hops), chunk_hops)]


@pytest.mark.parametrize("requested", [4, 5, 12])
def test_rows_of_a_pool_in_chunks_are_the_whole_calls_bit_for_bit(pool, requested, monkeypatch):
    import alem.inference.members

    ensemble, hops, cheap, label, cache = pool
    # members forward 4 hops at a time here (1024 in a campaign): a chunk of whole batches
    monkeypatch.setattr(alem.inference.members, "PATH_TENSOR_BATCH", 4)
    size = ensemble.aligned_chunk_hops(requested)
    assert size % 4 == 0 and size >= requested
    whole, whole_draws = ensemble.posterior(hops, N_DRAWS, SEED, cheap, "cpu", labelled=[label], cache=cache)
    ids = [h.hop_id for h in hops]
    assert whole.used_cheap_barrier.sum() == 2 and whole.n_sisters[ids.index("sister-1")] > 0
    assert (whole.n_sisters > 0).sum() > 5  # hops of known hosts, moved by the shipped residual store
    hosts = {host_of(h) for h in hops}
    chunks = _chunks(ensemble, hops, requested)
    assert len(chunks) > 1 and min(len(c) for c in chunks) > 1  # 21 hops in 4s: a lone last hop joins the chunk before
    parts = list(ensemble.posterior_chunks(chunks, hosts, N_DRAWS, SEED, cheap, "cpu", labelled=[label], cache=cache))
    prediction = {name: np.concatenate([getattr(p, name) for p, _ in parts])
                  for name in ("mean_ev", "std_ev", "prob_good", "stack_mean_ev", "n_sisters", "used_cheap_barrier")}
    for name, values in prediction.items():
        assert np.array_equal(values, getattr(whole, name)), name
    draws = np.hstack([d for _, d in parts])
    assert np.array_equal(draws, whole_draws)
    calibrated = np.hstack([PredictionTable(tuple(f"h{j}" for j in range(d.shape[1])), d, p.mean_ev, p.std_ev).calibrated_members()
                            for p, d in parts])
    assert np.array_equal(calibrated, PredictionTable(tuple(ids), whole_draws, whole.mean_ev, whole.std_ev).calibrated_members())
    # duplicates share their noise though they are drawn in different chunks
    first, again, translated = ids.index("pool-0"), ids.index("again"), ids.index("translated")
    assert first // size != again // size
    # (the copies' GNN outputs agree to float32's last bits: they sit in other forward batches)
    np.testing.assert_allclose(draws[:, again], draws[:, first], rtol=1e-5)
    np.testing.assert_allclose(draws[:, translated], draws[:, first], rtol=1e-5)


def test_a_hops_column_does_not_depend_on_the_hops_drawn_with_it(pool):
    ensemble, hops, cheap, label, cache = pool
    whole, whole_draws = ensemble.posterior(hops, N_DRAWS, SEED, cheap, "cpu", labelled=[label], cache=cache)
    alone = [ensemble.posterior([hop], N_DRAWS, SEED, cheap, "cpu", labelled=[label], cache=cache)[1][:, 0] for hop in hops[:4]]
    # one hop alone is another forward batch: equal to the last bits of the GNN's float32 outputs
    np.testing.assert_allclose(np.stack(alone, axis=1), whole_draws[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.array_equal(whole_draws[:, 1], whole_draws[:, 2])
    reseeded = ensemble.posterior(hops[:4], N_DRAWS, SEED + 1, cheap, "cpu", labelled=[label], cache=cache)[1]
    assert not np.allclose(reseeded, whole_draws[:, :4])


def test_noise_is_keyed_by_rounded_descriptors_and_is_standard_laplace():
    descriptors = np.array([[0.1, 2.0], [0.10000004, 2.0], [0.1, -0.0], [0.1, 0.0], [0.2, 2.0]])
    keys = hop_noise_keys(descriptors)
    assert keys[0] == keys[1] and keys[2] == keys[3] and len(set(keys.tolist())) == 3
    many = hop_noise_keys(np.random.default_rng(0).normal(size=(400, 3)))
    noise = DrawRandomness(1).unit_laplace(many, 500)
    assert noise.shape == (500, 400)
    assert abs(noise.mean()) < 0.02 and abs(noise.var() - 2.0) < 0.05  # Laplace(0, 1): variance 2
    r = np.abs(np.corrcoef(noise[:, :50], rowvar=False)[np.triu_indices(50, 1)])  # hops' noises independent:
    assert np.median(r) < 0.05 and r.max() < 0.3  # |r| of 500 independent pairs: median 0.03, sd 0.045
    # a stream continues: the next draws are new ones, and another stream is another noise
    randomness = DrawRandomness(1)
    assert np.array_equal(randomness.unit_laplace(many[:3], 500), noise[:, :3])
    assert not np.allclose(randomness.unit_laplace(many[:3], 500), noise[:, :3])
    assert not np.allclose(DrawRandomness(1).child(0).unit_laplace(many[:3], 500), noise[:, :3])
