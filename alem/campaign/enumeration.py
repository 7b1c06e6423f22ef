"""Which candidate hops a campaign enumerates (``alem candidates add``): the enumeration settings,
with the NEB cell limit and the periodic-image distance taken from the campaign's backend preset,
so no hop the preset would run is skipped at enumeration and the hop's cell is the one its NEB
needs (no second repetition at NEB time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alem.candidates import EnumerationSettings

if TYPE_CHECKING:
    from alem.config import CampaignConfig


def preset_max_atoms(config: CampaignConfig) -> int:
    """The ``[supercell] max_atoms`` of the backend's preset (the enumeration default for a backend
    without a preset); ``alem.neb.presets.PresetError`` for a missing or invalid preset."""
    from alem.neb.presets import campaign_preset

    preset = campaign_preset(config)
    return preset.supercell.max_atoms if preset is not None else EnumerationSettings.max_atoms


def preset_min_image_distance_a(config: CampaignConfig) -> float:
    """The ``[supercell] min_image_distance_a`` of the backend's preset (the enumeration default for a
    backend without one)."""
    from alem.neb.presets import campaign_preset

    preset = campaign_preset(config)
    return preset.supercell.min_image_distance_a if preset is not None else EnumerationSettings.min_image_distance_a


def enumeration_settings(
    config: CampaignConfig, max_hop_length_a: float | None, min_image_distance_a: float | None, max_atoms: int | None
) -> EnumerationSettings:
    """The settings of one ``candidates add``; ``max_atoms`` or ``min_image_distance_a`` None: the preset's."""
    distance = min_image_distance_a if min_image_distance_a is not None else preset_min_image_distance_a(config)
    return EnumerationSettings(max_hop_length_a, distance, max_atoms or preset_max_atoms(config))
