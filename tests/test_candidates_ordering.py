"""Ordered stand-ins of a partially occupied host (alem.candidates.ordering), on Li0.5CoO2: the
shipped LiCoO2 with its Li layer half occupied."""

from __future__ import annotations

import warnings

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from alem import PACKAGE_DATA
from alem.candidates import enumerate_hops
from alem.candidates.hosts import HostError
from alem.candidates.ordering import disordered_sites, order_host


def _half_lithiated(supercell=(1, 1, 1)) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        host = Structure.from_file(PACKAGE_DATA / "hosts" / "LiCoO2_layered.cif")
    host.make_supercell(list(supercell))
    host.replace_species({"Li": {"Li": 0.5}})
    return host


def test_the_lowest_ewald_orderings_are_distinct_ordered_hosts_with_provenance():
    # 4 Li sites, half occupied: 6 placements of 2 Li, 2 of them distinct by symmetry
    orderings = order_host(_half_lithiated((2, 2, 1)), n_orderings=3, source="Li0.5CoO2.cif")
    assert [o.rank for o in orderings] == [1, 2]
    assert orderings[0].ewald_energy_ev < orderings[1].ewald_energy_ev
    assert not StructureMatcher().fit(orderings[0].structure, orderings[1].structure)
    for ordering in orderings:
        assert ordering.structure.is_ordered
        assert ordering.structure.composition.reduced_formula == "Li(CoO2)2"
        assert ordering.provenance["ordered_from"] == "Li0.5CoO2.cif" and ordering.supercell == (1, 1, 1)
    # an ordering is an ordinary host: its hops enumerate
    assert enumerate_hops(orderings[0].structure, "Li", "Li0.5CoO2-o1")


def test_a_cell_with_a_half_occupied_single_site_is_doubled():
    (ordering,) = order_host(_half_lithiated(), n_orderings=3)
    assert sorted(ordering.supercell) == [1, 1, 2]
    assert ordering.structure.composition["Li"] == 1


def test_a_host_that_cannot_be_ordered_is_refused_with_its_sites_and_the_way_by_hand():
    host = _half_lithiated((2, 2, 1))
    assert disordered_sites(host) == "sites 0-3 (Li 0.5)"
    with pytest.raises(HostError, match=r"x\.cif: disordered sites 0-3 \(Li 0\.5\): no supercell of at most 10 atoms .* by hand"):
        order_host(host, max_atoms=10, source="x.cif")
    odd = _half_lithiated()
    odd.replace_species({"Li": {"Li": 0.37 / 0.5}})
    with pytest.raises(HostError, match=r"sites 0 \(Li 0\.37\): no supercell of at most 160 atoms"):
        order_host(odd)


def test_candidates_add_refuses_a_disordered_host_or_adds_its_orderings(tmp_path):
    from typer.testing import CliRunner

    from alem.campaign import init_campaign
    from alem.cli import app
    from alem.store import Store

    _half_lithiated((2, 2, 1)).to(filename=str(tmp_path / "Li05CoO2.cif"))
    config = init_campaign(tmp_path / "campaign", backend="local")
    refused = CliRunner().invoke(app, ["candidates", "add", str(tmp_path / "Li05CoO2.cif"), "-C", str(config.campaign_dir)])
    assert refused.exit_code == 1 and "--orderings K" in " ".join(refused.output.split())
    added = CliRunner().invoke(
        app, ["candidates", "add", str(tmp_path / "Li05CoO2.cif"), "--orderings", "2", "-C", str(config.campaign_dir)]
    )
    assert added.exit_code == 0, added.output
    with Store.open(config.store_path) as store:
        hosts = store.hosts()
        assert [h.name for h in hosts] == ["Li05CoO2-order1", "Li05CoO2-order2"]
        provenance = [store.host_structure(h.id).properties["alem_ordering"] for h in hosts]
        assert [p["rank"] for p in provenance] == [1, 2] and provenance[0]["ewald_energy_ev"] < provenance[1]["ewald_energy_ev"]
        assert all(store.host_structure(h.id).is_ordered for h in hosts)
        assert store.hops(host_id=hosts[0].id)  # the first ordering's hops are candidates
    # the same call again: the disordered file was enumerated with these settings, so it is not
    # enumerated (or stored) a second time, and the earlier run is named
    again = CliRunner().invoke(
        app, ["candidates", "add", str(tmp_path / "Li05CoO2.cif"), "--orderings", "2", "-C", str(config.campaign_dir)]
    )
    assert again.exit_code == 0, again.output
    assert "already enumerated" in " ".join(again.output.split()) and "Li05CoO2" in again.output
    with Store.open(config.store_path) as store:
        assert [h.name for h in store.hosts()] == ["Li05CoO2-order1", "Li05CoO2-order2"]
