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
            started.json           scheduler job id, node and allocation, written by the job when it starts
            batch.log              the job's stdout/stderr
            endpoints.*            the endpoint job's script, log, started/exit markers (when
                                   ``endpoint_nodes`` splits a run over two jobs, see below)
        hops/<hop id>              the job keys submitted for that hop, oldest first

Restarts: a new submission of a hop continues the hop's previous run (``hops/<hop id>``) unless
that run converged: its finished endpoint relaxations are reused and the NEB starts from the
images it reached (:func:`alem.backends.rundir.restart_from_run`). The campaign decides *whether*
a hop is submitted again (``alem reconcile``: a job killed without its exit marker, or an
unconverged NEB whose images still moved, while attempts remain); the backend decides *from
what*. A continuation is refused while the previous attempt's job is still in the queue, so a
hop never has two batch jobs at once.

Endpoint relaxations sized for what they are: with ``endpoint_nodes > 0`` (and a preset that relaxes
its endpoints) a run is two batch jobs sharing one run directory and job store: a small endpoint
job (``endpoint_nodes``, ``endpoint_walltime_minutes``; for VASP one image's ``nodes_per_image``)
relaxes both endpoints one after the other, and the NEB job, submitted at once with ``afterok`` on it (Slurm
``--dependency``, PBS ``-W depend``; Slurm also ``--kill-on-invalid-dep``), runs the rest. The NEB
job's id is the external id; it shows as running while the endpoint job runs. A failed endpoint
job takes the NEB job with it (the scheduler drops it), so the attempt is lost and retried, reusing
whichever endpoint finished. Both jobs' core-hours count for the attempt.

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
from alem.backends.rundir import (
    ENDPOINT_STAGE,
    mark_started,
    read_json,
    restart_from_run,
    run_cost,
    run_flow,
    run_outcome,
    stage_run,
    write_exit,
    write_json_atomic,
)
from alem.errors import AlemError
from alem.hops.hop import Hop
from alem.neb.core_hours import JobCost
from alem.neb.presets import Preset
from alem.neb.restart import NebRestart
from alem.neb.schemas import NebOutcome

if TYPE_CHECKING:
    from qtoolkit.manager import QueueManager

    from alem.config import BatchBackendSection

Scheduler = Literal["slurm", "pbs"]
#: Commands each scheduler needs on the login node (``alem doctor`` checks them).
SCHEDULER_COMMANDS: dict[str, tuple[str, ...]] = {"slurm": ("sbatch", "squeue", "scancel"), "pbs": ("qsub", "qstat", "qdel")}
SCRIPT = "job.sh"
LOG = "batch.log"
ENDPOINT_LOG = f"{ENDPOINT_STAGE}.log"
#: Scheduler directives that hold a job until another one ended successfully ({id}: that job).
AFTER_OK = {"slurm": ("#SBATCH --dependency=afterok:{id}", "#SBATCH --kill-on-invalid-dep=yes"),
            "pbs": ("#PBS -W depend=afterok:{id}",)}
T = TypeVar("T")


def queue_manager(scheduler: Scheduler) -> QueueManager:
    """qtoolkit's manager for ``scheduler`` on this host (commands run locally, as on a login node)."""
    from qtoolkit.io import PBSIO, SlurmIO
    from qtoolkit.manager import QueueManager

    scheduler_io = {"slurm": SlurmIO, "pbs": PBSIO}[scheduler]()
    return QueueManager(scheduler_io)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class PreviousAttemptRunning(AlemError, RuntimeError):
    """The hop's previous batch job is still in the queue: its continuation must wait."""


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
        for folder in ("runs", "ids", "hops"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

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

    def _hop_index(self, hop_id: str) -> Path:
        return self.root / "hops" / _file_name(hop_id)

    def _hop_keys(self, hop_id: str) -> list[str]:
        try:
            return [line for line in self._hop_index(hop_id).read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def previous_run(self, hop_id: str, job_key: str) -> Path | None:
        """The run directory of the hop's latest earlier submission under this preset."""
        for key in reversed(self._hop_keys(hop_id)):
            run_dir = self.run_dir_for_key(key)
            request = read_json(run_dir / "request.json")
            if key != job_key and request is not None and request.get("preset") == self.preset.name:
                return run_dir
        return None

    def restart_for(self, hop: Hop, job_key: str) -> NebRestart | None:
        """What a new attempt of ``hop`` continues from its previous run (None: start afresh,
        also when that run converged: a converged path is judged, not continued)."""
        run_dir = self.previous_run(hop.hop_id, job_key)
        if run_dir is None:
            return None
        previous_id = str((read_json(run_dir / "job.json") or read_json(run_dir / "started.json") or {}).get("job_id") or "")
        queue = self._queue()
        if previous_id in queue and _qstate_to_job_state(queue[previous_id].state) is not QueueState.FAILED:
            raise PreviousAttemptRunning(
                f"hop {hop.hop_id}: its previous {self.scheduler} job {previous_id} is still in the queue; "
                "the next attempt is submitted once it has ended")
        finished = read_json(run_dir / "exit.json")
        if finished is not None and finished.get("state") == "completed":
            outcome = run_outcome(run_dir, f"{self.scheduler} job {previous_id}", LOG, lambda: "completed")
            if outcome.converged:
                return None
        return restart_from_run(run_dir, previous_id or run_dir.name, self.preset.engine)

    def allocation(self) -> dict:
        """Nodes and cores per node one NEB job asks for."""
        settings = self.resources
        return {"nodes": settings.nodes, "cores_per_node": settings.tasks_per_node * settings.cpus_per_task}

    # ---------------------------------------------------------------- scripts
    def qresources(self, job_key: str, run_dir: Path, stage: str | None = None, after: str | None = None):
        """The job's resources as qtoolkit's scheduler-neutral QResources (``stage="endpoints"``:
        the smaller endpoint job; ``after``: a job id this one waits for)."""
        from qtoolkit.core.data_objects import QResources

        settings = self.resources
        qos = settings.qos or None
        if qos and self.scheduler == "pbs":
            raise ValueError("[backend.pbs] qos: PBS has no QOS; leave it empty (use queue or extra_directives)")
        endpoints = stage == ENDPOINT_STAGE
        log = str(run_dir / (ENDPOINT_LOG if endpoints else LOG))
        directives = list(settings.extra_directives)
        if after:
            directives += [line.format(id=after) for line in AFTER_OK[self.scheduler]]
        return QResources(
            job_name=f"{job_key}-{ENDPOINT_STAGE}" if endpoints else job_key,
            queue_name=settings.queue or None,
            account=settings.account or None,
            qos=qos,
            nodes=settings.endpoint_nodes if endpoints else settings.nodes,
            processes_per_node=settings.tasks_per_node,
            threads_per_process=settings.cpus_per_task,
            time_limit=60 * ((settings.endpoint_walltime_minutes or settings.walltime_minutes) if endpoints else settings.walltime_minutes),
            output_filepath=log,
            error_filepath=log,
            scheduler_kwargs={"qverbatim": "\n".join(directives)} if directives else None,
        )

    def script(self, job_key: str, run_dir: Path, stage: str | None = None, after: str | None = None) -> str:
        """The batch script of one run: scheduler header, environment, pre-run lines, the NEB
        (or, ``stage="endpoints"``, its endpoint relaxations)."""
        settings = self.resources
        environ = {name: str(settings.cpus_per_task) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        if settings.vasp_cmd:
            environ["ATOMATE2_VASP_CMD"] = shlex.quote(settings.vasp_cmd)
        python = settings.python or sys.executable
        command = f"{shlex.quote(python)} -m alem.backends.batch {shlex.quote(str(run_dir))}"
        return self.manager.get_submission_script(
            commands=[command + (f" {stage}" if stage else "")],
            options=self.qresources(job_key, run_dir, stage, after),
            work_dir=shlex.quote(str(run_dir)),
            pre_run=list(settings.pre_run),
            environment={"environ": environ},
        )

    def split_endpoints(self, restart: NebRestart | None) -> bool:
        """Whether a new run relaxes its endpoints in a job of their own (see the module doc)."""
        return (self.resources.endpoint_nodes > 0 and self.preset.neb.relax_endpoints
                and not (restart is not None and (restart.images is not None or all(restart.endpoints))))

    def _sbatch(self, run_dir: Path, job_key: str, stage: str | None = None, after: str | None = None) -> str:
        """Write the run's (or its endpoint stage's) script and submit it; the scheduler job id."""
        script_path = run_dir / (f"{ENDPOINT_STAGE}.{SCRIPT}" if stage else SCRIPT)
        tmp = script_path.with_name(f".{script_path.name}.tmp")
        tmp.write_text(self.script(job_key, run_dir, stage, after))
        os.replace(tmp, script_path)
        stdout, stderr, exit_code = self.manager.execute_cmd(self.manager.scheduler_io.get_submit_cmd(shlex.quote(str(script_path))),
                                                             workdir=run_dir)
        submit_command = SCHEDULER_COMMANDS[self.scheduler][0]
        result = self._ask_scheduler(submit_command, lambda: self.manager.scheduler_io.parse_submit_output(
            exit_code=exit_code, stdout=stdout, stderr=stderr))
        if not result.job_id:
            said = " ".join((stderr or stdout).split())
            raise RuntimeError(f"{self.scheduler} refused {script_path} (exit {exit_code}): {said}")
        return str(result.job_id)

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
            restart = self.restart_for(hop, job_key)
            split = self.split_endpoints(restart)
            settings = self.resources
            extra = {"endpoint_stage": True, f"{ENDPOINT_STAGE}_allocation": {
                "nodes": settings.endpoint_nodes, "cores_per_node": settings.tasks_per_node * settings.cpus_per_task}} if split else {}
            stage_run(run_dir, hop, self.preset, job_key, restart=restart, allocation=self.allocation(),
                      scheduler=self.scheduler, **extra)
            if job_key not in self._hop_keys(hop.hop_id):
                with open(self._hop_index(hop.hop_id), "a") as index:
                    index.write(job_key + "\n")
        after = None
        if (read_json(run_dir / "request.json") or {}).get("endpoint_stage"):
            after = (read_json(run_dir / f"{ENDPOINT_STAGE}.job.json") or {}).get("job_id")
            if after is None:  # a submitter killed between the two submissions submits it again
                after = self._sbatch(run_dir, job_key, ENDPOINT_STAGE)
                write_json_atomic(run_dir / f"{ENDPOINT_STAGE}.job.json", {"job_id": after, "recorded_at": time.time()})
        job_id = self._sbatch(run_dir, job_key, after=after)
        self._remember(job_key, job_id)
        return job_id

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
            state = _qstate_to_job_state(queue[external_id].state)
            endpoint_job = (read_json(run_dir / f"{ENDPOINT_STAGE}.job.json") or {}).get("job_id")
            if state is QueueState.QUEUED and endpoint_job in queue:  # its endpoint job is the attempt running
                return _qstate_to_job_state(queue[endpoint_job].state)
            return state
        return QueueState.LOST

    def outcome(self, external_id: str) -> NebOutcome:
        run_dir = self.run_dir(external_id)
        label = f"{self.scheduler} job {external_id}"
        if run_dir is None:
            return NebOutcome(failure_reason=f"{label} was not submitted from {self.root}")
        endpoints = read_json(run_dir / f"{ENDPOINT_STAGE}.exit.json") or {}
        if endpoints.get("state") == "failed" and not (run_dir / "exit.json").exists():
            return NebOutcome(failure_reason=f"{label}: its endpoint job failed: {endpoints.get('error')} "
                              f"(log: {run_dir / ENDPOINT_LOG})", method=self.preset.method_label)
        return run_outcome(run_dir, label, LOG, lambda: self.poll([external_id])[external_id].value)

    def job_cost(self, external_id: str) -> JobCost | None:
        run_dir = self.run_dir(external_id)
        if run_dir is None:
            return None
        costs = [run_cost(run_dir, LOG, f"{self.scheduler} job {external_id}"),
                 run_cost(run_dir, ENDPOINT_LOG, f"{self.scheduler} endpoint job", ENDPOINT_STAGE)]
        costs = [cost for cost in costs if cost is not None]
        if len(costs) < 2:
            return costs[0] if costs else None
        # one attempt, two allocations: report their core-hours as one (on the NEB job's nodes)
        neb = costs[0]
        wall_s = sum(cost.core_hours for cost in costs) * 3600 / (neb.nodes * neb.cores_per_node)
        return JobCost(nodes=neb.nodes, cores_per_node=neb.cores_per_node, wall_s=wall_s,
                       source=f"{neb.source}; plus its endpoint job ({costs[1].describe()})")

    def cancel(self, external_id: str) -> None:
        run_dir = self.run_dir(external_id)
        self._ask_scheduler(SCHEDULER_COMMANDS[self.scheduler][2], lambda: self.manager.cancel(external_id))
        if run_dir is not None and not (run_dir / "exit.json").exists():
            write_exit(run_dir, "failed", "cancelled")


def scheduler_allocation(environ: dict[str, str] | None = None) -> dict:
    """Nodes and cores per node the scheduler gave this job (empty where it does not say):
    Slurm's ``SLURM_JOB_NUM_NODES``/``SLURM_CPUS_ON_NODE``, PBS's node file (one line per core)."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get("SLURM_JOB_NUM_NODES") and environ.get("SLURM_CPUS_ON_NODE"):
        return {"nodes": int(environ["SLURM_JOB_NUM_NODES"]), "cores_per_node": int(environ["SLURM_CPUS_ON_NODE"])}
    node_file = environ.get("PBS_NODEFILE")
    if node_file and Path(node_file).is_file():
        slots = [line.strip() for line in Path(node_file).read_text().splitlines() if line.strip()]
        nodes = len(set(slots))
        if nodes:
            return {"nodes": nodes, "cores_per_node": len(slots) // nodes}
    return {}


def run_batch_job(run_dir: Path, stage: str | None = None) -> int:
    """Body of the batch job on the compute node: say which job runs the flow (or its endpoint
    ``stage``), then run it."""
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
    mark_started(run_dir, stage, job_id=job_id, host=socket.gethostname(), **scheduler_allocation())
    return run_flow(run_dir, stage)


if __name__ == "__main__":
    sys.exit(run_batch_job(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
