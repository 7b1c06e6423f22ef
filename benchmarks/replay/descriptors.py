"""A fixed-length descriptor of a hop for the replay benchmark's cheap surrogate.

The benchmark refits its model hundreds of times, which a graph-network ensemble cannot do on a
laptop; the surrogate is a bootstrap ensemble of small neural heads (``surrogate.py``) on these
descriptors instead. Everything is invariant to supercell, origin and hop direction:

* the ion: valence, Shannon-like radius, Pauling electronegativity;
* the path: hop length; along the straight path (9 points) the distance to the nearest framework
  atom (the bottleneck), and framework coordination within 2.5/3.0/3.5 Å at the ends and middle;
* the host: volume per atom, fraction of the working ion, mean/std of framework
  electronegativity and atomic radius, and the anion family (O, S/Se/Te, F/Cl/Br/I, N/P).
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Element

from alem.hops.hop import Hop

ION_VALENCE = {"Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Mg": 2, "Ca": 2, "Zn": 2, "Sr": 2, "Ba": 2, "Al": 3}
PATH_POINTS = 9
SHELLS_A = (2.5, 3.0, 3.5)
ANION_FAMILIES = (("O",), ("S", "Se", "Te"), ("F", "Cl", "Br", "I"), ("N", "P"))


def _framework(hop: Hop) -> list[int]:
    return [i for i, site in enumerate(hop.initial) if i != 0 and site.specie.symbol != hop.working_ion]


def _distances_from(hop: Hop, frac_point: np.ndarray, framework: list[int], radius_a: float = 6.0) -> np.ndarray:
    structure = hop.initial
    center = structure.lattice.get_cartesian_coords(frac_point)
    found = structure.lattice.get_points_in_sphere(structure.frac_coords[framework], center, radius_a)
    return np.sort(np.array([d for _, d, _, _ in found])) if found else np.array([radius_a])


def hop_descriptor(hop: Hop) -> np.ndarray:
    ion = Element(hop.working_ion)
    framework = _framework(hop)
    path = hop.path_frac_coords(PATH_POINTS)
    nearest = np.array([_distances_from(hop, point, framework)[0] for point in path])
    ends = [_distances_from(hop, path[0], framework), _distances_from(hop, path[-1], framework)]
    middle = _distances_from(hop, path[PATH_POINTS // 2], framework)
    shells = [np.mean([np.sum(d < r) for d in ends]) for r in SHELLS_A] + [np.sum(middle < r) for r in SHELLS_A]
    elements = [hop.initial[i].specie for i in framework]
    electroneg = np.array([e.X if e.X == e.X else 2.0 for e in elements])  # X is NaN for noble gases
    radius = np.array([float(e.atomic_radius or 1.5) for e in elements])
    symbols = {e.symbol for e in elements}
    families = [float(any(s in symbols for s in family)) for family in ANION_FAMILIES]
    n_ion = sum(1 for site in hop.initial if site.specie.symbol == hop.working_ion)
    features = [
        ION_VALENCE.get(hop.working_ion, 1),
        float(ion.atomic_radius or 1.5),
        ion.X,
        hop.hop_length_a,
        nearest.min(),
        nearest[PATH_POINTS // 2],
        nearest.mean(),
        nearest.min() - 0.5 * (nearest[0] + nearest[-1]),
        *shells,
        hop.initial.volume / len(hop.initial),
        n_ion / len(hop.initial),
        electroneg.mean(),
        electroneg.std(),
        radius.mean(),
        radius.std(),
        *families,
    ]
    return np.asarray(features, dtype=float)


def descriptor_matrix(hops: list[Hop]) -> np.ndarray:
    return np.stack([hop_descriptor(h) for h in hops])
