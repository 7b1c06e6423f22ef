"""What a retry of a NEB keeps from the attempt before it.

A NEB that runs out of NSW (optimiser steps) or wall time stops with its images part-way to the
saddle. Re-running the whole flow would redo both endpoint relaxations and start the images from
IDPP again. The retry instead

- skips every endpoint relaxation that finished ("successful" output in the job store): its
  directory and relaxed structure are reused as they are;
- starts the NEB from the images the previous NEB run reached: VASP, its ``01``.. CONTCARs (when
  that run got as far as writing image directories); a machine-learned potential, the last
  complete step of the optimiser's trajectory (:data:`NEB_TRAJECTORY`, written every step, so a
  job killed at its walltime still leaves it).

Backends build a :class:`NebRestart` from their own records (job store outputs of the endpoint
jobs, the run directory of the NEB job) and pass it to :func:`alem.neb.flows.neb_flow_for_hop`.
The flow carries it in its metadata so a third attempt still knows what the first one finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

#: Flow metadata keys: the uuids of the jobs a restart needs, and the restart the flow continues.
JOB_UUIDS_KEY = "alem_job_uuids"
RESTART_KEY = "alem_restart"
#: ASE trajectory the MLIP NEB optimiser appends every image to at every step (in its job directory).
NEB_TRAJECTORY = "alem_neb.traj"
#: An unconverged NEB whose atoms all moved less than this (Å) during its run made no progress:
#: another attempt from the same images would end the same way.
MIN_PROGRESS_A = 0.02


def unconverged_progress_a(outcome: Any) -> float | None:
    """How far the images of an unconverged NEB moved (Å) when another attempt may continue it:
    the optimiser ran out of steps (NSW) with image energies in hand. None for a converged NEB,
    or one that failed for another reason (no output, broken calculation): those are judged."""
    moved = outcome.details.get("images_moved_a")
    if outcome.converged or not outcome.image_energies_ev or moved is None:
        return None
    return float(moved)


class FinishedEndpoint(BaseModel):
    """An endpoint relaxation that finished: where it ran and the structure it reached."""

    dir_name: str
    structure: dict = Field(description="relaxed structure (pymatgen Structure.as_dict())")


class NebRestart(BaseModel):
    """What the next attempt of a hop's VASP NEB reuses (see the module docstring)."""

    previous_id: str = Field("", description="backend id of the attempt this continues")
    endpoints: list[FinishedEndpoint | None] = Field(default_factory=lambda: [None, None])
    neb_dir: str | None = Field(None, description="run directory of the previous NEB (images 00..NN)")
    images: list[dict] | None = Field(
        None, description="MLIP: every image (endpoints included) at the last step the previous NEB reached")
    image_energies_ev: list[float] | None = Field(None, description="MLIP: the energies of those images")

    @property
    def reuses_anything(self) -> bool:
        return self.neb_dir is not None or self.images is not None or any(self.endpoints)

    def describe(self) -> str:
        kept = [f"endpoint {i + 1} ({e.dir_name})" for i, e in enumerate(self.endpoints) if e]
        if self.neb_dir:
            kept.append(f"the images of {self.neb_dir}")
        if self.images is not None:
            kept.append(f"the last positions of its {len(self.images)} images")
        return f"continues {self.previous_id or 'the previous attempt'}: reuses " + (", ".join(kept) or "nothing")


def finished_endpoint(output: Any) -> FinishedEndpoint | None:
    """The endpoint relaxation's task document (object or stored dict) if it finished successfully."""
    if output is None:
        return None
    doc = output.model_dump() if hasattr(output, "model_dump") else dict(output)
    state = doc.get("state")
    state = getattr(state, "value", state)
    if state != "successful" or not doc.get("dir_name"):
        return None
    structure = getattr(getattr(output, "output", None), "structure", None)
    if structure is None:
        structure = (doc.get("output") or {}).get("structure")
    if structure is None:
        return None
    return FinishedEndpoint(dir_name=str(doc["dir_name"]),
                            structure=structure.as_dict() if hasattr(structure, "as_dict") else dict(structure))


def last_trajectory_images(path: Path, n_frames: int) -> tuple[list[dict], list[float]] | None:
    """The images (structure dicts) and energies of the last complete step in an MLIP NEB's
    trajectory (``n_frames`` = images per step, endpoints included); None without one.

    The optimiser appends the images one by one: a job killed mid-step leaves a partial step,
    which is skipped.
    """
    from ase.io.trajectory import Trajectory
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        with Trajectory(str(path)) as trajectory:
            complete = (len(trajectory) // n_frames) * n_frames
            if complete == 0:
                return None
            frames = [trajectory[i] for i in range(complete - n_frames, complete)]
    except (OSError, ValueError, KeyError):  # missing, empty or unreadable: nothing to continue from
        return None
    energies = [float(atoms.get_potential_energy()) for atoms in frames]
    return [AseAtomsAdaptor.get_structure(atoms).as_dict() for atoms in frames], energies


def restart_from_records(
    previous_id: str,
    flow_metadata: Mapping[str, Any],
    job_outputs: Mapping[str, Any],
    neb_run_dir: str | None,
    images: tuple[list[dict], list[float]] | None = None,
) -> NebRestart:
    """Combine a previous attempt's records into a :class:`NebRestart`.

    ``job_outputs`` maps job uuids to their stored outputs (absent: the job did not finish);
    ``neb_run_dir`` is the directory the NEB job ran in, if it started; ``images`` the last images
    and energies an MLIP NEB reached (:func:`last_trajectory_images`). What the previous attempt
    itself reused (its own ``alem_restart`` metadata) is carried over.
    """
    uuids = flow_metadata.get(JOB_UUIDS_KEY) or {}
    inherited = NebRestart.model_validate(flow_metadata.get(RESTART_KEY) or {})
    endpoints: list[FinishedEndpoint | None] = []
    for index, key in enumerate(("endpoint_1", "endpoint_2")):
        uuid = uuids.get(key)
        endpoints.append(finished_endpoint(job_outputs.get(uuid)) if uuid else inherited.endpoints[index])
    positions, energies = images if images is not None else (inherited.images, inherited.image_energies_ev)
    return NebRestart(previous_id=previous_id, endpoints=endpoints, neb_dir=neb_run_dir or inherited.neb_dir,
                      images=positions, image_energies_ev=energies)
