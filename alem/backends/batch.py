"""The ``slurm`` and ``pbs`` backends: each NEB is one batch job; no database server anywhere.

The campaign's SQLite store stays the only database. A submission is a run directory (the layout
of :mod:`alem.backends.rundir`) on a filesystem the compute nodes share, plus a batch script
that runs the flow there with a file-backed jobflow store::

    <run_dir>/
        ids/<scheduler job id>     the alem job key submitted under that id
        runs/<alem job key>/       one run directory per submission
            request.json, flow.json, store/, work/, exit.json   (alem.backends.rundir)
            job.sh                 the batch script (qtoolkit's SlurmIO/PBSIO header)
            job.json               scheduler job id, written by the submitter after sbatch/qsub
            started.json           scheduler job id and node, written by the job when it starts
            batch.log              the job's stdout/stderr

Scripts, submission, cancellation and queue listings go through qtoolkit. The external id is the
scheduler's job id; the job name is the alem job key, so :meth:`BatchBackend.find_by_key` finds a
submission whose id never reached the store (in the queue by name, or through the ids the
submitter and the job itself wrote into the run directory).

States: ``exit.json`` present -> COMPLETED or FAILED; else the job in the queue listing ->
QUEUED (pending, held, suspended) or RUNNING; ended in the queue without an exit marker -> FAILED;
not in the queue and no exit marker -> LOST. Without accounting (``sacct``) a finished job leaves
``squeue`` soon, so completion is read from the exit marker, never from the scheduler. A queue
command that fails raises: a scheduler that does not answer never turns jobs into LOST.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from alem.backends.base import Backend, BackendUnavailableError, QueueState
from alem.backends.rundir import read_json, run_flow, run_outcome, stage_run, write_exit, write_json_atomic
from alem.hops.hop import Hop
from alem.neb.presets import Preset
from alem.neb.schemas import NebOutcome

if TYPE_CHECKING:
    from qtoolkit.manager import QueueManager

    from alem.config import BatchBackendSection

Scheduler = Literal["slurm", "pbs"]
#: Commands each scheduler needs on the login node (``alem doctor`` checks them).
SCHEDULER_COMMANDS: dict[str, tuple[str, ...]] = {"slurm": ("sbatch", "squeue", "scancel"), "pbs": ("qsub", "qstat", "qdel")}
SCRIPT = "job.sh"
LOG = "batch.log"
T = TypeVar("T")


def queue_manager(scheduler: Scheduler) -> QueueManager:
    """qtoolkit's manager for ``scheduler`` on this host (commands run locally, as on a login node)."""
    from qtoolkit.io import PBSIO, SlurmIO
    from qtoolkit.manager import QueueManager

    scheduler_io = {"slurm": SlurmIO, "pbs": PBSIO}[scheduler]()
    return QueueManager(scheduler_io)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _qstate_to_job_state(qstate) -> QueueState:
    from qtoolkit.core.data_objects import QState

    if qstate == QState.RUNNING:
        return QueueState.RUNNING
    if qstate in (QState.DONE, QState.FAILED):
        return QueueState.FAILED  # ended without its exit marker (checked by the caller first)
    return QueueState.QUEUED  # queued, held, requeued, suspended, undetermined


class BatchBackend(Backend):
    """Submit NEB flows as Slurm or PBS batch jobs that run in shared run directories."""

    def __init__(self, scheduler: Scheduler, run_root: str | Path, preset: Preset, resources: BatchBackendSection,
                 manager: QueueManager | None = None):
        if scheduler not in SCHEDULER_COMMANDS:
            raise ValueError(f"unknown batch scheduler {scheduler!r} (slurm or pbs)")
        self.name = scheduler
        self.scheduler = scheduler
        self.root = Path(run_root)
        self.preset = preset
        self.resources = resources
        self.manager = manager or queue_manager(scheduler)
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        (self.root / "ids").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    def run_dir_for_key(self, job_key: str) -> Path:
        return self.root / "runs" / _file_name(job_key)

    def run_dir(self, external_id: str) -> Path | None:
        """The run directory of a scheduler job id (None if alem never submitted it here)."""
        index = self.root / "ids" / _file_name(external_id)
        if not index.is_file():
            return None
        return self.run_dir_for_key(index.read_text().strip())

    def _remember(self, job_key: str, job_id: str) -> None:
        run_dir = self.run_dir_for_key(job_key)
        index = self.root / "ids" / _file_name(job_id)
        tmp = index.with_name(f".{index.name}.tmp")
        tmp.write_text(job_key)
        os.replace(tmp, index)
        write_json_atomic(run_dir / "job.json", {"job_id": job_id, "scheduler": self.scheduler, "recorded_at": time.time()})

    # ---------------------------------------------------------------- scripts
    def qresources(self, job_key: str, run_dir: Path):
        """The job's resources as qtoolkit's scheduler-neutral QResources."""
        from qtoolkit.core.data_objects import QResources

        settings = self.resources
        qos = settings.qos or None
        if qos and self.scheduler == "pbs":
            raise ValueError("[backend.pbs] qos: PBS has no QOS; leave it empty (use queue or extra_directives)")
        return QResources(
            job_name=job_key,
            queue_name=settings.queue or None,
            account=settings.account or None,
            qos=qos,
            nodes=settings.nodes,
            processes_per_node=settings.tasks_per_node,
            threads_per_process=settings.cpus_per_task,
            time_limit=settings.walltime_minutes * 60,
            output_filepath=str(run_dir / LOG),
            error_filepath=str(run_dir / LOG),
            scheduler_kwargs={"qverbatim": "\n".join(settings.extra_directives)} if settings.extra_directives else None,
        )

    def script(self, job_key: str, run_dir: Path) -> str:
        """The batch script of one run: scheduler header, environment, pre-run lines, the NEB."""
        settings = self.resources
        environ = {name: str(settings.cpus_per_task) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        if settings.vasp_cmd:
            environ["ATOMATE2_VASP_CMD"] = shlex.quote(settings.vasp_cmd)
        python = settings.python or sys.executable
        return self.manager.get_submission_script(
            commands=[f"{shlex.quote(python)} -m alem.backends.batch {shlex.quote(str(run_dir))}"],
            options=self.qresources(job_key, run_dir),
            work_dir=shlex.quote(str(run_dir)),
            pre_run=list(settings.pre_run),
            environment={"environ": environ},
        )

    # ------------------------------------------------------------ Backend API
    def _ask_scheduler(self, command: str, call: Callable[[], T]) -> T:
        """``call()``; a scheduler command that fails (no controller, no configuration, a
        refused connection) becomes one :class:`BackendUnavailableError` naming it."""
        from qtoolkit.core.exceptions import CommandFailedError

        try:
            return call()
        except CommandFailedError as exc:
            said = " ".join(str(exc).split())  # qtoolkit quotes the command's multi-line stderr
            said = said if command in said else f"{command} failed: {said}"
            raise BackendUnavailableError(f"{self.scheduler} does not answer ({said}); `alem doctor` checks the scheduler") from exc

    def _queue(self) -> dict:
        """Job id -> qtoolkit QJob for every job of this user the scheduler lists."""
        listing = SCHEDULER_COMMANDS[self.scheduler][1]
        jobs = self._ask_scheduler(listing, lambda: self.manager.get_jobs_list(user=getpass.getuser()))
        return {str(job.job_id): job for job in jobs}

    def find_by_key(self, job_key: str) -> str | None:
        run_dir = self.run_dir_for_key(job_key)
        if not (run_dir / "request.json").is_file():
            return None
        for record in ("job.json", "started.json"):
            job_id = (read_json(run_dir / record) or {}).get("job_id")
            if job_id:
                if record != "job.json":
                    self._remember(job_key, str(job_id))
                return str(job_id)
        for job_id, job in self._queue().items():
            if job.name == job_key:
                self._remember(job_key, job_id)
                return job_id
        return None

    def submit(self, hop: Hop, job_key: str) -> str:
        existing = self.find_by_key(job_key)
        if existing is not None:
            return existing
        run_dir = self.run_dir_for_key(job_key)
        if not run_dir.is_dir():
            stage_run(run_dir, hop, self.preset, job_key, scheduler=self.scheduler)
        script_path = run_dir / SCRIPT
        tmp = script_path.with_name(f".{SCRIPT}.tmp")
        tmp.write_text(self.script(job_key, run_dir))
        os.replace(tmp, script_path)
        stdout, stderr, exit_code = self.manager.execute_cmd(self.manager.scheduler_io.get_submit_cmd(shlex.quote(str(script_path))),
                                                             workdir=run_dir)
        submit_command = SCHEDULER_COMMANDS[self.scheduler][0]
        result = self._ask_scheduler(submit_command, lambda: self.manager.scheduler_io.parse_submit_output(
            exit_code=exit_code, stdout=stdout, stderr=stderr))
        if not result.job_id:
            said = " ".join((stderr or stdout).split())
            raise RuntimeError(f"{self.scheduler} refused {script_path} (exit {exit_code}): {said}")
        self._remember(job_key, str(result.job_id))
        return str(result.job_id)

    def poll(self, external_ids: Sequence[str]) -> dict[str, QueueState]:
        if not external_ids:
            return {}
        queue = self._queue()  # before the exit markers: a job that leaves the queue has written its marker
        return {external_id: self._state(external_id, queue) for external_id in external_ids}

    def _state(self, external_id: str, queue: dict) -> QueueState:
        run_dir = self.run_dir(external_id)
        if run_dir is None:
            return QueueState.LOST
        finished = read_json(run_dir / "exit.json")
        if finished is not None:
            return QueueState.COMPLETED if finished.get("state") == "completed" else QueueState.FAILED
        if external_id in queue:
            return _qstate_to_job_state(queue[external_id].state)
        return QueueState.LOST

    def outcome(self, external_id: str) -> NebOutcome:
        run_dir = self.run_dir(external_id)
        label = f"{self.scheduler} job {external_id}"
        if run_dir is None:
            return NebOutcome(failure_reason=f"{label} was not submitted from {self.root}")
        return run_outcome(run_dir, label, LOG, lambda: self.poll([external_id])[external_id].value)

    def cancel(self, external_id: str) -> None:
        run_dir = self.run_dir(external_id)
        self._ask_scheduler(SCHEDULER_COMMANDS[self.scheduler][2], lambda: self.manager.cancel(external_id))
        if run_dir is not None and not (run_dir / "exit.json").exists():
            write_exit(run_dir, "failed", "cancelled")


def run_batch_job(run_dir: Path) -> int:
    """Body of the batch job on the compute node: say which job runs the flow, then run it."""
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
    write_json_atomic(run_dir / "started.json", {"job_id": job_id, "host": socket.gethostname(), "started_at": time.time()})
    return run_flow(run_dir)


if __name__ == "__main__":
    sys.exit(run_batch_job(Path(sys.argv[1])))
