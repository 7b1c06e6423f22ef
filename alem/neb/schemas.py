"""What alem's NEB work hands on: the outcome of one hop's NEB, and the marks alem's VASP
collector leaves for the barrier reader.

This is the lowest module of :mod:`alem.neb` (pydantic only): backends return a
:class:`NebOutcome`, the store records one, the barrier readers build one.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

#: Written into an atomate2 NEB directory by alem's collector: where the endpoint relaxations ran.
ENDPOINTS_FILE = "alem_endpoints.json"
#: Job metadata key of the pre-NEB endpoint check job: uuid of the flow's output job it guards.
CHECK_FOR_KEY = "alem_endpoint_check_for"
#: Key of the endpoint check's own document in that job's output.
CHECK_DOC_KEY = "alem_endpoint_check"
#: Tag alem's collector adds so a reader knows ``state`` was judged from the calculations.
STATE_FROM_CALCULATIONS_TAG = "alem: state from each calculation's has_vasp_completed"


def frame_states(calculations: list[Any]) -> list[str]:
    """``has_vasp_completed`` of every frame's calculation ("successful"/"failed"), in path order."""
    states = []
    for calc in calculations:
        value = calc.get("has_vasp_completed") if isinstance(calc, dict) else getattr(calc, "has_vasp_completed", None)
        states.append(str(getattr(value, "value", value)))
    return states


class NebOutcome(BaseModel):
    """What a finished NEB yields for one hop. Only a :attr:`usable` outcome enters the dataset
    as a barrier; :attr:`unusable_reason` says why another does not."""

    barrier_ev: float | None = Field(None, description="forward barrier: max image energy - initial energy")
    reverse_barrier_ev: float | None = Field(None, description="max image energy - final energy")
    image_energies_ev: list[float] = Field(default_factory=list, description="total energy per image, endpoints included")
    path_coordinate_a: list[float] = Field(default_factory=list, description="cumulative path length per image")
    converged: bool = False
    failure_reason: str | None = None
    method: str = Field("", description="e.g. 'vasp:GGA CI-NEB' or 'mlip:CHGNet NEB'")
    details: dict = Field(default_factory=dict)
    provenance: dict = Field(
        default_factory=dict, description="what produced it: preset, settings hash, INCAR or MLIP, code versions "
        "(alem.neb.provenance.NebProvenance as JSON)"
    )

    @property
    def unusable_reason(self) -> str | None:
        """Why this outcome must not enter the dataset as a barrier (None when it may)."""
        if self.failure_reason:
            return self.failure_reason
        if not self.converged:
            return "NEB did not converge"
        if self.barrier_ev is None:
            return "no barrier in the NEB output"
        if not math.isfinite(self.barrier_ev):
            return f"barrier is {self.barrier_ev} (not finite)"
        bad = [i for i, e in enumerate(self.image_energies_ev) if not math.isfinite(e)]
        if bad:
            return f"image energies not finite at images {bad}"
        return None

    @property
    def usable(self) -> bool:
        """Converged, a finite barrier and finite image energies, no failure reason."""
        return self.unusable_reason is None
