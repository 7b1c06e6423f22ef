"""The NEB cell of a hop: the supercell rule and the site order VASP needs.

A hop's endpoints are already supercells with the migrating ion at site 0. If periodic images of
that ion are closer than the preset's minimum distance, the NEB would let the ion interact with
its own images, so the cell is repeated along the short directions until every periodic image is
at least ``min_image_distance_a`` away.

Repeating the hop's own cell would repeat its vacancy too (a 23-atom Li2O hop repeated 2x2x2
has 8 vacancies, one of them moving). The NEB cell is therefore built from the *pristine* hop
cell (the vacancy refilled: every working-ion site occupied), repeated, and then gets exactly
one vacancy: the initial endpoint lacks the ion on the final site, the final endpoint lacks it on
the initial site. For an interstitial hop (``hop.metadata["mechanism"] == "interstitial"``) the
host without the ion is repeated and gets exactly one extra ion. Either way site 0 is the
migrating ion and every other site is identical in both endpoints.
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


INTERSTITIAL = "interstitial"


def _single_defect_endpoints(hop: Hop, scaling: tuple[int, int, int]) -> tuple[Structure, Structure]:
    """Both endpoints in the ``scaling`` supercell with exactly one vacancy (or one extra ion)."""
    interstitial = hop.metadata.get("mechanism") == INTERSTITIAL
    if interstitial:
        host = hop.host  # every site but the migrating ion
    else:  # the pristine cell: the ion's site and the vacant final site both occupied
        host = hop.initial.copy()
        host.append(hop.final[0].species, hop.final[0].frac_coords)
    host.make_supercell(scaling)
    start_cart = hop.initial[0].coords  # a diagonal supercell shares the small cell's Cartesian frame
    end_cart = start_cart + hop.displacement_cart
    if not interstitial:
        # remove the host's ion on the initial and on the final site (the copies nearest the path's ends)
        ions = [i for i, site in enumerate(host) if site.species_string == hop.working_ion]
        taken = [_nearest(host, ions, cart) for cart in (start_cart, end_cart)]
        host.remove_sites(sorted(set(taken)))
    endpoints = []
    for cart in (start_cart, end_cart):
        endpoint = host.copy()
        endpoint.insert(0, hop.initial[0].species, cart, coords_are_cartesian=True)
        endpoints.append(endpoint)
    return endpoints[0], endpoints[1]


def _nearest(structure: Structure, candidates: list[int], cart: np.ndarray) -> int:
    """Index (among ``candidates``) of the site nearest ``cart`` under periodic boundaries."""
    frac = structure.lattice.get_fractional_coords(cart)
    distances = [structure.lattice.get_distance_and_image(structure[i].frac_coords, frac)[0] for i in candidates]
    return candidates[int(np.argmin(distances))]


def neb_cell_atoms(hop: Hop, min_image_distance_a: float) -> int:
    """Atoms of the hop's NEB cell: the hop's own cell, or (vacancy) the pristine cell repeated with
    one ion removed, or (interstitial) the host repeated with one ion added."""
    n_copies = math.prod(supercell_scaling(hop.initial.lattice, min_image_distance_a))
    if n_copies == 1:
        return len(hop.initial)
    if hop.metadata.get("mechanism") == INTERSTITIAL:
        return (len(hop.initial) - 1) * n_copies + 1
    return (len(hop.initial) + 1) * n_copies - 1


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
    vacancy = hop.metadata.get("mechanism") != INTERSTITIAL
    cell_atoms = len(hop.initial) + 1 if vacancy else len(hop.initial) - 1
    n_atoms = neb_cell_atoms(hop, min_image_distance_a)
    if n_atoms > max_atoms:
        raise NebSetupError(
            f"hop {hop.hop_id}: the NEB cell would have {n_atoms} atoms "
            f"(supercell {scaling} of the {cell_atoms}-atom {'pristine' if vacancy else 'host'} cell with one "
            f"{'vacancy' if vacancy else 'extra ion'}, to keep periodic images of the ion "
            f"{min_image_distance_a:g} Å apart), more than the preset's max_atoms = {max_atoms}"
        )
    initial, final = (_single_defect_endpoints(hop, scaling) if scaling != (1, 1, 1)
                      else (hop.initial.copy(), hop.final.copy()))
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
