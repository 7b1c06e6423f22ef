"""Which candidate hops a campaign enumerates (``alem candidates add``): the enumeration settings,
with the NEB cell limit taken from the campaign's backend preset, so no hop the preset would run
is skipped at enumeration."""

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


def enumeration_settings(
    config: CampaignConfig, max_hop_length_a: float | None, min_image_distance_a: float, max_atoms: int | None
) -> EnumerationSettings:
    """The settings of one ``candidates add``; ``max_atoms`` None (or 0): the preset's limit."""
    return EnumerationSettings(max_hop_length_a, min_image_distance_a, max_atoms or preset_max_atoms(config))
