"""jobflow Flows that compute one hop's NEB, built from atomate2 Makers.

- VASP (``engine = "vasp"``): optionally a host relaxation (``[vasp] relax_host``), endpoint
  relaxations at fixed cell (atomate2 ``RelaxMaker``, ISIF 2; single points when the preset says
  the endpoints are already relaxed), IDPP images, CI-NEB (``NebFromImagesMaker`` with
  ``NebSetGenerator``) and alem's collector (emmet ``NebTaskDoc``, state repaired). Every step
  shares one electronic block (:mod:`alem.neb.vasp_inputs`). The jobs are wired here rather than
  by ``NebFromEndpointsMaker`` so a retry can leave out finished endpoints and continue the NEB
  from its last images (:mod:`alem.neb.restart`).
- Machine-learned potential (``engine = "mlip"``): ``ForceFieldRelaxMaker`` (fixed cell) for the
  endpoints, atomate2's ``get_images_from_endpoints`` (IDPP), ``ForceFieldNebFromImagesMaker``
  with explicit ASE NEB settings (climbing image, spring constant, tangent method).

The flow's ``output`` is the NEB result document (emmet ``NebResult`` or ``NebTaskDoc``), which
:func:`alem.neb.barrier.outcome_from_neb_document` turns into a barrier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alem.neb.endpoint_check import check_mlip_endpoints, check_vasp_endpoints
from alem.neb.provenance import PROVENANCE_KEY, preset_provenance
from alem.neb.restart import JOB_UUIDS_KEY, NEB_TRAJECTORY, RESTART_KEY, NebRestart
from alem.neb.schemas import CHECK_FOR_KEY
from alem.neb.screening_path import INITIAL_PATH_KEY, images_from_screening_path, screening_frames
from alem.neb.supercell import interpolate_images, neb_endpoints, pristine_host
from alem.neb.vasp_inputs import (
    charged_cell_nelect,
    magnetic_endpoints,
    neb_input_generator,
    relax_input_generator,
    with_initial_magmoms,
)
from alem.neb.vasp_jobs import collect_vasp_neb_output, endpoints_on_relaxed_host, images_from_previous_neb

if TYPE_CHECKING:
    from jobflow import Flow
    from pymatgen.core import Structure

    from alem.hops.hop import Hop
    from alem.neb.presets import Preset


#: Job metadata key: compute nodes the job needs (VASP IMAGES must divide the NEB's MPI ranks, so
#: the NEB asks for n_images x nodes_per_image; an endpoint needs the nodes of one image). The
#: FireWorks and jobflow-remote backends turn it into the queue request of that job.
NODES_KEY = "alem_nodes"


def queue_request_with_nodes(request: dict, nodes: int) -> dict:
    """``request`` (queue resources) asking for ``nodes`` nodes, whatever the queue's key: Slurm
    ``nodes``, FireWorks' PBS ``nnodes``, PBS Pro ``select=N:...``; other keys are kept."""
    import re

    updated = dict(request)
    for key in ("nodes", "nnodes"):
        if key in updated or not request:
            updated[key] = nodes
    if isinstance(updated.get("select"), str):
        updated["select"] = re.sub(r"^(select=)?\d+", lambda m: f"{m.group(1) or ''}{nodes}", updated["select"])
    return updated


def flow_metadata(hop: Hop, preset: Preset) -> dict:
    """What a flow says about itself: its hop, preset, method and inputs' provenance record (the
    backends whose workers are not alem's read it back from here)."""
    return {"alem_hop_id": hop.hop_id, "alem_preset": preset.name, "alem_method": preset.method_label,
            PROVENANCE_KEY: preset_provenance(preset).model_dump(mode="json")}


def _interpolation(preset: Preset):
    from atomate2.common.jobs.neb import NebInterpolation

    if preset.neb.interpolation == "idpp":
        # sort_tol=0: sites already correspond one-to-one; re-sorting could swap the ion with a host ion.
        return NebInterpolation.IDPP, {"sort_tol": 0}
    return NebInterpolation.LINEAR, {"autosort_tol": 0}


def _mlip_restart_images(restart: NebRestart | None, initial: Structure, final: Structure, preset: Preset, jobs: list):
    """The images a continued MLIP NEB starts from (None: no restart, run the whole flow): the
    previous attempt's last images when known here, else read where its NEB ran by a job appended
    to ``jobs`` (falling back to the interpolation between its finished endpoints), else that
    interpolation."""
    from pymatgen.core import Structure

    settings = preset.neb
    if restart is None:
        return None
    if restart.images is not None:
        return [Structure.from_dict(image) for image in restart.images]
    if all(restart.endpoints):
        initial, final = (Structure.from_dict(e.structure) for e in restart.endpoints)
    elif settings.relax_endpoints or not restart.neb_dir:
        return None
    images = interpolate_images(initial, final, settings.n_images, settings.interpolation)
    if restart.neb_dir:  # read where that NEB ran (FireWorks, jobflow-remote)
        from alem.neb.mlip_jobs import images_from_previous_mlip_neb

        jobs.append(images_from_previous_mlip_neb(restart.neb_dir, settings.n_images + 2, images))
        return jobs[-1].output
    return images


def mlip_calculator_kwargs(preset: Preset) -> dict:
    """atomate2's ``calculator_kwargs`` of an MLIP preset: the model file it names, when it names one.

    Raises:
        PresetError: the file does not exist (nothing is downloaded instead).
    """
    from alem.neb.presets import PresetError

    model_file = preset.model_file()
    if model_file is None:
        return {}
    if not model_file.is_file():
        raise PresetError(f"{preset.source or preset.name}: [mlip] model_path {preset.mlip.model_path!r} is {model_file}, "
                          "which does not exist (alem never downloads weights: point it at a model file you have)")
    return {"model": str(model_file)}


def mlip_neb_flow(hop: Hop, preset: Preset, restart: NebRestart | None = None) -> Flow:
    """Endpoint relaxations, IDPP images and the NEB; with ``restart`` (a retry), the NEB
    continues from the images the previous attempt reached (or from its finished endpoints)."""
    from atomate2.common.jobs.neb import get_images_from_endpoints
    from atomate2.forcefields.jobs import ForceFieldRelaxMaker
    from atomate2.forcefields.neb import ForceFieldNebFromImagesMaker
    from jobflow import Flow

    settings = preset.neb
    initial, final = neb_endpoints(hop, preset.supercell.min_image_distance_a, preset.supercell.max_atoms)
    calculator_kwargs = mlip_calculator_kwargs(preset)
    neb_maker = ForceFieldNebFromImagesMaker(
        name=f"{preset.mlip.force_field} NEB",
        force_field_name=preset.mlip.force_field,
        calculator_kwargs=calculator_kwargs,
        # Explicit: atomate2's default {} silently falls back to ASE's plain NEB.
        neb_kwargs={"climb": settings.climbing_image, "k": settings.spring_constant_ev_a2, "method": preset.mlip.neb_method},
        relax_kwargs={"fmax": settings.fmax_ev_a},
        steps=settings.max_steps,
        # every step on disk: a job killed at its walltime is continued from its last images
        optimizer_kwargs={"trajectory": NEB_TRAJECTORY},
    )
    jobs: list = []
    restart = restart if restart is not None and restart.reuses_anything else None
    uuids: dict[str, str] = {}
    images = _mlip_restart_images(restart, initial, final, preset, jobs)
    if images is not None:
        neb_job = neb_maker.make(images)
        jobs.append(neb_job)
    elif settings.relax_endpoints:
        relax_maker = ForceFieldRelaxMaker(
            name=f"{preset.mlip.force_field} endpoint relax",
            force_field_name=preset.mlip.force_field,
            calculator_kwargs=calculator_kwargs,
            relax_cell=False,  # NEB images share one lattice
            steps=settings.endpoint_max_steps,
            # atomate2 tags the NEB "forces not converged" if any frame, endpoints included,
            # exceeds the NEB fmax: relax endpoints at least that tightly.
            relax_kwargs={"fmax": min(settings.endpoint_fmax_ev_a, settings.fmax_ev_a)},
        )
        endpoint_jobs = [relax_maker.make(structure) for structure in (initial, final)]
        for index, endpoint_job in enumerate(endpoint_jobs):
            endpoint_job.append_name(f" endpoint {index + 1}")
            uuids[f"endpoint_{index + 1}"] = endpoint_job.uuid
        relaxed = [endpoint_job.output.structure for endpoint_job in endpoint_jobs]
        checks = []
        if preset.checks.endpoint_check:
            check_job = check_mlip_endpoints([initial, final], [j.output for j in endpoint_jobs],
                                             preset.checks.model_dump(), settings.n_images)
            relaxed, checks = check_job.output["endpoints"], [check_job]
        method, kwargs = _interpolation(preset)
        images_job = get_images_from_endpoints(relaxed, settings.n_images, interpolation_method=method, **kwargs)
        neb_job = neb_maker.make(images_job.output)
        for check_job in checks:
            check_job.metadata[CHECK_FOR_KEY] = neb_job.uuid
        jobs = [*endpoint_jobs, *checks, images_job, neb_job]
    else:
        neb_job = neb_maker.make(interpolate_images(initial, final, settings.n_images, settings.interpolation))
        jobs = [neb_job]
    uuids["neb"] = neb_job.uuid
    metadata = {**flow_metadata(hop, preset), JOB_UUIDS_KEY: uuids}
    if restart:
        metadata[RESTART_KEY] = restart.model_dump()
    return Flow(jobs, output=neb_job.output, name=f"alem NEB {hop.hop_id} ({preset.name})", metadata=metadata)


def vasp_neb_maker(preset: Preset, nelect: float | None = None):
    from atomate2.vasp.jobs.neb import NebFromImagesMaker

    return NebFromImagesMaker(name=f"{preset.vasp.functional} NEB", input_set_generator=neb_input_generator(preset, nelect))


def vasp_endpoint_maker(preset: Preset, relax: bool, nelect: float | None = None):
    """Fixed-cell relaxation (or a single point with the same settings) of one endpoint."""
    from atomate2.vasp.jobs.core import RelaxMaker

    name = f"{preset.vasp.functional} endpoint {'relax' if relax else 'single point'}"
    return RelaxMaker(name=name, input_set_generator=relax_input_generator(preset, relax=relax, nelect=nelect))


def vasp_host_maker(preset: Preset):
    """Full relaxation (cell and ions) of the host, same electronic settings as the NEB."""
    from atomate2.vasp.jobs.core import RelaxMaker

    return RelaxMaker(name=f"{preset.vasp.functional} host relax",
                      input_set_generator=relax_input_generator(preset, relax=True, relax_cell=True))


def _relaxed_host_endpoints(hop: Hop, initial: Structure, final: Structure, preset: Preset) -> tuple[list, list]:
    host = with_initial_magmoms(pristine_host(hop), preset)
    host_job = vasp_host_maker(preset).make(host)
    strain_job = endpoints_on_relaxed_host(initial, final, host, host_job.output.structure)
    return [host_job, strain_job], [strain_job.output[0], strain_job.output[1]]


def vasp_neb_flow(hop: Hop, preset: Preset, restart: NebRestart | None = None) -> Flow:
    """Endpoint relaxations (or single points), images, NEB and alem's NEB collector.

    With ``restart`` (a retry), finished endpoint relaxations are not run again and the NEB
    continues from the images the previous NEB run reached.
    """
    from atomate2.common.jobs.neb import get_images_from_endpoints
    from jobflow import Flow
    from pymatgen.core import Structure

    settings = preset.neb
    initial, final = neb_endpoints(
        hop, preset.supercell.min_image_distance_a, preset.supercell.max_atoms, group_species=True
    )
    initial, final = magnetic_endpoints(initial, final, preset)
    nelect = charged_cell_nelect(initial, preset, hop.working_ion)
    restart = restart if restart is not None and restart.reuses_anything else None
    jobs: list = []
    endpoints: list = [initial, final]
    if preset.vasp.relax_host and not (restart and all(restart.endpoints)):
        host_jobs, endpoints = _relaxed_host_endpoints(hop, initial, final, preset)
        jobs += host_jobs
    uuids: dict[str, str] = {}
    starts = list(endpoints)
    endpoint_dirs: list = [None, None]
    endpoint_maker = vasp_endpoint_maker(preset, relax=settings.relax_endpoints, nelect=nelect)
    for index in range(2):
        finished = restart.endpoints[index] if restart else None
        if finished is not None:
            endpoints[index] = Structure.from_dict(finished.structure)
            endpoint_dirs[index] = finished.dir_name
            continue
        endpoint_job = endpoint_maker.make(endpoints[index])
        endpoint_job.append_name(f" endpoint {index + 1}")
        uuids[f"endpoint_{index + 1}"] = endpoint_job.uuid
        endpoint_dirs[index] = endpoint_job.output.dir_name
        if settings.relax_endpoints:
            endpoints[index] = endpoint_job.output.structure
        jobs.append(endpoint_job)
    check_job = None
    continues_neb = bool(restart and restart.neb_dir and all(restart.endpoints))
    if preset.checks.endpoint_check and not continues_neb:  # a continued NEB passed its check before
        check_job = check_vasp_endpoints(starts, endpoint_dirs, preset.checks.model_dump(), settings.n_images)
        jobs.append(check_job)
        endpoints = [check_job.output["endpoints"][0], check_job.output["endpoints"][1]]
    frames, initial_path = (screening_frames(hop, initial) if settings.start_from_screening and not continues_neb
                            else (None, "IDPP between the relaxed endpoints"))
    if continues_neb:
        images = images_from_previous_neb(restart.neb_dir)
        jobs.append(images)
        images = images.output
        initial_path = f"the images of the previous NEB run {restart.neb_dir}"
    elif frames is not None:
        images = images_from_screening_path(endpoints, frames, settings.n_images)
        jobs.append(images)
        images = images.output
    elif all(isinstance(e, Structure) for e in endpoints):
        images = interpolate_images(*endpoints, settings.n_images, settings.interpolation)
    else:
        method, kwargs = _interpolation(preset)
        images = get_images_from_endpoints(endpoints, settings.n_images, interpolation_method=method, **kwargs)
        jobs.append(images)
        images = images.output
    neb_job = vasp_neb_maker(preset, nelect).make(images)
    uuids["neb"] = neb_job.uuid
    collect_job = collect_vasp_neb_output(endpoint_dirs, neb_job.output.dir_name)
    if check_job is not None:
        check_job.metadata[CHECK_FOR_KEY] = collect_job.uuid
        uuids["pre_neb_check"] = check_job.uuid
    vasp_jobs = {job.uuid for job in jobs if job.name.startswith(preset.vasp.functional)}
    for job in jobs:
        job.metadata[NODES_KEY] = preset.vasp.nodes_per_image if job.uuid in vasp_jobs else 1
    neb_job.metadata[NODES_KEY] = settings.n_images * preset.vasp.nodes_per_image
    collect_job.metadata[NODES_KEY] = 1
    metadata = {**flow_metadata(hop, preset), JOB_UUIDS_KEY: uuids, INITIAL_PATH_KEY: initial_path}
    if restart:
        metadata[RESTART_KEY] = restart.model_dump()
    return Flow([*jobs, neb_job, collect_job], output=collect_job.output,
                name=f"alem NEB {hop.hop_id} ({preset.name})", metadata=metadata)


def adopt_output_schemas(flow: Flow) -> Flow:
    """Move atomate2's ``schema=`` job argument to jobflow's ``output_schema``.

    atomate2 0.1.5 decorates jobs with ``@job(schema=...)``; jobflow 0.4 names that argument
    ``output_schema`` and keeps unknown keywords as *additional store names*, so every NEB job
    claims a store called "schema". jobflow-remote (and ``submit_flow``) then refuses the flow
    because no such store is configured. The job's extra keywords are only reachable as
    ``_kwargs`` (jobflow-remote reads the same attribute).
    """
    for job, _ in flow.iterflow():
        schema = job._kwargs.pop("schema", None)
        if schema is not None and job.output_schema is None:
            job.output_schema = schema
    return flow


def neb_flow_for_hop(hop: Hop, preset: Preset, restart: NebRestart | None = None) -> Flow:
    """The NEB flow of ``hop`` under ``preset``; ``flow.output`` is the NEB result document.
    ``restart`` continues an earlier attempt (:mod:`alem.neb.restart`)."""
    flow = vasp_neb_flow(hop, preset, restart) if preset.engine == "vasp" else mlip_neb_flow(hop, preset, restart)
    return adopt_output_schemas(flow)


def output_uuid(flow: Flow) -> str:
    """uuid of the job whose output is the NEB result (where the barrier is read from)."""
    return flow.output.uuid
