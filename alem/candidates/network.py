"""A host's periodic migration network and the barrier at which it percolates.

pymatgen-analysis-diffusion's ``MigrationGraph`` connects every working-ion site of the host to
every other within the enumeration cutoff, periodic images kept (``to_jimage``), so each
symmetry-equivalent copy of a hop is its own edge. Each edge is matched to the
``DistinctPathFinder`` path it is a copy of: path ``N`` is the hop ``<label>-pN`` that
:func:`alem.candidates.enumerate.enumerate_hops` stores, so a stored barrier lands on every copy.

The percolation rule (docs: "Materials: a host's migration network"): a hop's saddle lies at the energy of its initial site
plus its barrier, so it costs the same whichever way it is traversed. A network of hops has the
barrier *highest saddle − lowest site it visits*, and the host's percolation barrier is the lowest
such barrier over networks that connect a site to its own periodic image. Sites of one symmetry
class share their energy; the energy of a non-equivalent class comes from a hop's site-energy
change (``E_final − E_initial``, known from a NEB's two barriers) and is taken as equal to its
neighbour's when no hop between them reports one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from math import gcd
from typing import TYPE_CHECKING

import numpy as np

from alem.candidates.hosts import HostError

if TYPE_CHECKING:
    from pymatgen.analysis.diffusion.neb.pathfinder import DistinctPathFinder
    from pymatgen.core import Structure

#: Two saddles or site energies within this (eV) are the same level.
ENERGY_TOLERANCE_EV = 1e-9
#: Most paths whose rows :meth:`Percolator.solve_rows` solves together (bitmasks of open paths in int64).
MAX_PATHS_SOLVED_TOGETHER = 62
#: A graph edge and a distinct path are copies of each other only if their lengths agree within this (Å).
LENGTH_TOLERANCE_A = 1e-3


@dataclass(frozen=True)
class NetworkEdge:
    """One hop of the periodic graph: ion site ``start`` to ion site ``end`` shifted by ``image``."""

    start: int
    end: int
    image: tuple[int, int, int]
    path_number: int
    length_a: float


@dataclass(frozen=True)
class HostNetwork:
    """The working-ion sites of a host (by symmetry class) and every hop between them within ``cutoff_a``."""

    working_ion: str
    cutoff_a: float
    site_classes: tuple[int, ...]
    #: symmetry class of each distinct path's initial and final site, by path number
    path_classes: Mapping[int, tuple[int, int]]
    path_lengths_a: Mapping[int, float]
    edges: tuple[NetworkEdge, ...]


@dataclass(frozen=True)
class HopBarrier:
    """What one distinct path (and so each of its copies) costs, and where the number came from."""

    barrier_ev: float
    source: str
    #: E_final − E_initial along the path (eV); None when unknown (taken as 0, see the module rule)
    site_energy_change_ev: float | None = None


@dataclass(frozen=True)
class Percolation:
    """The host's lowest percolating network; ``barrier_ev`` None: no network percolates within the cutoff."""

    barrier_ev: float | None
    dimensionality: int
    #: lattice directions the network spans: "b", "[1 1 0]", "ab", "(1 1 1)", "abc"; "" when none
    directions: str
    limiting_path: int | None
    site_energies_ev: Mapping[int, float] = field(default_factory=dict)
    #: paths the network needs but that have no barrier (the answer then holds only without them)
    missing_paths: tuple[int, ...] = ()


@cache
def _migration_graph_class() -> type:
    """``MigrationGraph`` with its symmetrized structure computed once: the parent recomputes it
    (a full spglib analysis) for every edge, which dominated the time of a host with many hops.
    Defined on first use: pymatgen-analysis-diffusion takes seconds to import, and the host
    answers read kept networks without it."""
    from pymatgen.analysis.diffusion.neb.full_path_mapper import MigrationGraph

    class _MigrationGraph(MigrationGraph):
        @cached_property
        def symm_structure(self):
            return super().symm_structure

    return _MigrationGraph


def host_network(
    host: Structure, working_ion: str, max_hop_length_a: float | None = None, symprec: float = 0.1,
    at_least_a: float = 0.0, distinct_paths: tuple[DistinctPathFinder, list] | None = None,
) -> HostNetwork:
    """Every hop of ``working_ion`` in ``host`` up to the enumeration cutoff, as a periodic graph.

    ``max_hop_length_a`` None uses the cutoff ``DistinctPathFinder`` picks (as enumeration does),
    widened to ``at_least_a`` when that is longer. ``distinct_paths``: the finder of ``host`` with
    these settings and its paths, when enumeration found them already.
    """
    from pymatgen.analysis.diffusion.neb.pathfinder import DistinctPathFinder

    finder, paths = distinct_paths or (DistinctPathFinder(host, working_ion, max_path_length=max_hop_length_a, symprec=symprec), None)
    if finder.max_path_length + LENGTH_TOLERANCE_A < at_least_a:
        finder, paths = DistinctPathFinder(host, working_ion, max_path_length=at_least_a, symprec=symprec), None
    paths = finder.get_paths() if paths is None else paths
    if not paths:
        raise HostError(f"{host.composition.reduced_formula}: no {working_ion} hop within {finder.max_path_length:.2f} Å")
    ion_indices = [i for i, site in enumerate(host) if site.specie.symbol == working_ion]
    class_of_host_site = {i: k for k, group in enumerate(finder.symm_structure.equivalent_indices) for i in group}
    site_classes = tuple(class_of_host_site[i] for i in ion_indices)
    graph = _migration_graph_class().with_distance(host, working_ion, round(finder.max_path_length, 3) + 0.01, symprec=symprec)
    path_of_label: dict[int, int] = {}
    edges = []
    # the graph and the finder analyse the same host: compared once here, not per edge and path
    same_structure = graph.symm_structure == finder.symm_structure
    for u, v, data in graph.m_graph.graph.edges(data=True):
        label = data["hop_label"]
        if label not in path_of_label:
            hop = data["hop"]
            known_same = same_structure and hop.symm_structure is graph.symm_structure
            path_of_label[label] = _matching_path(hop, paths, host.composition.reduced_formula, known_same)
        edges.append(NetworkEdge(u, v, tuple(int(x) for x in data["to_jimage"]), path_of_label[label], data["hop"].length))
    path_classes = {
        n: (_class_at(host, path.isite.frac_coords, class_of_host_site), _class_at(host, path.esite.frac_coords, class_of_host_site))
        for n, path in enumerate(paths, start=1)
    }
    return HostNetwork(
        working_ion=working_ion,
        cutoff_a=float(finder.max_path_length),
        site_classes=site_classes,
        path_classes=path_classes,
        path_lengths_a={n: float(path.length) for n, path in enumerate(paths, start=1)},
        edges=tuple(edges),
    )


def _matching_path(hop, paths: list, formula: str, known_same_structure: bool = False) -> int:
    """The number of the distinct path ``hop`` is a copy of. ``known_same_structure``: the hop's and
    the paths' symmetrized structures are known equal, so ``MigrationHop.__eq__``'s comparison of
    them (site by site, most of a host's network time) is left out and only its symmetry test made."""
    for number, path in enumerate(paths, start=1):
        if abs(path.length - hop.length) >= LENGTH_TOLERANCE_A:
            continue
        if known_same_structure and path.symm_structure.spacegroup.are_symmetrically_equivalent(
            (path.isite, path.msite, path.esite), (hop.isite, hop.msite, hop.esite), path.symprec
        ):
            return number
        if not known_same_structure and path == hop:
            return number
    raise HostError(f"{formula}: a {hop.length:.2f} Å hop matches none of the host's distinct paths")


def _class_at(host: Structure, frac: np.ndarray, class_of_host_site: Mapping[int, int]) -> int:
    from pymatgen.util.coord import pbc_shortest_vectors

    _, d2 = pbc_shortest_vectors(host.lattice, np.array([frac]), host.frac_coords, return_d2=True)
    return class_of_host_site[int(np.argmin(d2[0]))]


def site_energies(network: HostNetwork, barriers: Mapping[int, HopBarrier]) -> dict[int, float]:
    """Energy (eV) of each site class relative to the first, from the hops' site-energy changes."""
    classes = sorted(set(network.site_classes))
    energies: dict[int, float] = {classes[0]: 0.0}
    links = [(a, b, barriers[n].site_energy_change_ev if n in barriers else None) for n, (a, b) in network.path_classes.items()]
    while len(energies) < len(classes):
        # a measured site-energy change places a class before an assumed zero does
        for measured in (True, False):
            step = _next_class(links, energies, measured)
            if step is not None:
                energies[step[0]] = step[1]
                break
        else:
            energies[next(c for c in classes if c not in energies)] = 0.0
    return energies


def _next_class(links: list, energies: dict[int, float], measured: bool) -> tuple[int, float] | None:
    for a, b, change in links:
        if measured and change is None:
            continue
        change = change or 0.0
        if a in energies and b not in energies:
            return b, energies[a] + change
        if b in energies and a not in energies:
            return a, energies[b] - change
    return None


def percolation(network: HostNetwork, barriers: Mapping[int, HopBarrier]) -> Percolation:
    """The lowest barrier at which some network of the host's hops connects a site to its own image.

    Paths without a barrier are left out; if a network found without them could be beaten only by
    using them, their numbers are in ``missing_paths``.
    """
    energies = site_energies(network, barriers)
    solver = Percolator(network, energies)
    barrier, rank, directions, limiting = solver.solve(solver.saddles(barriers))
    missing = tuple(sorted({e.path_number for e in network.edges} - set(barriers)))
    return Percolation(barrier, rank, directions, limiting, energies, missing)


class _Cycles:
    """Union-find over the sites of a network that keeps each site's lattice offset from its root:
    an edge closing a cycle with a net translation makes the open paths percolate."""

    __slots__ = ("offset", "parent")

    def __init__(self, n_sites: int) -> None:
        self.parent = list(range(n_sites))
        self.offset = [(0, 0, 0)] * n_sites

    def copy(self) -> _Cycles:
        other = _Cycles.__new__(_Cycles)
        other.parent, other.offset = list(self.parent), list(self.offset)
        return other

    def _root(self, i: int) -> tuple[int, tuple[int, int, int]]:
        parent, offset = self.parent, self.offset
        shift = (0, 0, 0)
        while parent[i] != i:
            o = offset[i]
            shift = (shift[0] + o[0], shift[1] + o[1], shift[2] + o[2])
            i = parent[i]
        return i, shift

    def open(self, edges) -> bool:
        """Open these (start, end, image) edges; True as soon as one closes a cycle with a net translation."""
        for start, end, image in edges:
            root_start, at_start = self._root(start)
            root_end, at_end = self._root(end)
            # where the edge puts ``end``'s root, relative to ``start``'s root
            shift = (at_start[0] + image[0] - at_end[0], at_start[1] + image[1] - at_end[1], at_start[2] + image[2] - at_end[2])
            if root_start != root_end:
                self.parent[root_end], self.offset[root_end] = root_start, shift
            elif shift != (0, 0, 0):
                return True
        return False


class Percolator:
    """The percolation rule of one network at fixed site energies, for many sets of barriers.

    Which sites a network connects, and in which directions, depends only on the site-energy
    floor and on *which paths* are open, not on their barriers: that analysis is kept per (floor,
    open paths), so solving the rule again for another sample row of barriers costs a few lookups.
    """

    def __init__(self, network: HostNetwork, energies: Mapping[int, float]) -> None:
        self.network = network
        self.site_energy = np.array([energies[c] for c in network.site_classes])
        self.floors = sorted(set(self.site_energy.tolist()))
        self.highest_site_ev = float(self.site_energy.max())
        self.start_energy = {n: energies[a] for n, (a, _) in network.path_classes.items()}
        self._usable: list[frozenset[int]] = []
        #: per floor, the edges above it of each path, as (start, end, image)
        self._edges_of_path: list[dict[int, list[tuple[int, int, tuple[int, int, int]]]]] = []
        for floor in self.floors:
            allowed = self.site_energy >= floor - ENERGY_TOLERANCE_EV
            self._usable.append(frozenset(e.path_number for e in network.edges if allowed[e.start] and allowed[e.end]))
            edges_of_path: dict[int, list[tuple[int, int, tuple[int, int, int]]]] = {}
            for e in network.edges:
                if allowed[e.start] and allowed[e.end]:
                    edges_of_path.setdefault(e.path_number, []).append((e.start, e.end, e.image))
            self._edges_of_path.append(edges_of_path)
        self._networks: dict[tuple[int, frozenset[int]], list[tuple[tuple[int, ...], float, tuple]]] = {}
        self._dimensions: dict[tuple, tuple[int, str]] = {}

    def saddles(self, barriers: Mapping[int, HopBarrier]) -> dict[int, float]:
        """Saddle energy (eV) of each path with a barrier: its initial site's energy plus the barrier."""
        return {n: self.start_energy[n] + b.barrier_ev for n, b in barriers.items() if n in self.start_energy}

    def _percolating(self, floor_index: int, paths: frozenset[int]) -> list[tuple[tuple[int, ...], float, tuple]]:
        """Components that reach a periodic image with only ``paths`` open above the floor: their
        paths (in edge order), lowest site energy and cycle translations."""
        key = (floor_index, paths)
        if key not in self._networks:
            allowed = self.site_energy >= self.floors[floor_index] - ENERGY_TOLERANCE_EV
            edges = [e for e in self.network.edges if e.path_number in paths and allowed[e.start] and allowed[e.end]]
            found = []
            for members, translations in _components(len(self.site_energy), edges):
                if not translations:
                    continue
                used = tuple(dict.fromkeys(e.path_number for e in edges if e.start in members))
                found.append((used, float(self.site_energy[sorted(members)].min()), tuple(translations)))
            self._networks[key] = found
        return self._networks[key]

    def _dimension(self, translations: tuple) -> tuple[int, str]:
        """Dimensionality and directions of a network with these cycle translations (kept: the
        rank is an SVD, needed only for the winner and for ties)."""
        if translations not in self._dimensions:
            rank = int(np.linalg.matrix_rank(np.array(translations, dtype=float)))
            self._dimensions[translations] = (rank, _directions(list(translations), rank))
        return self._dimensions[translations]

    def _cannot_win(self, level: float, best: tuple[float, tuple, int] | None) -> bool:
        return best is not None and level - self.highest_site_ev > best[0] + ENERGY_TOLERANCE_EV

    def _first_percolating(
        self, floor_index: int, names: list[int], values: list[float], levels: list[float], best: tuple | None
    ) -> int:
        """Index of the first level at which some network above the floor percolates (or at which
        no network can win any more; ``len(levels)``: none). Paths open level by level into a
        union-find that keeps each site's lattice offset from its root: an edge closing a cycle
        with a net translation percolates. Every level below it percolates nowhere, so the full
        analysis (:meth:`_percolating`) starts there with the same answer, one level instead of
        all of them (each a new set of open paths, so none kept from another row)."""
        edges_of_path = self._edges_of_path[floor_index]
        cycles = _Cycles(len(self.site_energy))
        opened = 0
        for k, level in enumerate(levels):
            if self._cannot_win(level, best):
                return k
            upto = bisect_right(values, level + ENERGY_TOLERANCE_EV)
            for name in names[opened:upto]:
                if cycles.open(edges_of_path.get(name, ())):
                    return k
            opened = upto
        return len(levels)

    def solve(self, saddles: Mapping[int, float]) -> tuple[float | None, int, str, int | None]:
        """(percolation barrier, dimensionality, directions, limiting path) for these saddle
        energies; (None, 0, "", None) when no network percolates. Of two networks with the same
        barrier the one of higher dimensionality wins."""
        best: tuple[float, tuple, int] | None = None
        for floor_index, usable in enumerate(self._usable):
            ranked = sorted((saddles[n], n) for n in usable if n in saddles)
            values = [value for value, _ in ranked]
            names = [n for _, n in ranked]
            levels = sorted(set(values))
            first = self._first_percolating(floor_index, names, values, levels, best)
            for level in levels[first:]:
                # a network whose highest saddle is this level costs at least level − the highest
                # site energy: once that beats no network found, higher levels cannot either
                if self._cannot_win(level, best):
                    break
                # the paths open at this level: a prefix of the paths ranked by saddle
                opened = frozenset(names[: bisect_right(values, level + ENERGY_TOLERANCE_EV)])
                for used, lowest_ev, translations in self._percolating(floor_index, opened):
                    top = max(used, key=lambda n: saddles[n])
                    barrier = saddles[top] - lowest_ev
                    if best is None or barrier < best[0] - ENERGY_TOLERANCE_EV or (
                        abs(barrier - best[0]) <= ENERGY_TOLERANCE_EV
                        and self._dimension(translations)[0] > self._dimension(best[1])[0]
                    ):
                        best = (barrier, translations, top)
        if best is None:
            return (None, 0, "", None)
        rank, directions = self._dimension(best[1])
        return (best[0], rank, directions, best[2])


    def solve_rows(
        self, fixed_saddles: Mapping[int, float], sampled_paths: tuple[int, ...], sampled_saddles: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`solve` for each row of ``sampled_saddles`` (n_rows x len(sampled_paths), eV), the
        ``fixed_saddles`` shared by every row: each row's percolation barrier (NaN: none) and
        limiting path (0: none). Equal to solving row by row; with one site-energy floor (no
        measured site-energy difference: every campaign host before its first result) the rows
        are solved together (:meth:`_rows_one_floor`), which a table of thousands of hosts
        times hundreds of rows needs."""
        n_rows = len(sampled_saddles)
        barriers_ev, limiting = np.full(n_rows, np.nan), np.zeros(n_rows, dtype=int)
        usable = self._usable[0] if len(self.floors) == 1 else frozenset()
        names = sorted(n for n in {*fixed_saddles, *sampled_paths} if n in usable)
        if len(self.floors) == 1 and len(names) <= MAX_PATHS_SOLVED_TOGETHER:
            columns = {n: k for k, n in enumerate(sampled_paths)}
            saddles = np.empty((n_rows, len(names)))
            for k, n in enumerate(names):
                saddles[:, k] = sampled_saddles[:, columns[n]] if n in columns else fixed_saddles[n]
            undecided = self._rows_one_floor(names, saddles, barriers_ev, limiting)
        else:
            undecided = np.arange(n_rows)
        for k in undecided:  # several floors, or a tie the rows' shortcut does not settle
            saddles_of_row = dict(fixed_saddles)
            saddles_of_row.update(zip(sampled_paths, sampled_saddles[k].tolist()))
            barrier, _, _, path = self.solve(saddles_of_row)
            barriers_ev[k], limiting[k] = (np.nan, 0) if barrier is None else (barrier, path)
        return barriers_ev, limiting

    def _rows_one_floor(self, names: list[int], saddles: np.ndarray, barriers_ev: np.ndarray, limiting: np.ndarray) -> np.ndarray:
        """Fill the rows' answers at one site-energy floor; returns the rows left to :meth:`solve`.

        Per row, the paths opened level by level are prefixes of the row's saddle order (as a
        bitmask over ``names``); whether a set of open paths percolates is asked once per distinct
        set (:meth:`_percolating`, kept), the first percolating level's networks are compared as
        :meth:`solve` compares them (lowest barrier, a tie to the higher dimensionality). Its
        barriers all lie within the tolerance of that level, so a row is settled unless the next
        level could still tie (then it is left to :meth:`solve`)."""
        n_rows, n_paths = saddles.shape
        if n_paths == 0:
            return np.zeros(0, dtype=int)
        order = np.argsort(saddles, axis=1, kind="stable")  # ties by path number, as solve's sort
        values = np.take_along_axis(saddles, order, axis=1)
        opened_count = (values[:, None, :] <= values[:, :, None] + ENERGY_TOLERANCE_EV).sum(axis=2)
        masks = np.bitwise_or.accumulate(np.left_shift(np.int64(1), order.astype(np.int64)), axis=1)
        opened = np.take_along_axis(masks, opened_count - 1, axis=1)  # open paths at each level
        edges_of_bit = [self._edges_of_path[0].get(n, ()) for n in names]
        # open paths that do not percolate, with their cycles: a set one level up grows from one of them
        growing: dict[int, _Cycles] = {0: _Cycles(len(self.site_energy))}
        percolating: set[int] = set()

        def percolates(mask: int, below: int) -> bool:
            if mask in growing or mask in percolating:
                return mask in percolating
            cycles = growing[below].copy()
            added = mask & ~below
            while added:  # usually one path a level
                bit = added & -added
                added ^= bit
                if cycles.open(edges_of_bit[bit.bit_length() - 1]):
                    percolating.add(mask)
                    return True
            growing[mask] = cycles
            return False

        first = np.full(n_rows, -1)
        for level in range(n_paths):
            open_rows = np.flatnonzero(first < 0)
            if not len(open_rows):
                break
            below = opened[open_rows, level - 1] if level else np.zeros(len(open_rows), dtype=np.int64)
            distinct, where, back = np.unique(opened[open_rows, level], return_index=True, return_inverse=True)
            hit = np.array([percolates(int(m), int(below[w])) for m, w in zip(distinct, where)])
            first[open_rows[hit[back]]] = level
        rows = np.flatnonzero(first >= 0)
        at = first[rows]
        opened_before = np.where(at > 0, opened_count[rows, np.maximum(at - 1, 0)], 0)
        # one path opened at the first percolating level: every percolating network holds it (none
        # percolated a level down) and every other path of theirs is lower, so it limits them all
        alone = opened_count[rows, at] - opened_before == 1
        easy = rows[alone]
        top = order[easy, opened_count[easy, first[easy]] - 1]
        barriers_ev[easy] = saddles[easy, top] - self.floors[0]
        limiting[easy] = np.asarray(names)[top]
        tied = rows[~alone]
        at_first = opened[tied, first[tied]]
        for mask in np.unique(at_first):  # several paths at one level (equal barriers): compare the networks
            group = tied[at_first == mask]
            best_ev = best_top = best_rank = None
            networks = self._percolating(0, frozenset(n for k, n in enumerate(names) if int(mask) >> k & 1))
            for used, lowest_ev, translations in networks:
                cols = [names.index(n) for n in used]
                top = np.asarray(cols)[np.argmax(saddles[np.ix_(group, cols)], axis=1)]
                barrier = saddles[group, top] - lowest_ev
                rank = self._dimension(translations)[0]
                if best_ev is None:
                    best_ev, best_top, best_rank = barrier, top, np.full(len(group), rank)
                    continue
                wins = (barrier < best_ev - ENERGY_TOLERANCE_EV) | (
                    (np.abs(barrier - best_ev) <= ENERGY_TOLERANCE_EV) & (rank > best_rank)
                )
                best_ev, best_top = np.where(wins, barrier, best_ev), np.where(wins, top, best_top)
                best_rank = np.where(wins, rank, best_rank)
            barriers_ev[group] = best_ev
            limiting[group] = np.asarray(names)[best_top]
        # solve goes on to the next level unless it cannot win: the same test, row by row
        beyond = opened_count[rows, first[rows]]
        next_level = values[rows, np.minimum(beyond, n_paths - 1)]
        could_tie = (beyond < n_paths) & ~(next_level - self.highest_site_ev > barriers_ev[rows] + ENERGY_TOLERANCE_EV)
        return rows[could_tie]


def _components(n_sites: int, edges: list[NetworkEdge]) -> list[tuple[set[int], list[tuple[int, ...]]]]:
    """Connected components of the periodic graph, each with the lattice translations its cycles make."""
    adjacency: dict[int, list[tuple[int, tuple[int, int, int]]]] = {i: [] for i in range(n_sites)}
    for e in edges:
        adjacency[e.start].append((e.end, e.image))
        adjacency[e.end].append((e.start, (-e.image[0], -e.image[1], -e.image[2])))
    # plain integer tuples: this runs once per threshold and sample row, numpy per step was the cost
    position: dict[int, tuple[int, int, int]] = {}
    components = []
    for root in range(n_sites):
        if root in position or not adjacency[root]:
            continue
        position[root] = (0, 0, 0)
        members, translations, stack = {root}, set(), [root]
        while stack:
            u = stack.pop()
            pu = position[u]
            for v, image in adjacency[u]:
                reached = (pu[0] + image[0], pu[1] + image[1], pu[2] + image[2])
                if v not in position:
                    position[v] = reached
                    members.add(v)
                    stack.append(v)
                elif reached != position[v]:
                    pv = position[v]
                    shift = (reached[0] - pv[0], reached[1] - pv[1], reached[2] - pv[2])
                    sign = 1 if next(x for x in shift if x) > 0 else -1
                    translations.add((sign * shift[0], sign * shift[1], sign * shift[2]))
        components.append((members, sorted(translations)))
    return components


def _first_nonzero(vector: np.ndarray) -> int:
    return int(vector[np.flatnonzero(vector)[0]])


def _reduced(vector: np.ndarray) -> tuple[int, ...]:
    divisor = gcd(*(int(abs(x)) for x in vector)) or 1
    reduced = vector // divisor
    return tuple(int(x) for x in (reduced if _first_nonzero(reduced) > 0 else -reduced))


def _directions(translations: list[tuple[int, ...]], rank: int) -> str:
    """The lattice directions a network with these cycle translations spans, in words."""
    axes = "abc"
    vectors = [np.array(t) for t in translations]
    if rank == 3:
        return "abc"
    if rank == 1:
        direction = _reduced(vectors[0])
        nonzero = [i for i, x in enumerate(direction) if x]
        return axes[nonzero[0]] if len(nonzero) == 1 else "[" + " ".join(map(str, direction)) + "]"
    normal = next(
        _reduced(np.cross(u, v)) for i, u in enumerate(vectors) for v in vectors[i + 1 :] if np.any(np.cross(u, v))
    )
    nonzero = [i for i, x in enumerate(normal) if x]
    if len(nonzero) == 1:
        return "".join(axis for i, axis in enumerate(axes) if i != nonzero[0])
    return "(" + " ".join(map(str, normal)) + ")"


@dataclass(frozen=True)
class PercolationSpread:
    """The percolation barrier over posterior sample rows of the hops' barriers."""

    mean_ev: float | None
    std_ev: float | None
    #: share of rows whose network percolates below the good threshold (a row without one counts as not good)
    prob_good: float
    #: share of rows in which each path limits the network
    limiting_share: Mapping[int, float]
    #: share of rows in which no network percolates within the cutoff
    no_percolation_share: float
    n_rows: int
    #: the percolation barrier of each row (eV; NaN: none percolates) and the path limiting it (0: none)
    row_barriers_ev: np.ndarray = field(default_factory=lambda: np.zeros(0))
    row_limiting: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def percolation_spread(
    network: HostNetwork,
    fixed: Mapping[int, HopBarrier],
    sampled_paths: tuple[int, ...],
    rows_ev: np.ndarray,
    good_barrier_ev: float,
) -> PercolationSpread:
    """:func:`percolation` on each row of ``rows_ev`` (n_rows x len(sampled_paths), eV): computed
    hops stay at their results (``fixed``), predicted ones take the row's values."""
    rows_ev = np.atleast_2d(np.asarray(rows_ev, dtype=float))
    if rows_ev.shape[1] != len(sampled_paths):
        raise ValueError(f"rows_ev has {rows_ev.shape[1]} columns for {len(sampled_paths)} sampled paths")
    # sampled hops carry no site-energy change, so every row shares the fixed hops' site energies
    solver = Percolator(network, site_energies(network, fixed))
    fixed_saddles = solver.saddles(fixed)
    start_ev = np.array([solver.start_energy.get(n, 0.0) for n in sampled_paths])
    n = len(rows_ev)
    barriers_ev, limiting = solver.solve_rows(fixed_saddles, tuple(sampled_paths), start_ev[None, :] + rows_ev)
    found = barriers_ev[~np.isnan(barriers_ev)]
    numbers, counts = np.unique(limiting[limiting > 0], return_counts=True)
    return PercolationSpread(
        mean_ev=float(found.mean()) if len(found) else None,
        std_ev=float(found.std(ddof=1)) if len(found) > 1 else (0.0 if len(found) else None),
        prob_good=float(np.sum(found < good_barrier_ev) / n) if n else 0.0,
        limiting_share={int(path): int(count) / n for path, count in zip(numbers, counts)},
        no_percolation_share=(n - len(found)) / n if n else 1.0,
        n_rows=n,
        row_barriers_ev=barriers_ev,
        row_limiting=limiting,
    )


#: Attempt frequency ν (Hz) of the order-of-magnitude transport estimates.
ATTEMPT_FREQUENCY_HZ = 1e13
BOLTZMANN_EV_PER_K = 8.617333262e-5
ELEMENTARY_CHARGE_C = 1.602176634e-19


@dataclass(frozen=True)
class TransportEstimate:
    """Order of magnitude only: a random walk at the percolation barrier, not a kinetic Monte Carlo."""

    temperature_k: float
    diffusivity_cm2_s: float
    conductivity_s_cm: float


def transport_estimate(
    barrier_ev: float,
    hop_length_a: float,
    dimensionality: int,
    ions_per_cm3: float,
    temperature_k: float = 300.0,
    attempt_frequency_hz: float = ATTEMPT_FREQUENCY_HZ,
) -> TransportEstimate:
    """D ≈ a² ν exp(−E/kT) / (2d) for hops of length a on a d-dimensional network, and the
    Nernst–Einstein conductivity σ = n q² D / kT of a singly charged ion at concentration n."""
    kt_ev = BOLTZMANN_EV_PER_K * temperature_k
    hop_cm = hop_length_a * 1e-8
    diffusivity = hop_cm**2 * attempt_frequency_hz * np.exp(-barrier_ev / kt_ev) / (2 * dimensionality)
    # q² D n / kT with kT in joules: q / (kT in eV) = q² / kT[J]
    conductivity = ions_per_cm3 * ELEMENTARY_CHARGE_C * diffusivity / kt_ev
    return TransportEstimate(temperature_k, float(diffusivity), float(conductivity))
