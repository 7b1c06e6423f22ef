"""Where a retraining job runs (``[model] retrain_on = "backend"``): a detached process on this
machine (``local``) or a Slurm/PBS batch job built, submitted and listed through qtoolkit, the
same path as the ``slurm``/``pbs`` NEB jobs (:mod:`alem.backends.batch`).

A retraining run directory (written whole by :mod:`alem.campaign.retrain_job`)::

    retrain.json            the recipe: train_ensemble's keyword arguments as JSON, the dataset
                            hash and counts the new version is registered with
    training_hops.pickle    the hops to train on, exactly as the loop built them
    job.sh                  the batch script (slurm/pbs)
    job.json                scheduler job id, written by the submitter after sbatch/qsub
    started.json            job id (or pid), host and start time, written by the job itself
    retrain.log             the job's stdout/stderr
    model/                  the new model version directory; appears whole (renamed from
                            model.partial/ once the trainer has written every file)
    exit.json               written last: {"state": "completed"|"failed", "error"}

States, as for NEB jobs: ``exit.json`` present -> COMPLETED or FAILED; else the job in the queue
(or its process alive) -> QUEUED or RUNNING; else LOST. Training uses CUDA when the node has it
(:func:`alem.inference.device.pick_device`); ``gpus`` asks the scheduler for GPUs.
"""

from __future__ import annotations

import getpass
import json
import os
import pickle
import shlex
import shutil
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alem.backends.base import QueueState
from alem.backends.batch import SCHEDULER_COMMANDS, _qstate_to_job_state, queue_manager
from alem.backends.local import _alive, process_start_ticks
from alem.backends.rundir import EXIT, read_json, write_exit, write_json_atomic
from alem.hops.fidelity import CheapBarrier, barriers_of_hop

if TYPE_CHECKING:
    from alem.config import RetrainJobSection

SPEC = "retrain.json"
HOPS = "training_hops.pickle"
MODEL = "model"
LOG = "retrain.log"
#: What a retraining job runs (``python -m``).
ENTRY_MODULE = "alem.backends.retrain_runner"
SCRIPT = "job.sh"
#: A local job recorded but never spawned (a loop killed in between) is LOST after this long.
START_GRACE_S = 120.0


# ------------------------------------------------------------------ the recipe on disk
def encode_train_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """train_ensemble's keyword arguments as JSON data (the typed recipe, combination and record; cheap barriers)."""
    cheap = kwargs.get("cheap_barriers")
    return {
        **{name: kwargs[name].model_dump(mode="json", exclude_unset=True) for name in ("recipe", "combination", "record")},
        # per hop, one [fidelity, barrier] per potential (a model may have one add-on per potential)
        "cheap_barriers": None if cheap is None else {hop: [[c.fidelity, c.barrier_ev] for c in barriers_of_hop(value)]
                                                      for hop, value in cheap.items()},
    }


def decode_train_kwargs(encoded: dict[str, Any]) -> dict[str, Any]:
    from alem.model_dir import Combination, EnsembleRecipe, TrainingRecord

    cheap = encoded.get("cheap_barriers")
    return {
        "recipe": EnsembleRecipe.model_validate(encoded["recipe"]),
        "combination": Combination.model_validate(encoded["combination"]),
        "record": TrainingRecord.model_validate(encoded["record"]),
        "cheap_barriers": None if cheap is None else {hop: _decoded_barriers(value) for hop, value in cheap.items()},
    }


def _decoded_barriers(value: list) -> tuple[CheapBarrier, ...]:
    pairs = [value] if value and isinstance(value[0], str) else value  # a run directory written before add-ons per potential
    return tuple(CheapBarrier(fidelity, float(barrier)) for fidelity, barrier in pairs)


def stage_retrain_run(run_dir: Path, hops: list, train_kwargs: dict[str, Any], registration: dict[str, Any]) -> None:
    """Write a retraining run directory whole (a staging directory renamed into place)."""
    staging = run_dir.with_name(f".{run_dir.name}.staging")
    if staging.exists():  # left by a process killed while staging this same run
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    with open(staging / HOPS, "wb") as handle:
        pickle.dump(list(hops), handle)
    write_json_atomic(staging / SPEC, {"train_kwargs": encode_train_kwargs(train_kwargs), **registration,
                                       "staged_at": time.time()})
    os.replace(staging, run_dir)


def run_retrain_job(run_dir: Path) -> int:
    """Body of the job: train the new version into ``model.partial/``, rename it ``model/``, then
    write ``exit.json`` (any failure ends up there, never as a silent LOST)."""
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
    write_json_atomic(run_dir / "started.json", {"job_id": job_id, "pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid()),
                                                 "host": socket.gethostname(), "started_at": time.time()})
    try:
        from alem.training.finetune import train_ensemble

        spec = json.loads((run_dir / SPEC).read_text())
        with open(run_dir / HOPS, "rb") as handle:
            hops = pickle.load(handle)  # written by alem itself at staging (retrain.json says what)
        partial = run_dir / f"{MODEL}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        train_ensemble(hops, partial, progress=False, **decode_train_kwargs(spec["train_kwargs"]))
        os.replace(partial, run_dir / MODEL)
    except Exception as exc:
        write_exit(run_dir, "failed", f"{type(exc).__name__}: {exc}")
        raise
    write_exit(run_dir, "completed", None)
    return 0


def exit_error(run_dir: Path) -> str | None:
    """The error a finished job wrote (None: completed or not finished)."""
    finished = read_json(run_dir / EXIT) or {}
    return finished.get("error") if finished.get("state") == "failed" else None


def _thread_env(threads: int) -> dict[str, str]:
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


# ------------------------------------------------------------------------------ runners
class RetrainRunner(ABC):
    """Submits, finds and watches retraining jobs; the run directory is the job's whole world."""

    name: str

    def __init__(self, resources: RetrainJobSection, entry_module: str = ENTRY_MODULE, log_name: str = LOG):
        """``entry_module``: the module run as ``python -m <module> <run_dir>`` (a scoring job runs
        :mod:`alem.backends.score_runner` through the same runners); ``log_name``: its log in the run directory."""
        self.resources = resources
        self.python = resources.python or sys.executable
        self.entry_module = entry_module
        self.log_name = log_name

    def command(self, run_dir: Path) -> list[str]:
        return [self.python, "-m", self.entry_module, str(run_dir)]

    @abstractmethod
    def find_by_key(self, run_dir: Path, job_key: str) -> str | None:
        """The external id of the job submitted for this run directory, if it ever was."""

    @abstractmethod
    def submit(self, run_dir: Path, job_key: str) -> str:
        """Start the job (never twice: an earlier submission is found first); its external id."""

    @abstractmethod
    def state(self, run_dir: Path, external_id: str) -> QueueState: ...

    def log_path(self, run_dir: Path) -> Path:
        return run_dir / self.log_name


class LocalRetrainRunner(RetrainRunner):
    """A detached process on this machine (it outlives ``alem loop``)."""

    name = "local"

    def __init__(self, resources: RetrainJobSection, entry_module: str = ENTRY_MODULE, log_name: str = LOG):
        super().__init__(resources, entry_module, log_name)
        self._children: list[subprocess.Popen] = []

    def find_by_key(self, run_dir: Path, job_key: str) -> str | None:
        return job_key if (run_dir / "job.json").is_file() else None

    def submit(self, run_dir: Path, job_key: str) -> str:
        if self.find_by_key(run_dir, job_key):
            return job_key
        # Recorded before the spawn: a loop killed in between finds this record, never spawns a
        # second process, and a spawn that never happened turns LOST after START_GRACE_S.
        write_json_atomic(run_dir / "job.json", {"submitted_at": time.time()})
        with open(self.log_path(run_dir), "ab") as log:
            child = subprocess.Popen(self.command(run_dir), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **_thread_env(self.resources.cpus)})
        self._children.append(child)
        write_json_atomic(run_dir / "job.json", {"pid": child.pid, "start_ticks": process_start_ticks(child.pid),
                                                 "submitted_at": time.time()})
        return job_key

    def state(self, run_dir: Path, external_id: str) -> QueueState:
        self._children = [c for c in self._children if c.poll() is None]  # reap: an exited child is no zombie
        finished = read_json(run_dir / EXIT)
        if finished is None:
            if any(_alive(read_json(run_dir / record) or {}) for record in ("started.json", "job.json")):
                return QueueState.RUNNING
            finished = read_json(run_dir / EXIT)  # it may have finished meanwhile
        if finished is not None:
            return QueueState.COMPLETED if finished.get("state") == "completed" else QueueState.FAILED
        record = read_json(run_dir / "job.json") or {}
        never_spawned = "pid" not in record  # killed between the record and the spawn: LOST once the grace is over
        if never_spawned and time.time() - record.get("submitted_at", 0) < START_GRACE_S:
            return QueueState.QUEUED
        return QueueState.LOST


class BatchRetrainRunner(RetrainRunner):
    """A Slurm or PBS batch job through qtoolkit (script, sbatch/qsub, squeue/qstat)."""

    def __init__(self, scheduler: str, resources: RetrainJobSection, manager=None, entry_module: str = ENTRY_MODULE,
                 log_name: str = LOG):
        if scheduler not in SCHEDULER_COMMANDS:
            raise ValueError(f"unknown batch scheduler {scheduler!r} (slurm or pbs)")
        super().__init__(resources, entry_module, log_name)
        self.name = scheduler
        self.manager = manager or queue_manager(scheduler)  # type: ignore[arg-type]

    def qresources(self, job_key: str, run_dir: Path):
        from qtoolkit.core.data_objects import QResources

        settings = self.resources
        if settings.qos and self.name == "pbs":
            raise ValueError("[model.retrain_job] qos: PBS has no QOS; leave it empty (use partition or extra_directives)")
        if settings.gpus and self.name == "pbs":
            raise ValueError("[model.retrain_job] gpus: qtoolkit writes no GPU request for PBS; put yours in extra_directives "
                             '(e.g. "#PBS -l select=1:ncpus=4:ngpus=1") and leave gpus = 0')
        return QResources(
            job_name=job_key, queue_name=settings.partition or None, account=settings.account or None, qos=settings.qos or None,
            nodes=1, processes_per_node=1, threads_per_process=settings.cpus, gpus_per_job=settings.gpus or None,
            time_limit=settings.walltime_minutes * 60, output_filepath=str(self.log_path(run_dir)),
            error_filepath=str(self.log_path(run_dir)),
            scheduler_kwargs={"qverbatim": "\n".join(settings.extra_directives)} if settings.extra_directives else None,
        )

    def script(self, job_key: str, run_dir: Path) -> str:
        return self.manager.get_submission_script(
            commands=[shlex.join(self.command(run_dir))],
            options=self.qresources(job_key, run_dir),
            work_dir=shlex.quote(str(run_dir)),
            pre_run=list(self.resources.pre_run),
            environment={"environ": _thread_env(self.resources.cpus)},
        )

    def _queue(self) -> dict:
        return {str(job.job_id): job for job in self.manager.get_jobs_list(user=getpass.getuser())}

    def find_by_key(self, run_dir: Path, job_key: str) -> str | None:
        for record in ("job.json", "started.json"):
            job_id = (read_json(run_dir / record) or {}).get("job_id")
            if job_id:
                return str(job_id)
        for job_id, job in self._queue().items():
            if job.name == job_key:
                return job_id
        return None

    def submit(self, run_dir: Path, job_key: str) -> str:
        existing = self.find_by_key(run_dir, job_key)
        if existing is not None:
            return existing
        script_path = run_dir / SCRIPT
        tmp = script_path.with_name(f".{SCRIPT}.tmp")
        tmp.write_text(self.script(job_key, run_dir))
        os.replace(tmp, script_path)
        io = self.manager.scheduler_io
        stdout, stderr, exit_code = self.manager.execute_cmd(io.get_submit_cmd(shlex.quote(str(script_path))), workdir=run_dir)
        result = io.parse_submit_output(exit_code=exit_code, stdout=stdout, stderr=stderr)
        if not result.job_id:
            raise RuntimeError(f"{self.name} refused {script_path} (exit {exit_code}): {(stderr or stdout).strip()}")
        write_json_atomic(run_dir / "job.json", {"job_id": str(result.job_id), "scheduler": self.name, "recorded_at": time.time()})
        return str(result.job_id)

    def state(self, run_dir: Path, external_id: str) -> QueueState:
        queue = self._queue()  # before the exit marker: a job that leaves the queue has written it
        finished = read_json(run_dir / EXIT)
        if finished is not None:
            return QueueState.COMPLETED if finished.get("state") == "completed" else QueueState.FAILED
        if external_id in queue:
            return _qstate_to_job_state(queue[external_id].state)
        return QueueState.LOST


def retrain_runner(scheduler: str, resources: RetrainJobSection, entry_module: str = ENTRY_MODULE, log_name: str = LOG) -> RetrainRunner:
    """The runner of ``scheduler`` (``local``, ``slurm`` or ``pbs``) for jobs of ``entry_module``."""
    if scheduler == "local":
        return LocalRetrainRunner(resources, entry_module, log_name)
    return BatchRetrainRunner(scheduler, resources, entry_module=entry_module, log_name=log_name)


if __name__ == "__main__":
    sys.exit(run_retrain_job(Path(sys.argv[1])))
