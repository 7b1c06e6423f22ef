"""Kept host answers (alem.campaign.host_answers): read back equal to a fresh analysis, and
analysed again exactly where what they read changed.

A real campaign store holds LiCoO2, its 2x1x1 supercell (a second host whose paths all borrow the
first host's stored hop by signature) and olivine LiFePO4, all enumerated by ``alem candidates
add``, with hand-written predictions of a registered model version (no model directory: the
answers' spread comes from independent draws, deterministic per host).
"""

from __future__ import annotations

import json

import pytest
from pymatgen.core import Structure
from typer.testing import CliRunner

import alem.campaign.host_answers as host_answers
from alem import PACKAGE_DATA
from alem.campaign.host_answers import answers_path, kept_analyses, kept_summary
from alem.campaign.host_networks import analyse_hosts
from alem.cli import app
from alem.config import CampaignConfig
from alem.store import ProposalInput, Store

LICOO2 = PACKAGE_DATA / "hosts" / "LiCoO2_layered.cif"
OLIVINE = PACKAGE_DATA / "hosts" / "LiFePO4_olivine.cif"


def _record_result(store: Store, hop_id: str, barrier_ev: float) -> None:
    from alem.neb.schemas import NebOutcome

    store.add_proposals(store.new_batch_id(), "explore", [ProposalInput(hop_id, score=1.0)])
    store.approve([hop_id], who="test")
    job = store.begin_submission(hop_id, "local")
    store.mark_submitted(job.id, f"ext-{hop_id}")
    store.record_result(job.id, NebOutcome(barrier_ev=barrier_ev, reverse_barrier_ev=barrier_ev, converged=True,
                                           method="vasp:GGA CI-NEB"))


def _predict_all(config: CampaignConfig, store: Store, shift_ev: float = 0.0) -> int:
    version = store.add_model_version(str(config.campaign_dir / "hand-written-predictions"), {}, "sha256:test", 556)
    hops = store.hops()
    store.record_predictions(version, [h.hop_id for h in hops], [0.4 + shift_ev + 0.1 * k for k in range(len(hops))],
                             [0.1] * len(hops))
    return version


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The campaign directory once built (each test works on its own copy)."""
    from alem.campaign import init_campaign

    root = tmp_path_factory.mktemp("answers")
    doubled = Structure.from_file(LICOO2)
    doubled.make_supercell([2, 1, 1])
    doubled.to(filename=str(root / "LiCoO2_x2.cif"))
    config = init_campaign(root / "campaign", backend="local")
    config.model.path = str(root / "no-model")  # barriers by hand, none from a model
    config.save()
    added = CliRunner().invoke(app, ["candidates", "add", str(LICOO2), str(root / "LiCoO2_x2.cif"), str(OLIVINE),
                                     "--max-hop-length", "5.0", "-C", str(config.campaign_dir)])
    assert added.exit_code == 0, added.output
    with Store.open(config.store_path) as store:
        _predict_all(config, store)
    return config.campaign_dir


@pytest.fixture
def campaign(built, tmp_path):
    import shutil

    directory = tmp_path / "campaign"
    shutil.copytree(built, directory)
    return CampaignConfig.load(directory)


@pytest.fixture
def analysed(monkeypatch):
    """The host ids each analysis of the kept answers was asked for (None: every host)."""
    calls: list = []
    real = host_answers.analyses_and_signatures

    def spy(config, store, rows=None, host_ids=None):
        calls.append(None if host_ids is None else sorted(host_ids))
        return real(config, store, rows, host_ids)

    monkeypatch.setattr(host_answers, "analyses_and_signatures", spy)
    return calls


def _as_stored(analyses) -> dict:
    """Summaries as JSON gives them back (what ``alem hosts --json`` prints either way)."""
    return {h: json.loads(json.dumps(a.summary)) for h, a in analyses.items()}


def _fresh(config, store) -> dict:
    return _as_stored(analyse_hosts(config, store))


def _hosts(store):
    licoo2, doubled, olivine = (h.id for h in store.hosts())
    return licoo2, doubled, olivine


def test_kept_answers_equal_fresh_ones_and_a_result_reanalyses_its_host_and_the_hosts_borrowing_it(campaign, analysed):
    config = campaign
    with Store.open(config.store_path) as store:
        licoo2, doubled, olivine = _hosts(store)
        first = kept_analyses(config, store)
        assert analysed == [None] and _as_stored(first) == _fresh(config, store)
        again = kept_analyses(config, store)
        assert analysed == [None], "nothing changed: the kept answers are read, no host analysed"
        assert _as_stored(again) == _as_stored(first)
        # the supercell's paths all borrow LiCoO2's stored hops
        borrowed = {p["hop_id"] for p in again[doubled].summary["paths"]}
        assert borrowed and borrowed <= {h.hop_id for h in store.hops(host_id=licoo2)}
        assert {p["state"] for p in again[doubled].summary["paths"]} == {"known"}
        stored = min(borrowed, key=lambda h: store.hop(h).hop_length_a)  # the short in-plane hop: it limits

        _record_result(store, stored, 0.35)
        after = kept_analyses(config, store)
        assert analysed[-1] == [licoo2, doubled], "the hop's host and the host borrowing it, not olivine"
        assert _as_stored(after) == _fresh(config, store)
        assert after[doubled].summary["percolation_barrier_ev"] == pytest.approx(0.35)
        assert after[olivine].summary == again[olivine].summary

        olivine_hop = store.hops(host_id=olivine)[0].hop_id
        _record_result(store, olivine_hop, 0.5)
        latest = kept_analyses(config, store)
        assert analysed[-1] == [olivine]
        assert _as_stored(latest) == _fresh(config, store)
        assert kept_analyses(config, store, host_ids=[olivine])[olivine].summary == latest[olivine].summary
        assert len(analysed) == 3


def test_a_new_model_version_or_another_good_barrier_reanalyses_every_host(campaign, analysed):
    config = campaign
    with Store.open(config.store_path) as store:
        kept_analyses(config, store)
        _predict_all(config, store, shift_ev=0.2)
        moved = kept_analyses(config, store)
        assert analysed == [None, None]
        assert _as_stored(moved) == _fresh(config, store)
        assert all(p["source"] == "model 2" for a in moved.values() for p in a.summary["paths"])

        config.loop.good_barrier_ev = 0.3
        stricter = kept_analyses(config, store)
        assert analysed[-1] is None and _as_stored(stricter) == _fresh(config, store)
        assert {a.summary["good_barrier_ev"] for a in stricter.values()} == {0.3}
        kept_analyses(config, store)
        assert len(analysed) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_torn_answers_file_is_computed_again_never_trusted(campaign, analysed, damage):
    config = campaign
    with Store.open(config.store_path) as store:
        kept_analyses(config, store)
        path = answers_path(config)
        data = path.read_bytes()
        path.write_bytes(b"not a database at all " * 64 if damage == "garbage" else data[: len(data) // 2])
        for part in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            part.unlink(missing_ok=True)
        answers = kept_analyses(config, store)
        assert analysed == [None, None]
        assert _as_stored(answers) == _fresh(config, store)
        kept_analyses(config, store)
        assert len(analysed) == 2, "the file written again is read back"


def test_hosts_and_show_read_the_kept_answers_and_say_when_they_refresh(campaign, monkeypatch):
    config = campaign
    runner = CliRunner()
    first = runner.invoke(app, ["hosts", "-C", str(config.campaign_dir)], env={"COLUMNS": "120"})
    assert first.exit_code == 0, first.output
    assert "refreshing the kept host answers (every host)" in first.output
    second = runner.invoke(app, ["hosts", "--limit", "2", "-C", str(config.campaign_dir)], env={"COLUMNS": "120"})
    assert second.exit_code == 0, second.output
    assert "refreshing" not in second.output and "2 of 3 hosts shown" in second.output

    # with every answer kept, `alem show HOST_ID` reads its row: no host is analysed
    import alem.campaign.host_networks as host_networks

    def no_analysis(*args, **kwargs):
        raise AssertionError("a host was analysed although its answer is kept")

    with Store.open(config.store_path) as store:
        olivine = _hosts(store)[2]
        every = _fresh(config, store)
        expected = every[olivine]
    monkeypatch.setattr(host_networks, "host_analysis", no_analysis)
    shown = runner.invoke(app, ["show", str(olivine), "--json", "-C", str(config.campaign_dir)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == expected
    with Store.open(config.store_path) as store:
        assert kept_summary(config, store, olivine) == expected
    # --json joins the kept texts undecoded: the very text printing the fresh summaries gives
    as_json = runner.invoke(app, ["hosts", "--json", "-C", str(config.campaign_dir)])
    assert as_json.exit_code == 0, as_json.output
    assert as_json.output == json.dumps([every[h] for h in sorted(every)], indent=2) + "\n"
