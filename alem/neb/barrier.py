"""Barriers from finished NEB output: jobflow store documents (emmet ``NebResult`` /
``NebTaskDoc``) or a VASP NEB directory read through pymatgen's ``NEBAnalysis``.

forward barrier = max image energy - initial energy; reverse barrier = max image energy - final
energy (image energies, not a spline: a spline fit has no maximum on a monotonic path and emmet
then reports -inf). A path is recorded as failed, with the first problem as ``failure_reason``
and every problem under ``details["problems"]``, when:

- the NEB did not converge (document state not "successful", i.e. the optimiser ran out of steps
  or a VASP image did not finish; a VASP image whose OUTCAR lacks "reached required accuracy").
  For a VASP ``NebTaskDoc`` the state is judged from every calculation's ``has_vasp_completed``,
  never from the document's own ``state`` (emmet-core 0.87.3 bug, see
  :func:`_vasp_convergence_problems`);
- the polaron moved: the relaxed endpoints carry their localised charge on different sites
  (site magnetic moments differ by more than ``max_moment_change_mu_b``; :func:`polaron_problem`);
- any energy is NaN or infinite, or fewer than three images are present;
- the path is discontinuous: an image jumped far from its neighbours (some atom moves between two
  neighbouring images by more than ``min_jump_a`` and more than ``jump_ratio`` times its own
  straight-line end-to-end displacement divided by the number of intervals), or two neighbouring
  images differ in energy by more than ``max_energy_step_ev`` (a spike: atoms overlapping or the
  calculation blew up);
- an intermediate minimum: an interior image lies more than ``intermediate_minimum_tolerance_ev``
  (preset ``[checks]``, default 0.05 eV) below the lower endpoint. The ion then sits in a deeper
  site on the way, the endpoint is not its ground state and "max - initial" underestimates the
  transport barrier, which is max - min of the path (the *effective barrier*, kept in
  ``details["effective_barrier_ev"]`` with the minimum's image and depth; forward and reverse
  barriers stay in the result). With ``accept_intermediate_minimum`` the effective barrier is the
  label instead;
- the highest energy is at an endpoint (no interior maximum): the endpoints are not minima of the
  path, so "max - initial" is not a migration barrier;
- files are missing or unreadable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from alem.neb.schemas import (
    CHECK_DOC_KEY,
    CHECK_FOR_KEY,
    ENDPOINTS_FILE,
    STATE_FROM_CALCULATIONS_TAG,
    NebOutcome,
    frame_states,
)

_NOT_CONVERGED_TAG = "forces not converged"
_VASP_CONVERGED_TEXT = "reached required accuracy"


@dataclass(frozen=True)
class PathCriteria:
    """Thresholds that declare a path discontinuous (see the module docstring)."""

    jump_ratio: float = 3.0
    min_jump_a: float = 1.0
    max_energy_step_ev: float = 3.0
    #: endpoints whose site magnetic moments differ by more than this (μB) have a moved polaron
    max_moment_change_mu_b: float = 0.3
    #: an interior image this far (eV) below the lower endpoint is an intermediate minimum
    intermediate_minimum_tolerance_ev: float = 0.05
    #: record a path with an intermediate minimum as usable, labelled with its effective barrier
    accept_intermediate_minimum: bool = False


DEFAULT_CRITERIA = PathCriteria()


def _displacements_a(before: Structure, after: Structure) -> np.ndarray:
    """Minimum-image displacement of every atom between two images (Å)."""
    dfrac = after.frac_coords - before.frac_coords
    dfrac -= np.round(dfrac)
    return np.linalg.norm(dfrac @ before.lattice.matrix, axis=1)


def _first_jump(structures: Sequence[Structure], criteria: PathCriteria) -> str | None:
    """Describe the first atom that jumps between neighbouring images, if any."""
    n_steps = len(structures) - 1
    end_to_end = _displacements_a(structures[0], structures[-1])
    limits = np.maximum(criteria.min_jump_a, criteria.jump_ratio * end_to_end / n_steps)
    for i in range(n_steps):
        steps = _displacements_a(structures[i], structures[i + 1])
        over = np.flatnonzero(steps > limits)
        if over.size:
            atom = int(over[np.argmax(steps[over] - limits[over])])
            return (
                f"discontinuous path: atom {atom} ({structures[i][atom].species_string}) moves {steps[atom]:.2f} Å "
                f"between images {i} and {i + 1} (limit {limits[atom]:.2f} Å = max({criteria.min_jump_a:g} Å, "
                f"{criteria.jump_ratio:g} x its end-to-end displacement / {n_steps}))"
            )
    return None


def _path_coordinate_a(structures: Sequence[Structure]) -> list[float]:
    """Cumulative root-sum-square displacement of all atoms (NEBAnalysis's reaction coordinate)."""
    coordinate = [0.0]
    for before, after in zip(structures[:-1], structures[1:]):
        coordinate.append(coordinate[-1] + float(np.sqrt((_displacements_a(before, after) ** 2).sum())))
    return coordinate


@dataclass(frozen=True)
class IntermediateMinimum:
    """An interior image below the lower endpoint of a path by more than the tolerance."""

    image: int
    depth_ev: float  # how far below the lower endpoint
    endpoint: str  # "initial" or "final": the lower endpoint
    effective_barrier_ev: float  # max - min over the whole path

    def describe(self) -> str:
        return (f"intermediate minimum {self.depth_ev:.2f} eV below the {self.endpoint} endpoint at image {self.image}: "
                f"the endpoint is not the ion's ground state; effective barrier max − min = "
                f"{self.effective_barrier_ev:.2f} eV")

    def as_details(self) -> dict:
        return {"effective_barrier_ev": self.effective_barrier_ev, "intermediate_minimum_image": self.image,
                "intermediate_minimum_depth_ev": self.depth_ev, "intermediate_minimum_below": self.endpoint}


def intermediate_minimum(energies_ev: Sequence[float], tolerance_ev: float) -> IntermediateMinimum | None:
    """The deepest interior image if it lies more than ``tolerance_ev`` below the lower endpoint."""
    energies = np.asarray(energies_ev, dtype=float)
    if len(energies) < 3 or not np.all(np.isfinite(energies)):
        return None
    interior = energies[1:-1]
    image = int(interior.argmin()) + 1
    lower = 0 if energies[0] <= energies[-1] else len(energies) - 1
    depth = float(energies[lower] - energies[image])
    if depth <= tolerance_ev:
        return None
    return IntermediateMinimum(image=image, depth_ev=depth, endpoint="initial" if lower == 0 else "final",
                               effective_barrier_ev=float(energies.max() - energies.min()))


def path_problems(
    energies_ev: Sequence[float],
    structures: Sequence[Structure] | None,
    criteria: PathCriteria = DEFAULT_CRITERIA,
) -> list[str]:
    """Everything that makes a path unusable as a barrier, worst first (empty = fine)."""
    if len(energies_ev) < 3:
        return [f"only {len(energies_ev)} image energies (need both endpoints and at least one image)"]
    bad = [i for i, energy in enumerate(energies_ev) if energy is None or not math.isfinite(energy)]
    if bad:
        return [f"non-finite energy (NaN or inf) at image(s) {', '.join(map(str, bad))}"]
    problems = []
    energies = np.asarray(energies_ev, dtype=float)
    if structures is not None and len(structures) == len(energies) and len(structures) >= 3:
        jump = _first_jump(structures, criteria)
        if jump:
            problems.append(jump)
    energy_steps = np.abs(np.diff(energies))
    if energy_steps.max() > criteria.max_energy_step_ev:
        i = int(energy_steps.argmax())
        problems.append(
            f"discontinuous path: energy jumps by {energy_steps[i]:.2f} eV between images {i} and {i + 1} "
            f"(limit {criteria.max_energy_step_ev:g} eV)"
        )
    minimum = intermediate_minimum(energies, criteria.intermediate_minimum_tolerance_ev)
    if minimum is not None and not criteria.accept_intermediate_minimum:
        problems.append(minimum.describe())
    top = int(energies.argmax())
    if top in (0, len(energies) - 1):
        which = "initial" if top == 0 else "final"
        problems.append(
            f"no interior maximum: the {which} endpoint is the highest-energy point of the path "
            "(endpoints are not minima, or the images fell away from the saddle)"
        )
    return problems


def outcome_from_path(
    energies_ev: Sequence[float],
    structures: Sequence[Structure] | None = None,
    converged: bool = True,
    not_converged_reason: str = "",
    method: str = "",
    path_coordinate_a: Sequence[float] | None = None,
    details: Mapping[str, Any] | None = None,
    criteria: PathCriteria = DEFAULT_CRITERIA,
) -> NebOutcome:
    """Barrier, reverse barrier and profile of a path, with the reasons it cannot be used."""
    energies = [float(e) if e is not None else math.nan for e in energies_ev]
    problems = [] if converged else [not_converged_reason or "NEB did not converge"]
    problems += path_problems(energies, structures, criteria)
    finite = len(energies) >= 3 and all(math.isfinite(e) for e in energies)
    barrier = reverse = None
    minimum_details: dict = {}
    if finite:
        barrier = max(energies) - energies[0]
        reverse = max(energies) - energies[-1]
        minimum = intermediate_minimum(energies, criteria.intermediate_minimum_tolerance_ev)
        if minimum is not None:
            minimum_details = {**minimum.as_details(), "forward_barrier_ev": barrier, "intermediate_minimum": minimum.describe()}
            if criteria.accept_intermediate_minimum:
                # the preset takes the transport barrier (max - min) as the label
                barrier = minimum.effective_barrier_ev
                minimum_details["barrier_is_effective"] = True
    if path_coordinate_a is None and structures is not None and len(structures) == len(energies):
        path_coordinate_a = _path_coordinate_a(structures)
    return NebOutcome(
        barrier_ev=barrier,
        reverse_barrier_ev=reverse,
        image_energies_ev=energies if finite else [],
        path_coordinate_a=list(path_coordinate_a or []),
        converged=converged,
        failure_reason=problems[0] if problems else None,
        method=method,
        details={**(details or {}), **minimum_details, "problems": problems,
                 **({} if finite else {"energies_as_read": [str(e) for e in energies]})},
    )


def _as_structure(obj: Any) -> Structure | None:
    if isinstance(obj, Structure):
        return obj
    if isinstance(obj, Mapping) and "lattice" in obj and "sites" in obj:
        return Structure.from_dict(obj)
    return None


def outcome_from_neb_document(
    document: Any, method: str = "", criteria: PathCriteria = DEFAULT_CRITERIA
) -> NebOutcome:
    """Outcome of an emmet ``NebResult``/``NebTaskDoc`` (object or its stored dict)."""
    doc = document.model_dump() if hasattr(document, "model_dump") else dict(document or {})
    if hasattr(document, "images"):
        doc["images"] = document.images  # keep pymatgen objects
    energies = doc.get("energies") or []
    images = doc.get("images") or []
    structures = [_as_structure(image) for image in images]
    structures = structures if structures and all(s is not None for s in structures) else None
    tags = [str(tag) for tag in (doc.get("tags") or [])]
    reasons = []
    if _is_vasp_neb_task_doc(doc):
        reasons += _vasp_convergence_problems(doc, tags)
    else:
        state = doc.get("state")
        state = getattr(state, "value", state)
        # atomate2 (0.1.5) sets the tag "forces not converged" from the raw forces of every frame,
        # whose component along the path is legitimately non-zero away from the saddle, so a
        # converged NEB carries it too. ``state`` reflects the optimiser's own (NEB-projected)
        # criterion and decides; the tag is used only when a document has no state.
        if state is not None and state != "successful":
            reasons.append(f"NEB state is {state!r} (the optimiser stopped before the force criterion was met)")
        elif state is None and _NOT_CONVERGED_TAG in tags:
            reasons.append("forces not converged (document has no state; atomate2 tagged it)")
    # VASP only: site moments from OUTCAR are what the check is calibrated on (a force field's
    # predicted moments, e.g. CHGNet's, are not used to reject paths)
    if _is_vasp_neb_task_doc(doc) and structures is not None and len(structures) == len(energies):
        polaron = polaron_problem(structures[0], structures[-1], criteria)
        if polaron:
            reasons.append(polaron)
    spline = doc.get("forward_barrier")
    details = {
        "images_moved_a": _images_moved_a(doc.get("initial_images") or [], structures),
        "spline_forward_barrier_ev": spline if isinstance(spline, int | float) and math.isfinite(spline) else None,
        "n_images": len(energies),
        "dir_name": doc.get("dir_name"),
        "tags": [tag for tag in tags if not tag.startswith("/")],
    }
    if not energies:
        return NebOutcome(converged=False, failure_reason="NEB document has no image energies", method=method, details=details)
    if structures is not None and len(structures) != len(energies):
        structures = None
    if structures is not None and not _is_vasp_neb_task_doc(doc):
        # a force-field path is kept, compactly, so a DFT NEB of the hop can start from it
        from alem.neb.screening_path import path_record

        details["path_images"] = path_record(structures)
    return outcome_from_path(
        energies, structures, converged=not reasons, not_converged_reason="; ".join(reasons),
        method=method, details=details, criteria=criteria,
    )


def _images_moved_a(initial_images: Sequence[Any], final: Sequence[Structure] | None) -> float | None:
    """Largest distance any atom of any image moved during this NEB run (Å): how far the run got
    from where it started (None when either set of images is missing)."""
    initial = [_as_structure(image) for image in initial_images]
    if not final or len(initial) != len(final) or any(s is None or len(s) != len(f) for s, f in zip(initial, final)):
        return None
    return float(max(_displacements_a(start, end).max() for start, end in zip(initial, final)))


def _is_vasp_neb_task_doc(doc: Mapping[str, Any]) -> bool:
    """An emmet ``NebTaskDoc`` (VASP endpoints + images), not a force-field ``NebResult``."""
    return "directories" in doc and "last_updated" in doc


def _vasp_run_completed(directory: Path) -> bool | None:
    """emmet's ``has_vasp_completed`` for one run directory (pymatgen ``Vasprun.converged``);
    None when the directory or its vasprun.xml cannot be read here."""
    from pymatgen.io.vasp import Vasprun

    path = first_file(directory, "vasprun.xml") if directory.is_dir() else None
    if path is None:
        return None
    try:
        run = Vasprun(str(path), parse_dos=False, parse_eigen=False, parse_projected_eigen=False, parse_potcar_file=False)
    except Exception:  # a truncated vasprun.xml (killed run) is simply not completed
        return False
    return bool(run.converged)


def _vasp_convergence_problems(doc: Mapping[str, Any], tags: Sequence[str]) -> list[str]:
    """Why a VASP ``NebTaskDoc`` is not converged, judged from its calculations, not its ``state``.

    emmet-core 0.87.3 BUG (workaround; remove when emmet fixes it): ``NebTaskDoc.from_directories``
    reads each endpoint's state as ``getattr(calc, "state", TaskState.FAILED)``, but emmet's
    ``Calculation`` has no ``state`` (it has ``has_vasp_completed``), so the document's ``state``
    is "failed" for every NEB, successful or not. The state is therefore judged from, in order:
    alem's collector (which recomputes it from each calculation and tags the document), the
    stored calculations' ``has_vasp_completed``, or each frame directory's vasprun.xml (what emmet
    itself parses) when the directories are readable here.
    """
    state = doc.get("state")
    state = getattr(state, "value", state)
    if STATE_FROM_CALCULATIONS_TAG in tags:
        if state == "successful":
            return []
        failed = [tag.split("alem: frame ")[1] for tag in tags if tag.startswith("alem: frame ")]
        return [f"VASP run(s) did not complete: frame {', frame '.join(failed) or '?'} (has_vasp_completed)"]
    calculations = doc.get("calculations") or []
    directories = [Path(str(d)) for d in (doc.get("directories") or [])]
    if calculations:
        states = frame_states(calculations)
        failed = [str(i) for i, s in enumerate(states) if s != "successful"]
    elif directories:
        completed = [_vasp_run_completed(d) for d in directories]
        if any(c is None for c in completed):
            unreadable = [str(d) for d, c in zip(directories, completed) if c is None]
            return ["cannot tell whether the VASP runs completed: the document's state is unreliable "
                    "(emmet-core 0.87 NebTaskDoc bug), it stores no calculations and these directories are "
                    f"not readable here: {', '.join(unreadable)}"]
        failed = [str(i) for i, c in enumerate(completed) if not c]
    else:
        return ["VASP NEB document has neither calculations nor directories to judge convergence from"]
    return [f"VASP run(s) did not complete: frame {', frame '.join(failed)} (has_vasp_completed)"] if failed else []


def _site_moments(structure: Structure) -> np.ndarray | None:
    magmoms = structure.site_properties.get("magmom")
    if magmoms is None or any(m is None for m in magmoms):
        return None
    # collinear moments keep their sign (a flipped spin is a different state); non-collinear: length
    return np.array([float(np.linalg.norm(m)) if np.ndim(m) else float(m) for m in magmoms])


def polaron_problem(initial: Structure, final: Structure, criteria: PathCriteria = DEFAULT_CRITERIA) -> str | None:
    """Whether the localised charge (hole/electron polaron) sits on different sites in the two
    relaxed endpoints, judged from their site magnetic moments (``magmom``, from OUTCAR).

    Removing the migrating ion leaves a hole (e.g. Co4+ in LiCoO2, Fe3+ in LiFePO4). If it
    relaxed onto different metal sites in the two endpoints, "max - initial" mixes the ion hop
    with a polaron hop and is not the ion's migration barrier, so the path is failed (site 0,
    the ion itself, is ignored). None when the moments agree or are not known.
    """
    before, after = _site_moments(initial), _site_moments(final)
    if before is None or after is None or len(before) != len(after):
        return None
    change = np.abs(after - before)
    change[0] = 0.0
    moved = np.flatnonzero(change > criteria.max_moment_change_mu_b)
    if not moved.size:
        return None
    sites = ", ".join(f"site {i} ({initial[i].species_string}) {before[i]:+.2f} -> {after[i]:+.2f} μB" for i in moved[:6])
    return (f"polaron moved between the endpoints: site moments differ by more than {criteria.max_moment_change_mu_b:g} μB "
            f"({sites}); the path mixes the ion hop with a charge hop")


def check_document(store: Any, output_uuid: str) -> dict | None:
    """The endpoint check guarding the NEB whose result job is ``output_uuid``, if it ran."""
    try:
        stored = store.query_one({f"metadata.{CHECK_FOR_KEY}": output_uuid}, properties=["output", "uuid"], load=True)
    except Exception:  # a store without that job (older flows) or one that cannot query metadata
        return None
    output = (stored or {}).get("output") or {}
    return output.get(CHECK_DOC_KEY) if isinstance(output, Mapping) else None


def failed_check_outcome(store: Any, output_uuid: str, method: str = "") -> NebOutcome | None:
    """The outcome of a flow stopped by its endpoint check (None: no failed check for it)."""
    document = check_document(store, output_uuid)
    if not document or document.get("passed"):
        return None
    problems = list(document.get("problems") or [])
    return NebOutcome(
        converged=False,
        failure_reason=f"endpoint check failed before the NEB ({document.get('n_images_not_run', 0)} images not run): "
                       f"{problems[0] if problems else 'no reason recorded'}",
        method=method,
        details={"endpoint_check": document, "problems": problems},
    )


def outcome_from_job_store(store: Any, output_uuid: str, method: str = "", criteria: PathCriteria = DEFAULT_CRITERIA) -> NebOutcome:
    """Outcome of the NEB job ``output_uuid`` in a jobflow ``JobStore`` (latest run of that job), or
    of the endpoint check that stopped its flow before the NEB ran."""
    try:
        store.connect()
        document = store.get_output(output_uuid, which="last", load=True)
    except ValueError as exc:  # jobflow: "UUID not found in store"
        stopped = failed_check_outcome(store, output_uuid, method)
        if stopped is not None:
            return stopped
        return NebOutcome(converged=False, failure_reason=f"no output of NEB job {output_uuid} in the job store ({exc})", method=method)
    if document is None:
        return NebOutcome(converged=False, failure_reason=f"NEB job {output_uuid} stored no output", method=method)
    return outcome_from_neb_document(document, method=method, criteria=criteria)


def _image_dirs(neb_dir: Path) -> list[Path]:
    return sorted((p for p in neb_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def first_file(directory: Path, stem: str) -> Path | None:
    matches = sorted(directory.glob(f"{stem}*"))
    return matches[0] if matches else None


def outcome_from_vasp_dir(
    neb_dir: str | Path,
    relaxation_dirs: tuple[str | Path, str | Path] | None = None,
    method: str = "vasp NEB",
    criteria: PathCriteria = DEFAULT_CRITERIA,
) -> NebOutcome:
    """Outcome of a VASP NEB directory (``00`` ... ``NN``) through pymatgen's ``NEBAnalysis``.

    The endpoint energies come from OUTCARs in ``00``/``NN`` (a hand-run NEB) or in
    ``relaxation_dirs``. In atomate2's layout ``00``/``NN`` hold only POSCARs and the endpoint
    relaxations ran elsewhere: alem's collector records where in ``ENDPOINTS_FILE`` inside the
    NEB directory, which is read when ``relaxation_dirs`` is not given. Endpoint OUTCARs with site
    moments (LORBIT) also feed the polaron check.
    """
    from monty.io import zopen
    from pymatgen.analysis.transition_state import NEBAnalysis
    from pymatgen.io.vasp import Outcar

    neb_dir = Path(neb_dir)
    if relaxation_dirs is None and (neb_dir / ENDPOINTS_FILE).is_file():
        relaxation_dirs = tuple(json.loads((neb_dir / ENDPOINTS_FILE).read_text())["endpoint_dirs"])

    def failed(reason: str) -> NebOutcome:
        return NebOutcome(converged=False, failure_reason=f"{neb_dir}: {reason}", method=method, details={"problems": [reason]})

    if not neb_dir.is_dir():
        return failed("NEB directory does not exist")
    image_dirs = _image_dirs(neb_dir)
    if len(image_dirs) < 3:
        return failed(f"found {len(image_dirs)} image directories (00, 01, ...); need at least 3")
    for image_dir in image_dirs[1:-1]:
        for stem in ("OUTCAR", "CONTCAR"):
            if first_file(image_dir, stem) is None:
                return failed(f"missing {image_dir.name}/{stem}")
    for end, index in ((image_dirs[0], 0), (image_dirs[-1], 1)):
        if first_file(end, "POSCAR") is None:
            return failed(f"missing {end.name}/POSCAR")
        candidates = [end] + ([Path(relaxation_dirs[index])] if relaxation_dirs else [])
        if not any(first_file(c, "OUTCAR") for c in candidates):
            return failed(f"missing OUTCAR of endpoint {end.name} (an endpoint energy is needed for the barrier; "
                          "atomate2 layout: pass relaxation_dirs=(endpoint 1 dir, endpoint 2 dir) or run alem's "
                          f"collector, which writes {ENDPOINTS_FILE})")
    try:
        analysis = NEBAnalysis.from_dir(neb_dir, relaxation_dirs=relaxation_dirs)
    except Exception as exc:  # pymatgen raises many types on truncated or foreign files
        return failed(f"cannot parse the NEB output ({type(exc).__name__}: {exc})")
    unconverged = []
    for image_dir in image_dirs[1:-1]:
        with zopen(first_file(image_dir, "OUTCAR"), mode="rt") as handle:
            if _VASP_CONVERGED_TEXT not in handle.read():
                unconverged.append(image_dir.name)
    reasons = []
    if unconverged:
        reasons.append(f"forces not converged: OUTCAR of image(s) {', '.join(unconverged)} lacks '{_VASP_CONVERGED_TEXT}'")
    structures = [s.copy() for s in analysis.structures]
    for structure, end, index in ((structures[0], image_dirs[0], 0), (structures[-1], image_dirs[-1], 1)):
        outcar = next((o for c in ([Path(relaxation_dirs[index])] if relaxation_dirs else []) + [end]
                       if (o := first_file(c, "OUTCAR"))), None)
        magnetization = Outcar(str(outcar)).magnetization if outcar else ()
        if len(magnetization) == len(structure):
            structure.add_site_property("magmom", [m["tot"] for m in magnetization])
    polaron = polaron_problem(structures[0], structures[-1], criteria)
    if polaron:
        reasons.append(polaron)
    reason = "; ".join(reasons)
    outcome = outcome_from_path(
        [float(e) for e in analysis.energies], analysis.structures, converged=not reasons,
        not_converged_reason=reason, method=method, path_coordinate_a=[float(r) for r in analysis.r],
        details={"neb_dir": str(neb_dir), "n_images": len(image_dirs)}, criteria=criteria,
    )
    if outcome.failure_reason:
        outcome.failure_reason = f"{neb_dir}: {outcome.failure_reason}"
    return outcome
