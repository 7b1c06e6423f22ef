"""The materials strategy (alem.acquisition.materials, alem.campaign.materials): what a hop's label
is expected to settle about its host's good/not-good class, read from joint rows; and a replay
campaign run by ``alem loop`` with ``strategy = "materials"`` and the host stop rule.

The rows here are small hand-made joint draws with a known answer: a host whose class is decided
by one hop, a hop that duplicates a pending one, and a hop that moves nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from alem.acquisition.materials import (
    expected_prob_change,
    host_entropy,
    information_gain,
    select_materials_batch,
    value_bins,
)

N_ROWS = 256


@pytest.fixture
def rows():
    rng = np.random.default_rng(1)
    deciding = rng.normal(0.6, 0.2, N_ROWS)  # the host's limiting hop: good iff below 0.65 eV
    noise = rng.normal(1.0, 0.2, N_ROWS)  # a hop of the same host that never matters
    twin = deciding + rng.normal(0, 1e-3, N_ROWS)  # a symmetry copy of the limiting hop (moves with it)
    good = deciding < 0.65
    return good, deciding, noise, twin


def test_a_hop_that_decides_its_host_settles_its_whole_entropy_and_an_unrelated_one_nothing(rows):
    good, deciding, noise, _ = rows
    assert 0.9 < host_entropy(good) <= 1.0
    # four bins of the deciding hop: the threshold cuts one bin, so about 3/4 of the entropy goes
    assert information_gain(good, deciding) > 0.6 * host_entropy(good)
    assert information_gain(good, noise) < 0.05
    # P(good) ≈ 0.6: bins of the deciding hop move it to ~1 or ~0
    assert expected_prob_change(good, deciding) > 0.3
    assert expected_prob_change(good, noise) < 0.1
    # a computed hop is one value on every row: one bin, nothing to learn
    assert set(value_bins(np.full(N_ROWS, 0.3))) == {0}
    assert information_gain(good, np.full(N_ROWS, 0.3)) == 0.0


def test_a_hop_that_moves_with_a_pending_one_settles_nothing_more(rows):
    good, deciding, noise, twin = rows
    values = {"deciding": deciding, "noise": noise, "twin": twin}
    hosts = {"deciding": "h", "noise": "h", "twin": "h"}
    first = select_materials_batch({"h": good}, values, hosts, ["deciding", "noise", "twin"], batch_size=1)
    assert [p.hop_id for p in first] in (["deciding"], ["twin"])
    # with the limiting hop on its way, its copy adds (almost) nothing; the unrelated hop little
    given = select_materials_batch({"h": good}, values, hosts, ["noise", "twin"], batch_size=2, pending=["deciding"])
    gains = {p.hop_id: p.gain_bits for p in given}
    assert all(g < 0.1 for g in gains.values())


def test_the_batch_respects_the_host_cap_and_prefers_more_per_core_hour(rows):
    _, deciding, noise, _ = rows
    other = noise[::-1].copy()  # a third hop, independent of the first two
    # host h1 is good only when both its hops are low: each of them carries information
    both = (deciding < 0.65) & (noise < 1.0)
    values = {"a": deciding, "b": noise, "c": other}
    hosts = {"a": "h1", "b": "h1", "c": "h2"}
    classes = {"h1": both, "h2": other < 1.0}
    uncapped = select_materials_batch(classes, values, hosts, ["a", "b", "c"], batch_size=3)
    assert sorted(p.host for p in uncapped) == ["h1", "h1", "h2"]
    capped = select_materials_batch(classes, values, hosts, ["a", "b", "c"], batch_size=3, max_per_host=1)
    assert sorted(p.host for p in capped) == ["h1", "h2"]
    # the h2 hop decides h2 alone and comes first; made 100x dearer than h1's it comes after them
    assert select_materials_batch(classes, values, hosts, ["a", "c"], batch_size=1)[0].hop_id == "c"
    costly = select_materials_batch(classes, values, hosts, ["a", "c"], batch_size=2, cost_core_hours_of={"a": 10.0, "c": 1000.0})
    assert [p.hop_id for p in costly] == ["a", "c"]
    # a host already classified is not in good_of_host: its hops are never proposed
    assert select_materials_batch({"h2": other < 1.0}, values, hosts, ["a", "b"], batch_size=2) == []


def test_a_replay_campaign_settles_every_host_and_stops(tmp_path, replay_ensemble_dir):
    # three shipped hosts, their hops answered by a replay dataset with known barriers; the loop
    # proposes with the materials strategy (auto-approved) until every host is classified. (Not
    # Li3N: with nine paths of σ ≈ 0.85 eV under the tiny model, some network of every joint row
    # percolates below 0.65 eV, so the rows call it good before any label.)
    from typer.testing import CliRunner

    from alem import PACKAGE_DATA
    from alem.campaign import init_campaign
    from alem.cli import app
    from alem.config import CampaignConfig
    from alem.hops import write_dataset
    from alem.store import Store

    config = init_campaign(tmp_path / "campaign", backend="replay")
    files = [str(PACKAGE_DATA / "hosts" / name) for name in ("LiFePO4_olivine.cif", "LiCoO2_layered.cif", "Li2O_antifluorite.cif")]
    added = CliRunner().invoke(app, ["candidates", "add", *files, "--max-hop-length", "5.0", "-C", str(config.campaign_dir)])
    assert added.exit_code == 0, added.output
    with Store.open(config.store_path) as store:
        records = store.hops()
        hops = store.load_hops([r.hop_id for r in records])
    # every hop slow except the olivine channel (0.3 eV) and LiCoO2's in-plane hop (0.4 eV)
    truth = {h.hop_id: 1.5 for h in hops}
    olivine_channel = next(r.hop_id for r in records if r.hop_id.startswith("LiFePO4") and r.hop_length_a < 3.1)
    layered = next(r.hop_id for r in records if r.hop_id.startswith("LiCoO2"))
    truth[olivine_channel], truth[layered] = 0.3, 0.4
    dataset = write_dataset([dataclasses.replace(h, barrier_ev=truth[h.hop_id]) for h in hops], tmp_path / "truth.json")
    config = CampaignConfig.load(config.campaign_dir)
    config.backend.replay.dataset = str(dataset)
    config.model.path = str(replay_ensemble_dir)
    config.acquisition.strategy = "materials"
    config.acquisition.batch_size = 1
    config.approval.auto_approve = True
    config.loop.stop_when_hosts_classified = 0.9
    config.save()

    result = CliRunner().invoke(
        app, ["loop", "--max-ticks", "30", "--tick-seconds", "0", "--no-retrain", "-C", str(config.campaign_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "every host is classified with P ≥ 0.9" in result.output
    with Store.open(config.store_path) as store:
        done = {r.hop_id: r.barrier_ev for r in store.results(usable=True)}
        proposals = store.proposals()
    assert {p.strategy for p in proposals} == {"materials"}
    # the good hosts' limiting hops were computed (nothing else fixes their P(good) at 1)
    assert {olivine_channel, layered} <= set(done)
    shown = CliRunner().invoke(app, ["hosts", "--json", "-C", str(config.campaign_dir)])
    import json

    by_formula = {h["formula"]: h for h in json.loads(shown.output)}
    assert by_formula["LiFePO4"]["prob_good"] == 1.0 and by_formula["LiCoO2"]["prob_good"] == 1.0
    # and every host is classified either way on the rows `alem hosts` reads (Li2O may be by the
    # model alone: the stop rule trusts a confident posterior, as it is meant to)
    assert all(h["prob_good"] >= 0.9 or h["prob_good"] <= 0.1 for h in by_formula.values())
    # the loop kept the host answers up to date after each result: `alem hosts` read them, and
    # they are what analysing every host afresh gives
    from alem.campaign.host_networks import analyse_hosts

    assert "host answers refreshed for" in result.output
    with Store.open(config.store_path) as store:
        fresh = {a.summary["host_id"]: json.loads(json.dumps(a.summary)) for a in analyse_hosts(config, store).values()}
    assert {h["host_id"]: h for h in json.loads(shown.output)} == fresh
    # fewer labels than hops: the campaign stopped once the classes were settled
    assert len(done) < len(records)
