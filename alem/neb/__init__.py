"""NEB workflows for hops: presets, the NEB cell, jobflow Flows and barrier extraction.

The names are imported on first use (PEP 562): the NEB cell and the barrier extraction import
pymatgen's transformations and atomate2 (seconds), while the review page's cost line reads only
:mod:`alem.neb.presets`.
"""

from typing import TYPE_CHECKING

from alem import lazy_attributes

if TYPE_CHECKING:  # what type checkers and editors see; at run time names load on first use
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

_LAZY = {
    **{name: "barrier" for name in (
        "DEFAULT_CRITERIA", "PathCriteria", "outcome_from_job_store", "outcome_from_neb_document", "outcome_from_path",
        "outcome_from_vasp_dir", "polaron_problem",
    )},
    **{name: "presets" for name in ("Preset", "PresetError", "available_presets", "load_preset")},
    "NebRestart": "restart",
    **{name: "supercell" for name in ("NebSetupError", "neb_endpoints", "supercell_scaling")},
}

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

__getattr__ = lazy_attributes(__name__, _LAZY)
