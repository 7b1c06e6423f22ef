"""Choosing the NEB supercell of a host: the fewest atoms that keep periodic images of the moving
ion at least ``min_image_distance_a`` apart, with the hop itself unambiguous.

pymatgen's ``CubicSupercellTransformation`` (what pymatgen-analysis-diffusion uses) only looks for
near-cubic cells and often overshoots on layered or rhombohedral hosts (e.g. 95 atoms for Li2O
where a 2x2x2 primitive cell of 24 atoms keeps images 6.5 Å apart). Both its answer and the
diagonal multiples of the given cell are considered, and every symmetry-equivalent copy of the hop
is tried, since a diagonal cell may suit one orientation of the hop and not another.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.transformations.advanced_transformations import CubicSupercellTransformation

#: The hop's far end must be at least this much (Å) closer than any periodic image of it, so the
#: minimum-image path in the supercell is the hop that was enumerated.
HOP_IMAGE_MARGIN_A = 0.5


def _short_lattice_vectors(lattice: Lattice) -> np.ndarray:
    reduced = lattice.get_lll_reduced_lattice().matrix
    combos = np.array([c for c in itertools.product(range(-2, 3), repeat=3) if any(c)])
    return combos @ reduced


def shortest_lattice_vector_a(lattice: Lattice) -> float:
    """Length of the shortest non-zero lattice vector (Å): the distance between periodic images."""
    return float(np.linalg.norm(_short_lattice_vectors(lattice), axis=1).min())


#: alem's hop convention takes the ion's displacement as frac(final − initial) rounded to the
#: nearest lattice vector component-wise; a component near ±0.5 would round either way.
MAX_FRACTIONAL_DISPLACEMENT = 0.45


def hop_is_unambiguous(lattice: Lattice, hop_vector_cart: np.ndarray) -> bool:
    """True when no periodic image of the hop's end is nearly as close as the end itself, and the
    hop's fractional displacement rounds to itself (see ``MAX_FRACTIONAL_DISPLACEMENT``)."""
    if np.abs(lattice.get_fractional_coords(hop_vector_cart)).max() > MAX_FRACTIONAL_DISPLACEMENT:
        return False
    length = float(np.linalg.norm(hop_vector_cart))
    image_distances = np.linalg.norm(hop_vector_cart[None, :] - _short_lattice_vectors(lattice), axis=1)
    return bool(image_distances.min() >= length + HOP_IMAGE_MARGIN_A)


def _cubic_candidate(host: Structure, min_image_distance_a: float, max_atoms: int) -> np.ndarray | None:
    transformation = CubicSupercellTransformation(min_atoms=1, max_atoms=max_atoms, min_length=min_image_distance_a)
    try:
        transformation.apply_transformation(host)
    except Exception:  # it raises when no cell within max_atoms qualifies
        return None
    return np.array(transformation.transformation_matrix, dtype=int)


def supercell_matrices(host: Structure, min_image_distance_a: float, max_atoms: int) -> list[np.ndarray]:
    """Integer supercell matrices of at most ``max_atoms`` atoms whose periodic images are at least
    ``min_image_distance_a`` apart, smallest first."""
    limits = [max(1, math.ceil(min_image_distance_a / length)) + 1 for length in host.lattice.abc]
    candidates = [np.diag(n) for n in itertools.product(*(range(1, k + 1) for k in limits))]
    cubic = _cubic_candidate(host, min_image_distance_a, max_atoms)
    if cubic is not None:
        candidates.append(cubic)
    feasible = []
    for matrix in candidates:
        n_atoms = len(host) * abs(round(np.linalg.det(matrix)))
        lattice = Lattice(matrix @ host.lattice.matrix)
        if n_atoms <= max_atoms and shortest_lattice_vector_a(lattice) >= min_image_distance_a - 1e-6:
            feasible.append((n_atoms, matrix))
    return [matrix for _, matrix in sorted(feasible, key=lambda item: item[0])]


def choose_supercell_matrix(
    host: Structure,
    min_image_distance_a: float,
    max_atoms: int,
    hop_vectors_cart: Sequence[np.ndarray] = (),
    matrices: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, int] | None:
    """Smallest qualifying supercell matrix and the index of the hop vector it keeps unambiguous
    (0 without vectors); None when no cell of at most ``max_atoms`` atoms qualifies.
    ``matrices``: :func:`supercell_matrices` of ``host`` when the caller has them already."""
    if matrices is None:
        matrices = supercell_matrices(host, min_image_distance_a, max_atoms)
    for matrix in matrices:
        if not len(hop_vectors_cart):
            return matrix, 0
        lattice = Lattice(matrix @ host.lattice.matrix)
        for k, vector in enumerate(hop_vectors_cart):
            if hop_is_unambiguous(lattice, np.asarray(vector)):
                return matrix, k
    return None
