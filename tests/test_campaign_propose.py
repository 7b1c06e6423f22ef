"""Scoring and proposing on a real store with a real (tiny) ensemble: a batch is recorded with the
predictions it was chosen on, hops already on their way (proposed, approved, submitted) are never
proposed again, and the loop's rule for when to propose."""

from __future__ import annotations

import dataclasses

import pytest
from _proposal_campaign import make_campaign, small_shipped_hops

from alem.campaign.model_versions import load_current_model
from alem.campaign.propose import proposal_needed, propose_batch
from alem.campaign.score import score_unscored_candidates
from alem.config import AcquisitionSection
from alem.store import HopState, Store
from tests._factories import train_tiny_ensemble


@pytest.fixture(scope="module")
def tiny_ensemble_dir(tmp_path_factory):
    return train_tiny_ensemble(tmp_path_factory.mktemp("ensemble") / "tiny", small_shipped_hops()[:24])


@pytest.fixture
def campaign(tmp_path, tiny_ensemble_dir):
    """A campaign with 6 candidates, its store open, the configured ensemble loaded as version 1."""
    config, hop_ids = make_campaign(tmp_path, n_hops=6, ensemble_dir=tiny_ensemble_dir)
    with Store.open(config.store_path) as store:
        yield config, store, load_current_model(store, config), hop_ids


def test_a_batch_is_recorded_with_the_predictions_it_was_chosen_on(campaign):
    config, store, model, hop_ids = campaign
    outcome = propose_batch(store, model, config.acquisition, "explore", 2)
    assert outcome.n_candidates == 6 and outcome.batch_id is not None
    picked = [p.hop_id for p in outcome.proposals]
    assert len(set(picked)) == 2 and set(picked) <= set(hop_ids)
    assert picked == [s.hop_id for s in outcome.selections]
    assert [p.id for p in store.proposals(batch_id=outcome.batch_id)] == [p.id for p in outcome.proposals]
    assert {r.hop_id for r in store.hops(state=HopState.PROPOSED)} == set(picked)
    predictions = store.predictions(model.version_id)
    assert set(predictions) == set(hop_ids)  # the whole pool, not only the picks
    for proposal in outcome.proposals:
        assert proposal.strategy == "explore" and proposal.model_version_id == model.version_id
        assert proposal.mean_ev == pytest.approx(predictions[proposal.hop_id].mean_ev)
        assert proposal.std_ev == pytest.approx(predictions[proposal.hop_id].std_ev)


def test_hops_on_their_way_are_never_proposed_again(campaign):
    config, store, model, hop_ids = campaign
    first = [p.hop_id for p in propose_batch(store, model, config.acquisition, "explore", 2).proposals]
    store.approve(first[:1], who="alice")  # one approved, one still proposed: both pending
    outcome = propose_batch(store, model, config.acquisition, batch_size=6)
    assert outcome.n_candidates == 4
    assert {p.hop_id for p in outcome.proposals} == set(hop_ids) - set(first)
    assert {p.strategy for p in outcome.proposals} == {config.acquisition.strategy}
    empty = propose_batch(store, model, config.acquisition, "explore", 2)
    assert (empty.batch_id, empty.proposals, empty.n_candidates) == (None, [], 0)
    assert len(store.proposals()) == 6


def test_the_loop_proposes_when_few_approved_hops_wait_and_no_proposal_does(campaign):
    config, store, model, hop_ids = campaign
    queue_of_two = AcquisitionSection(min_approved_queue=2, batch_size=2)
    assert proposal_needed(store, queue_of_two)
    first = [p.hop_id for p in propose_batch(store, model, queue_of_two, "explore").proposals]
    assert not proposal_needed(store, queue_of_two)  # a batch waits for a decision
    store.approve(first[:1], who="alice")
    assert not proposal_needed(store, queue_of_two)
    store.approve(first[1:], who="alice")
    assert not proposal_needed(store, queue_of_two)  # two approved hops wait for submission
    store.begin_submission(first[0], "replay")
    assert proposal_needed(store, queue_of_two)  # one is being submitted: only one waits
    assert not proposal_needed(store, AcquisitionSection(min_approved_queue=1))
    store.reject(list(set(hop_ids) - set(first)), who="alice", reason="enough")
    assert not proposal_needed(store, queue_of_two)  # no candidate left


def test_scoring_predicts_only_the_candidates_not_scored_yet(campaign):
    config, store, model, hop_ids = campaign
    assert score_unscored_candidates(store, model) == 6
    first = store.predictions(model.version_id)
    assert score_unscored_candidates(store, model) == 0
    (new,) = store.add_hops([dataclasses.replace(small_shipped_hops()[36], hop_id="extra-p1", barrier_ev=None)])
    assert score_unscored_candidates(store, model) == 1
    again = store.predictions(model.version_id)
    assert set(again) == set(hop_ids) | {new}
    assert all(again[h].created_at == first[h].created_at for h in hop_ids)  # not re-predicted


def test_discover_and_the_recorded_promise_use_the_campaigns_threshold_per_ion(campaign):
    """A proposal's discover scores and recorded promise follow ``[loop] good_barrier_ev`` and the
    threshold of the hops' working ion (discover used 0.65 eV whatever the campaign said)."""
    from scipy import stats

    config, store, model, hop_ids = campaign
    ion = store.hop(hop_ids[0]).working_ion

    def discover(**thresholds):
        outcome = propose_batch(store, model, config.acquisition, "discover", 1, **thresholds)
        return outcome.selections[0], store.campaign_rounds(limit=1)[-1]

    (common, common_round) = discover(good_barrier_ev=0.65)
    (generous, generous_round) = discover(good_barrier_ev=0.65, good_barrier_ev_by_ion={ion: 3.0})
    assert generous.score > common.score + 1  # log EI: the ion's hops clear a bar 2.35 eV higher
    predictions = store.predictions(model.version_id)
    unlabelled = {r.hop_id for r in store.hops(state=[HopState.CANDIDATE, HopState.PROPOSED])}
    expected = sum(
        stats.norm.cdf(((3.0 if store.hop(h).working_ion == ion else 0.65) - predictions[h].mean_ev) / predictions[h].std_ev)
        for h in unlabelled
    )
    assert generous_round.expected_good == pytest.approx(expected, rel=1e-6)
    assert generous_round.expected_good > common_round.expected_good
