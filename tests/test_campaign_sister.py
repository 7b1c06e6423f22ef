"""The loop's fast path for sister labels on a replay campaign: an ingested DFT result moves the
predictions of its host's other hops (and of no other host's) without a retraining, and ``alem
show`` of a sister says so; a retraining carries the labels' residuals into the new version."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from alem.inference.sister_correction import SisterParams
from alem.store import Store
from tests._proposal_campaign import small_shipped_hops
from tests._replay_campaign import invoke, make_replay_campaign

#: Four hosts with two small hops each (none of them in the tiny ensemble's training set).
HOSTS = {"V2F7_Ca": ("em-0169", "em-0227"), "e-VOPO4_Li": ("em-0087", "em-0359"),
         "Cr2F7_Ca": ("em-0197", "em-0296"), "VPO4F_Rb": ("em-0142", "em-0273")}
REPLAY_BARRIER_EV = 2.5
#: Other hosts' predictions are recomputed in batches of another size: float noise, no more.
UNRELATED_TOLERANCE_EV = 1e-6
#: σ of a hop with labelled sisters, times this (the card's sigma_factor).
SIGMA_FACTOR = 1.25


def _loop(config, *args):
    result = invoke(config, "loop", "--tick-seconds", "0", "--no-retrain", *args)
    assert result.exit_code == 0, result.output
    return result.output


def _sister_model(tmp_path, replay_ensemble_dir, hops):
    """A copy of the tiny ensemble that carries a sister correction (flat kernel, ratio 1: every
    labelled sister moves a hop; σ of a hop with sisters x 1.25) with an empty store."""
    from alem.training.sister import add_sister_correction

    model_dir = tmp_path / "model"
    shutil.copytree(replay_ensemble_dir, model_dir)
    add_sister_correction(model_dir, hops, SisterParams("ev", None, 1.0, sigma_factor=SIGMA_FACTOR), device="cpu")
    return model_dir


@pytest.fixture
def sister_campaign(tmp_path, replay_ensemble_dir):
    """A replay campaign over :data:`HOSTS` ranked by :func:`_sister_model`."""
    by_id = {h.hop_id: h for h in small_shipped_hops(max_sites=60)}
    # the replay backend answers 2.5 eV for every hop: far from any prediction of the tiny model,
    # so the labelled hop's residual (and its sister's move) is large whichever hop is chosen
    hops = [dataclasses.replace(by_id[h], barrier_ev=REPLAY_BARRIER_EV) for pair in HOSTS.values() for h in pair]
    assert {h.group for h in hops} == set(HOSTS)
    model_dir = _sister_model(tmp_path, replay_ensemble_dir, hops)
    config, _ = make_replay_campaign(tmp_path, model_dir, hops=hops, acquisition__batch_size=1, approval__auto_approve=True)
    return config


def test_an_ingested_label_moves_its_sisters_and_no_other_host_without_retraining_and_retraining_keeps_it(sister_campaign):
    config = sister_campaign
    _loop(config, "--max-ticks", "1")  # scores every hop, proposes one, approves and submits it
    with Store.open(config.store_path) as store:
        before = {h: p.mean_ev for h, p in store.predictions().items()}
        sigma_before = {h: p.std_ev for h, p in store.predictions().items()}
        assert len(before) == 8 and not store.results()
    _loop(config, "--max-ticks", "1")  # ingests its result; the fast path re-scores its sisters
    with Store.open(config.store_path) as store:
        (result,) = store.results(usable=True)
        after = {h: p.mean_ev for h, p in store.predictions().items()}
        sigma_after = {h: p.std_ev for h, p in store.predictions().items()}
        assert len(store.model_versions()) == 1, "no retraining"
        events = {e.hop_id: e for e in store.events() if e.kind == "sister-label"}
    host = next(name for name, pair in HOSTS.items() if result.hop_id in pair)
    (sister,) = [h for h in HOSTS[host] if h != result.hop_id]
    # one labelled sister, flat kernel, ratio 1: half the label's residual against the stack
    assert after[sister] - before[sister] == pytest.approx((result.barrier_ev - before[result.hop_id]) / 2, abs=1e-5)
    assert after[sister] - before[sister] > 0.5
    # the host part of the variance halves, then the card's factor for hops with labelled sisters
    assert sigma_after[sister] == pytest.approx(sigma_before[sister] * np.sqrt(0.75) * SIGMA_FACTOR, rel=1e-5)
    for name, pair in HOSTS.items():
        if name != host:
            for hop_id in pair:
                assert after[hop_id] == pytest.approx(before[hop_id], abs=UNRELATED_TOLERANCE_EV), hop_id
                assert sigma_after[hop_id] == pytest.approx(sigma_before[hop_id], abs=UNRELATED_TOLERANCE_EV), hop_id
    assert set(events) == {sister} and result.hop_id in events[sister].message
    shown = " ".join(invoke(config, "show", sister).output.split())
    assert "sister-label" in shown and f"{before[sister]:.3f}" in shown and f"{after[sister]:.3f}" in shown

    # a retraining (no CV in the loop) carries the label's residual against the parent's stack
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.retrain import retrain
    from alem.config import CampaignConfig
    from alem.ensemble import Ensemble

    config = CampaignConfig.load(config.campaign_dir)
    with Store.open(config.store_path) as store:
        parent = load_current_model(store, config)
        child = retrain(store, config, parent)
    assert child.ensemble.sister is not None and child.ensemble.sister.store.hop_ids == [result.hop_id]
    label_hop = Ensemble.load(parent.path)  # the parent's stack prediction of the labelled hop
    with Store.open(config.store_path) as store:
        (hop,) = store.load_hops([result.hop_id])
    stack_ev = label_hop.predict([hop], device="cpu").mean_ev[0]
    assert child.ensemble.sister.store.residuals[0] == pytest.approx(result.barrier_ev - stack_ev)
    assert child.ensemble.card["sister_correction"]["variance_ratio"] == 1.0
    assert child.ensemble.sister.params.sigma_factor == child.ensemble.card["sister_correction"]["sigma_factor"] == SIGMA_FACTOR


def test_a_retraining_job_registers_a_version_that_keeps_the_labels_residuals(tmp_path, replay_ensemble_dir):
    from alem.campaign.model_versions import load_current_model
    from alem.config import CampaignConfig
    from tests._replay_campaign import small_dataset_hops

    hops = small_dataset_hops(6, offset=24)
    config, _ = make_replay_campaign(
        tmp_path, _sister_model(tmp_path, replay_ensemble_dir, hops), hops=hops, approval__auto_approve=True,
        approval__max_running_jobs=3, acquisition__batch_size=3, model__retrain_after_results=3, model__n_members=2,
        model__retrain_on="backend", model__retrain_job__cpus=1,
    )
    invoke(config, "loop", "--tick-seconds", "0", "--max-ticks", "2")  # 3 results, a retraining job submitted
    with Store.open(config.store_path) as store:
        (job,) = store.retrain_jobs()
        labelled = {r.hop_id for r in store.results(usable=True) if r.created_at < job.created_at}
    assert len(labelled) == 3
    deadline = time.time() + 240
    while not (Path(job.run_dir) / "exit.json").is_file():
        assert time.time() < deadline, "the retraining job did not finish"
        time.sleep(0.5)
    invoke(config, "loop", "--tick-seconds", "0", "--once")
    config = CampaignConfig.load(config.campaign_dir)
    with Store.open(config.store_path) as store:
        current = load_current_model(store, config)
        assert current.version_id == 2
        # the version the job trained carries every DFT label so far (3 it trained on, 3 that came meanwhile)
        assert labelled <= set(current.ensemble.sister.store.hop_ids) == {r.hop_id for r in store.results(usable=True)}
