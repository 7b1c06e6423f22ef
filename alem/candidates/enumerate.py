"""Symmetry-distinct hops of a host, built as supercell endpoints in alem's hop convention.

pymatgen-analysis-diffusion finds the distinct paths (``DistinctPathFinder``) and builds vacancy
supercells for each (``MigrationHop.get_sc_structures``). In those supercells the moving ion sits at
different indices in the start and end structure; alem's convention wants it at site 0 in both with
every other site in the same order, so the endpoints are rebuilt around one shared host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pymatgen.analysis.diffusion.neb.pathfinder import DistinctPathFinder, MigrationHop
from pymatgen.core import PeriodicSite, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.util.coord import pbc_shortest_vectors

from alem.candidates.hosts import HostError
from alem.candidates.supercell import choose_supercell_matrix, supercell_matrices
from alem.hops.hop import Hop, Provenance
from alem.hops.validate import HopError, check_hop

#: Host sites of start and end supercells that agree within this (Å) are the same site.
SAME_SITE_TOLERANCE_A = 1e-3
#: The minimum-image displacement of the ion must reproduce the path's vector within this (Å);
#: otherwise the cell is too small and the hop would run the other way round the periodic image.
DISPLACEMENT_TOLERANCE_A = 1e-2
#: A hop end lies on a supercell site when this close (Å): pymatgen-analysis-diffusion's tolerance.
SUPERCELL_SITE_TOLERANCE_A = 1e-5


@dataclass(frozen=True)
class EnumerationSettings:
    """How hops are enumerated and how large their NEB supercells are."""

    #: Longest hop considered (Å); None = pymatgen's percolation-based cutoff.
    max_hop_length_a: float | None = None
    #: Shortest supercell lattice vector (Å): periodic images of the moving ion stay this far apart.
    min_image_distance_a: float = 8.0
    max_atoms: int = 160
    symprec: float = 0.1


def _moving_site(structure: Structure, other: Structure) -> int:
    """Index of the site of ``structure`` that has no counterpart in ``other`` (the moving ion)."""
    distances = structure.lattice.get_all_distances(structure.frac_coords, other.frac_coords)
    return int(np.argmax(distances.min(axis=1)))


def supercell_endpoints(
    isite: PeriodicSite, esite: PeriodicSite, supercell: Structure, matrix: np.ndarray, working_ion: str
) -> tuple[Structure, Structure]:
    """Vacancy-mode endpoints of the hop ``isite`` → ``esite`` (sites of the cell ``supercell`` was
    built from with ``matrix``) in alem's convention: the ion at site 0, every other site of the
    supercell but the hop's two in the same order in both.

    The same structures as pymatgen-analysis-diffusion's ``get_start_end_structures`` followed by
    :func:`endpoints_in_convention`, to the bit, with the supercell built once per host and matrix
    and the two sites found in one vectorised search (those rebuilt every structure site by site,
    half of a host's enumeration time).
    """
    inverse = np.linalg.inv(matrix)
    ends = np.array([np.dot(isite.frac_coords, inverse), np.dot(esite.frac_coords, inverse)])
    near = supercell.lattice.get_all_distances(ends, supercell.frac_coords) <= SUPERCELL_SITE_TOLERANCE_A
    if near.sum(axis=1).tolist() != [1, 1]:
        raise HopError("the hop's end sites are not sites of its supercell")
    i_start, i_end = (int(np.argmax(row)) for row in near)
    if i_start == i_end:
        raise HopError("the hop's two end sites are one site of its supercell")
    host = [k for k in range(len(supercell)) if k not in (i_start, i_end)]
    species = [working_ion] + [supercell[k].specie for k in host]
    frac = supercell.frac_coords
    initial = Structure(supercell.lattice, species, [frac[i_start], *frac[host]])
    final = Structure(supercell.lattice, species, [frac[i_end], *frac[host]])
    return initial, final


def endpoints_in_convention(start: Structure, end: Structure, working_ion: str) -> tuple[Structure, Structure]:
    """Rebuild vacancy-mode supercell endpoints so the moving ion is site 0 and the host is shared."""
    i_start = _moving_site(start, end)
    i_end = _moving_site(end, start)
    host_start = [site for k, site in enumerate(start) if k != i_start]
    host_end = [site for k, site in enumerate(end) if k != i_end]
    host_end_frac = np.array([site.frac_coords for site in host_end])
    distances = start.lattice.get_all_distances(np.array([s.frac_coords for s in host_start]), host_end_frac)
    match = distances.argmin(axis=1)
    if np.any(distances[np.arange(len(host_start)), match] > SAME_SITE_TOLERANCE_A) or len(set(match)) != len(match):
        raise HopError("start and end supercells do not share their host sites")
    species = [working_ion] + [site.specie for site in host_start]
    host_frac = [site.frac_coords for site in host_start]
    initial = Structure(start.lattice, species, [start[i_start].frac_coords, *host_frac])
    final = Structure(start.lattice, species, [end[i_end].frac_coords, *host_frac])
    return initial, final


def _symmetry_facts(host: Structure, symprec: float) -> dict[str, str]:
    try:
        analyzer = SpacegroupAnalyzer(host, symprec=symprec)
        return {"space_group": analyzer.get_space_group_symbol(), "crystal_system": analyzer.get_crystal_system()}
    except Exception:  # spglib gives up on some distorted cells; the facts are informative only
        return {}


def _snap_to_site(structure: Structure, cart: np.ndarray, tolerance_a: float = 0.3) -> PeriodicSite | None:
    """The structure site (with its periodic image) at ``cart``, or None if no site is there."""
    frac = structure.lattice.get_fractional_coords(cart)
    # one vectorised minimum-image search over all sites (a per-site loop dominated enumeration)
    vectors, d2 = pbc_shortest_vectors(structure.lattice, frac, structure.frac_coords, return_d2=True)
    best = int(np.argmin(d2[0]))
    if d2[0, best] > tolerance_a**2:
        return None
    site_frac = structure.frac_coords[best]
    image = np.round(frac + structure.lattice.get_fractional_coords(vectors[0, best]) - site_frac)
    return PeriodicSite(structure[best].species, site_frac + image, structure.lattice)


@dataclass(frozen=True)
class _HostFacts:
    """What every path of one host shares, computed once per host (symmetry analysis and the
    supercell search cost far more than a path's own work)."""

    base: Structure
    symmetry_ops: list
    supercells: list[np.ndarray]
    facts: dict[str, str]
    #: supercells of ``base`` built so far, by matrix (the paths of a host mostly share one)
    built: dict[bytes, Structure] = field(default_factory=dict)

    def supercell(self, matrix: np.ndarray) -> Structure:
        key = np.asarray(matrix, dtype=int).tobytes()
        if key not in self.built:
            self.built[key] = self.base.copy() * matrix.tolist()
        return self.built[key]

    @classmethod
    def of(cls, path: MigrationHop, host: Structure, settings: EnumerationSettings) -> _HostFacts:
        base = Structure.from_sites(path.symm_structure.sites)
        return cls(
            base=base,
            symmetry_ops=SpacegroupAnalyzer(base, symprec=settings.symprec).get_symmetry_operations(cartesian=True),
            supercells=supercell_matrices(base, settings.min_image_distance_a, settings.max_atoms),
            facts=_symmetry_facts(host, settings.symprec),
        )


def _equivalent_hop_ends(path: MigrationHop, base: Structure, ops: list) -> list[tuple[PeriodicSite, PeriodicSite]]:
    """The hop and its symmetry-equivalent copies, as (start, end) sites of ``base`` (periodic
    images kept, so end − start is the hop vector)."""
    ends = [(path.isite, path.esite)]
    for op in ops:
        start = _snap_to_site(base, op.operate(path.isite.coords))
        end = _snap_to_site(base, op.operate(path.esite.coords))
        if start is not None and end is not None:
            ends.append((start, end))
    return ends


def _hop_from_path(
    path: MigrationHop, number: int, host: Structure, label: str, working_ion: str, settings: EnumerationSettings,
    shared: _HostFacts,
) -> Hop:
    base = shared.base
    ends = _equivalent_hop_ends(path, base, shared.symmetry_ops)
    vectors = [end.coords - start.coords for start, end in ends]
    chosen = choose_supercell_matrix(base, settings.min_image_distance_a, settings.max_atoms, vectors, shared.supercells)
    if chosen is None:
        raise HopError(
            f"no supercell of at most {settings.max_atoms} atoms keeps periodic images "
            f"{settings.min_image_distance_a} Å apart and the hop unambiguous "
            "(raise --max-atoms or lower --min-image-distance)"
        )
    matrix, which = chosen
    isite, esite = ends[which]
    hop_vector_cart = vectors[which]
    initial, final = supercell_endpoints(isite, esite, shared.supercell(matrix), matrix, working_ion)
    hop = Hop(
        hop_id=f"{label}-p{number}",
        initial=initial,
        final=final,
        working_ion=working_ion,
        provenance=Provenance(source="alem:candidates"),
        group=label,
        metadata={
            "sys_name": label,
            "formula": host.composition.reduced_formula,
            "path_info": f"PATH {number}",
            "supercell_matrix": matrix.tolist(),
            **shared.facts,
        },
    )
    mismatch_a = float(np.linalg.norm(hop.displacement_cart - hop_vector_cart))
    if mismatch_a > DISPLACEMENT_TOLERANCE_A:
        raise HopError(
            f"the supercell is too small for a {path.length:.2f} Å hop: its minimum image runs elsewhere "
            "(raise --min-image-distance)"
        )
    return hop


#: pymatgen-analysis-diffusion's path finder of a host and its distinct paths (``get_paths``).
DistinctPaths = tuple[DistinctPathFinder, list[MigrationHop]]


def find_distinct_paths(host: Structure, working_ion: str, settings: EnumerationSettings) -> DistinctPaths:
    """The host's symmetry-distinct paths up to ``settings.max_hop_length_a`` (None: pymatgen's
    percolation cutoff), and the finder that found them."""
    finder = DistinctPathFinder(host, working_ion, max_path_length=settings.max_hop_length_a, symprec=settings.symprec)
    return finder, finder.get_paths()


def enumerate_hops(
    host: Structure,
    working_ion: str,
    label: str,
    settings: EnumerationSettings = EnumerationSettings(),
    problems: list[str] | None = None,
    source: str | None = None,
    distinct_paths: DistinctPaths | None = None,
) -> list[Hop]:
    """Every symmetry-distinct hop of ``working_ion`` in ``host`` as a valid :class:`Hop`.

    Paths whose supercell endpoints fail :func:`check_hop` (e.g. a cell too small to tell the
    two sites apart) are skipped and described in ``problems``. Raises :class:`HostError` when the
    host has no hop within range. ``distinct_paths``: :func:`find_distinct_paths` of ``host``,
    when the caller needs them too (the host's network is built from the same).
    """
    where = source or label
    problems = problems if problems is not None else []
    finder, paths = distinct_paths or find_distinct_paths(host, working_ion, settings)
    if not paths:
        raise HostError(
            f"{where}: no {working_ion} hop shorter than {finder.max_path_length:.2f} Å "
            "(raise --max-hop-length)"
        )
    hops = []
    shared: dict[int, _HostFacts] = {}  # by symmetrized structure: all paths of a finder share one
    for number, path in enumerate(paths, start=1):
        try:
            key = id(path.symm_structure)
            if key not in shared:
                shared[key] = _HostFacts.of(path, host, settings)
            hop = _hop_from_path(path, number, host, label, working_ion, settings, shared[key])
            check_hop(hop, source=where)
        except HopError as exc:
            problems.append(f"{where}: path {number} ({path.length:.2f} Å) skipped: {exc}")
            continue
        hops.append(hop)
    if not hops:
        raise HostError(f"{where}: none of the {len(paths)} {working_ion} paths gave a valid hop: " + "; ".join(problems))
    return hops
