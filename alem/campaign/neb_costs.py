"""``[costs]``: core-hours of one NEB per fidelity, as a function of supercell size, for the
cost-aware DFT proposal (``SelectionRequest.cost_core_hours_of``).

cost(n_atoms) = core_hours_per_100_atoms × (n_atoms / 100) ** exponent, with the ``[costs.dft]`` or
``[costs.mlip]`` pair chosen by the fidelity's kind. The size is the hop's stored cell size
(``n_sites``), the same one ``[acquisition] cost_weight`` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from alem.acquisition.costs import FidelityCost, cost_of
from alem.store import HopRecord

if TYPE_CHECKING:
    from alem.config import CostsSection


def fidelity_costs(costs_section: CostsSection) -> dict[str, FidelityCost]:
    """``[costs]`` as the acquisition's ``{kind: FidelityCost}`` mapping."""
    return {
        kind: FidelityCost(section.core_hours_per_100_atoms, section.exponent)
        for kind, section in (("dft", costs_section.dft), ("mlip", costs_section.mlip))
    }


def neb_core_hours(fidelity: str, n_atoms: int, costs_section: CostsSection) -> float:
    """Core-hours of one NEB of ``n_atoms`` at ``fidelity`` under ``[costs]``."""
    return float(cost_of(fidelity, n_atoms, fidelity_costs(costs_section)))


def cost_request_fields(records: Sequence[HopRecord], fidelity: str, costs_section: CostsSection) -> dict:
    """``{"cost_core_hours_of": {hop_id: core-hours}}`` when ``[costs] aware`` is on; ``{}``
    otherwise (selection without cost-awareness)."""
    if not costs_section.aware:
        return {}
    return {"cost_core_hours_of": {r.hop_id: neb_core_hours(fidelity, r.n_sites, costs_section) for r in records}}
