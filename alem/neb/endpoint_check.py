"""The pre-NEB endpoint check: one cheap job between the endpoint relaxations and the images.

An NEB costs its images' core-hours; endpoints that are already wrong make every one of them
worthless. After both endpoints relaxed (or ran as single points), this job checks, with the
preset's ``[checks]`` settings:

- the migrating ion (site 0) is still on its site: it moved at most ``max_ion_shift_a`` from
  where the endpoint started;
- the endpoints are distinct: the relaxed ion sites are at least
  ``min_endpoint_separation_fraction`` x the hop length apart (the ion did not slide back to the
  other site, or both endpoints into one site between them);
- both endpoint relaxations converged their forces (VASP: ``Vasprun.converged_ionic``, i.e.
  EDIFFG reached within NSW; force field: atomate2's ``is_force_converged``, the flag behind its
  "forces not converged" tag);
- the endpoint energy difference is plausible: ``|E_final - E_initial| <= max_endpoint_energy_difference_ev``;
- VASP with site moments (LORBIT): the localised charge (hole/electron polaron) sits on the same
  sites in both endpoints (:func:`alem.neb.barrier.polaron_problem`).

A failed check ends the job with ``stop_children``: jobflow then runs none of the images, the
NEB or the collector. The check's document stays in the job store under the check job, whose
metadata names the flow's output job (:data:`alem.neb.schemas.CHECK_FOR_KEY`), so a reader that
finds no NEB output finds the reason instead (:func:`alem.neb.barrier.failed_check_outcome`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jobflow import Response, job
from pymatgen.core import Structure

from alem.neb.barrier import PathCriteria, first_file, polaron_problem
from alem.neb.schemas import CHECK_DOC_KEY, CHECK_FOR_KEY


def _ion_distance_a(a: Structure, b: Structure) -> float:
    """Minimum-image distance (Å) between site 0 of ``a`` and site 0 of ``b`` (same lattice)."""
    dfrac = b.frac_coords[0] - a.frac_coords[0]
    dfrac -= np.round(dfrac)
    return float(np.linalg.norm(dfrac @ a.lattice.matrix))


def endpoint_problems(
    starts: Sequence[Structure],
    relaxed: Sequence[Structure],
    energies_ev: Sequence[float | None],
    forces_converged: Sequence[bool | None],
    settings: Mapping[str, Any],
) -> tuple[list[str], dict]:
    """Everything wrong with a pair of relaxed endpoints (empty = launch the NEB), and the
    numbers measured. ``settings`` is the preset's ``[checks]`` section as a dict."""
    problems: list[str] = []
    hop_length = _ion_distance_a(starts[0], starts[1])
    shifts = [_ion_distance_a(start, end) for start, end in zip(starts, relaxed)]
    separation = _ion_distance_a(relaxed[0], relaxed[1])
    names = ("initial", "final")
    for name, shift in zip(names, shifts):
        if shift > settings["max_ion_shift_a"]:
            problems.append(f"the migrating ion left its {name} site: it moved {shift:.2f} Å in the endpoint "
                            f"relaxation (limit {settings['max_ion_shift_a']:g} Å)")
    minimum_separation = settings["min_endpoint_separation_fraction"] * hop_length
    if separation < minimum_separation:
        problems.insert(0, f"the endpoints slid together: the relaxed ion sites are {separation:.2f} Å apart, "
                           f"less than {settings['min_endpoint_separation_fraction']:g} x the hop length "
                           f"{hop_length:.2f} Å")
    for name, converged in zip(names, forces_converged):
        if converged is False:
            problems.append(f"forces not converged in the {name} endpoint relaxation")
    difference = None
    if all(e is not None and np.isfinite(e) for e in energies_ev):
        difference = float(energies_ev[1] - energies_ev[0])
        if abs(difference) > settings["max_endpoint_energy_difference_ev"]:
            problems.append(f"implausible endpoint energy difference: E(final) - E(initial) = {difference:+.2f} eV "
                            f"(limit ±{settings['max_endpoint_energy_difference_ev']:g} eV)")
    else:
        problems.append("an endpoint energy is missing or not finite")
    polaron = polaron_problem(relaxed[0], relaxed[1], PathCriteria(max_moment_change_mu_b=settings["max_moment_change_mu_b"]))
    if polaron:
        problems.append(polaron)
    measured = {"hop_length_a": hop_length, "ion_shift_a": shifts, "endpoint_separation_a": separation,
                "energy_difference_ev": difference, "forces_converged": list(forces_converged)}
    return problems, measured


def _with_start_moments(relaxed: Structure, start: Structure) -> Structure:
    """``relaxed`` carrying the start's initial ``magmom`` (not the relaxed moments): the images
    start from the same magnetic initialisation as the endpoints did."""
    out = relaxed.copy()
    if "magmom" in out.site_properties:
        out.remove_site_property("magmom")
    if "magmom" in start.site_properties:
        out.add_site_property("magmom", list(start.site_properties["magmom"]))
    return out


def _checked(starts, relaxed, energies, converged, settings: Mapping[str, Any], n_images: int) -> Response:
    problems, measured = endpoint_problems(starts, relaxed, energies, converged, settings)
    document = {"passed": not problems, "problems": problems, **measured, "n_images_not_run": 0 if not problems else n_images,
                "endpoint_energies_ev": list(energies)}
    # the relaxed endpoints are the check's output: the images are built from them, so they wait for it
    endpoints = [_with_start_moments(end, start) for end, start in zip(relaxed, starts)]
    return Response(output={CHECK_DOC_KEY: document, "endpoints": endpoints}, stop_children=bool(problems))


@job(name="endpoint check")
def check_mlip_endpoints(starts: list[Structure], outputs: list[Any], settings: dict, n_images: int) -> Response:
    """The check on two atomate2 force-field relaxation documents (``ForceFieldTaskDocument``)."""
    relaxed = [o.output.structure for o in outputs]
    energies = [o.output.energy for o in outputs]
    converged = [o.is_force_converged for o in outputs]
    return _checked(starts, relaxed, energies, converged, settings, n_images)


def read_vasp_endpoint(directory: str | Path) -> tuple[Structure, float | None, bool | None]:
    """Final structure (with OUTCAR site moments as ``magmom`` when printed), energy and ionic
    convergence of one VASP endpoint run directory."""
    from pymatgen.io.vasp import Outcar, Vasprun

    directory = Path(directory)
    run = Vasprun(str(first_file(directory, "vasprun.xml")), parse_dos=False, parse_eigen=False,
                  parse_projected_eigen=False, parse_potcar_file=False)
    structure = run.final_structure.copy()
    outcar = first_file(directory, "OUTCAR")
    magnetization = Outcar(str(outcar)).magnetization if outcar else ()
    if len(magnetization) == len(structure):
        structure.add_site_property("magmom", [m["tot"] for m in magnetization])
    nsw = int(run.incar.get("NSW", 0) or 0)
    converged = run.converged_ionic if nsw > 0 else run.converged_electronic
    return structure, float(run.final_energy), bool(converged)


@job(name="endpoint check")
def check_vasp_endpoints(starts: list[Structure], endpoint_dirs: list[str], settings: dict, n_images: int) -> Response:
    """The check on two VASP endpoint run directories (read here, on the compute side)."""
    from atomate2.utils.path import strip_hostname

    read = [read_vasp_endpoint(strip_hostname(d)) for d in endpoint_dirs]
    return _checked(starts, [r[0] for r in read], [r[1] for r in read], [r[2] for r in read], settings, n_images)


def stopped_by_endpoint_check(flow: Any, responses: Mapping[str, Mapping[int, Any]]) -> bool:
    """Whether a ``run_locally`` run of ``flow`` ended early because its endpoint check failed."""
    for flow_job, _ in flow.iterflow():
        if CHECK_FOR_KEY in (flow_job.metadata or {}):
            for response in (responses.get(flow_job.uuid) or {}).values():
                if getattr(response, "stop_children", False):
                    return True
    return False
