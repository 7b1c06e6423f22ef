"""What an NEB of a hop will cost, as far as a person approving it needs to know.

The same estimate the cost-aware acquisition uses (:func:`alem.campaign.neb_costs.neb_cost`): the
cell the backend preset's NEB will run, its images, and ``[costs]`` core-hours for the preset's
fidelity (DFT: ∝ atoms² × images by default; an order of magnitude, not a quote).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alem.hops.hop import Hop

if TYPE_CHECKING:
    from alem.config import CampaignConfig


@dataclass(frozen=True)
class CostEstimate:
    n_atoms: int  # in the NEB cell the backend will run
    summary: str  # one line for a person
    core_hours: float | None = None  # None: no calculation runs, or the preset cannot be read


def _rounded(core_hours: float) -> str:
    return f"{float(f'{core_hours:.2g}'):,.{0 if core_hours >= 10 else 2}f}"  # two significant figures: an estimate


def estimate_cost(hop: Hop, config: CampaignConfig) -> CostEstimate:
    """NEB cell size and cost in words for the campaign's backend."""
    from alem.campaign.neb_costs import neb_cost
    from alem.hops.fidelity import is_mlip
    from alem.neb.presets import PresetError, campaign_preset

    try:
        preset = campaign_preset(config)
    except PresetError as exc:
        return CostEstimate(hop.n_sites, f"{hop.n_sites}-atom cell; cost unknown ({exc})")
    if preset is None:
        return CostEstimate(hop.n_sites, f"{hop.n_sites}-atom cell; the {config.backend.kind} backend answers from its "
                            "dataset, no calculation runs")
    cost = neb_cost(hop, preset, preset.fidelity, config.costs)
    mlip = is_mlip(preset.fidelity)
    where = ("an MLIP NEB: minutes on a CPU" if mlip
             else f"order of magnitude: DFT cost ∝ atoms^{config.costs.dft.exponent:g} × images, [costs.dft]")
    charge = "" if mlip else f"; {preset.vasp.charge_description(hop.working_ion)}"
    return CostEstimate(
        cost.n_atoms,
        f"{cost.n_atoms}-atom NEB cell, {cost.n_images} images, {preset.method_label}: roughly "
        f"{_rounded(cost.core_hours)} core-hours ({where}){charge}",
        cost.core_hours,
    )
