"""Hop graphs: invariances, periodic images, path awareness."""

import numpy as np
import pytest
import torch

from alem.graphs import GraphSettings, crystal_graph, hop_graph
from alem.graphs.neighbors import periodic_neighbors
from tests._factories import rocksalt_hop

SETTINGS = GraphSettings()


def _edge_set(graph):
    """Multiset of (sender Z, receiver Z, rounded distance) for host edges, and for path edges
    (sender Z, image index, rounded distance): what the network sees, independent of site order."""
    z = graph.z.numpy()
    host = sorted(zip(z[graph.edge_index[0]], z[graph.edge_index[1]], np.round(graph.edge_dist.numpy(), 4)))
    path = sorted(zip(z[graph.path_edge_index[0]], graph.path_edge_index[1].numpy(), np.round(graph.path_dist.numpy(), 4)))
    return host, path


def _simple_cubic(a: float = 3.0):
    """Four sites of a simple cubic crystal (2x2x1 cell): 6 neighbours at a, 12 at a√2, 8 at a√3."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.orthorhombic(2 * a, 2 * a, a), ["Li"] * 4,
                     [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0.5, 0.5, 0]])


def _neighbor_counts(structure, k: int, cutoff_a: float = 5.0):
    cart = structure.cart_coords
    centers, _, dist = periodic_neighbors(cart, cart, structure.lattice.matrix, cutoff_a, k, exclude_self=True)
    return np.bincount(centers, minlength=len(structure)), dist


def test_neighbors_keep_every_tie_at_the_kth_neighbour():
    crystal = _simple_cubic()
    # k falls inside the first shell (6 at 3 Å): the whole shell is kept, nothing beyond it
    for k in (1, 3, 6):
        counts, dist = _neighbor_counts(crystal, k)
        assert counts.tolist() == [6] * 4 and np.allclose(dist, 3.0)
    # k = 7 cuts into the 12-strong second shell (4.243 Å): all 18 are kept
    counts, dist = _neighbor_counts(crystal, 7)
    assert counts.tolist() == [18] * 4
    assert sorted(np.round(dist[:18], 3)) == [3.0] * 6 + [4.243] * 12


def test_near_ties_within_the_tolerance_are_kept_and_others_cut():
    from alem.graphs.neighbors import TIE_TOLERANCE_A

    # site 1 moved along x: seen from site 0, one first-shell neighbour is a bit closer
    nudged = _simple_cubic()
    nudged.translate_sites([1], [-0.3 * TIE_TOLERANCE_A, 0, 0], frac_coords=False)
    counts, _ = _neighbor_counts(nudged, 1)
    assert counts[0] == 6  # 2.9997 Å, then four at 3 Å and one at 3.0003 Å: all within the tolerance
    moved = _simple_cubic()
    moved.translate_sites([1], [-0.05, 0, 0], frac_coords=False)
    counts, dist = _neighbor_counts(moved, 1)
    assert counts[0] == 1 and dist[0] == pytest.approx(2.95)

def test_translation_invariance():
    hop = rocksalt_hop()
    moved = rocksalt_hop()
    for s in (moved.initial, moved.final):
        s.translate_sites(list(range(len(s))), [0.137, -0.29, 0.51], frac_coords=True, to_unit_cell=True)
    assert _edge_set(hop_graph(hop, SETTINGS)) == _edge_set(hop_graph(moved, SETTINGS))


def test_permutation_of_host_sites():
    hop = rocksalt_hop()
    rng = np.random.default_rng(1)
    order = np.r_[0, 1 + rng.permutation(len(hop.initial) - 1)]
    permuted = rocksalt_hop()
    from pymatgen.core import Structure

    permuted.initial = Structure.from_sites([hop.initial[i] for i in order])
    permuted.final = Structure.from_sites([hop.final[i] for i in order])
    g1, g2 = hop_graph(hop, SETTINGS), hop_graph(permuted, SETTINGS)
    assert _edge_set(g1) == _edge_set(g2)
    assert torch.allclose(g1.path_desc, g2.path_desc)


def test_periodic_images_and_supercell():
    hop = rocksalt_hop()
    wrapped = rocksalt_hop()
    for s in (wrapped.initial, wrapped.final):
        for i in range(1, len(s)):
            s.replace(i, s[i].specie, s[i].frac_coords + np.array([1, -2, 3]), coords_are_cartesian=False)
    assert _edge_set(hop_graph(hop, SETTINGS)) == _edge_set(hop_graph(wrapped, SETTINGS))
    # a crystal and its supercell: same neighbourhood for every atom
    cell = hop.host.copy()
    big = cell.copy()
    big.make_supercell([2, 1, 1])
    g1, g2 = crystal_graph(cell, SETTINGS), crystal_graph(big, SETTINGS)
    assert g2.num_edges == 2 * g1.num_edges
    assert np.allclose(np.sort(g1.edge_dist.numpy()), np.sort(g2.edge_dist.numpy())[::2], atol=1e-5)


def test_two_hops_in_one_host_give_different_graphs():
    near, far = rocksalt_hop("a", neighbor_rank=0), rocksalt_hop("b", neighbor_rank=1)
    assert near.initial.lattice == far.initial.lattice
    assert near.initial.composition == far.initial.composition
    g1, g2 = hop_graph(near, SETTINGS), hop_graph(far, SETTINGS)
    assert _edge_set(g1)[1] != _edge_set(g2)[1]  # different path neighbourhoods
    assert g1.path_desc[0, 0] < g2.path_desc[0, 0]  # hop length
    assert g1.path_z.tolist() == [3] * SETTINGS.n_images
