"""jobflow Flows that compute one hop's NEB, built from atomate2 Makers.

- VASP (``engine = "vasp"``): endpoint relaxations at fixed cell (``RelaxMaker``, ISIF 2), IDPP
  images, CI-NEB (``NebFromEndpointsMaker`` / ``NebFromImagesMaker`` with ``NebSetGenerator``),
  all on pymatgen's Materials Project relax settings (``MPRelaxSet``), GGA or GGA+U. When the
  preset says the endpoints are already relaxed, single-point runs with identical settings give
  the endpoint energies and ``NebFromImagesMaker`` runs on IDPP images made here.
- Machine-learned potential (``engine = "mlip"``): ``ForceFieldRelaxMaker`` (fixed cell) for the
  endpoints, atomate2's ``get_images_from_endpoints`` (IDPP), ``ForceFieldNebFromImagesMaker``
  with explicit ASE NEB settings (climbing image, spring constant, tangent method).

The flow's ``output`` is the NEB result document (emmet ``NebResult`` or ``NebTaskDoc``), which
:func:`alem.neb.barrier.outcome_from_neb_document` turns into a barrier.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from alem.neb.supercell import interpolate_images, neb_endpoints

if TYPE_CHECKING:
    from jobflow import Flow

    from alem.hops.hop import Hop
    from alem.neb.presets import Preset


def flow_metadata(hop: Hop, preset: Preset) -> dict:
    return {"alem_hop_id": hop.hop_id, "alem_preset": preset.name, "alem_method": preset.method_label}


def _interpolation(preset: Preset):
    from atomate2.common.jobs.neb import NebInterpolation

    if preset.neb.interpolation == "idpp":
        # sort_tol=0: sites already correspond one-to-one; re-sorting could swap the ion with a host ion.
        return NebInterpolation.IDPP, {"sort_tol": 0}
    return NebInterpolation.LINEAR, {"autosort_tol": 0}


def mlip_neb_flow(hop: Hop, preset: Preset) -> Flow:
    from atomate2.common.jobs.neb import get_images_from_endpoints
    from atomate2.forcefields.jobs import ForceFieldRelaxMaker
    from atomate2.forcefields.neb import ForceFieldNebFromImagesMaker
    from jobflow import Flow

    settings = preset.neb
    initial, final = neb_endpoints(hop, preset.supercell.min_image_distance_a, preset.supercell.max_atoms)
    neb_maker = ForceFieldNebFromImagesMaker(
        name=f"{preset.mlip.force_field} NEB",
        force_field_name=preset.mlip.force_field,
        # Explicit: atomate2's default {} silently falls back to ASE's plain NEB.
        neb_kwargs={"climb": settings.climbing_image, "k": settings.spring_constant_ev_a2, "method": preset.mlip.neb_method},
        relax_kwargs={"fmax": settings.fmax_ev_a},
        steps=settings.max_steps,
    )
    jobs = []
    if settings.relax_endpoints:
        relax_maker = ForceFieldRelaxMaker(
            name=f"{preset.mlip.force_field} endpoint relax",
            force_field_name=preset.mlip.force_field,
            relax_cell=False,  # NEB images share one lattice
            steps=settings.endpoint_max_steps,
            # atomate2 tags the NEB "forces not converged" if any frame, endpoints included,
            # exceeds the NEB fmax: relax endpoints at least that tightly.
            relax_kwargs={"fmax": min(settings.endpoint_fmax_ev_a, settings.fmax_ev_a)},
        )
        endpoint_jobs = [relax_maker.make(structure) for structure in (initial, final)]
        for index, endpoint_job in enumerate(endpoint_jobs):
            endpoint_job.append_name(f" endpoint {index + 1}")
        method, kwargs = _interpolation(preset)
        images_job = get_images_from_endpoints(
            [endpoint_job.output.structure for endpoint_job in endpoint_jobs], settings.n_images,
            interpolation_method=method, **kwargs,
        )
        neb_job = neb_maker.make(images_job.output)
        jobs = [*endpoint_jobs, images_job, neb_job]
    else:
        neb_job = neb_maker.make(interpolate_images(initial, final, settings.n_images, settings.interpolation))
        jobs = [neb_job]
    return Flow(jobs, output=neb_job.output, name=f"alem NEB {hop.hop_id} ({preset.name})", metadata=flow_metadata(hop, preset))


def vasp_input_kwargs(preset: Preset) -> dict:
    """Input-generator arguments shared by every VASP step: Materials Project relax settings."""
    from pymatgen.io.vasp.sets import MPRelaxSet

    return {
        "config_dict": copy.deepcopy(MPRelaxSet.CONFIG),
        "user_kpoints_settings": {"reciprocal_density": preset.vasp.kpoints_reciprocal_density},
        "user_potcar_functional": preset.vasp.potcar_functional,
        "force_gamma": True,
        # Keep our site order: image POSCARs are written as given, so the POTCAR order must match.
        "sort_structure": False,
    }


def vasp_incar_base(preset: Preset) -> dict:
    incar = {} if preset.vasp.functional == "GGA+U" else {"LDAU": False}
    return {**incar, **preset.vasp.incar_updates}


def vasp_neb_maker(preset: Preset):
    from atomate2.vasp.jobs.neb import NebFromImagesMaker
    from atomate2.vasp.sets.core import NebSetGenerator

    settings = preset.neb
    generator = NebSetGenerator(
        num_images=settings.n_images,
        climbing_image=settings.climbing_image,
        user_incar_settings={
            **vasp_incar_base(preset),
            "EDIFFG": -settings.fmax_ev_a,
            "NSW": settings.max_steps,
            "SPRING": -settings.spring_constant_ev_a2,
        },
        **vasp_input_kwargs(preset),
    )
    return NebFromImagesMaker(name=f"{preset.vasp.functional} NEB", input_set_generator=generator)


def vasp_endpoint_maker(preset: Preset, relax: bool):
    """Fixed-cell relaxation (or a single point with the same settings) of one endpoint."""
    from atomate2.vasp.jobs.core import RelaxMaker
    from atomate2.vasp.sets.core import RelaxSetGenerator

    settings = preset.neb
    incar = {**vasp_incar_base(preset), "ISIF": 2}
    incar.update({"EDIFFG": -settings.endpoint_fmax_ev_a, "NSW": settings.endpoint_max_steps} if relax else {"NSW": 0})
    generator = RelaxSetGenerator(user_incar_settings=incar, **vasp_input_kwargs(preset))
    name = f"{preset.vasp.functional} endpoint {'relax' if relax else 'single point'}"
    return RelaxMaker(name=name, input_set_generator=generator)


def vasp_neb_flow(hop: Hop, preset: Preset) -> Flow:
    from atomate2.vasp.jobs.neb import NebFromEndpointsMaker, collect_neb_output
    from jobflow import Flow

    settings = preset.neb
    initial, final = neb_endpoints(
        hop, preset.supercell.min_image_distance_a, preset.supercell.max_atoms, group_species=True
    )
    neb_maker = vasp_neb_maker(preset)
    name = f"alem NEB {hop.hop_id} ({preset.name})"
    if settings.relax_endpoints:
        method, kwargs = _interpolation(preset)
        flow = NebFromEndpointsMaker(
            endpoint_relax_maker=vasp_endpoint_maker(preset, relax=True), images_maker=neb_maker
        ).make([initial, final], settings.n_images, interpolation_method=method, **kwargs)
        flow.name = name
        flow.metadata.update(flow_metadata(hop, preset))
        return flow
    endpoint_maker = vasp_endpoint_maker(preset, relax=False)
    endpoint_jobs = [endpoint_maker.make(structure) for structure in (initial, final)]
    for index, endpoint_job in enumerate(endpoint_jobs):
        endpoint_job.append_name(f" endpoint {index + 1}")
    neb_job = neb_maker.make(interpolate_images(initial, final, settings.n_images, settings.interpolation))
    collect_job = collect_neb_output(
        [endpoint_job.output.dir_name for endpoint_job in endpoint_jobs], neb_job.output.dir_name,
        store_calculations=False,
    )
    return Flow([*endpoint_jobs, neb_job, collect_job], output=collect_job.output, name=name,
                metadata=flow_metadata(hop, preset))


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


def neb_flow_for_hop(hop: Hop, preset: Preset) -> Flow:
    """The NEB flow of ``hop`` under ``preset``; ``flow.output`` is the NEB result document."""
    flow = vasp_neb_flow(hop, preset) if preset.engine == "vasp" else mlip_neb_flow(hop, preset)
    return adopt_output_schemas(flow)


def output_uuid(flow: Flow) -> str:
    """uuid of the job whose output is the NEB result (where the barrier is read from)."""
    return flow.output.uuid
