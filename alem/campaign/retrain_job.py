"""Retraining as a batch job (``[model] retrain_on = "backend"``): one step per loop tick.

:func:`advance_retraining` settles the live retraining job, if any (registers the version it
wrote once its exit marker says completed; reports a failed or lost job and retries it once), and
starts a new one when a retraining is due and none is live. The loop goes on reconciling, scoring
and proposing with the current model meanwhile. Crash safety is the NEB jobs' protocol: the row
is committed with its key and run directory before anything is submitted, the run directory is
staged whole, the runner finds an earlier submission by key before submitting, and the external
id is recorded last; a loop killed anywhere in between finds the job again on its next tick.

Two failures in a row (the retraining and its retry) leave the current model in place; the next
retraining starts when more new results have arrived than the failed one had.

"New results" for a version a retraining job wrote count from when that job was staged, not from
when the version was registered: results that arrived while the job ran (perhaps hours in a GPU
queue) are not in it, and count towards the next retraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from alem.backends.base import QueueState
from alem.backends.retrain_runner import MODEL, SPEC, RetrainRunner, exit_error, retrain_runner, stage_retrain_run
from alem.backends.rundir import read_json
from alem.campaign.ingest import usable_results_since
from alem.campaign.model_versions import LoadedModel, load_ensemble
from alem.campaign.retrain import carry_sister_labels, plan_retraining, register_retrained
from alem.config import ConfigError

if TYPE_CHECKING:
    from alem.config import CampaignConfig, RetrainJobSection
    from alem.store import Store
    from alem.store.retrain_jobs import RetrainJobRecord

#: Where a retraining job runs for each campaign backend when [model.retrain_job] scheduler = "".
DEFAULT_SCHEDULER = {"local": "local", "replay": "local", "slurm": "slurm", "pbs": "pbs"}


@dataclass
class RetrainStep:
    messages: list[str] = field(default_factory=list)
    #: the version a finished job wrote, now registered as current
    new_model: LoadedModel | None = None
    #: the job started (or retried) in this step
    started: RetrainJobRecord | None = None


def job_scheduler(config: CampaignConfig, section: RetrainJobSection, table: str) -> str:
    """Where a retraining or scoring job runs (``section``, the config table ``table``)."""
    scheduler = section.scheduler or DEFAULT_SCHEDULER.get(config.backend.kind)
    if scheduler is None:
        setting = "retrain_on" if table == "retrain_job" else "score_on"
        raise ConfigError(f"{config.config_path}: [model] {setting} = \"backend\" with [backend] kind = {config.backend.kind!r}: "
                          f'set [model.{table}] scheduler to "slurm", "pbs" or "local"')
    return scheduler


def job_run_root(config: CampaignConfig, section: RetrainJobSection, table: str, local_dir: str, batch_subdir: str) -> Path:
    """Directory of a job kind's run directories: ``section.run_dir``, else ``state/<local_dir>``
    for local jobs or ``<[backend.slurm|pbs] run_dir>/<batch_subdir>`` (shared with the compute nodes)."""
    if section.run_dir:
        return config.resolve(section.run_dir)
    scheduler = job_scheduler(config, section, table)
    if scheduler == "local":
        return config.state_dir / local_dir
    return config.resolve(getattr(config.backend, scheduler).run_dir) / batch_subdir


def retrain_scheduler(config: CampaignConfig) -> str:
    return job_scheduler(config, config.model.retrain_job, "retrain_job")


def retrain_run_root(config: CampaignConfig) -> Path:
    """Directory of the retraining run directories (and of the model versions they write)."""
    return job_run_root(config, config.model.retrain_job, "retrain_job", "retrain_runs", "retrain")


def make_retrain_runner(config: CampaignConfig) -> RetrainRunner:
    return retrain_runner(retrain_scheduler(config), config.model.retrain_job)


def new_results_for_next_retraining(store: Store, config: CampaignConfig) -> int:
    """Usable results (of [model] train_fidelities) the current version was not trained on."""
    current = store.current_model()
    if current is None:
        return usable_results_since(store, 0.0, config.model.train_fidelities)
    made_by = [j for j in store.retrain_jobs(live=False) if j.model_version_id == current.id]
    since = made_by[0].created_at if made_by else current.created_at
    return usable_results_since(store, since, config.model.train_fidelities)


def _stage_and_submit(store: Store, config: CampaignConfig, current: LoadedModel, job: RetrainJobRecord,
                      runner: RetrainRunner) -> RetrainJobRecord:
    """Stage the job's run directory (unless a killed loop already did) and submit it once."""
    run_dir = Path(job.run_dir)
    external_id = runner.find_by_key(run_dir, job.job_key) if (run_dir / SPEC).is_file() else None
    if external_id is None:
        if not (run_dir / SPEC).is_file():
            plan = plan_retraining(store, config, current)
            stage_retrain_run(run_dir, plan.hops, plan.train_kwargs(), {
                "job_key": job.job_key, "parent_model_id": current.version_id, "parent_model": str(current.path),
                "dataset_hash": plan.dataset_hash, "n_hops": len(plan.hops), "n_results": plan.n_results,
            })
        external_id = runner.submit(run_dir, job.job_key)
    return store.mark_retrain_submitted(job.id, external_id)


def _start(store: Store, config: CampaignConfig, current: LoadedModel, runner: RetrainRunner, attempt: int,
           step: RetrainStep) -> None:
    n_new = new_results_for_next_retraining(store, config)
    job = store.begin_retrain_job(runner.name, attempt, current.version_id, n_new, str(retrain_run_root(config)))
    job = _stage_and_submit(store, config, current, job, runner)
    step.started = job
    again = " again (its one retry)" if attempt == 2 else ""
    step.messages.append(f"retraining job {job.id} submitted{again} to {runner.name} as {job.external_id} ({n_new} new results "
                         f"since model version {current.version_id}); the loop goes on with version {current.version_id}")


def _register(store: Store, config: CampaignConfig, job: RetrainJobRecord, parent: LoadedModel) -> LoadedModel:
    run_dir = Path(job.run_dir)
    spec = read_json(run_dir / SPEC) or {}
    carry_sister_labels(store, parent, run_dir / MODEL)  # idempotent: a restart writes the same store again
    ensemble = load_ensemble(run_dir / MODEL)  # before taking the write lock: loading takes seconds
    with store.transaction():  # the version and the job's completion commit together
        model = register_retrained(store, config, job.parent_model_id, run_dir / MODEL, spec.get("dataset_hash", ""),
                                   int(spec.get("n_hops", 0)), int(spec.get("n_results", 0)), ensemble)
        store.finish_retrain_job(job.id, "completed", model_version_id=model.version_id)
    return model


def _settle(store: Store, config: CampaignConfig, current: LoadedModel, job: RetrainJobRecord, runner: RetrainRunner,
            step: RetrainStep) -> None:
    if job.external_id is None:  # a loop was killed between committing the row and recording the id
        job = _stage_and_submit(store, config, current, job, runner)
        step.messages.append(f"retraining job {job.id}: found after a restart, submitted as {job.external_id}")
    run_dir = Path(job.run_dir)
    state = runner.state(run_dir, job.external_id)
    if state in (QueueState.QUEUED, QueueState.RUNNING):
        store.update_retrain_state(job.id, state.value)
        return
    if state is QueueState.COMPLETED:
        try:
            step.new_model = _register(store, config, job, current)
        except Exception as exc:  # a model that does not load is a failed retraining, not a crashed loop
            error = f"its model {run_dir / MODEL} does not load: {type(exc).__name__}: {exc}"
            store.finish_retrain_job(job.id, "failed", error)
        else:
            step.messages.append(f"retraining job {job.id} finished: model version {step.new_model.version_id} is current "
                                 f"({step.new_model.path})")
            return
    elif state is QueueState.FAILED:
        error = exit_error(run_dir) or f"the job ended without writing {run_dir / 'exit.json'}"
        store.finish_retrain_job(job.id, "failed", f"{error} (log: {runner.log_path(run_dir)})")
    else:
        store.finish_retrain_job(job.id, "lost", f"{runner.name} no longer knows job {job.external_id} and it left no exit marker")
    job = store.retrain_job(job.id)
    if job.attempt == 1:
        step.messages.append(f"retraining job {job.id} {job.state}: {job.error}; retrying once")
        _start(store, config, current, runner, 2, step)
    else:
        step.messages.append(f"retraining job {job.id} {job.state} again: {job.error}; keeping model version "
                             f"{current.version_id} until more results arrive")


def _gave_up(store: Store, config: CampaignConfig) -> bool:
    """The last retraining and its retry failed, and no result arrived since it started."""
    last = store.retrain_jobs(limit=1)
    return bool(last) and last[0].attempt == 2 and last[0].state in ("failed", "lost") and \
        new_results_for_next_retraining(store, config) <= last[0].n_new_results


def advance_retraining(store: Store, config: CampaignConfig, current: LoadedModel,
                       runner: RetrainRunner | None = None) -> RetrainStep:
    """One tick of backend retraining: settle the live job, start one when due and none is live."""
    runner = runner or make_retrain_runner(config)
    step = RetrainStep()
    live = store.live_retrain_job()
    if live is not None:
        _settle(store, config, current, live, runner, step)
        return step
    due = new_results_for_next_retraining(store, config) >= config.model.retrain_after_results
    if due and not _gave_up(store, config):
        _start(store, config, current, runner, 1, step)
    return step
