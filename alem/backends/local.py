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
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from alem.backends.base import Backend, QueueState
from alem.backends.rundir import mark_started, read_json, run_cost, run_flow, run_outcome, stage_run, write_exit, write_json_atomic
from alem.hops.hop import Hop
from alem.neb.presets import Preset
from alem.neb.schemas import NebOutcome

#: A request without a worker record older than this is LOST (the spawn never happened).
SPAWN_GRACE_S = 120.0


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
        existing = self.find_by_key(job_key)
        if existing is not None:
            return existing
        external_id = f"local-{uuid.uuid4().hex[:16]}"
        threads = int(worker_thread_env()["OMP_NUM_THREADS"])
        stage_run(self.run_dir(external_id), hop, self.preset, job_key, external_id=external_id,
                  allocation={"nodes": 1, "cores_per_node": threads})
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
            write_json_atomic(run_dir / "worker.json", {"pid": child.pid, "start_ticks": process_start_ticks(child.pid)})

    def _reap(self) -> None:
        # Workers started by this process become zombies when they exit until waited for.
        for external_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[external_id]

    def state(self, external_id: str) -> QueueState:
        run_dir = self.run_dir(external_id)
        if not (run_dir / "request.json").is_file():
            return QueueState.LOST
        finished = read_json(run_dir / "exit.json")
        if finished is None:
            worker = read_json(run_dir / "worker.json")
            if worker is not None and _alive(worker):
                return QueueState.RUNNING
            finished = read_json(run_dir / "exit.json")  # it may have finished meanwhile
            if finished is None:
                request = read_json(run_dir / "request.json") or {}
                if worker is None and time.time() - request.get("submitted_at", 0) < SPAWN_GRACE_S:
                    return QueueState.QUEUED
                return QueueState.LOST
        return QueueState.COMPLETED if finished.get("state") == "completed" else QueueState.FAILED

    def poll(self, external_ids: Sequence[str]) -> dict[str, QueueState]:
        self._reap()
        return {external_id: self.state(external_id) for external_id in external_ids}

    def outcome(self, external_id: str) -> NebOutcome:
        return run_outcome(self.run_dir(external_id), f"local job {external_id}", "worker.log",
                           lambda: self.state(external_id).value)

    def job_cost(self, external_id: str):
        return run_cost(self.run_dir(external_id), "worker.log", f"local worker {external_id}, threads as asked")

    def cancel(self, external_id: str) -> None:
        run_dir = self.run_dir(external_id)
        worker = read_json(run_dir / "worker.json")
        if worker is not None and _alive(worker):
            try:
                os.killpg(int(worker["pid"]), signal.SIGTERM)
            except ProcessLookupError:
                pass
        if (run_dir / "request.json").is_file() and not (run_dir / "exit.json").exists():
            write_exit(run_dir, "failed", "cancelled")
        self._reap()


def worker_thread_env() -> dict[str, str]:
    """Thread limits for a worker. Several workers share the machine with `alem loop`; letting each
    one's torch/BLAS grab every core oversubscribes it and slows a small-cell NEB by 30x (measured:
    3 min instead of 5 s per endpoint relaxation with two workers on two cores).
    ``ALEM_WORKER_THREADS`` (default 1) sets the threads per worker."""
    threads = os.environ.get("ALEM_WORKER_THREADS", "1")
    return {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def run_worker(run_dir: Path) -> int:
    """Body of the worker process: record who runs the flow (pid reuse is detected), run it."""
    write_json_atomic(run_dir / "worker.json", {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())})
    mark_started(run_dir, host=socket.gethostname())
    return run_flow(run_dir)


if __name__ == "__main__":
    sys.exit(run_worker(Path(sys.argv[1])))
