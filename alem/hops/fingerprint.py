"""Exact structural fingerprints used to de-duplicate hosts and hops.

Two hops get the same fingerprint when they have the same lattice, the same host sites (in any
order) and the same initial and final position of the migrating ion, all to within
``DECIMALS`` decimals of fractional coordinate / Å. Symmetry-equivalent hops with different
coordinates are *not* merged here: finding symmetry-distinct paths is the candidate generator's
job (pymatgen-analysis-diffusion); this guards against storing the very same hop twice.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from alem.hops.hop import Hop

DECIMALS = 3


def _wrapped(frac_coords: np.ndarray) -> np.ndarray:
    # Round first, then wrap, so 0.99996 and 0.00001 both become 0.0.
    rounded = np.round(np.asarray(frac_coords, dtype=float), DECIMALS) % 1.0
    rounded[np.isclose(rounded, 1.0)] = 0.0
    return np.round(rounded, DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _lattice_token(structure: Structure) -> str:
    return ",".join(f"{x:.{DECIMALS}f}" for x in np.asarray(structure.lattice.matrix).ravel() + 0.0)


def _sites_token(species: list[str], frac_coords: np.ndarray) -> str:
    coords = _wrapped(frac_coords)
    rows = sorted(f"{sp}@{c[0]:.{DECIMALS}f},{c[1]:.{DECIMALS}f},{c[2]:.{DECIMALS}f}" for sp, c in zip(species, coords))
    return ";".join(rows)


def structure_fingerprint(structure: Structure) -> str:
    """SHA-256 of the lattice and the sorted, wrapped, rounded sites (a partially occupied site
    by its occupancies, e.g. "Li:0.500", so a disordered host file has a fingerprint too)."""
    species = [site.specie.symbol if site.is_ordered else site.species_string for site in structure]
    text = _lattice_token(structure) + "|" + _sites_token(species, structure.frac_coords)
    return hashlib.sha256(text.encode()).hexdigest()


def hop_fingerprint(hop: Hop) -> str:
    """SHA-256 of the working ion, lattice, host sites (site 0 excluded) and both ion positions."""
    species = [site.specie.symbol for site in hop.initial]
    ion_ini = _wrapped(hop.initial.frac_coords[:1])[0]
    ion_fin = _wrapped(hop.final.frac_coords[:1])[0]
    text = "|".join(
        [
            hop.working_ion,
            _lattice_token(hop.initial),
            _sites_token(species[1:], hop.initial.frac_coords[1:]),
            ",".join(f"{x:.{DECIMALS}f}" for x in ion_ini),
            ",".join(f"{x:.{DECIMALS}f}" for x in ion_fin),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()
