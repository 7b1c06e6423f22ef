"""``[costs]``: core-hours of one NEB of a hop, the single estimate behind the cost-aware DFT
proposal (``SelectionRequest.cost_core_hours_of``) and the review page's "what it will cost".

The NEB cell is the hop's stored cell repeated by the backend preset's own rule (periodic images
of the ion at least ``min_image_distance_a`` apart, :mod:`alem.neb.supercell`), the images are the
preset's, and the core-hours follow :func:`alem.acquisition.costs.cost_of` with the ``[costs.dft]``
or ``[costs.mlip]`` pair chosen by the fidelity's kind. Without a preset (the replay backend) the
stored cell and the 5-image anchor are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alem.acquisition.costs import REFERENCE_IMAGES, FidelityCost, cost_of
from alem.hops.hop import Hop

if TYPE_CHECKING:
    from alem.config import CostsSection
    from alem.neb.presets import Preset


@dataclass(frozen=True)
class NebCost:
    """The NEB a hop's calculation will be: its cell, its images and its core-hours."""

    n_atoms: int
    n_images: int
    core_hours: float


def fidelity_costs(costs_section: CostsSection) -> dict[str, FidelityCost]:
    """``[costs]`` as the acquisition's ``{kind: FidelityCost}`` mapping."""
    return {
        kind: FidelityCost(section.core_hours_per_100_atoms, section.exponent)
        for kind, section in (("dft", costs_section.dft), ("mlip", costs_section.mlip))
    }


def neb_core_hours(fidelity: str, n_atoms: int, costs_section: CostsSection, n_images: int = REFERENCE_IMAGES) -> float:
    """Core-hours of one NEB of ``n_atoms`` and ``n_images`` at ``fidelity`` under ``[costs]``."""
    return float(cost_of(fidelity, n_atoms, fidelity_costs(costs_section), n_images))


def neb_cell_atoms(hop: Hop, preset: Preset | None) -> int:
    """Atoms of the cell the preset's NEB will run (the stored cell when there is no preset)."""
    from alem.neb.supercell import neb_cell_atoms as preset_cell_atoms

    if preset is None:
        return hop.n_sites
    return preset_cell_atoms(hop, preset.supercell.min_image_distance_a)


def neb_cost(hop: Hop, preset: Preset | None, fidelity: str, costs_section: CostsSection) -> NebCost:
    """What the NEB of ``hop`` with ``preset`` costs at ``fidelity`` under ``[costs]``."""
    n_atoms = neb_cell_atoms(hop, preset)
    n_images = preset.neb.n_images if preset is not None else REFERENCE_IMAGES
    return NebCost(n_atoms, n_images, neb_core_hours(fidelity, n_atoms, costs_section, n_images))


def cost_request_fields(hops: Sequence[Hop], fidelity: str, costs_section: CostsSection,
                        preset: Preset | None = None) -> dict:
    """``{"cost_core_hours_of": {hop_id: core-hours}}`` when ``[costs] aware`` is on; ``{}``
    otherwise (selection without cost-awareness)."""
    if not costs_section.aware:
        return {}
    return {"cost_core_hours_of": {h.hop_id: neb_cost(h, preset, fidelity, costs_section).core_hours for h in hops}}


def backend_preset_or_none(config) -> Preset | None:
    """The preset ``[backend]`` runs; None for the replay backend or a preset that cannot be read
    (``alem doctor`` reports that; the costs then fall back to the stored cell and 5 images)."""
    from alem.neb.presets import PresetError, campaign_preset

    try:
        return campaign_preset(config)
    except PresetError:
        return None
