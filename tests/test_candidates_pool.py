"""`alem candidates add`: hosts to stored candidates, without hops the campaign already knows."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from alem.candidates import EnumerationSettings, enumerate_hops
from alem.candidates.pool import SIGNATURE_KEY, add_candidates
from alem.candidates.prototypes import antifluorite_li2o, layered_licoo2
from alem.cli import app
from alem.store import Store

runner = CliRunner()
SMALL = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)


@pytest.fixture
def campaign(tmp_path):
    from alem.campaign import init_campaign

    return init_campaign(tmp_path / "c")


def test_hosts_become_candidates_once(tmp_path, campaign):
    cif = tmp_path / "Li2O.cif"
    antifluorite_li2o().to(filename=str(cif))
    with Store.open(campaign.store_path) as store:
        first = add_candidates(store, [cif], "Li", EnumerationSettings(max_hop_length_a=4.0), dataset_hops=[])
        assert first.added == ["Li2O-p1", "Li2O-p2", "Li2O-p3", "Li2O-p4"]
        records = store.hops()
        assert all(r.state.value == "candidate" and SIGNATURE_KEY in r.metadata for r in records)
        assert store.hosts()[0].name == "Li2O"
        # the same host again, even in smaller cells: every hop is already known
        second = add_candidates(store, [cif], "Li", SMALL, dataset_hops=[])
        assert second.added == [] and second.n_known == 1
        assert len(store.hops()) == 4


def test_hops_already_in_the_dataset_are_dropped(tmp_path, campaign):
    poscar = tmp_path / "POSCAR"
    layered_licoo2().to(filename=str(poscar), fmt="poscar")
    # the dataset holds the same hop, built in a much larger supercell and with a barrier
    published = enumerate_hops(layered_licoo2(), "Li", "LiCoO2", EnumerationSettings(max_hop_length_a=4.0))[0]
    published.barrier_ev = 0.4
    with Store.open(campaign.store_path) as store:
        report = add_candidates(store, [poscar], "Li", SMALL, dataset_hops=[published])
        assert report.added == [] and report.hosts[0].known == ["POSCAR-p1"]
        assert store.hops() == []


def test_cli_adds_candidates_and_refuses_bad_hosts_without_writing(tmp_path, campaign):
    good = tmp_path / "LiCoO2.json"
    good.write_text(layered_licoo2().to_json())
    no_li = tmp_path / "NaCl.cif"
    Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(no_li))
    args = ["--max-hop-length", "4", "--min-image-distance", "4.5", "--max-atoms", "32", "--campaign", str(campaign.campaign_dir)]

    bad = runner.invoke(app, ["candidates", "add", str(good), str(no_li), "--strict", *args])
    assert bad.exit_code == 1
    assert "NaCl.cif: host contains no Li" in bad.output and "nothing was added" in bad.output
    with Store.open(campaign.store_path) as store:
        assert store.hops() == [] and store.hosts() == []

    ok = runner.invoke(app, ["candidates", "add", str(good), *args])
    assert ok.exit_code == 0, ok.output
    assert "1 candidate hops stored" in ok.output
    with Store.open(campaign.store_path) as store:
        (record,) = store.hops()
        assert record.hop_id == "LiCoO2-p1" and record.n_sites == 23 and record.hop_length_a == pytest.approx(2.82)

    far = runner.invoke(app, ["candidates", "add", str(good), "--max-hop-length", "1.5", "--campaign", str(campaign.campaign_dir)])
    assert far.exit_code == 1 and "no Li hop shorter than 1.50 Å" in far.output


def test_a_host_of_the_shipped_dataset_gives_no_new_candidate(tmp_path, campaign):
    """The real shipped dataset, not a hand-made one: the host of dataset hop em-0088 (Ca in
    CaFe4(SO4)6), rebuilt by filling the vacancy and reduced to its primitive cell, enumerates to
    the very hop the model was trained on, which `candidates add` then drops."""
    from alem.hops import load_training_hops

    (published,) = [h for h in load_training_hops() if h.hop_id == "em-0088"]
    host = published.initial.copy()
    host.append(published.working_ion, published.final[0].frac_coords)
    host_file = tmp_path / "CaFe4S6O24.json"
    host_file.write_text(host.get_primitive_structure().to_json())
    args = ["--ion", "Ca", "--max-hop-length", "3.5", "--campaign", str(campaign.campaign_dir)]

    result = runner.invoke(app, ["candidates", "add", str(host_file), *args])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "0 candidate hops stored from 1 host(s) (1 already in the dataset or store)" in said
    with Store.open(campaign.store_path) as store:
        assert store.hops() == []
        # without the dataset the same host does give that hop: the dataset is what dropped it
        report = add_candidates(store, [host_file], "Ca", EnumerationSettings(max_hop_length_a=3.5), dataset_hops=[])
        (record,) = store.hops()
    assert report.added == [record.hop_id]
    assert record.hop_length_a == pytest.approx(published.hop_length_a, abs=1e-3)
