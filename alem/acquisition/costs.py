"""What one NEB costs at each fidelity, in core-hours, as a function of supercell size.

The defaults are order-of-magnitude figures for planning, overridable per campaign (``[costs]``
in ``alem.toml``):

* ``dft`` (GGA / GGA+U, VASP climbing-image NEB, 5–7 images, ~100-atom supercell): about 2,000
  core-hours per NEB, growing as (N/100)² — plane-wave DFT scales between N² and N³ in this size
  range, and larger cells also need fewer k-points, so the square is a middle estimate.
* ``dft:SCAN``: meta-GGA, about 3× the GGA cost at the same size (denser grids, slower SCF).
* ``mlip`` (CHGNet / MACE-MP / SevenNet NEB on CPU): about 0.05 core-hours per 100 atoms, linear
  in N — five orders of magnitude below DFT, which is why screening every candidate pays.

Lookup (:func:`cost_of`) tries the full fidelity first (``dft:SCAN``), then its kind (``dft``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alem.hops.fidelity import kind_of, parse_fidelity


@dataclass(frozen=True)
class FidelityCost:
    """Core-hours of one NEB: ``core_hours_per_100_atoms · (n_atoms / 100) ** exponent``."""

    core_hours_per_100_atoms: float
    exponent: float

    def __post_init__(self) -> None:
        if not self.core_hours_per_100_atoms > 0:
            raise ValueError(f"core_hours_per_100_atoms must be positive, got {self.core_hours_per_100_atoms}")
        if self.exponent < 0:
            raise ValueError(f"exponent must not be negative, got {self.exponent}")

    def core_hours(self, n_atoms: int) -> float:
        if n_atoms <= 0:
            raise ValueError(f"a supercell has at least one atom, got {n_atoms}")
        return self.core_hours_per_100_atoms * (n_atoms / 100.0) ** self.exponent


DEFAULT_FIDELITY_COSTS: dict[str, FidelityCost] = {
    "dft": FidelityCost(core_hours_per_100_atoms=2000.0, exponent=2.0),
    "dft:SCAN": FidelityCost(core_hours_per_100_atoms=6000.0, exponent=2.0),
    "mlip": FidelityCost(core_hours_per_100_atoms=0.05, exponent=1.0),
}


def cost_of(fidelity: str, n_atoms: int, costs: Mapping[str, FidelityCost] | None = None) -> float:
    """Core-hours of one NEB of ``fidelity`` on an ``n_atoms`` supercell (``costs`` default:
    :data:`DEFAULT_FIDELITY_COSTS`; the full fidelity's entry wins over its kind's)."""
    table = DEFAULT_FIDELITY_COSTS if costs is None else costs
    canonical = parse_fidelity(fidelity)
    by_lower = {key.lower(): value for key, value in table.items()}
    for key in (canonical.lower(), kind_of(canonical)):
        if key in by_lower:
            return by_lower[key].core_hours(n_atoms)
    raise KeyError(f"no cost for fidelity {canonical} (known: {', '.join(table)})")
