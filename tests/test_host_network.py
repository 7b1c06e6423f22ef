"""A host's periodic migration network (alem.candidates.network): known answers on real hosts.

Layered LiCoO2 conducts Li in its layers (2D), antifluorite Li2O and spinel LiMn2O4 in three
dimensions, olivine LiFePO4 along its [010] channels only (1D along b, with the literature barriers
of tests/data/olivine_LiFePO4_barriers.json). The site-energy rule is checked on a small network
written by hand, where the answer can be worked out on paper.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from alem import PACKAGE_DATA
from alem.candidates.hosts import read_host
from alem.candidates.network import (
    ENERGY_TOLERANCE_EV,
    HopBarrier,
    HostNetwork,
    NetworkEdge,
    Percolator,
    _components,
    _directions,
    host_network,
    percolation,
    percolation_spread,
    site_energies,
    transport_estimate,
)

HOSTS = PACKAGE_DATA / "hosts"
OLIVINE = Path(__file__).parent / "data" / "olivine_LiFePO4_barriers.json"


def _network(name: str, max_hop_length_a: float | None = None) -> HostNetwork:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return host_network(read_host(HOSTS / f"{name}.cif", "Li"), "Li", max_hop_length_a)


@pytest.mark.parametrize(
    ("name", "barrier_ev", "dimensionality", "directions"),
    [
        ("LiCoO2_layered", 0.30, 2, "ab"),  # in-plane divacancy hop, Van der Ven & Ceder 2000
        ("Li2O_antifluorite", 0.30, 3, "abc"),  # vacancy hop along <100>
        ("LiMn2O4_spinel", 0.40, 3, "abc"),  # 8a-16c-8a hop of the diamond network
    ],
)
def test_shipped_hosts_percolate_in_their_known_dimensions(name, barrier_ev, dimensionality, directions):
    network = _network(name)
    barriers = {n: HopBarrier(barrier_ev, "literature") for n in network.path_lengths_a}
    result = percolation(network, barriers)
    assert (result.dimensionality, result.directions) == (dimensionality, directions)
    assert result.barrier_ev == pytest.approx(barrier_ev)
    assert result.limiting_path == 1


def test_every_symmetry_copy_of_a_hop_is_an_edge():
    # the shipped LiCoO2 cell holds one Li with 6 in-plane neighbours (its own images), so the
    # cell holds 6 / 2 = 3 edges, all copies of the one distinct path, along a, b and a − b
    network = _network("LiCoO2_layered")
    assert sorted(e.image for e in network.edges) == [(0, 1, 0), (1, -1, 0), (1, 0, 0)]
    assert {e.path_number for e in network.edges} == {1}


def test_olivine_is_one_dimensional_along_b_with_its_literature_barriers():
    fixture = json.loads(OLIVINE.read_text())
    network = _network("LiFePO4_olivine", max_hop_length_a=5.0)
    barriers = {}
    for path in fixture["paths"]:
        number = next(n for n, length in network.path_lengths_a.items() if abs(length - path["hop_length_a"]) < 0.02)
        barriers[number] = HopBarrier(path["barrier_ev"], "literature")
    assert len(barriers) == len(network.path_lengths_a) == 2
    result = percolation(network, barriers)
    answer = fixture["answer"]
    assert (result.dimensionality, result.directions) == (answer["dimensionality"], answer["directions"])
    assert result.barrier_ev == pytest.approx(answer["percolation_barrier_ev"])
    assert network.path_lengths_a[result.limiting_path] == pytest.approx(3.01, abs=0.02)
    # one slow hop off the network does not spoil it; a slow channel hop does, and then the
    # inter-channel hop alone carries Li along c
    barriers[result.limiting_path] = HopBarrier(5.0, "test")
    blocked = percolation(network, barriers)
    assert (blocked.dimensionality, blocked.directions, blocked.barrier_ev) == (1, "c", pytest.approx(2.89))


def test_a_host_whose_hops_do_not_percolate_says_so():
    # two Li 2.5 Å apart in a 10 Å box: one hop, no path to a periodic image within the cutoff
    host = Structure(Lattice.cubic(10.0), ["Li", "Li", "O"], [[0, 0, 0], [0.25, 0, 0], [0.5, 0.5, 0.5]])
    network = host_network(host, "Li", max_hop_length_a=3.0)
    result = percolation(network, {n: HopBarrier(0.2, "test") for n in network.path_lengths_a})
    assert result.barrier_ev is None
    assert (result.dimensionality, result.directions, result.limiting_path) == (0, "", None)


def test_a_hop_without_a_barrier_is_reported_missing():
    network = _network("LiFePO4_olivine", max_hop_length_a=5.0)
    result = percolation(network, {2: HopBarrier(2.89, "literature")})
    assert result.missing_paths == (1,)
    assert (result.directions, result.barrier_ev) == ("c", pytest.approx(2.89))


def _chain() -> HostNetwork:
    """A 1D chain along a of alternating sites A (class 0) and B (class 1), plus a deep trap C
    (class 2) hanging off A."""
    return HostNetwork(
        working_ion="Li",
        cutoff_a=3.0,
        site_classes=(0, 1, 2),
        path_classes={1: (0, 1), 2: (1, 0), 3: (0, 2)},
        path_lengths_a={1: 2.0, 2: 2.0, 3: 2.5},
        edges=(NetworkEdge(0, 1, (0, 0, 0), 1, 2.0), NetworkEdge(1, 0, (1, 0, 0), 2, 2.0), NetworkEdge(0, 2, (0, 0, 0), 3, 2.5)),
    )


def test_site_energy_differences_set_the_saddles():
    # A→B costs 0.30 eV and B lies 0.20 eV above A; B→A' costs 0.25 eV from B, so its saddle is
    # 0.45 eV above A: the network's barrier, set by path 2. The trap C lies 1 eV below A (an easy
    # 0.1 eV hop in, 1.1 eV out); it is a dead end, the chain need not visit it, so it does not
    # count (counted, the barrier would read 1.45 eV).
    barriers = {
        1: HopBarrier(0.30, "dft", site_energy_change_ev=0.20),
        2: HopBarrier(0.25, "model"),
        3: HopBarrier(0.1, "model", site_energy_change_ev=-1.0),
    }
    result = percolation(_chain(), barriers)
    assert result.site_energies_ev == {0: 0.0, 1: pytest.approx(0.20), 2: pytest.approx(-1.0)}
    assert result.barrier_ev == pytest.approx(0.45)
    assert (result.limiting_path, result.dimensionality, result.directions) == (2, 1, "a")


def test_the_spread_over_sample_rows_counts_limiting_hops_and_good_rows():
    # olivine, inter-channel hop computed (fixed at 2.89 eV), channel hop sampled: in two rows of
    # four it is fast (network 1D b), in one slower than the fixed hop (1D c at 2.89 eV), and in one
    # it lies just above the good threshold
    network = _network("LiFePO4_olivine", max_hop_length_a=5.0)
    channel = next(n for n, length in network.path_lengths_a.items() if length < 3.1)
    other = next(n for n in network.path_lengths_a if n != channel)
    rows = np.array([[0.3], [0.5], [0.7], [4.0]])
    spread = percolation_spread(network, {other: HopBarrier(2.89, "result")}, (channel,), rows, good_barrier_ev=0.65)
    assert spread.prob_good == pytest.approx(0.5)
    assert spread.limiting_share == {channel: 0.75, other: 0.25}
    assert spread.mean_ev == pytest.approx(np.mean([0.3, 0.5, 0.7, 2.89]))
    assert spread.std_ev == pytest.approx(np.std([0.3, 0.5, 0.7, 2.89], ddof=1))
    assert spread.no_percolation_share == 0.0


def _rule_by_the_letter(solver: Percolator, saddles: dict[int, float]) -> tuple:
    """The percolation rule as the module states it, nothing skipped and nothing kept: every site
    energy floor, every saddle level, every network of the hops open at that level."""
    best = None
    for floor in solver.floors:
        allowed = solver.site_energy >= floor - ENERGY_TOLERANCE_EV
        for level in sorted(set(saddles.values())):
            edges = [
                e for e in solver.network.edges
                if saddles.get(e.path_number, np.inf) <= level + ENERGY_TOLERANCE_EV and allowed[e.start] and allowed[e.end]
            ]
            for members, translations in _components(len(solver.site_energy), edges):
                if not translations:
                    continue
                used = list(dict.fromkeys(e.path_number for e in edges if e.start in members))
                top = max(used, key=lambda n: saddles[n])
                barrier = saddles[top] - float(solver.site_energy[sorted(members)].min())
                rank = int(np.linalg.matrix_rank(np.array(translations, dtype=float)))
                if best is None or barrier < best[0] - ENERGY_TOLERANCE_EV or (
                    abs(barrier - best[0]) <= ENERGY_TOLERANCE_EV and rank > best[1]
                ):
                    best = (barrier, rank, _directions(list(translations), rank), top)
    return (None, 0, "", None) if best is None else best


def _rattled(name: str, supercell: tuple[int, int, int]) -> HostNetwork:
    """A shipped host in a supercell with every atom moved ~0.15 Å: no symmetry left, so every
    site is its own class and every hop its own path (many levels, many floors)."""
    host = read_host(HOSTS / f"{name}.cif", "Li")
    host.make_supercell(supercell)
    rng = np.random.default_rng(0)
    for i in range(len(host)):
        host.translate_sites([i], rng.normal(0.0, 0.15, 3), frac_coords=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return host_network(host, "Li")


def _with_results(network: HostNetwork, paths: list[int], changes: bool, two: bool) -> tuple[dict, Percolator]:
    """The first path computed (and the third, ``two``), with site-energy changes or without."""
    fixed = {paths[0]: HopBarrier(0.4, "result", site_energy_change_ev=0.15 if changes else None)}
    if two and changes and len(paths) > 2:
        fixed[paths[2]] = HopBarrier(0.6, "result", site_energy_change_ev=-0.1)
    return fixed, Percolator(network, site_energies(network, fixed))


#: Real networks, with symmetry (few paths, one site class) and rattled (every hop its own path, many floors).
REAL_NETWORKS = [
    pytest.param(lambda: _network("LiCoO2_layered", 5.0), id="LiCoO2"),
    pytest.param(lambda: _network("LiMn2O4_spinel", 4.0), id="LiMn2O4"),
    pytest.param(lambda: _network("LiFePO4_olivine", 5.0), id="LiFePO4"),
    pytest.param(lambda: _rattled("Li2O_antifluorite", (2, 1, 1)), id="Li2O-rattled"),
    pytest.param(lambda: _rattled("Li3N_alpha", (1, 1, 2)), id="Li3N-rattled"),
]


@pytest.mark.parametrize("network", REAL_NETWORKS)
def test_the_fast_solve_answers_as_the_rule_by_the_letter(network):
    # the solver skips the levels below the first percolating one (found by union-find), stops at
    # the first level that cannot win and keeps networks between rows: on real hosts, with and
    # without site-energy differences, with barriers on a coarse grid (ties) and continuous, a
    # path sometimes without a barrier, each row must get exactly the rule's answer
    network = network()
    paths = sorted(network.path_lengths_a)
    rng = np.random.default_rng(1)
    for changes in (False, True):
        fixed, solver = _with_results(network, paths, changes, two=True)
        for row in range(150):
            barriers = rng.choice([0.2, 0.3, 0.5], size=len(paths)) if row % 2 else rng.uniform(0.1, 1.5, len(paths))
            saddles = solver.saddles({n: HopBarrier(float(b), "model") for n, b in zip(paths, barriers)})
            if row % 5 == 0:
                saddles.pop(paths[-1])
            assert solver.solve(saddles) == _rule_by_the_letter(solver, saddles), (changes, row)


def test_the_transport_estimate_is_the_random_walk_and_nernst_einstein_by_hand():
    # 0.3 eV, 3 Å hops on a 1D network, 1e22 ions/cm³ at 300 K (kT = 0.025852 eV):
    # D = (3e-8 cm)² · 1e13 Hz · exp(−11.6045) / 2 = 4.10e-8 cm²/s; σ = n e D / (kT/e) = 2.54e-3 S/cm
    estimate = transport_estimate(0.3, 3.0, 1, 1e22, temperature_k=300.0)
    assert estimate.diffusivity_cm2_s == pytest.approx(4.10e-8, rel=0.01)
    assert estimate.conductivity_s_cm == pytest.approx(2.54e-3, rel=0.01)
    # three dimensions share the same hops over three axes: D a third of 1D's
    assert transport_estimate(0.3, 3.0, 3, 1e22).diffusivity_cm2_s == pytest.approx(estimate.diffusivity_cm2_s / 3)


def test_the_cutoff_widens_to_the_longest_stored_hop():
    # pymatgen's cutoff for LiCoO2 keeps the 2.82 Å in-plane hop; a campaign that stored a 4.88 Å
    # hop (enumerated with --max-hop-length) needs that path on the network too
    host = read_host(HOSTS / "LiCoO2_layered.cif", "Li")
    assert sorted(round(x, 2) for x in host_network(host, "Li").path_lengths_a.values()) == [2.82]
    widened = host_network(host, "Li", at_least_a=4.89)
    assert sorted(round(x, 2) for x in widened.path_lengths_a.values()) == [2.82, 4.88]


def test_candidates_add_warns_about_a_host_whose_hops_cannot_percolate(tmp_path):
    # Li pairs 2.45 Å apart, 4.55 Å from the next pair: within a 3 Å cutoff each pair is an island
    from pymatgen.core import Lattice, Structure
    from typer.testing import CliRunner

    from alem.campaign import init_campaign
    from alem.cli import app

    dimers = Structure(Lattice.cubic(7.0), ["Li", "Li", "O", "O"], [[0, 0, 0], [0.35, 0, 0], [0.175, 0.5, 0.5], [0.675, 0.5, 0.5]])
    dimers.to(filename=str(tmp_path / "dimers.cif"))
    config = init_campaign(tmp_path / "campaign", backend="local")
    args = ["candidates", "add", str(tmp_path / "dimers.cif"), str(HOSTS / "LiCoO2_layered.cif"), "-C", str(config.campaign_dir)]
    added = CliRunner().invoke(app, [*args, "--max-hop-length", "3.0"])
    assert added.exit_code == 0, added.output
    text = " ".join(added.output.split())
    assert "no percolation dimers: no network of its Li hops up to 3.00 Å reaches a site's periodic image" in text
    assert "no percolation LiCoO2" not in text  # its in-plane hops make a 2D network


@pytest.mark.parametrize("name", ["LiFePO4_olivine", "Li2O_antifluorite"])  # Li2O: two distinct paths of one length
def test_edges_matched_to_paths_by_symmetry_alone_match_pymatgens_equality(name, monkeypatch):
    """The graph's and the finder's symmetrized structures are compared once per host, then each
    edge is matched by the symmetry test alone: the same network as ``MigrationHop.__eq__`` per pair."""
    from alem.candidates import network as network_module

    fast = _network(name, 4.5)
    real = network_module._matching_path
    monkeypatch.setattr(network_module, "_matching_path", lambda hop, paths, formula, known_same_structure=False:
                        real(hop, paths, formula, False))
    assert _network(name, 4.5) == fast


@pytest.mark.parametrize("network", REAL_NETWORKS)
def test_rows_solved_together_answer_as_each_row_solved_alone(network):
    # `alem hosts` solves a host's posterior rows together when its sites share one energy floor:
    # each row must get exactly solve's barrier and limiting path, with ties (a coarse grid, two
    # paths with one value), a path without a barrier, a fixed path, and several floors (solved
    # row by row)
    network = network()
    paths = sorted(network.path_lengths_a)
    rng = np.random.default_rng(2)
    for changes in (False, True):
        fixed, solver = _with_results(network, paths, changes, two=False)
        sampled = tuple(paths[1:-1]) if len(paths) > 2 else tuple(paths[1:])
        start = np.array([solver.start_energy[n] for n in sampled])
        for grid in (False, True):
            rows = rng.choice([0.2, 0.3, 0.4, 0.5], size=(64, len(sampled))) if grid else rng.uniform(0.1, 1.5, (64, len(sampled)))
            if len(sampled) > 1:
                rows[::3, 1] = rows[::3, 0]  # two paths with one value (one stored hop)
            saddles = start[None, :] + rows
            barriers, limiting = solver.solve_rows(solver.saddles(fixed), sampled, saddles)
            for k in range(len(rows)):
                alone = solver.solve({**solver.saddles(fixed), **dict(zip(sampled, saddles[k].tolist()))})
                expected = (np.nan, 0) if alone[0] is None else (alone[0], alone[3])
                np.testing.assert_equal((barriers[k], limiting[k]), expected, err_msg=f"{changes} {grid} row {k}")
