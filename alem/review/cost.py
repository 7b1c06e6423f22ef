"""What an NEB of a hop will cost, as far as a person approving it needs to know.

The cell is the hop's stored supercell repeated by the backend preset's own rule (periodic
images of the ion at least ``min_image_distance_a`` apart, ``alem.neb.supercell``). DFT cost is
given as an order of magnitude only: plane-wave DFT scales roughly with the cube of the number
of atoms, anchored at :data:`DFT_CORE_HOURS_PER_IMAGE_100_ATOMS` for one NEB image of 100 atoms
(ionic relaxation of a GGA image on a typical HPC node; GGA+U and magnetic cells cost more).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alem.hops.hop import Hop

if TYPE_CHECKING:
    from alem.config import CampaignConfig

#: Order-of-magnitude anchor: core-hours of one relaxed NEB image of 100 atoms with GGA.
DFT_CORE_HOURS_PER_IMAGE_100_ATOMS = 300.0


@dataclass(frozen=True)
class CostEstimate:
    n_atoms: int  # in the NEB cell the backend will run
    summary: str  # one line for a person


def _preset_name(config: CampaignConfig) -> str | None:
    backend = config.backend
    return {
        "local": backend.local.preset,
        "fireworks": backend.fireworks.preset,
        "jobflow-remote": backend.jobflow_remote.preset,
    }.get(backend.kind)


def estimate_cost(hop: Hop, config: CampaignConfig) -> CostEstimate:
    """NEB cell size and cost in words for the campaign's backend."""
    from alem.neb.presets import PresetError, load_preset
    from alem.neb.supercell import neb_cell_atoms

    name = _preset_name(config)
    if name is None:
        return CostEstimate(hop.n_sites, f"{hop.n_sites}-atom cell; the {config.backend.kind} backend runs no calculation")
    try:
        preset = load_preset(name, config.campaign_dir)
    except PresetError as exc:
        return CostEstimate(hop.n_sites, f"{hop.n_sites}-atom cell; cost unknown ({exc})")
    n_atoms = neb_cell_atoms(hop, preset.supercell.min_image_distance_a)
    images = preset.neb.n_images
    if preset.engine == "mlip":
        return CostEstimate(n_atoms, f"{n_atoms}-atom NEB cell, {images} images, {preset.method_label}: minutes on a CPU")
    core_hours = DFT_CORE_HOURS_PER_IMAGE_100_ATOMS * images * (n_atoms / 100.0) ** 3
    magnitude = f"{float(f'{core_hours:.2g}'):,.0f}"  # two significant figures: it is an estimate
    return CostEstimate(
        n_atoms,
        f"{n_atoms}-atom NEB cell, {images} images, {preset.method_label}: roughly {magnitude} core-hours "
        f"(order of magnitude: DFT cost ∝ atoms³); {preset.vasp.charge_description(hop.working_ion)}",
    )
