"""The two-stage campaign on real stores and real loop ticks (replay backends): cheap MACE-MP
screening without approval within its own budget while DFT waits for approval, retraining that
learns only from DFT unless told, and the [loop] stop rule."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from alem.hops.fidelity import is_dft
from alem.hops.io import load_shipped_cheap_barriers
from alem.store import HopState, Store
from tests._replay_campaign import invoke, make_replay_campaign

SCREENING = {
    "screening__fidelity": "mlip:MACE-MP",
    "screening__max_running_jobs": 2,
    "screening__max_jobs_per_day": 4,
    "screening__order": "all",
}


def _two_stage_campaign(tmp_path, ensemble_dir, **settings):
    """A replay campaign (DFT labels) with a screening stage answered by the shipped MACE-MP
    barriers of the same hops (a replay backend with ``barrier = "mace"``)."""
    config, dft = make_replay_campaign(tmp_path, ensemble_dir, **{**SCREENING, **settings})
    config.screening.backend.kind = "replay"
    config.screening.backend.replay.dataset = config.backend.replay.dataset
    config.screening.backend.replay.barrier = "mace"
    config.save()
    return config, dft


def _loop(config, *args):
    result = invoke(config, "loop", "--tick-seconds", "0", "--no-retrain", *args)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # the console wraps long lines


def test_screening_runs_without_approval_within_its_budget_while_dft_waits(tmp_path, replay_ensemble_dir):
    config, dft = _two_stage_campaign(tmp_path, replay_ensemble_dir, n_hops=5, acquisition__batch_size=2)
    mace = load_shipped_cheap_barriers()
    output = _loop(config, "--max-ticks", "3")
    with Store.open(config.store_path) as store:
        screening_jobs = store.jobs(stage="screening")
        # tick 1: 2 submitted (2 in flight at most); tick 2: both done, 2 more (4 a day at most);
        # tick 3: those done, the fifth hop waits for tomorrow's budget
        assert len(screening_jobs) == 4 and Counter(j.hop_id for j in screening_jobs).most_common(1)[0][1] == 1
        assert {j.state.value for j in screening_jobs} == {"completed"}
        cheap = {r.hop_id: r for r in store.results(stage="screening")}
        assert {r.fidelity for r in cheap.values()} == {"mlip:MACE-MP"}
        assert {h: r.barrier_ev for h, r in cheap.items()} == pytest.approx({h: mace[h].barrier_ev for h in cheap})
        # the DFT track: a batch proposed, nothing approved, nothing submitted
        assert len(store.hops(state=HopState.PROPOSED)) == 2
        assert store.jobs(stage="target") == [] and store.results(stage="target") == []
        proposed = [r.hop_id for r in store.hops(state=HopState.PROPOSED)]
    assert "at most 4 screening NEBs in 24 h" in output

    shown = json.loads(invoke(config, "proposals", "--json").output)
    for row in shown:  # the MLIP barrier beside μ ± σ, for the proposed hops it screened
        expected = cheap[row["hop_id"]].barrier_ev if row["hop_id"] in cheap else None
        assert row["mlip_barrier_ev"] == (pytest.approx(expected) if expected is not None else None)
    assert any(row["mlip_barrier_ev"] is not None for row in shown)

    assert invoke(config, "approve", *proposed).exit_code == 0
    _loop(config, "--max-ticks", "2")
    with Store.open(config.store_path) as store:
        target = {r.hop_id: r for r in store.results(stage="target")}
        assert set(target) == set(proposed)
        assert all(is_dft(r.fidelity) for r in target.values())
        assert {h: r.barrier_ev for h, r in target.items()} == pytest.approx({h: dft[h] for h in proposed})
        assert store.integrity_check() == []
        both = next(h for h in proposed if h in cheap)
    show = invoke(config, "show", both).output
    assert "mlip:MACE-MP" in show and "dft:" in show  # both fidelities of one hop
    status = json.loads(invoke(config, "status", "--json").output)["fidelity"]
    assert status["results_by_fidelity"]["mlip:MACE-MP"] == 4
    assert sum(n for f, n in status["results_by_fidelity"].items() if f.startswith("dft:")) == 2
    assert status["screening"] == {"fidelity": "mlip:MACE-MP", "in_flight": 0, "screened": 4, "failed": 0}
    text = " ".join(invoke(config, "status").output.split())
    assert "Usable results by fidelity: 4 mlip:MACE-MP" in text and "retraining learns from dft" in text
    assert "Screening at mlip:MACE-MP (no approval needed): 4 screened" in text
    assert "Remaining promise:" in text and "trend over rounds" in text


def test_retraining_learns_only_from_dft_unless_told(tmp_path, replay_ensemble_dir, monkeypatch):
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.retrain import new_results_since_current, retrain
    from alem.config import CampaignConfig
    from alem.training import finetune

    config, dft = _two_stage_campaign(
        tmp_path, replay_ensemble_dir, n_hops=5, acquisition__batch_size=2, approval__auto_approve=True,
        screening__max_jobs_per_day=50, screening__max_running_jobs=5,
    )
    _loop(config, "--max-ticks", "3")
    trained_on: list[list] = []
    real_train = finetune.train_ensemble

    def train_and_remember(hops, *args, **kwargs):
        trained_on.append(list(hops))
        return real_train(hops, *args, **kwargs)

    monkeypatch.setattr(finetune, "train_ensemble", train_and_remember)
    config = CampaignConfig.load(config.campaign_dir)
    with Store.open(config.store_path) as store:
        dft_hops = {r.hop_id for r in store.results(stage="target", usable=True)}
        mlip_hops = {r.hop_id for r in store.results(stage="screening", usable=True)}
        assert dft_hops and mlip_hops - dft_hops, "the store must hold both kinds, some hops only in MLIP"
        assert new_results_since_current(store, config.model.train_fidelities) == len(dft_hops)
        parent = load_current_model(store, config)
        retrain(store, config, parent)
        campaign = {h.hop_id: h for h in trained_on[-1] if (h.provenance.source or "").startswith("alem:")}
        assert set(campaign) == dft_hops
        assert {h: x.barrier_ev for h, x in campaign.items()} == pytest.approx({h: dft[h] for h in dft_hops})
        assert all(is_dft(h.provenance.fidelity) for h in campaign.values())
        assert store.current_model().card["campaign_result_fidelities"] == sorted(
            {h.provenance.fidelity for h in campaign.values()})

        config.model.train_fidelities = ["dft", "mlip:MACE-MP"]  # told to: the MLIP-only hops join
        retrain(store, config, parent)
        campaign = {h.hop_id: h for h in trained_on[-1] if (h.provenance.source or "").startswith("alem:")}
        assert set(campaign) == dft_hops | mlip_hops
        assert all(campaign[h].barrier_ev == pytest.approx(dft[h]) for h in dft_hops)  # DFT wins where both


def test_the_stop_rule_ends_a_replay_campaign(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(
        tmp_path, replay_ensemble_dir, n_hops=8, acquisition__batch_size=1, approval__auto_approve=True,
        loop__stop_after_rounds_below_floor=3, loop__acquisition_floor=1e9,
    )
    output = _loop(config, "--max-ticks", "30")
    assert "stop rule: the best acquisition value stayed below 1e+09 for the last 3 rounds" in output
    assert "loop stopped by the [loop] stop rule after" in output
    with Store.open(config.store_path) as store:
        rounds = store.campaign_rounds()
        assert len(rounds) == 3 and store.hops(state=HopState.CANDIDATE)  # stopped with work left
        assert all(r.best_acquisition is not None and r.expected_good > 0 for r in rounds)
    trend = json.loads(invoke(config, "status", "--json").output)["fidelity"]["promise"]["trend"]
    assert [r["round"] for r in trend] == [r.id for r in rounds]

    config.loop.stop_after_rounds_below_floor = 0
    config.loop.stop_when_expected_good_below = 0.5
    config.loop.good_barrier_ev = 0.01  # a strict "good": the pool's expected count shrinks below 0.5
    config.save()
    output = _loop(config, "--max-ticks", "30")
    assert "stop rule: the pool is expected to hold only" in output
    assert "fewer than 0.5 ([loop] stop_when_expected_good_below)" in output
    with Store.open(config.store_path) as store:
        later = store.campaign_rounds()[3:]
        assert later and all(r.threshold_ev == 0.01 for r in later)
        assert [r.expected_good < 0.5 for r in later] == [False] * (len(later) - 1) + [True]  # the first one below
        assert store.hops(state=HopState.CANDIDATE)  # stopped with candidates left


def test_without_a_stop_rule_the_loop_runs_on(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=3, acquisition__batch_size=1,
                                     approval__auto_approve=True)
    output = _loop(config, "--max-ticks", "30", "--until-idle")
    assert "stop rule" not in output and "nothing left to do" in output


def test_the_demo_says_its_barriers_are_chgnet_and_learns_them_only_when_asked(tmp_path):
    from alem.backends import make_backend
    from alem.config import CampaignConfig
    from alem.demo import create_demo_campaign, say_fidelity

    config = create_demo_campaign(tmp_path / "demo", "", "local")
    assert make_backend(config).fidelity == "mlip:CHGNet"  # what its results will be stored as
    said: list[str] = []
    say_fidelity(config, False, said.append)
    assert "the demo's barriers are CHGNet NEBs (fidelity mlip:CHGNet" in said[0]
    assert "the model is not retrained on them" in said[1]
    assert CampaignConfig.load(config.campaign_dir).model.train_fidelities == ["dft"]
    said.clear()
    say_fidelity(config, True, said.append)
    assert "--retrain: the model is re-fine-tuned on them as asked" in said[1]
    assert CampaignConfig.load(config.campaign_dir).model.train_fidelities == ["dft", "mlip:CHGNet"]


def test_costs_per_fidelity_come_from_the_config(tmp_path, tiny_hop):
    from alem.acquisition.costs import DEFAULT_FIDELITY_COSTS
    from alem.campaign.neb_costs import cost_request_fields, fidelity_costs, neb_core_hours
    from alem.config import CampaignConfig, CostsSection

    # the config's defaults are the acquisition's defaults (one rule, two places to read it)
    defaults = fidelity_costs(CostsSection())
    assert {kind: defaults[kind] for kind in ("dft", "mlip")} == {k: DEFAULT_FIDELITY_COSTS[k] for k in ("dft", "mlip")}
    config = CampaignConfig.from_dict({"costs": {"dft": {"core_hours_per_100_atoms": 1000.0, "exponent": 2.0}}})
    assert neb_core_hours("dft:GGA+U", 300, config.costs) == pytest.approx(9000.0)
    assert neb_core_hours("mlip:CHGNet", 300, config.costs) == pytest.approx(0.15)  # default 0.05 × 3
    hops = [tiny_hop("a", 0.4)]
    assert cost_request_fields(hops, "dft:GGA", config.costs) == {}  # [costs] aware is off by default
    config.costs.aware = True
    fields = cost_request_fields(hops, "dft:GGA", config.costs)  # no preset: the stored cell, 5 images
    assert fields == {"cost_core_hours_of": {"a": pytest.approx(1000.0 * (hops[0].n_sites / 100) ** 2)}}
    assert neb_core_hours("dft:GGA", 300, config.costs, n_images=10) == pytest.approx(18000.0)  # images multiply


def test_a_screening_round_after_a_crash_never_screens_a_hop_twice(tmp_path):
    """Crash after the backend took the job but before its id was stored, and crash before the
    backend saw it: the next round finds the first by its key and screens the second afresh."""
    from alem.campaign.screening import make_screening_backend, screen_candidates, settle_screening
    from alem.config import CampaignConfig
    from alem.hops.io import load_training_hops, write_dataset

    hops = [h for h in load_training_hops() if h.n_sites <= 40][:3]
    replay = {"dataset": str(write_dataset(hops, tmp_path / "d.json")), "barrier": "mace"}
    config = CampaignConfig.from_dict(
        {"screening": {"fidelity": "mlip:MACE-MP", "order": "all", "backend": {"kind": "replay", "replay": replay}}}
    )
    config.campaign_dir = tmp_path
    backend = make_screening_backend(config)
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_hops(hops)
        taken = store.begin_screening(hops[0].hop_id, backend.name, "mlip:MACE-MP")
        backend.submit(hops[0], taken.job_key)  # ... and the process died here
        store.begin_screening(hops[1].hop_id, backend.name, "mlip:MACE-MP")  # died before submitting
        first = screen_candidates(store, backend, config, stale_after_s=0.0)
        assert sorted(h for h, _ in first.submitted) == sorted([hops[1].hop_id, hops[2].hop_id])
        assert store.job(taken.id).external_id  # found again by its key
        said = settle_screening(store, config)  # what `alem reconcile` does for the stage: results in
        assert sum("screened at mlip:MACE-MP" in line for line in said) == 2  # the found one was settled at once
        screen_candidates(store, backend, config, stale_after_s=0.0)  # nothing new to screen
        assert Counter(s["hop_id"] for s in backend.submissions()) == {h.hop_id: 1 for h in hops}
        assert {r.hop_id for r in store.results(stage="screening", usable=True)} == {h.hop_id for h in hops}
        assert store.hop_counts()["candidate"] == 3 and store.integrity_check() == []


def test_a_screening_backend_of_another_fidelity_is_refused(tmp_path):
    from alem.campaign.screening import ScreeningConfigError, make_screening_backend
    from alem.config import CampaignConfig, ConfigError
    from alem.errors import AlemError

    config = CampaignConfig.from_dict({"screening": {"fidelity": "mlip:SevenNet"}})  # local, preset mlip_chgnet
    config.campaign_dir = tmp_path
    with pytest.raises(ScreeningConfigError, match=r"\[screening\] fidelity is mlip:SevenNet but .* produces mlip:CHGNet"):
        make_screening_backend(config)
    assert issubclass(ScreeningConfigError, AlemError)
    with pytest.raises(ConfigError, match="not a cheap fidelity"):
        CampaignConfig.from_dict({"screening": {"fidelity": "dft:GGA"}})


def test_a_model_of_another_potential_gets_no_screening_barriers_and_one_warning(tmp_path):
    """The shipped model learned its correction from MACE-MP pairs: a campaign screening with CHGNet
    must not feed it CHGNet barriers, and says so once per model version (a store event)."""
    from alem.campaign.fidelity_labels import MISMATCH_EVENT, campaign_cheap_barriers
    from alem.config import CampaignConfig
    from alem.ensemble import Ensemble

    shipped = Ensemble.load()
    assert shipped.cheap_fidelity == "mlip:MACE-MP"
    config = CampaignConfig.from_dict({"screening": {"fidelity": "mlip:CHGNet"}})
    with Store.open(tmp_path / "s.sqlite") as store:
        cheap, warning = campaign_cheap_barriers(store, config, shipped, version_id=1)
        assert cheap == {} and "mlip:MACE-MP" in warning and "mlip:CHGNet" in warning
        assert campaign_cheap_barriers(store, config, shipped, version_id=1) == ({}, None)  # said once
        assert len(store.events(kind=MISMATCH_EVENT)) == 1
        config.screening.fidelity = "mlip:MACE-MP"  # the model's own potential: no warning
        assert campaign_cheap_barriers(store, config, shipped, version_id=1)[1] is None


def test_cancelling_a_screening_neb_leaves_the_hop_where_it_is(tmp_path, replay_ensemble_dir):
    config, _ = _two_stage_campaign(tmp_path, replay_ensemble_dir, n_hops=4, acquisition__batch_size=1)
    config.screening.backend.replay.delay_s = 3600.0  # screening NEBs stay running
    config.save()
    _loop(config, "--max-ticks", "1")
    with Store.open(config.store_path) as store:
        running = [job.hop_id for job in store.jobs(live=True, stage="screening")]
        state_before = store.hop(running[0]).state
    assert len(running) == 2  # [screening] max_running_jobs
    result = invoke(config, "cancel", running[0], "--screening", "--reason", "wrong cell")
    assert result.exit_code == 0, result.output
    assert f"cancelled the screening NEB of hop {running[0]}" in " ".join(result.output.split())
    with Store.open(config.store_path) as store:
        [job] = store.jobs(hop_id=running[0], stage="screening")
        assert job.state.value == "failed" and job.error == "cancelled: wrong cell"
        assert store.hop(running[0]).state is state_before  # screening never moves a hop
        assert store.live_job(running[1], "screening") is not None  # the other one untouched
    again = invoke(config, "cancel", running[0], "--screening", "--reason", "twice")
    assert again.exit_code == 1 and "has no screening job in flight" in " ".join(again.output.split())
    _loop(config, "--max-ticks", "1")  # a cancelled (hop, fidelity) is not screened again
    with Store.open(config.store_path) as store:
        assert len(store.jobs(hop_id=running[0], stage="screening")) == 1
    config.screening.fidelity = ""
    config.save()
    refused = invoke(config, "cancel", running[1], "--screening", "--reason", "x")
    assert refused.exit_code == 2 and "no screening stage" in refused.output
