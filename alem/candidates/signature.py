"""A supercell-independent signature of a hop, to recognise a hop already in the dataset or store.

The store's own fingerprint (``alem.hops.fingerprint``) is exact: same lattice, same sites. The
dataset holds hops built in other supercells, so an exact match would never fire; the signature
compares what a hop *is* instead.

Two hops count as the same when they have the same chemical system, the same hop length and the
same framework around the ion's initial, middle and final positions. Only non-working-ion atoms
(the framework) enter the environments: which other working-ion sites are vacant depends on the
supercell a hop was built in, the framework does not. Distances are rounded to ``DISTANCE_BIN_A``
so that the same hop written by different codes still matches; relaxed and unrelaxed versions of a
hop usually do not match (they are different geometries).
"""

from __future__ import annotations

import hashlib

import numpy as np

from alem.hops.hop import Hop

#: The hop metadata key a stored hop's signature is kept under.
SIGNATURE_KEY = "signature"
DISTANCE_BIN_A = 0.1
ENVIRONMENT_RADIUS_A = 4.0


def _framework_environment(hop: Hop, symbols: list[str], framework: list[int], frac_position: np.ndarray) -> tuple[tuple[str, int], ...]:
    """Sorted (element, binned distance) of framework atoms (``framework``: their indices) within
    ENVIRONMENT_RADIUS_A, all periodic images included (small cells see the same atom more than once)."""
    if not framework:
        return ()
    structure = hop.initial
    center = structure.lattice.get_cartesian_coords(frac_position)
    in_sphere = structure.lattice.get_points_in_sphere(
        structure.frac_coords[framework], center, ENVIRONMENT_RADIUS_A
    )
    return tuple(
        sorted(
            (symbols[framework[int(index)]], round(float(distance) / DISTANCE_BIN_A))
            for _, distance, index, _ in in_sphere
        )
    )


def hop_signature(hop: Hop) -> str:
    """Hex digest identifying the hop independently of supercell, origin and direction."""
    symbols = [site.specie.symbol for site in hop.initial]  # once: pymatgen builds each site's specie anew
    framework = [i for i, symbol in enumerate(symbols) if i != 0 and symbol != hop.working_ion]
    path = hop.path_frac_coords(3)
    start, middle, end = (_framework_environment(hop, symbols, framework, point) for point in path)
    ends = tuple(sorted([start, end]))
    elements = tuple(sorted(set(symbols)))
    key = repr((hop.working_ion, elements, round(hop.hop_length_a / DISTANCE_BIN_A), ends, middle))
    return hashlib.sha1(key.encode()).hexdigest()[:20]
