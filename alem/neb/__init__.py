"""NEB workflows for hops: presets, the NEB cell, jobflow Flows and barrier extraction."""

from alem.neb.barrier import (
    DEFAULT_CRITERIA,
    PathCriteria,
    outcome_from_job_store,
    outcome_from_neb_document,
    outcome_from_path,
    outcome_from_vasp_dir,
    polaron_problem,
)
from alem.neb.presets import Preset, PresetError, available_presets, load_preset
from alem.neb.restart import NebRestart
from alem.neb.supercell import NebSetupError, neb_endpoints, supercell_scaling

__all__ = [
    "DEFAULT_CRITERIA",
    "NebRestart",
    "NebSetupError",
    "PathCriteria",
    "Preset",
    "PresetError",
    "available_presets",
    "load_preset",
    "neb_endpoints",
    "outcome_from_job_store",
    "outcome_from_neb_document",
    "outcome_from_path",
    "outcome_from_vasp_dir",
    "polaron_problem",
    "supercell_scaling",
]
