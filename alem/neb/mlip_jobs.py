"""The jobflow job a continued MLIP NEB starts from, run where the previous NEB ran.

On FireWorks and jobflow-remote the previous attempt's job directory may live on the cluster, not
on the machine that submits the retry, so its trajectory is read by a job of the new flow (as the
VASP route reads the previous CONTCARs, :func:`alem.neb.vasp_jobs.images_from_previous_neb`).
"""

from __future__ import annotations

from pathlib import Path

from jobflow import job
from pymatgen.core import Structure

from alem.neb.restart import NEB_TRAJECTORY, last_trajectory_images


@job
def images_from_previous_mlip_neb(neb_dir: str, frames_per_step: int, fallback: list[Structure]) -> list[Structure]:
    """The images at the last complete step of the NEB that ran in ``neb_dir``; ``fallback`` (the
    interpolation between the finished endpoints) when it wrote no complete step."""
    from atomate2.utils.path import strip_hostname

    found = last_trajectory_images(Path(strip_hostname(neb_dir)) / NEB_TRAJECTORY, frames_per_step)
    if found is None:
        return fallback
    return [Structure.from_dict(image) for image in found[0]]
