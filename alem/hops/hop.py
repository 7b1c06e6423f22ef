"""The hop: one migration event of a working ion between two sites of a fixed host.

Convention (shared with the published Em dataset): both endpoints are full supercells with
identical lattices and hosts; site 0 is the migrating ion, at its initial site in ``initial``
and at its final site in ``final``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymatgen.core import Structure

GOOD_CONDUCTOR_THRESHOLD_EV = 0.65


@dataclass(frozen=True)
class Provenance:
    """Where a barrier came from."""

    source: str | None = None  # e.g. "literature", "alem:vasp", "alem:mlip"
    xc: str | None = None  # GGA, GGA+U, SCAN, LDA, or the MLIP name
    citation: str | None = None
    #: Level of theory of the barrier, ``dft:<functional>`` or ``mlip:<potential>`` (alem.hops.fidelity).
    fidelity: str | None = None


@dataclass
class Hop:
    """A migration hop with an optional reference barrier."""

    hop_id: str
    initial: Structure
    final: Structure
    working_ion: str
    barrier_ev: float | None = None
    provenance: Provenance = field(default_factory=Provenance)
    #: Compound the hop belongs to; hops sharing a group never straddle CV folds.
    group: str | None = None
    #: Free-form tabulated facts (formula, crystal_class, space_group, path_info, ...).
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_sites(self) -> int:
        return len(self.initial)

    @property
    def displacement_cart(self) -> np.ndarray:
        """Minimum-image Cartesian vector from the initial to the final site of the ion (Å)."""
        dfrac = self.final.frac_coords[0] - self.initial.frac_coords[0]
        dfrac -= np.round(dfrac)
        return dfrac @ self.initial.lattice.matrix

    @property
    def hop_length_a(self) -> float:
        return float(np.linalg.norm(self.displacement_cart))

    @property
    def host(self) -> Structure:
        """The host without the migrating ion."""
        host = self.initial.copy()
        host.remove_sites([0])
        return host

    def path_frac_coords(self, n_images: int) -> np.ndarray:
        """Fractional coordinates of the ion at ``n_images`` linearly interpolated points,
        endpoints included, along the minimum-image path (shape ``n_images x 3``)."""
        start = self.initial.frac_coords[0]
        dfrac = self.final.frac_coords[0] - start
        dfrac -= np.round(dfrac)
        t = np.linspace(0.0, 1.0, n_images)[:, None]
        return start[None, :] + t * dfrac[None, :]


def group_of(sys_name: str) -> str:
    """Compound of a tabulated system name: ``Li2MnO3_4`` -> ``Li2MnO3`` (paths of one compound)."""
    return re.sub(r"_\d+$", "", sys_name)
