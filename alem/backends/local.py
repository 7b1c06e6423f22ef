"""The local backend: each NEB flow runs with jobflow's ``run_locally`` in its own detached worker
process, so ``alem loop`` can be stopped or killed without losing a calculation.

Everything lives under the campaign's ``jobstore_dir`` (default ``state/jobstore``)::

    keys/<job key>            external id submitted under that alem job key (find_by_key)
    runs/<external id>/
        request.json          job key, hop id, preset, method, uuid of the NEB output job
        flow.json             the jobflow Flow (monty JSON)
        worker.json           pid and start time of the worker (pid reuse is detected)
        worker.log            the worker's stdout/stderr (jobflow log, tracebacks)
        exit.json             written last, atomically: {"state": "completed"|"failed", "error"}
        store/docs.json       file-backed jobflow JobStore (maggma JSONStore) ...
        store/data.json       ... with the ``data`` additional store atomate2 jobs write to
        work/                 job directories

States: ``exit.json`` present -> COMPLETED or FAILED; worker alive -> RUNNING; request written but
no worker yet (within a grace period) -> QUEUED; otherwise -> LOST (worker killed or machine
rebooted before it finished). COMPLETED means the NEB ran to the end: whether its barrier is
usable is for :meth:`LocalBackend.outcome` to say. FAILED means a job raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from alem.backends.base import Backend, JobState, NebOutcome
from alem.hops.hop import Hop
from alem.neb.presets import Preset

#: A request without a worker record older than this is LOST (the spawn never happened).
SPAWN_GRACE_S = 120.0


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def process_start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` (None if no such live process; zombies count as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _alive(record: dict) -> bool:
    pid = int(record.get("pid", 0))
    if pid <= 0:
        return False
    if Path("/proc").is_dir():
        ticks = process_start_ticks(pid)
        return ticks is not None and (record.get("start_ticks") in (None, ticks))
    try:  # no /proc (macOS): signal 0 tells whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_store_for(run_dir: Path, read_only: bool):
    """The run's file-backed jobflow JobStore, including the ``data`` store atomate2 requires."""
    from jobflow import JobStore
    from maggma.stores import JSONStore

    store_dir = run_dir / "store"
    store_dir.mkdir(exist_ok=True)
    docs = JSONStore(str(store_dir / "docs.json"), read_only=read_only)
    data = JSONStore(str(store_dir / "data.json"), read_only=read_only)
    return JobStore(docs, additional_stores={"data": data})


class LocalBackend(Backend):
    """Run NEB flows on this machine in detached worker processes."""

    name = "local"

    def __init__(self, jobstore_dir: str | Path, preset: Preset, python: str | None = None):
        self.root = Path(jobstore_dir)
        self.preset = preset
        self.python = python or sys.executable
        self._children: dict[str, subprocess.Popen] = {}
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        (self.root / "keys").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    def run_dir(self, external_id: str) -> Path:
        return self.root / "runs" / external_id

    def _key_file(self, job_key: str) -> Path:
        readable = re.sub(r"[^A-Za-z0-9._-]", "_", job_key)[:80]
        return self.root / "keys" / f"{readable}-{hashlib.sha1(job_key.encode()).hexdigest()[:10]}"

    # ------------------------------------------------------------ Backend API
    def find_by_key(self, job_key: str) -> str | None:
        key_file = self._key_file(job_key)
        if not key_file.is_file():
            return None
        external_id = key_file.read_text().strip()
        return external_id if self.run_dir(external_id).is_dir() else None

    def submit(self, hop: Hop, job_key: str) -> str:
        from monty.serialization import dumpfn

        from alem.neb.flows import neb_flow_for_hop, output_uuid

        existing = self.find_by_key(job_key)
        if existing is not None:
            return existing
        flow = neb_flow_for_hop(hop, self.preset)
        external_id = f"local-{uuid.uuid4().hex[:16]}"
        staging = self.root / "runs" / f".{external_id}.staging"
        staging.mkdir(parents=True)
        dumpfn(flow, staging / "flow.json")
        _write_json_atomic(staging / "request.json", {
            "external_id": external_id,
            "job_key": job_key,
            "hop_id": hop.hop_id,
            "preset": self.preset.name,
            "method": self.preset.method_label,
            "output_uuid": output_uuid(flow),
            "submitted_at": time.time(),
        })
        run_dir = self.run_dir(external_id)
        os.replace(staging, run_dir)  # the run appears whole or not at all
        tmp = self._key_file(job_key).with_suffix(".tmp")
        tmp.write_text(external_id)
        os.replace(tmp, self._key_file(job_key))
        self._spawn(external_id)
        return external_id

    def _spawn(self, external_id: str) -> None:
        run_dir = self.run_dir(external_id)
        with open(run_dir / "worker.log", "ab") as log:
            child = subprocess.Popen(
                [self.python, "-m", "alem.backends.local", str(run_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the terminal / process group of `alem loop`
                close_fds=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **worker_thread_env()},
            )
        self._children[external_id] = child
        if not (run_dir / "worker.json").exists():
            _write_json_atomic(run_dir / "worker.json", {"pid": child.pid, "start_ticks": process_start_ticks(child.pid)})

    def _reap(self) -> None:
        # Workers started by this process become zombies when they exit until waited for.
        for external_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[external_id]

    def state(self, external_id: str) -> JobState:
        run_dir = self.run_dir(external_id)
        if not (run_dir / "request.json").is_file():
            return JobState.LOST
        finished = _read_json(run_dir / "exit.json")
        if finished is None:
            worker = _read_json(run_dir / "worker.json")
            if worker is not None and _alive(worker):
                return JobState.RUNNING
            finished = _read_json(run_dir / "exit.json")  # it may have finished meanwhile
            if finished is None:
                request = _read_json(run_dir / "request.json") or {}
                if worker is None and time.time() - request.get("submitted_at", 0) < SPAWN_GRACE_S:
                    return JobState.QUEUED
                return JobState.LOST
        return JobState.COMPLETED if finished.get("state") == "completed" else JobState.FAILED

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobState]:
        self._reap()
        return {external_id: self.state(external_id) for external_id in external_ids}

    def outcome(self, external_id: str) -> NebOutcome:
        from alem.neb.barrier import outcome_from_job_store

        run_dir = self.run_dir(external_id)
        request = _read_json(run_dir / "request.json")
        if request is None:
            return NebOutcome(failure_reason=f"local job {external_id}: no run directory {run_dir}")
        finished = _read_json(run_dir / "exit.json")
        if finished is None:
            return NebOutcome(failure_reason=f"local job {external_id} has not finished (state {self.state(external_id).value})",
                              method=request["method"])
        if finished.get("state") != "completed":
            return NebOutcome(failure_reason=f"local job {external_id} failed: {finished.get('error')} (log: {run_dir / 'worker.log'})",
                              method=request["method"])
        outcome = outcome_from_job_store(job_store_for(run_dir, read_only=True), request["output_uuid"], method=request["method"])
        outcome.details.setdefault("run_dir", str(run_dir))
        return outcome

    def cancel(self, external_id: str) -> None:
        run_dir = self.run_dir(external_id)
        worker = _read_json(run_dir / "worker.json")
        if worker is not None and _alive(worker):
            try:
                os.killpg(int(worker["pid"]), signal.SIGTERM)
            except ProcessLookupError:
                pass
        if (run_dir / "request.json").is_file() and not (run_dir / "exit.json").exists():
            _write_json_atomic(run_dir / "exit.json", {"state": "failed", "error": "cancelled", "finished_at": time.time()})
        self._reap()


def worker_thread_env() -> dict[str, str]:
    """Thread limits for a worker. Several workers share the machine with `alem loop`; letting each
    one's torch/BLAS grab every core oversubscribes it and slows a small-cell NEB by 30x (measured:
    3 min instead of 5 s per endpoint relaxation with two workers on two cores).
    ``ALEM_WORKER_THREADS`` (default 1) sets the threads per worker."""
    threads = os.environ.get("ALEM_WORKER_THREADS", "1")
    return {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def run_worker(run_dir: Path) -> int:
    """Body of the worker process: run the flow, then record how it ended."""
    from jobflow import run_locally
    from monty.serialization import loadfn

    _write_json_atomic(run_dir / "worker.json", {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())})
    try:
        flow = loadfn(run_dir / "flow.json")
        work_dir = run_dir / "work"
        work_dir.mkdir(exist_ok=True)
        responses = run_locally(flow, store=job_store_for(run_dir, read_only=False), create_folders=True,
                                root_dir=work_dir, ensure_success=False)
        names = {job.uuid: job.name for job, _ in flow.iterflow()}
        missing = [names.get(job_uuid, job_uuid) for job_uuid in flow.job_uuids if job_uuid not in responses]
        if missing:
            raise RuntimeError(f"job(s) {', '.join(missing)} did not finish (traceback in worker.log)")
    except Exception as exc:  # any failure must end up in exit.json, never as a silent LOST
        _write_json_atomic(run_dir / "exit.json", {"state": "failed", "error": f"{type(exc).__name__}: {exc}",
                                                   "finished_at": time.time()})
        raise
    _write_json_atomic(run_dir / "exit.json", {"state": "completed", "error": None, "finished_at": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(run_worker(Path(sys.argv[1])))
