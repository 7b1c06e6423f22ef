"""A run directory: one NEB flow with everything needed to run it anywhere and read its result.

Shared by the backends that run the flow themselves (``local``: a detached process on this
machine; ``slurm``/``pbs``: a batch job on a compute node reading the same shared filesystem)::

    request.json     job key, hop id, preset, method, uuid of the NEB output job, the uuids of
                     the flow's endpoint and NEB jobs, the allocation asked for, what it continues,
                     provenance record
    code_versions.json  host and code versions where the flow ran (written by the job)
    flow.json        the jobflow Flow (monty JSON)
    started.json     when (and on what allocation) the flow started running
    exit.json        written last, atomically: {"state": "completed"|"failed", "error"}
    store/docs.json  file-backed jobflow JobStore (maggma JSONStore) ...
    store/data.json  ... with the ``data`` additional store atomate2 jobs write to
    work/            job directories

A run directory appears whole or not at all (:func:`stage_run` writes a staging directory and
renames it). ``exit.json`` present means the flow ran to its end (COMPLETED) or raised (FAILED);
its absence means still running, or killed before it could say so: the backend tells which.

A later attempt of the same hop continues this one (:func:`restart_from_run`): endpoint
relaxations that finished are reused, the NEB starts from the images this run reached. What the
run cost is :func:`run_cost` (:mod:`alem.neb.core_hours`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from alem.hops.hop import Hop
from alem.neb.core_hours import JobCost
from alem.neb.presets import Preset
from alem.neb.provenance import RUN_VERSIONS_FILE, preset_provenance, provenance_for_run, run_versions
from alem.neb.restart import NEB_TRAJECTORY, NebRestart
from alem.neb.schemas import NebOutcome

REQUEST = "request.json"
EXIT = "exit.json"
STARTED = "started.json"


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def job_store_for(run_dir: Path, read_only: bool):
    """The run's file-backed jobflow JobStore, including the ``data`` store atomate2 requires."""
    from jobflow import JobStore
    from maggma.stores import JSONStore

    store_dir = run_dir / "store"
    store_dir.mkdir(exist_ok=True)
    docs = JSONStore(str(store_dir / "docs.json"), read_only=read_only)
    data = JSONStore(str(store_dir / "data.json"), read_only=read_only)
    return JobStore(docs, additional_stores={"data": data})


def stage_run(run_dir: Path, hop: Hop, preset: Preset, job_key: str, restart: NebRestart | None = None,
              allocation: dict | None = None, **request_extra) -> dict:
    """Write the hop's NEB flow and its request into ``run_dir`` (created whole, atomically).
    ``restart`` continues an earlier attempt; ``allocation`` ({"nodes", "cores_per_node"}) is what
    the job asks for. Returns the request."""
    from monty.serialization import dumpfn

    from alem.neb.flows import neb_flow_for_hop, output_uuid
    from alem.neb.restart import JOB_UUIDS_KEY

    flow = neb_flow_for_hop(hop, preset, restart=restart)
    staging = run_dir.with_name(f".{run_dir.name}.staging")
    if staging.exists():  # left by a process killed while staging this same run
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    dumpfn(flow, staging / "flow.json")
    request = {
        "job_key": job_key,
        "hop_id": hop.hop_id,
        "preset": preset.name,
        "method": preset.method_label,
        "output_uuid": output_uuid(flow),
        "criteria": asdict(preset.path_criteria),
        "submitted_at": time.time(),
        "provenance": preset_provenance(preset).model_dump(mode="json"),
        "job_uuids": flow.metadata.get(JOB_UUIDS_KEY, {}),
        "frames_per_step": preset.neb.n_images + 2,
        "allocation": allocation or {"nodes": 1, "cores_per_node": 1},
        "continues": restart.describe() if restart is not None and restart.reuses_anything else None,
        **request_extra,
    }
    write_json_atomic(staging / REQUEST, request)
    os.replace(staging, run_dir)
    return request


#: A run split over two batch jobs (``[backend.slurm] endpoint_nodes``): the endpoint stage writes
#: its own ``endpoints.started.json`` / ``endpoints.exit.json``; the NEB stage the plain files.
ENDPOINT_STAGE = "endpoints"


def _stage_file(name: str, stage: str | None) -> str:
    return f"{stage}.{name}" if stage else name


def endpoint_stage_uuids(flow) -> set[str]:
    """uuids of the flow's endpoint relaxations and every job they need first (host relaxation)."""
    from alem.neb.restart import JOB_UUIDS_KEY

    uuids = flow.metadata.get(JOB_UUIDS_KEY) or {}
    by_uuid = {job.uuid: job for job in flow.jobs}
    wanted = [uuid for key, uuid in uuids.items() if key.startswith("endpoint") and uuid in by_uuid]
    closure: set[str] = set()
    while wanted:
        uuid = wanted.pop()
        if uuid not in closure:
            closure.add(uuid)
            wanted += [parent for parent in by_uuid[uuid].input_uuids if parent in by_uuid]
    return closure


def run_flow(run_dir: Path, stage: str | None = None) -> int:
    """Run the directory's flow with jobflow's ``run_locally``, then write ``exit.json``.

    ``stage="endpoints"`` runs only the endpoint relaxations (and what they need); a run whose
    request says ``"endpoint_stage"`` then runs everything else, the endpoints' outputs coming
    from the shared job store."""
    from jobflow import Flow, run_locally
    from monty.serialization import loadfn

    from alem.neb.endpoint_check import stopped_by_endpoint_check

    try:
        # the versions where the flow runs, which may differ from the submitting alem's
        write_json_atomic(run_dir / RUN_VERSIONS_FILE, run_versions((read_json(run_dir / REQUEST) or {}).get("provenance")))
        flow = loadfn(run_dir / "flow.json")
        request = read_json(run_dir / REQUEST) or {}
        if stage == ENDPOINT_STAGE or request.get("endpoint_stage"):
            endpoint_jobs = endpoint_stage_uuids(flow)
            jobs = [job for job in flow.jobs if (job.uuid in endpoint_jobs) == (stage == ENDPOINT_STAGE)]
            for job in jobs:
                job.hosts = []  # they move to a flow of their own
            flow = Flow(jobs, name=f"{flow.name} ({stage or 'NEB'} stage)", metadata=flow.metadata)
        work_dir = run_dir / "work"
        work_dir.mkdir(exist_ok=True)
        responses = run_locally(flow, store=job_store_for(run_dir, read_only=False), create_folders=True,
                                root_dir=work_dir, ensure_success=False,
                                # the NEB stage reads the endpoint stage's outputs from the shared store
                                allow_external_references=bool(request.get("endpoint_stage")))
        names = {job.uuid: job.name for job, _ in flow.iterflow()}
        missing = [names.get(job_uuid, job_uuid) for job_uuid in flow.job_uuids if job_uuid not in responses]
        # a failed endpoint check stops the flow before the NEB on purpose: the run is complete
        # and its outcome is the check's verdict (alem.neb.endpoint_check)
        if missing and not stopped_by_endpoint_check(flow, responses):
            raise RuntimeError(f"job(s) {', '.join(missing)} did not finish (traceback in the job's log)")
    except Exception as exc:  # any failure must end up in exit.json, never as a silent LOST
        write_exit(run_dir, "failed", f"{type(exc).__name__}: {exc}", stage)
        raise
    write_exit(run_dir, "completed", None, stage)
    return 0


def write_exit(run_dir: Path, state: str, error: str | None, stage: str | None = None) -> None:
    write_json_atomic(run_dir / _stage_file(EXIT, stage), {"state": state, "error": error, "finished_at": time.time()})


def run_outcome(run_dir: Path, label: str, log_name: str, current_state: Callable[[], str]) -> NebOutcome:
    """The NEB outcome a run directory holds; ``label`` names the job in failure reasons and
    ``current_state`` says what the backend sees of an unfinished one."""
    from alem.neb.barrier import PathCriteria, outcome_from_job_store

    request = read_json(run_dir / REQUEST)
    if request is None:
        return NebOutcome(failure_reason=f"{label}: no run directory {run_dir}")
    finished = read_json(run_dir / EXIT)
    if finished is None:
        outcome = NebOutcome(failure_reason=f"{label} has not finished (state {current_state()})", method=request["method"])
    elif finished.get("state") != "completed":
        outcome = NebOutcome(failure_reason=f"{label} failed: {finished.get('error')} (log: {run_dir / log_name})",
                             method=request["method"])
    else:
        criteria = PathCriteria(**request.get("criteria", {}))  # runs staged before criteria were recorded: defaults
        outcome = outcome_from_job_store(job_store_for(run_dir, read_only=True), request["output_uuid"],
                                         method=request["method"], criteria=criteria)
        outcome.details.setdefault("run_dir", str(run_dir))
    outcome.provenance = provenance_for_run(request.get("provenance"), read_json(run_dir / RUN_VERSIONS_FILE),
                                            outcome.details.get("dir_name"))
    return outcome


def _neb_run_dir(run_dir: Path, engine: str) -> Path | None:
    """The directory the run's NEB job ran in (newest if several): VASP, the one holding image
    directories ``01``..; MLIP, the one holding the optimiser's trajectory."""
    marker = NEB_TRAJECTORY if engine != "vasp" else "01"
    found = [path.parent for path in (run_dir / "work").glob(f"*/{marker}")]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def restart_from_run(run_dir: Path, previous_id: str, engine: str) -> NebRestart | None:
    """What a new attempt can reuse from the run in ``run_dir``: its finished endpoint
    relaxations (outputs in its job store) and the images its NEB reached. None when the run
    holds nothing to continue (no request, or nothing finished)."""
    from alem.neb.restart import last_trajectory_images, restart_from_records

    request = read_json(run_dir / REQUEST)
    if request is None:
        return None
    flow = read_json(run_dir / "flow.json") or {}
    uuids = request.get("job_uuids") or {}
    outputs = {}
    if (run_dir / "store" / "docs.json").is_file():
        store = job_store_for(run_dir, read_only=True)
        store.connect()
        for key, uuid in uuids.items():
            if key.startswith("endpoint"):
                try:
                    outputs[uuid] = store.get_output(uuid, which="last", load=True)
                except ValueError:  # jobflow: no output stored (the job did not finish)
                    pass
    neb_dir = _neb_run_dir(run_dir, engine)
    images = None
    if engine != "vasp" and neb_dir is not None:
        images = last_trajectory_images(neb_dir / NEB_TRAJECTORY, int(request.get("frames_per_step", 0)) or 1)
    restart = restart_from_records(previous_id, flow.get("metadata") or {}, outputs,
                                   str(neb_dir) if engine == "vasp" and neb_dir else None, images)
    return restart if restart.reuses_anything else None


def _last_write_s(run_dir: Path, log_name: str) -> float | None:
    """When anything in the run was last written (the log, a job directory or a file in one)."""
    times = []
    for path in [run_dir / log_name, *(run_dir / "work").glob("*"), *(run_dir / "work").glob("*/*")]:
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    return max(times) if times else None


def run_cost(run_dir: Path, log_name: str, source: str, stage: str | None = None) -> JobCost | None:
    """The allocation and wall time this run held (None if it never started): the allocation the
    job itself reported at start, else the one it asked for; from its start to its exit marker,
    or to the last write into the run directory for a run killed without one. ``stage`` reads the
    endpoint stage's own records instead (a run split over two jobs)."""
    request = read_json(run_dir / REQUEST)
    started = read_json(run_dir / _stage_file(STARTED, stage))
    if request is None or started is None or "started_at" not in started:
        return None
    asked = (request.get(f"{stage}_allocation") if stage else None) or request.get("allocation") or {}
    nodes = int(started.get("nodes") or asked.get("nodes") or 1)
    cores = int(started.get("cores_per_node") or asked.get("cores_per_node") or 1)
    finished = read_json(run_dir / _stage_file(EXIT, stage))
    end = finished.get("finished_at") if finished else _last_write_s(run_dir, log_name)
    how = "exit marker" if finished else "last write into the run directory"
    return JobCost(nodes=nodes, cores_per_node=cores, wall_s=max(0.0, (end or started["started_at"]) - started["started_at"]),
                   source=f"{source}; wall time from the job's start to its {how}")


def mark_started(run_dir: Path, stage: str | None = None, **record) -> None:
    """Write ``started.json`` (of ``stage``): when the flow starts running, plus what the caller
    knows (job id, host, the allocation the scheduler gave)."""
    write_json_atomic(run_dir / _stage_file(STARTED, stage), {"started_at": time.time(), **record})
