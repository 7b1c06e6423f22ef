"""Hop enumeration on small hosts built with pymatgen (real pymatgen-analysis-diffusion)."""

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from alem.candidates import EnumerationSettings, HostError, enumerate_hops, hop_signature, read_host
from alem.candidates.prototypes import PROTOTYPES, antifluorite_li2o, layered_licoo2, shipped_host_files
from alem.candidates.supercell import choose_supercell_matrix, hop_is_unambiguous, shortest_lattice_vector_a
from alem.hops import check_hop

SMALL = EnumerationSettings(max_hop_length_a=4.0, min_image_distance_a=4.5, max_atoms=32)


def test_li2o_has_four_distinct_hops_within_4_angstrom_with_valid_endpoints():
    hops = enumerate_hops(antifluorite_li2o(), "Li", "Li2O", EnumerationSettings(max_hop_length_a=4.0))
    # antifluorite Li sublattice is simple cubic (a/2 = 2.305 Å): NN 2.31, 2nd 3.26 and two
    # symmetry-distinct 3.99 Å hops (through the empty cube centre and past an O).
    assert [h.hop_length_a for h in hops] == pytest.approx([2.305, 3.26, 3.992, 3.992], abs=2e-3)
    for hop in hops:
        check_hop(hop)
        assert hop.initial[0].specie.symbol == "Li" and hop.final[0].specie.symbol == "Li"
        assert [s.specie for s in hop.initial] == [s.specie for s in hop.final]
        # only site 0 differs between the endpoints
        np.testing.assert_allclose(hop.initial.frac_coords[1:], hop.final.frac_coords[1:], atol=1e-8)
        assert shortest_lattice_vector_a(hop.initial.lattice) >= 8.0 - 1e-6
        # one Li left the full host: a vacancy-mode supercell
        assert hop.initial.composition["Li"] == 2 * hop.initial.composition["O"] - 1
    assert len({hop_signature(h) for h in hops}) == 4


def test_small_cells_drop_hops_that_would_be_ambiguous_and_say_why():
    problems: list[str] = []
    hops = enumerate_hops(antifluorite_li2o(), "Li", "Li2O", SMALL, problems)
    assert [h.n_sites for h in hops] == [23]
    assert len(problems) == 3 and all("no supercell of at most 32 atoms" in p for p in problems)


def test_signature_ignores_supercell_and_direction():
    small = enumerate_hops(layered_licoo2(), "Li", "LiCoO2", SMALL)[0]
    large = enumerate_hops(layered_licoo2(), "Li", "LiCoO2", EnumerationSettings(max_hop_length_a=4.0))[0]
    assert small.n_sites < large.n_sites
    assert hop_signature(small) == hop_signature(large)
    reversed_hop = type(small)("rev", small.final, small.initial, "Li")
    assert hop_signature(reversed_hop) == hop_signature(small)


def test_supercell_rule_keeps_hop_unambiguous():
    host = layered_licoo2()
    hop_vector = host.lattice.matrix[0] - host.lattice.matrix[1]  # the 2.82 Å in-plane Li-Li hop
    matrix, which = choose_supercell_matrix(host, 4.5, 64, [hop_vector])
    assert which == 0
    lattice = Lattice(matrix @ host.lattice.matrix)
    assert hop_is_unambiguous(lattice, hop_vector)
    assert not hop_is_unambiguous(Lattice(np.diag([2, 2, 1]) @ host.lattice.matrix), hop_vector)


def test_shipped_hosts_are_the_prototypes_and_the_demo_ones_fit_small_cells():
    files = {p.stem: p for p in shipped_host_files()}
    assert set(files) == set(PROTOTYPES)
    for name, build in PROTOTYPES.items():
        assert read_host(files[name], "Li").matches(build())
    from alem.demo import DEMO_ENUMERATION, DEMO_HOSTS

    found = {}
    for name in DEMO_HOSTS:
        hops = enumerate_hops(read_host(files[name], "Li"), "Li", name, DEMO_ENUMERATION)
        found[name] = [(round(h.hop_length_a, 3), h.n_sites) for h in hops]
    # what the docs promise for the demo (getting started): one hop each, NEB cells of 23-27 atoms
    assert found == {
        "LiCoO2_layered": [(2.82, 23)],       # in-plane Li-Li
        "Li2O_antifluorite": [(2.305, 23)],   # a/2 along the simple-cubic Li sublattice
        "LiMn2O4_spinel": [(3.568, 27)],      # 8a -> 8a through the empty 16c site
        "LiF_rocksalt": [(2.85, 23)],         # a/sqrt(2)
        "Li2S_antifluorite": [(2.86, 23)],
    }


def test_bad_hosts_get_one_clear_message(tmp_path: Path):
    no_li = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    no_li.to(filename=str(tmp_path / "NaCl.cif"))
    with pytest.raises(HostError, match=r"NaCl.cif: host contains no Li \(elements: Cl, Na\)"):
        read_host(tmp_path / "NaCl.cif", "Li")

    disordered = Structure(Lattice.cubic(4.0), [{"Li": 0.5, "Na": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    disordered.to(filename=str(tmp_path / "dis.json"))
    with pytest.raises(HostError, match="dis.json: disordered"):
        read_host(tmp_path / "dis.json", "Li")

    (tmp_path / "junk.cif").write_text("this is not a CIF\n")
    with pytest.raises(HostError, match="junk.cif: not a readable structure file"):
        read_host(tmp_path / "junk.cif", "Li")

    with pytest.raises(HostError, match="missing.cif: file not found"):
        read_host(tmp_path / "missing.cif", "Li")

    overlapping = Structure(Lattice.cubic(4.0), ["Li", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.55, 0.5, 0.5]])
    overlapping.to(filename=str(tmp_path / "overlap.json"))
    with pytest.raises(HostError, match=r"overlap.json: overlapping atoms: sites 1 and 2 are 0.200 Å apart \(minimum 0.5 Å\)"):
        read_host(tmp_path / "overlap.json", "Li")

    isolated = Structure(Lattice.cubic(6.0), ["Li", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(HostError, match=r"iso: no Li hop shorter than 2.00 Å"):
        enumerate_hops(isolated, "Li", "iso", EnumerationSettings(max_hop_length_a=2.0))


@pytest.mark.parametrize("name", ["Li2O_antifluorite", "LiCoO2_layered", "LiFePO4_olivine"])
def test_endpoints_from_one_supercell_are_pymatgens_to_the_bit(name):
    """``supercell_endpoints`` (one supercell per host and matrix, the two sites found at once) gives
    the structures of pymatgen-analysis-diffusion's ``get_start_end_structures`` followed by
    ``endpoints_in_convention``, to the bit, for every path of the host."""
    from pymatgen.analysis.diffusion.utils.supercells import get_start_end_structures

    from alem.candidates.enumerate import _HostFacts, endpoints_in_convention, find_distinct_paths, supercell_endpoints

    host = read_host(next(p for p in shipped_host_files() if p.stem == name), "Li")
    settings = EnumerationSettings(max_hop_length_a=4.0)
    _, paths = find_distinct_paths(host, "Li", settings)
    shared = _HostFacts.of(paths[0], host, settings)
    compared = 0
    for path in paths:
        for matrix in shared.supercells[:2]:
            start, end, _ = get_start_end_structures(path.isite, path.esite, shared.base, matrix.tolist(), vac_mode=True)
            theirs = endpoints_in_convention(start, end, "Li")
            mine = supercell_endpoints(path.isite, path.esite, shared.supercell(matrix), matrix, "Li")
            for a, b in zip(mine, theirs):
                assert a.lattice.matrix.tobytes() == b.lattice.matrix.tobytes()
                assert a.frac_coords.tobytes() == b.frac_coords.tobytes() and a.species == b.species
            compared += 1
    assert compared >= len(paths)
