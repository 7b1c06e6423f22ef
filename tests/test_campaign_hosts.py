"""Material-level answers in a campaign (alem.campaign.host_networks, ``alem hosts``, ``alem show HOST_ID``).

A real campaign store holds olivine LiFePO4 enumerated by ``alem candidates add`` up to 5 Å (two
distinct paths: the [010] channel hop and the [001] inter-channel hop), a model version with stored
predictions, and a DFT result for one hop recorded through a real job row.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Structure
from typer.testing import CliRunner

from alem import PACKAGE_DATA
from alem.campaign.host_networks import host_summary
from alem.candidates.network import transport_estimate
from alem.cli import app
from alem.store import ProposalInput, Store

OLIVINE = PACKAGE_DATA / "hosts" / "LiFePO4_olivine.cif"


def _record_result(store: Store, hop_id: str, barrier_ev: float, method: str) -> None:
    from alem.neb.schemas import NebOutcome

    store.add_proposals(store.new_batch_id(), "explore", [ProposalInput(hop_id, score=1.0)])
    store.approve([hop_id], who="test")
    job = store.begin_submission(hop_id, "local")
    store.mark_submitted(job.id, f"ext-{hop_id}")
    store.record_result(job.id, NebOutcome(barrier_ev=barrier_ev, reverse_barrier_ev=barrier_ev, converged=True, method=method))


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    from alem.campaign import init_campaign

    directory = tmp_path_factory.mktemp("hosts") / "campaign"
    config = init_campaign(directory, backend="local")
    added = CliRunner().invoke(app, ["candidates", "add", str(OLIVINE), "--max-hop-length", "5.0", "-C", str(directory)])
    assert added.exit_code == 0, added.output
    with Store.open(config.store_path) as store:
        hops = {round(h.hop_length_a, 1): h.hop_id for h in store.hops()}
        assert sorted(hops) == [3.0, 4.7]
        version = store.add_model_version(str(config.campaign_dir / "hand-written-predictions"), {}, "sha256:test", 556)
        # the model thinks the channel hop is slow and uncertain, the inter-channel hop hard
        store.record_predictions(version, [hops[3.0], hops[4.7]], [0.9, 2.9], [0.3, 0.2])
    return config, hops


def test_predictions_alone_give_a_spread_and_a_limiting_hop(campaign):
    config, hops = campaign
    with Store.open(config.store_path) as store:
        host = host_summary(config, store, store.hosts()[0].id)
    assert (host["dimensionality"], host["directions"]) == (1, "b")
    assert host["percolation_barrier_ev"] == pytest.approx(0.9)
    assert host["limiting_hop"] == hops[3.0]
    assert (host["hops_computed"], host["hops_total"], host["hops_predicted"]) == (0, 2, 2)
    spread = host["spread"]
    # the configured model directory does not exist: independent draws stand in, and say so
    assert spread["rows"].startswith("independent normal draws from stored predictions, not joint")
    # 0.9 ± 0.3 eV against the 0.65 eV threshold: P(good) is near Φ(-0.83) ≈ 0.2, the channel hop limits always
    assert spread["mean_ev"] == pytest.approx(0.9, abs=0.1)
    assert spread["std_ev"] == pytest.approx(0.3, abs=0.08)
    assert 0.05 < spread["prob_good"] < 0.4
    assert spread["limiting_share"] == {hops[3.0]: 1.0}


def test_the_acquisitions_prediction_table_rows_are_used_when_given(campaign):
    from alem.acquisition import PredictionTable
    from alem.campaign.host_rows import HostRows

    config, hops = campaign
    # four member rows: the channel hop at 0.3..0.6 eV, the inter-channel hop far above
    members = np.array([[0.3, 3.0], [0.4, 3.1], [0.5, 2.9], [0.6, 3.0]])
    table = PredictionTable.from_members([hops[3.0], hops[4.7]], members)
    with Store.open(config.store_path) as store:
        host = host_summary(config, store, store.hosts()[0].id, rows=HostRows(table, "prediction table"))
    spread = host["spread"]
    assert spread["rows"] == "prediction table" and spread["n_rows"] == 4
    assert spread["mean_ev"] == pytest.approx(0.45)
    assert spread["prob_good"] == pytest.approx(1.0)


def test_a_train_fidelity_result_replaces_the_prediction_and_an_mlip_one_does_not(campaign, tmp_path):
    config, hops = campaign
    with Store.open(config.store_path) as store:
        _record_result(store, hops[3.0], 0.55, "vasp:GGA CI-NEB")
        _record_result(store, hops[4.7], 0.2, "mlip:CHGNet NEB")  # not a train fidelity: ignored
        host = host_summary(config, store, store.hosts()[0].id)
    assert host["percolation_barrier_ev"] == pytest.approx(0.55)
    assert (host["hops_computed"], host["hops_predicted"]) == (1, 1)
    paths = {p["hop_id"]: p for p in host["paths"]}
    assert paths[hops[3.0]]["source"].startswith("result dft")
    assert paths[hops[4.7]]["source"] == "model 1"
    # the computed channel hop is fixed at its result: every row percolates at 0.55 eV
    assert host["spread"]["std_ev"] == pytest.approx(0.0)
    assert host["prob_good"] == pytest.approx(1.0)

    result = CliRunner().invoke(app, ["hosts", "-C", str(config.campaign_dir)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "1D b" in result.output and hops[3.0] in result.output and "1/2" in result.output
    assert "order of magnitude" not in result.output  # the estimate is for `alem show`, not the table
    as_json = json.loads(CliRunner().invoke(app, ["hosts", "--json", "-C", str(config.campaign_dir)]).output)
    assert as_json[0]["limiting_hop"] == hops[3.0]
    shown = CliRunner().invoke(app, ["show", str(as_json[0]["host_id"]), "-C", str(config.campaign_dir)], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert "percolates 1D b at 0.550 eV" in shown.output and hops[4.7] in shown.output
    # 4 Li in the 291 Å³ olivine cell, 3.00 Å hops at 0.55 eV in 1D
    with Store.open(config.store_path) as store:
        volume_cm3 = store.host_structure(as_json[0]["host_id"]).volume * 1e-24
    expected = transport_estimate(0.55, 3.005, 1, 4 / volume_cm3, 300.0)
    assert as_json[0]["estimate"]["diffusivity_cm2_s"] == pytest.approx(expected.diffusivity_cm2_s, rel=1e-3)
    assert as_json[0]["estimate"]["conductivity_s_cm"] == pytest.approx(expected.conductivity_s_cm, rel=1e-3)
    assert "order of magnitude at 300 K" in shown.output
    missing = CliRunner().invoke(app, ["show", "99", "-C", str(config.campaign_dir)])
    assert missing.exit_code != 0 and "no host 99" in missing.output



def test_a_path_stored_under_another_host_lends_its_barrier(tmp_path):
    # a 2x1x1 supercell of LiCoO2 is a new host whose hops all match the first host's by signature,
    # so `candidates add` stores none of them; its network borrows the stored hop's barrier
    from pymatgen.core import Structure

    from alem.campaign import init_campaign

    doubled = Structure.from_file(PACKAGE_DATA / "hosts" / "LiCoO2_layered.cif")
    doubled.make_supercell([2, 1, 1])
    doubled.to(filename=str(tmp_path / "LiCoO2_x2.cif"))
    config = init_campaign(tmp_path / "campaign", backend="local")
    config.model.path = str(tmp_path / "no-model")  # barriers by hand below, none from a model
    config.save()
    files = [str(PACKAGE_DATA / "hosts" / "LiCoO2_layered.cif"), str(tmp_path / "LiCoO2_x2.cif")]
    added = CliRunner().invoke(app, ["candidates", "add", *files, "-C", str(config.campaign_dir)])
    assert added.exit_code == 0, added.output
    with Store.open(config.store_path) as store:
        (first, second) = store.hosts()
        (stored,) = store.hops()
        assert stored.host_id == first.id
        unscored = host_summary(config, store, second.id)
        assert (unscored["percolation_barrier_ev"], unscored["missing_paths"]) == (None, [stored.hop_id] * 2)
        version = store.add_model_version(str(config.campaign_dir / "hand-written-predictions"), {}, "sha256:test", 556)
        store.record_predictions(version, [stored.hop_id], [0.3], [0.05])
        host = host_summary(config, store, second.id)
        # a review page reads only its hosts' rows: the lent hop (another host's) is read too
        from alem.campaign.materials import campaign_hosts

        assert campaign_hosts(config, store, host_ids=[second.id]).analyses[second.id].summary == host
    assert (host["dimensionality"], host["directions"]) == (2, "ab")
    assert host["percolation_barrier_ev"] == pytest.approx(0.3)
    assert {p["hop_id"] for p in host["paths"]} == {stored.hop_id}
    assert {p["state"] for p in host["paths"]} == {"known"}
    # both paths are the one stored hop: each sample row gives them one value, so the network's
    # barrier is that value and the spread the prediction's own
    assert host["spread"]["std_ev"] == pytest.approx(0.05, abs=0.015)
    assert host["spread"]["mean_ev"] == pytest.approx(0.3, abs=0.02)


def test_hosts_review_and_report_read_the_models_joint_rows_once_per_model_version(tmp_path, replay_ensemble_dir, monkeypatch):
    # a real (tiny) ensemble: `alem hosts` predicts the host hops once, jointly, keeps the rows for
    # the model version, and the next call reads them back without loading the model
    import alem.campaign.model_versions as model_versions
    from alem.campaign import init_campaign
    from alem.campaign.host_rows import host_rows, rows_path
    from alem.campaign.score import posterior_table

    config = init_campaign(tmp_path / "campaign", backend="local")
    config.model.path = str(replay_ensemble_dir)
    config.save()
    files = [str(OLIVINE), str(PACKAGE_DATA / "hosts" / "LiCoO2_layered.cif")]
    added = CliRunner().invoke(app, ["candidates", "add", *files, "--max-hop-length", "5.0", "-C", str(config.campaign_dir)])
    assert added.exit_code == 0, added.output
    first = CliRunner().invoke(app, ["hosts", "--json", "-C", str(config.campaign_dir)])
    assert first.exit_code == 0, first.output
    hosts = {h["formula"]: h for h in json.loads(first.output)}
    olivine = hosts["LiFePO4"]
    assert olivine["spread"]["rows"] == "joint posterior rows of model 1, 256 draws"
    with Store.open(config.store_path) as store:
        assert rows_path(config, 1).exists()
        records = [r for r in store.hops() if r.host_id is not None]
        _, expected = posterior_table(model_versions.load_ensemble(replay_ensemble_dir), store.load_hops([r.hop_id for r in records]))
        # the stored predictions are the model's, for every host hop
        assert set(store.predictions(1)) == {r.hop_id for r in records}

        def no_loading(*args, **kwargs):
            raise AssertionError("the model was loaded although its rows are kept")

        monkeypatch.setattr(model_versions, "load_ensemble", no_loading)
        kept = host_rows(config, store)
    assert kept.table is not None and kept.table.hop_ids == expected.hop_ids
    np.testing.assert_allclose(kept.table.calibrated_members(), expected.calibrated_members(), atol=1e-9)
    # the olivine network solved on each joint row by hand gives the reported spread
    from alem.candidates.network import HopBarrier, host_network, percolation

    network = host_network(Structure.from_file(OLIVINE), "Li", 5.0)
    columns = {p["path_number"]: expected.index_of()[p["hop_id"]] for p in olivine["paths"]}
    by_row = [
        percolation(network, {n: HopBarrier(max(float(row[k]), 0.0), "row") for n, k in columns.items()}).barrier_ev
        for row in expected.calibrated_members()
    ]
    assert olivine["spread"]["mean_ev"] == pytest.approx(float(np.mean(by_row)), abs=1e-9)
    assert olivine["prob_good"] == pytest.approx(float(np.mean(np.array(by_row) < 0.65)))
    again = CliRunner().invoke(app, ["hosts", "--json", "-C", str(config.campaign_dir)])
    # read back, the rows give the same answers (to float rounding of the kept file)
    for before, after in zip(json.loads(first.output), json.loads(again.output)):
        assert after["spread"]["mean_ev"] == pytest.approx(before["spread"]["mean_ev"], abs=1e-9)
        assert (after["prob_good"], after["limiting_hop"]) == (before["prob_good"], before["limiting_hop"])

    # the review page: a proposed olivine hop says whether it limits its host and how far its label
    # could move the host's P(good): E|ΔP| over the same joint rows, checked by hand
    from alem.acquisition.materials import expected_prob_change
    from alem.report import write_report
    from alem.review.cards import review_cards
    from alem.review.neighbours import LiteratureIndex

    limiting = olivine["limiting_hop"]
    good = np.array(by_row) < 0.65
    with Store.open(config.store_path) as store:
        store.add_proposals(store.new_batch_id(), "materials", [ProposalInput(limiting, score=0.5, mean_ev=0.5, std_ev=0.1)], 1)
        (card,) = review_cards(store, config, index=LiteratureIndex.shipped(), k_neighbours=1)
    change = expected_prob_change(good, np.clip(expected.calibrated_members()[:, expected.index_of()[limiting]], 0, None))
    assert card.host_line.startswith(f"host {olivine['host_id']} LiFePO4: on the host's limiting path now")
    assert f"P(good) {olivine['prob_good']:.2f} by {change:.2f} (E|ΔP|" in card.host_line
    # the report: a hosts table and the plot of their percolation barriers
    page = write_report(config).read_text()
    assert "<h2>Hosts</h2>" in page and "<td>LiFePO4</td>" in page and "percolation barriers" in page
    assert "joint posterior rows of model 1" in page

    # each read command, in a fresh process, shows the kept rows without the model stack (torch,
    # PyG, BoTorch) or the enumeration libraries; a second review and report draw nothing (their
    # pictures are kept), so they load no plotting library either
    from tests._factories import HEAVY_MODULES, modules_loaded_by

    for args in (["status"], ["proposals"], ["hosts"], ["show", str(olivine["host_id"])], ["review"], ["report"]):
        assert modules_loaded_by(config.campaign_dir, *args) == {"exit": 0, "loaded": []}, args
    for args in (["review"], ["report"]):
        assert modules_loaded_by(config.campaign_dir, *args, watch=(*HEAVY_MODULES, "matplotlib.pyplot")) == {"exit": 0, "loaded": []}


def _three_hosts_with_a_model(tmp_path, model_dir):
    """Olivine, LiCoO2 and spinel added by `alem candidates add` to a campaign predicting with ``model_dir``."""
    from alem.campaign import init_campaign

    config = init_campaign(tmp_path / "campaign", backend="local")
    config.model.path = str(model_dir)
    config.save()
    files = [str(OLIVINE), str(PACKAGE_DATA / "hosts" / "LiCoO2_layered.cif"), str(PACKAGE_DATA / "hosts" / "LiMn2O4_spinel.cif")]
    added = CliRunner().invoke(app, ["candidates", "add", *files, "--max-hop-length", "5.0", "-C", str(config.campaign_dir)])
    assert added.exit_code == 0, added.output
    return config


def test_one_host_is_answered_from_its_own_rows_alone_and_as_the_whole_table_answers_it(tmp_path, replay_ensemble_dir, monkeypatch):
    # `alem show HOST_ID` and a review page's hosts read that host's hop records, network and
    # columns of the kept joint rows, not the campaign's: the answer is the whole table's
    from alem.campaign import host_rows as host_rows_module
    from alem.campaign.host_networks import analyse_hosts, host_paths
    from alem.campaign.materials import campaign_hosts
    from alem.store.records import HopRecord

    config = _three_hosts_with_a_model(tmp_path, replay_ensemble_dir)
    with Store.open(config.store_path) as store:
        whole = {host_id: a.summary for host_id, a in analyse_hosts(config, store).items()}  # computes and keeps the joint rows
        olivine = next(h for h in store.hosts() if h.formula == "LiFePO4").id
        own = {r.hop_id for r in store.hops(host_id=olivine)}
        assert len(own) < len(store.hops())
        decoded, networks_read, columns_read = [], [], []
        real_from_row, real_networks, real_read_rows = HopRecord.from_row.__func__, store.host_networks, host_rows_module.read_rows

        def counting_from_row(cls, row):
            if cls is HopRecord:
                decoded.append(row["hop_id"])
            return real_from_row(cls, row)

        def counting_networks(host_ids=None):
            networks_read.append(host_ids)
            return real_networks(host_ids)

        def counting_read_rows(path, hop_ids, *args, **kwargs):
            columns_read.append(list(hop_ids))
            return real_read_rows(path, hop_ids, *args, **kwargs)

        monkeypatch.setattr(HopRecord, "from_row", classmethod(counting_from_row))
        monkeypatch.setattr(store, "host_networks", counting_networks)
        monkeypatch.setattr(host_rows_module, "read_rows", counting_read_rows)
        alone = host_summary(config, store, olivine)
        assert set(decoded) <= own and networks_read == [[olivine]] and [set(c) for c in columns_read] == [own]
        assert alone == whole[olivine]
        decoded.clear()
        page = campaign_hosts(config, store, host_ids=[olivine])
        assert set(decoded) <= own and set(page.rows.index) == set(host_paths(config, store, olivine).row_hop_ids) == own
        assert page.analyses[olivine].summary == whole[olivine]
        # a lent hop without a host has no rows: the kept ones still serve, no model is loaded
        import alem.campaign.model_versions as model_versions

        def no_loading(*args, **kwargs):
            raise AssertionError("the model was loaded although its rows are kept")

        monkeypatch.setattr(model_versions, "load_current_model", no_loading)
        lent = host_rows_module.host_rows(config, store, hop_ids=[*own, "a-hop-without-a-host"])
        assert lent.table is not None and set(lent.index) == own


def test_kept_answers_refreshed_for_a_few_hosts_read_only_those_hosts_columns(tmp_path, replay_ensemble_dir, monkeypatch):
    # a proposal or a result makes a few hosts' kept answers stale: bringing them up to date reads
    # their hops' columns of the kept joint rows (at 10^5 hops the whole file is a gigabyte)
    from alem.campaign import host_rows as host_rows_module
    from alem.campaign.host_answers import kept_analyses
    from alem.campaign.host_networks import analyse_hosts

    config = _three_hosts_with_a_model(tmp_path, replay_ensemble_dir)
    with Store.open(config.store_path) as store:
        kept_analyses(config, store)  # every host analysed, its joint rows computed and kept
        olivine = next(h for h in store.hosts() if h.formula == "LiFePO4").id
        own = [r.hop_id for r in store.hops(host_id=olivine)]
        columns_read = []
        real_read_rows = host_rows_module.read_rows

        def counting_read_rows(path, hop_ids, *args, **kwargs):
            columns_read.append(set(hop_ids))
            return real_read_rows(path, hop_ids, *args, **kwargs)

        monkeypatch.setattr(host_rows_module, "read_rows", counting_read_rows)
        _record_result(store, own[0], 0.31, "vasp:GGA CI-NEB")
        refreshed = kept_analyses(config, store)
        assert columns_read == [set(own)]
        fresh = analyse_hosts(config, store)
        assert json.loads(json.dumps({h: a.summary for h, a in refreshed.items()})) == json.loads(
            json.dumps({h: a.summary for h, a in fresh.items()}))


def test_alem_propose_leaves_the_kept_host_answers_up_to_date(tmp_path, replay_ensemble_dir, monkeypatch):
    # outside the loop too, `alem hosts` after `alem propose` reads kept answers: analysing every
    # host of a screening campaign there took 36 s at 10^5 hops
    import alem.campaign.host_answers as host_answers

    config = _three_hosts_with_a_model(tmp_path, replay_ensemble_dir)
    proposed = CliRunner().invoke(app, ["propose", "--batch", "2", "-C", str(config.campaign_dir)])
    assert proposed.exit_code == 0, proposed.output
    analysed = []
    real = host_answers.analyses_and_signatures

    def spy(config, store, rows=None, host_ids=None):
        analysed.append(host_ids)
        return real(config, store, rows, host_ids)

    monkeypatch.setattr(host_answers, "analyses_and_signatures", spy)
    shown = CliRunner().invoke(app, ["hosts", "-C", str(config.campaign_dir)])
    assert shown.exit_code == 0, shown.output
    assert analysed == [] and "refreshing" not in shown.output
