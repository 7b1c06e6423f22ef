"""The campaign's good-barrier threshold (``[loop] good_barrier_ev``, one per working ion in
``good_barrier_ev_by_ion``) is the one discover aims below, the remaining promise counts by and
the review page shows."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from _proposal_campaign import make_campaign, propose_by_hand
from scipy import stats

from alem.acquisition import PredictionTable, SelectionRequest, select_batch
from alem.campaign.promise import remaining_promise
from alem.config import CampaignConfig, ConfigError, to_toml
from alem.store import Store


def test_a_threshold_per_working_ion_is_read_checked_and_written_back():
    config = CampaignConfig.from_dict({"loop": {"good_barrier_ev": 0.5, "good_barrier_ev_by_ion": {"Mg": 0.9}}})
    assert config.loop.good_barrier_ev_of("Mg") == 0.9 and config.loop.good_barrier_ev_of("Li") == 0.5
    again = CampaignConfig.from_dict(tomllib.loads(to_toml(config)))
    assert again.loop.good_barrier_ev_by_ion == {"Mg": 0.9} and again.loop.good_barrier_ev == 0.5
    with pytest.raises(ConfigError, match=r"\[loop\] good_barrier_ev_by_ion: .*'mg' is not an element symbol"):
        CampaignConfig.from_dict({"loop": {"good_barrier_ev_by_ion": {"mg": 0.9}}})
    with pytest.raises(ConfigError, match="threshold of Mg must be a positive barrier"):
        CampaignConfig.from_dict({"loop": {"good_barrier_ev_by_ion": {"Mg": 0.0}}})


def test_discover_aims_below_each_hops_own_threshold():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((256, 2))
    z = (z - z.mean(0)) / z.std(0, ddof=1)
    mean, std = np.array([0.6, 0.85]), np.array([0.05, 0.05])  # a Li hop, a Mg hop
    table = PredictionTable(("li", "mg"), mean + std * z, mean, std)
    assert select_batch(table, SelectionRequest("discover", 1))[0].hop_id == "li"  # 0.65 eV for both
    # a stricter common threshold: neither hop is likely below 0.5, the Li one is still closer
    strict = select_batch(table, SelectionRequest("discover", 1, threshold_ev=0.5))[0]
    loose = select_batch(table, SelectionRequest("discover", 1))[0]
    assert strict.hop_id == "li" and strict.score < loose.score
    # Mg hops are good below 1.0 eV in this campaign: the Mg hop is now the better bet
    per_ion = SelectionRequest("discover", 1, threshold_ev_of={"mg": 1.0})
    assert select_batch(table, per_ion)[0].hop_id == "mg"


@pytest.fixture
def proposed_campaign(tmp_path):
    config, hop_ids = make_campaign(tmp_path, n_hops=6)
    propose_by_hand(config, hop_ids[:3], strategy="discover")
    with Store.open(config.store_path) as store:
        ions = {r.hop_id: r.working_ion for r in store.hops()}
    return config, hop_ids, ions


def test_the_remaining_promise_counts_each_hop_by_its_ions_threshold(proposed_campaign):
    config, hop_ids, ions = proposed_campaign
    first_ion = ions[hop_ids[0]]
    with Store.open(config.store_path) as store:
        version = store.current_model().id
        predictions = store.predictions(version)
        common = remaining_promise(store, 0.65, version)
        per_ion = remaining_promise(store, 0.65, version, {first_ion: 1.5})
    expected = sum(
        stats.norm.cdf(((1.5 if ions[h] == first_ion else 0.65) - p.mean_ev) / p.std_ev) for h, p in predictions.items()
    )
    assert per_ion.expected_good == pytest.approx(expected) and per_ion.expected_good > common.expected_good


def test_the_review_page_shows_the_threshold_of_the_hops_ion(proposed_campaign):
    from alem.review import review_cards

    config, hop_ids, ions = proposed_campaign
    first_ion = ions[hop_ids[0]]
    config.loop.good_barrier_ev_by_ion = {first_ion: 1.5}
    with Store.open(config.store_path) as store:
        cards = {c.hop_id: c for c in review_cards(store, config, k_neighbours=1)}
        predictions = store.predictions(store.current_model().id)
    for hop_id in hop_ids[:3]:
        card, threshold = cards[hop_id], 1.5 if ions[hop_id] == first_ion else 0.65
        assert card.threshold_ev == threshold
        p = predictions[hop_id]
        assert card.prob_below_threshold == pytest.approx(stats.norm.cdf((threshold - p.mean_ev) / p.std_ev))
        assert f"may well beat {threshold} eV" in card.reason
