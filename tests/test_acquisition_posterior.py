"""The acquisition's posterior rows on the shipped model: joint draws of the whole stack whose
per-hop mean and σ are the calibrated prediction's, whose hops co-vary as the model makes them
(unrelated hops nearly independent, duplicate hops moving together), and which let a batch with
pending points avoid a second copy of a chosen hop without a host cap."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alem.acquisition import SelectionRequest, select_batch
from alem.acquisition.model import POSTERIOR_DRAWS
from alem.campaign.score import posterior_table
from alem.hops import load_training_hops


def _translated(hop, hop_id: str):
    """The same hop with the cell's origin moved: a symmetry-equivalent copy."""
    shift = [0.25, 0.125, 0.5]
    initial, final = hop.initial.copy(), hop.final.copy()
    for structure in (initial, final):
        structure.translate_sites(list(range(len(structure))), shift, frac_coords=True, to_unit_cell=True)
    return dataclasses.replace(hop, hop_id=hop_id, initial=initial, final=final)


@pytest.fixture(scope="module")
def pool():
    """40 small training hops (at most 3 of a compound) after two copies of the most uncertain one:
    the same hop under another id ("again") and a translated copy ("translated"). The copies come
    first, so a batch that ignored how hops co-vary would break its ties by taking them both."""
    from alem.ensemble import Ensemble

    per_group: dict[str, int] = {}
    hops = []
    for hop in load_training_hops():
        key = hop.group or hop.hop_id
        if hop.n_sites <= 60 and per_group.get(key, 0) < 3:
            per_group[key] = per_group.get(key, 0) + 1
            hops.append(hop)
        if len(hops) == 40:
            break
    ensemble = Ensemble.load()
    original = hops[int(np.argmax(ensemble.predict(hops, device="cpu").std_ev))]
    hops = [dataclasses.replace(original, hop_id="again"), _translated(original, "translated"), *hops]
    prediction, table = posterior_table(ensemble, hops)
    return ensemble, hops, original.hop_id, prediction, table


def test_rows_are_seeded_draws_whose_marginals_are_the_calibrated_prediction(pool):
    ensemble, hops, _, prediction, table = pool
    assert table.member_ev.shape == (POSTERIOR_DRAWS, len(hops))
    rows = table.calibrated_members()
    np.testing.assert_allclose(rows.mean(axis=0), prediction.mean_ev, atol=1e-9)
    np.testing.assert_allclose(rows.std(axis=0, ddof=1), prediction.std_ev, rtol=1e-9)
    # before calibration the draws already agree with the uncalibrated mixture within MC error
    raw_sigma = prediction.std_ev / ensemble.sigma_scale
    error_of_mean = np.abs(table.member_ev.mean(axis=0) - prediction.mean_ev) / (raw_sigma / np.sqrt(POSTERIOR_DRAWS))
    assert np.median(error_of_mean) < 1.5 and error_of_mean.max() < 5
    ratio = table.member_ev.std(axis=0, ddof=1) / raw_sigma
    assert 0.85 < np.median(ratio) < 1.15 and ratio.min() > 0.6 and ratio.max() < 1.5
    # deterministic for a seed, different for another
    again = ensemble.sample(hops[:5], 16, seed=3)
    np.testing.assert_array_equal(again, ensemble.sample(hops[:5], 16, seed=3))
    assert not np.allclose(again, ensemble.sample(hops[:5], 16, seed=4))


def test_unrelated_hops_are_nearly_uncorrelated_and_duplicates_move_together(pool):
    _, hops, original, _, table = pool
    r = np.corrcoef(table.calibrated_members(), rowvar=False)
    groups = [h.group or h.hop_id for h in hops]
    inner = range(2, len(hops))
    unrelated = [abs(r[i, j]) for i in inner for j in inner if i < j and groups[i] != groups[j]]
    assert np.median(unrelated) <= 0.3, np.median(unrelated)
    k = table.hop_ids.index(original)
    assert r[0, k] > 0.95  # the same hop listed twice
    assert r[1, k] > 0.95  # a symmetry-equivalent copy


def test_explore_with_pending_points_avoids_a_second_copy_of_a_chosen_hop(pool):
    _, _, original, _, table = pool
    twins = {"again", original, "translated"}
    # no host cap: only the rows' correlation keeps the copies apart
    batch = select_batch(table, SelectionRequest("explore", 4))
    assert len({s.hop_id for s in batch} & twins) == 1, [s.hop_id for s in batch]
    # a pending copy makes the others nearly known
    (first,) = select_batch(table, SelectionRequest("explore", 1, pending=["again"]))
    assert first.hop_id not in twins
