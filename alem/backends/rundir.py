"""A run directory: one NEB flow with everything needed to run it anywhere and read its result.

Shared by the backends that run the flow themselves (``local``: a detached process on this
machine; ``slurm``/``pbs``: a batch job on a compute node reading the same shared filesystem)::

    request.json     job key, hop id, preset, method, uuid of the NEB output job
    flow.json        the jobflow Flow (monty JSON)
    exit.json        written last, atomically: {"state": "completed"|"failed", "error"}
    store/docs.json  file-backed jobflow JobStore (maggma JSONStore) ...
    store/data.json  ... with the ``data`` additional store atomate2 jobs write to
    work/            job directories

A run directory appears whole or not at all (:func:`stage_run` writes a staging directory and
renames it). ``exit.json`` present means the flow ran to its end (COMPLETED) or raised (FAILED);
its absence means still running, or killed before it could say so: the backend tells which.
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
from alem.neb.presets import Preset
from alem.neb.schemas import NebOutcome

REQUEST = "request.json"
EXIT = "exit.json"


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


def stage_run(run_dir: Path, hop: Hop, preset: Preset, job_key: str, **request_extra) -> dict:
    """Write the hop's NEB flow and its request into ``run_dir`` (created whole, atomically).
    Returns the request."""
    from monty.serialization import dumpfn

    from alem.neb.flows import neb_flow_for_hop, output_uuid

    flow = neb_flow_for_hop(hop, preset)
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
        **request_extra,
    }
    write_json_atomic(staging / REQUEST, request)
    os.replace(staging, run_dir)
    return request


def run_flow(run_dir: Path) -> int:
    """Run the directory's flow with jobflow's ``run_locally``, then write ``exit.json``."""
    from jobflow import run_locally
    from monty.serialization import loadfn

    from alem.neb.endpoint_check import stopped_by_endpoint_check

    try:
        flow = loadfn(run_dir / "flow.json")
        work_dir = run_dir / "work"
        work_dir.mkdir(exist_ok=True)
        responses = run_locally(flow, store=job_store_for(run_dir, read_only=False), create_folders=True,
                                root_dir=work_dir, ensure_success=False)
        names = {job.uuid: job.name for job, _ in flow.iterflow()}
        missing = [names.get(job_uuid, job_uuid) for job_uuid in flow.job_uuids if job_uuid not in responses]
        # a failed endpoint check stops the flow before the NEB on purpose: the run is complete
        # and its outcome is the check's verdict (alem.neb.endpoint_check)
        if missing and not stopped_by_endpoint_check(flow, responses):
            raise RuntimeError(f"job(s) {', '.join(missing)} did not finish (traceback in the job's log)")
    except Exception as exc:  # any failure must end up in exit.json, never as a silent LOST
        write_exit(run_dir, "failed", f"{type(exc).__name__}: {exc}")
        raise
    write_exit(run_dir, "completed", None)
    return 0


def write_exit(run_dir: Path, state: str, error: str | None) -> None:
    write_json_atomic(run_dir / EXIT, {"state": state, "error": error, "finished_at": time.time()})


def run_outcome(run_dir: Path, label: str, log_name: str, current_state: Callable[[], str]) -> NebOutcome:
    """The NEB outcome a run directory holds; ``label`` names the job in failure reasons and
    ``current_state`` says what the backend sees of an unfinished one."""
    from alem.neb.barrier import PathCriteria, outcome_from_job_store

    request = read_json(run_dir / REQUEST)
    if request is None:
        return NebOutcome(failure_reason=f"{label}: no run directory {run_dir}")
    finished = read_json(run_dir / EXIT)
    if finished is None:
        return NebOutcome(failure_reason=f"{label} has not finished (state {current_state()})",
                          method=request["method"])
    if finished.get("state") != "completed":
        return NebOutcome(failure_reason=f"{label} failed: {finished.get('error')} (log: {run_dir / log_name})",
                          method=request["method"])
    criteria = PathCriteria(**request.get("criteria", {}))  # runs staged before criteria were recorded: defaults
    outcome = outcome_from_job_store(job_store_for(run_dir, read_only=True), request["output_uuid"],
                                     method=request["method"], criteria=criteria)
    outcome.details.setdefault("run_dir", str(run_dir))
    return outcome
