"""The NEB cell of a hop: the supercell rule and the site order VASP needs.

A hop's endpoints are already supercells with the migrating ion at site 0. If periodic images of
that ion are closer than the preset's minimum distance, the NEB would let the ion interact with
its own images, so the cell is repeated along the short directions until every periodic image is
at least ``min_image_distance_a`` away. Only one copy of the ion migrates: the other copies are
host atoms and stay at the initial site in both endpoints.
"""

from __future__ import annotations

import math

import numpy as np
from pymatgen.core import Lattice, Structure

from alem.candidates.supercell import shortest_lattice_vector_a
from alem.errors import AlemError
from alem.hops.hop import Hop


class NebSetupError(AlemError, ValueError):
    """A hop that cannot be turned into an NEB cell under the preset's rules."""


def plane_spacings_a(lattice: Lattice) -> np.ndarray:
    """Spacing of the lattice planes spanned by each pair of the other two lattice vectors (Å).

    Every non-zero lattice vector is at least as long as the smallest of the three spacings, so
    repeating the cell until all spacings reach a length guarantees that image distance.
    """
    a, b, c = lattice.matrix
    volume = abs(float(np.dot(a, np.cross(b, c))))
    return np.array([volume / np.linalg.norm(np.cross(b, c)), volume / np.linalg.norm(np.cross(c, a)),
                     volume / np.linalg.norm(np.cross(a, b))])


def supercell_scaling(lattice: Lattice, min_image_distance_a: float) -> tuple[int, int, int]:
    """Diagonal repetition that keeps periodic images at least ``min_image_distance_a`` apart."""
    if min_image_distance_a <= 0 or shortest_lattice_vector_a(lattice) >= min_image_distance_a - 1e-6:
        return (1, 1, 1)
    spacings = plane_spacings_a(lattice)
    return tuple(max(1, math.ceil(min_image_distance_a / spacing - 1e-6)) for spacing in spacings)


def pristine_host(hop: Hop) -> Structure:
    """The host's primitive cell: the hop's own cell with its vacancy refilled (the ion at its
    final site), reduced. The NEB cell is an integer supercell of it."""
    pristine = hop.initial.copy()
    pristine.append(hop.final[0].species, hop.final[0].frac_coords)
    return pristine.get_primitive_structure()


def _grouped_order(structure: Structure, first_species: str) -> list[int]:
    """Site order with site 0 first, then its species, then the others by first appearance."""
    symbols = [site.species_string for site in structure]
    species_order = [symbols[0]] + [s for s in dict.fromkeys(symbols) if s != symbols[0]]
    if first_species in species_order:
        species_order.remove(first_species)
        species_order.insert(0, first_species)
    order = [0]
    for species in species_order:
        order += [i for i, s in enumerate(symbols) if s == species and i != 0]
    return order


def neb_endpoints(
    hop: Hop,
    min_image_distance_a: float,
    max_atoms: int,
    group_species: bool = False,
) -> tuple[Structure, Structure]:
    """The two NEB endpoints of ``hop`` after the supercell rule (site 0 is still the ion).

    ``group_species`` reorders the other sites so each species forms one block, the migrating
    ion's species first: VASP writes one POTCAR per block, so images must share that order.
    """
    scaling = supercell_scaling(hop.initial.lattice, min_image_distance_a)
    n_copies = int(np.prod(scaling))
    if len(hop.initial) * n_copies > max_atoms:
        raise NebSetupError(
            f"hop {hop.hop_id}: the NEB cell would have {len(hop.initial) * n_copies} atoms "
            f"(supercell {scaling} of {len(hop.initial)} atoms to keep periodic images of the ion "
            f"{min_image_distance_a:g} Å apart), more than the preset's max_atoms = {max_atoms}"
        )
    initial = hop.initial.copy()
    final = hop.final.copy()
    if n_copies > 1:
        initial.make_supercell(scaling)
        final.make_supercell(scaling)
        # make_supercell keeps the copies of site i at indices [i*n, (i+1)*n): copy 0 of the ion
        # migrates, copies 1..n-1 are host ions and must sit at their initial sites in both ends.
        for index in range(1, n_copies):
            final.replace(index, initial[index].species, initial[index].frac_coords)
        # The ion's short hop may cross a face of the small cell that is interior to the
        # supercell: place it by the minimum-image displacement so the path stays short.
        final.replace(0, final[0].species, initial[0].coords + hop.displacement_cart, coords_are_cartesian=True)
    if group_species:
        order = _grouped_order(initial, hop.working_ion)
        initial = Structure.from_sites([initial[i] for i in order])
        final = Structure.from_sites([final[i] for i in order])
    return initial, final


def interpolate_images(initial: Structure, final: Structure, n_images: int, method: str = "idpp") -> list[Structure]:
    """``n_images`` intermediate images plus both endpoints, without re-sorting sites."""
    if method == "linear":
        return initial.interpolate(final, nimages=n_images + 1, autosort_tol=0)
    from pymatgen.analysis.diffusion.neb.pathfinder import IDPPSolver

    return IDPPSolver.from_endpoints([initial, final], nimages=n_images, sort_tol=0).run()
