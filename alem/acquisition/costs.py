"""What one NEB costs at each fidelity, in core-hours, as a function of supercell size and images.

One rule for every estimate alem makes (the acquisition's cost model and the review page both call
:func:`cost_of`, through :func:`alem.campaign.neb_costs.neb_cost`)::

    core-hours = core_hours_per_100_atoms × (n_atoms / 100) ** exponent × n_images / 5

Every image is its own electronic-structure calculation on the whole cell (VASP runs them side by
side, IMAGES × the cores of one), so the cost is linear in the images; the two endpoint
relaxations are folded into the anchor, which is a 5-image NEB. The defaults are
order-of-magnitude figures for planning, overridable per campaign (``[costs]`` in ``alem.toml``):

* ``dft`` (GGA / GGA+U, VASP climbing-image NEB, 5 images, ~100-atom supercell): about 2,000
  core-hours per NEB, growing as (N/100)². Per k-point, plane-wave DFT costs between N² (FFTs,
  applying H) and N³ (orthogonalisation, subspace diagonalisation), the N² part dominating below a
  few hundred atoms; at the presets' fixed k-point density a larger cell needs fewer k-points
  (∝ 1/N) and more SCF and ionic steps, so the square is a middle estimate. Γ-only cells of
  several hundred atoms approach N³: raise ``exponent`` for those.
* ``dft:SCAN``: meta-GGA, about 3× the GGA cost at the same size (denser grids, slower SCF).
* ``mlip`` (CHGNet / MACE-MP / SevenNet NEB on CPU): about 0.05 core-hours per 100 atoms, linear
  in N — five orders of magnitude below DFT, which is why screening every candidate pays.

Lookup (:func:`cost_of`) tries the full fidelity first (``dft:SCAN``), then its kind (``dft``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alem.hops.fidelity import kind_of, parse_fidelity

#: Images of the NEB the ``core_hours_per_100_atoms`` anchors describe.
REFERENCE_IMAGES = 5


@dataclass(frozen=True)
class FidelityCost:
    """Core-hours of one NEB: ``core_hours_per_100_atoms · (n_atoms / 100) ** exponent · n_images / 5``."""

    core_hours_per_100_atoms: float
    exponent: float

    def __post_init__(self) -> None:
        if not self.core_hours_per_100_atoms > 0:
            raise ValueError(f"core_hours_per_100_atoms must be positive, got {self.core_hours_per_100_atoms}")
        if self.exponent < 0:
            raise ValueError(f"exponent must not be negative, got {self.exponent}")

    def core_hours(self, n_atoms: int, n_images: int = REFERENCE_IMAGES) -> float:
        if n_atoms <= 0:
            raise ValueError(f"a supercell has at least one atom, got {n_atoms}")
        if n_images <= 0:
            raise ValueError(f"an NEB has at least one image, got {n_images}")
        return self.core_hours_per_100_atoms * (n_atoms / 100.0) ** self.exponent * n_images / REFERENCE_IMAGES


DEFAULT_FIDELITY_COSTS: dict[str, FidelityCost] = {
    "dft": FidelityCost(core_hours_per_100_atoms=2000.0, exponent=2.0),
    "dft:SCAN": FidelityCost(core_hours_per_100_atoms=6000.0, exponent=2.0),
    "mlip": FidelityCost(core_hours_per_100_atoms=0.05, exponent=1.0),
}


def cost_of(
    fidelity: str, n_atoms: int, costs: Mapping[str, FidelityCost] | None = None, n_images: int = REFERENCE_IMAGES
) -> float:
    """Core-hours of one NEB of ``fidelity`` with ``n_images`` images on an ``n_atoms`` supercell
    (``costs`` default: :data:`DEFAULT_FIDELITY_COSTS`; the full fidelity's entry wins over its kind's)."""
    table = DEFAULT_FIDELITY_COSTS if costs is None else costs
    canonical = parse_fidelity(fidelity)
    by_lower = {key.lower(): value for key, value in table.items()}
    for key in (canonical.lower(), kind_of(canonical)):
        if key in by_lower:
            return by_lower[key].core_hours(n_atoms, n_images)
    raise KeyError(f"no cost for fidelity {canonical} (known: {', '.join(table)})")
