"""Scoring as a batch job (``[model] score_on = "backend"``): one step per loop tick.

:func:`advance_scoring` settles the live scoring job, if any (records its predictions once its exit
marker says completed; reports a failed or lost job and retries it once), and otherwise scores the
candidates the current model has not predicted: at least ``[model] score_job_min_hops`` of them
become a job on the campaign's backend, fewer are predicted in this process (in chunks of
``[model] score_chunk_hops``). While a scoring job is live the loop predicts nothing itself (it
would predict the same hops twice) and goes on reconciling NEB jobs, proposing and submitting.

Crash safety is the retraining jobs' protocol (:mod:`alem.campaign.retrain_job`): the row is
committed with its key and run directory before anything is submitted, the run directory is staged
whole, the runner finds an earlier submission by key before submitting, and the external id is
recorded last; a loop killed anywhere in between finds the job again on its next tick. A completed
job's predictions are recorded in the transaction that closes its row, so never twice and never
half. Two failures in a row (the scoring and its retry) make the loop score that model version's
candidates itself.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alem.backends import score_runner
from alem.backends.base import QueueState
from alem.backends.local import process_start_ticks
from alem.backends.retrain_runner import RetrainRunner, exit_error, retrain_runner
from alem.backends.rundir import write_exit, write_json_atomic
from alem.campaign.retrain_job import job_run_root, job_scheduler
from alem.campaign.score import candidates_to_score, score_in_process, sister_labels
from alem.inference.feature_cache import CACHE_FILENAME

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import Store
    from alem.store.score_jobs import ScoreJobRecord

@dataclass
class ScoreStep:
    messages: list[str] = field(default_factory=list)
    #: candidates predicted in this step (in this process, or recorded from a finished job)
    scored: int = 0
    #: the scoring job live after this step, if any
    live: ScoreJobRecord | None = None


def score_scheduler(config: CampaignConfig) -> str:
    return job_scheduler(config, config.model.score_job, "score_job")


def score_run_root(config: CampaignConfig) -> Path:
    """Directory of the scoring run directories."""
    return job_run_root(config, config.model.score_job, "score_job", "score_runs", "score")


def make_score_runner(config: CampaignConfig) -> RetrainRunner:
    return retrain_runner(score_scheduler(config), config.model.score_job, score_runner.ENTRY_MODULE, score_runner.LOG)


def _job_cache_path(store: Store, config: CampaignConfig, runner: RetrainRunner) -> Path:
    """A local job shares the campaign's feature cache (same machine); a batch job keeps its own on
    the shared filesystem (SQLite's WAL does not work across nodes)."""
    return Path(store.path).parent / CACHE_FILENAME if runner.name == "local" else score_run_root(config) / CACHE_FILENAME


def _row_chunks(store: Store, hop_ids: list[str], bounds: list[tuple[int, int]]) -> Iterator[list[dict]]:
    store.keep_content_keys(hop_ids)  # staged with each row: the job reads cached features without building structures
    for start, stop in bounds:
        yield store.hop_rows_as_stored(hop_ids[start:stop])


def _staging(store: Store, config: CampaignConfig, model: LoadedModel, hop_ids: list[str]) -> tuple[list[dict], dict, dict]:
    """What a job predicts besides ``hop_ids``: while the model version's host rows are not kept
    and a host hop is to be scored, every host hop too, whose rows the job keeps
    (:func:`alem.campaign.score.keep_host_rows`'s pass, on the backend). Returns the hop records
    to stage, the spec's rows entries and the MLIP barriers the model reads."""
    from alem.campaign.fidelity_labels import campaign_cheap_barriers
    from alem.campaign.kept_rows import cheap_digest, labels_digest, read_rows, rows_path

    wanted = set(hop_ids)
    records = [r for r in store.hops() if r.hop_id in wanted]
    host_ids = [r.hop_id for r in store.hops() if r.host_id is not None]
    cheap = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)[0] or {}
    digest = cheap_digest(store, host_ids)
    rows: dict = {"rows_of": []}
    if any(r.host_id is not None for r in records) and read_rows(rows_path(config, model.version_id), host_ids, digest) is None:
        records = [*(r for r in store.hops() if r.host_id is not None), *(r for r in records if r.host_id is None)]
        rows = {"rows_of": host_ids, "cheap_digest": digest, "labels_digest": labels_digest(sister_labels(store, model))}
    rows["hosts"] = sorted({r.group or r.hop_id for r in records})
    return records, rows, dict(cheap)


def _stage_and_submit(store: Store, config: CampaignConfig, model: LoadedModel, job: ScoreJobRecord, runner: RetrainRunner,
                      hop_ids: list[str] | None = None) -> ScoreJobRecord:
    """Stage the job's run directory (unless a killed loop already did) and submit it once."""
    run_dir = Path(job.run_dir)
    external_id = runner.find_by_key(run_dir, job.job_key) if (run_dir / score_runner.SPEC).is_file() else None
    if external_id is None:
        if not (run_dir / score_runner.SPEC).is_file():
            if hop_ids is None:  # a loop killed before staging: the candidates as they are now
                hop_ids = [r.hop_id for r in candidates_to_score(store, model)[0]]
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            records, rows, cheap = _staging(store, config, model, hop_ids)
            staged = [r.hop_id for r in records]
            bounds = model.ensemble.chunk_bounds(len(staged), config.model.score_chunk_hops)  # the chunks one call's rows come in
            score_runner.stage_score_run(run_dir, _row_chunks(store, staged, bounds), sister_labels(store, model), {
                "job_key": job.job_key, "model_version_id": model.version_id, "model": str(model.path),
                "feature_cache": str(_job_cache_path(store, config, runner)), **rows,
            }, cheap)
        external_id = runner.submit(run_dir, job.job_key)
    return store.mark_score_submitted(job.id, external_id)


def _start(store: Store, config: CampaignConfig, model: LoadedModel, runner: RetrainRunner, attempt: int, hop_ids: list[str],
           step: ScoreStep) -> None:
    job = store.begin_score_job(runner.name, attempt, model.version_id, len(hop_ids), str(score_run_root(config)))
    job = _stage_and_submit(store, config, model, job, runner, hop_ids)
    step.live = job
    again = " again (its one retry)" if attempt == 2 else ""
    step.messages.append(f"scoring job {job.id} submitted{again} to {runner.name} as {job.external_id}: {len(hop_ids)} candidates "
                         f"with model version {model.version_id}; the loop goes on reconciling meanwhile")


def _record(store: Store, config: CampaignConfig, model: LoadedModel, job: ScoreJobRecord) -> int:
    """Record a completed job's predictions and close its row, all in one transaction; then keep
    the host rows it computed (:func:`_keep_rows`)."""
    run_dir = Path(job.run_dir)
    chunks = list(score_runner.read_predictions(run_dir))  # read (and checked) before taking the write lock
    with store.transaction():
        n = sum(store.record_predictions(job.model_version_id, c.hop_ids, c.mean_ev, c.std_ev, c.prob_good) for c in chunks)
        store.finish_score_job(job.id, "completed", n_recorded=n)
    _keep_rows(store, config, model, job, chunks)
    return n


def _keep_rows(store: Store, config: CampaignConfig, model: LoadedModel, job: ScoreJobRecord,
               chunks: list[score_runner.ChunkPrediction]) -> None:
    """Write the host rows a job computed (:mod:`alem.campaign.kept_rows`), whole, when every host
    hop's rows came back and the model version, the MLIP barriers and the sister labels are still
    those it computed them with (otherwise the first host answer computes them)."""
    from alem.acquisition import PredictionTable
    from alem.campaign.kept_rows import cheap_digest, labels_digest, rows_path, write_rows

    spec = json.loads((Path(job.run_dir) / score_runner.SPEC).read_text())
    host_ids = spec.get("rows_of") or []
    if not host_ids or job.model_version_id != model.version_id:
        return
    if cheap_digest(store, host_ids) != spec["cheap_digest"] or labels_digest(sister_labels(store, model)) != spec["labels_digest"]:
        return
    column = {h: k for k, h in enumerate(host_ids)}
    rows = np.empty((max((c.rows_ev.shape[0] for c in chunks if c.rows_hop_ids), default=0), len(host_ids)))
    mean, std, seen = np.empty(len(host_ids)), np.empty(len(host_ids)), np.zeros(len(host_ids), dtype=bool)
    for chunk in chunks:
        at_chunk = {h: k for k, h in enumerate(chunk.hop_ids)}
        at = [column[h] for h in chunk.rows_hop_ids]
        rows[:, at] = chunk.rows_ev
        here = [at_chunk[h] for h in chunk.rows_hop_ids]
        mean[at], std[at] = chunk.mean_ev[here], chunk.std_ev[here]
        seen[at] = True
    if seen.all() and host_ids == [r.hop_id for r in store.hops() if r.host_id is not None]:
        write_rows(rows_path(config, job.model_version_id), PredictionTable(tuple(host_ids), rows, mean, std), spec["cheap_digest"],
                   spec["labels_digest"])


def _settle(store: Store, config: CampaignConfig, model: LoadedModel, job: ScoreJobRecord, runner: RetrainRunner,
            step: ScoreStep) -> None:
    if job.external_id is None:  # a loop was killed between committing the row and recording the id
        if job.model_version_id != model.version_id and not (Path(job.run_dir) / score_runner.SPEC).is_file():
            store.finish_score_job(job.id, "failed", f"never staged, and model version {model.version_id} replaced "
                                   f"version {job.model_version_id} meanwhile")
            step.messages.append(f"scoring job {job.id}: dropped after a restart (its model version is no longer current)")
            return
        job = _stage_and_submit(store, config, model, job, runner)
        step.messages.append(f"scoring job {job.id}: found after a restart, submitted as {job.external_id}")
    run_dir = Path(job.run_dir)
    state = runner.state(run_dir, job.external_id)
    if state in (QueueState.QUEUED, QueueState.RUNNING):
        step.live = store.update_score_state(job.id, state.value)
        return
    if state is QueueState.COMPLETED:
        try:
            step.scored = _record(store, config, model, job)
        except score_runner.ScoreRunError as exc:  # a job that says completed but left no usable predictions
            store.finish_score_job(job.id, "failed", str(exc))
        else:
            step.messages.append(f"scoring job {job.id} finished: {step.scored} predictions of model version "
                                 f"{job.model_version_id} recorded")
            return
    elif state is QueueState.FAILED:
        error = exit_error(run_dir) or f"the job ended without writing {run_dir / 'exit.json'}"
        store.finish_score_job(job.id, "failed", f"{error} (log: {runner.log_path(run_dir)})")
    else:
        store.finish_score_job(job.id, "lost", f"{runner.name} no longer knows job {job.external_id} and it left no exit marker")
    job = store.score_job(job.id)
    if job.attempt == 1 and job.model_version_id == model.version_id:
        step.messages.append(f"scoring job {job.id} {job.state}: {job.error}; retrying once")
        hop_ids = [r.hop_id for r in candidates_to_score(store, model)[0]]
        _start(store, config, model, runner, 2, hop_ids, step)
    else:
        step.messages.append(f"scoring job {job.id} {job.state}: {job.error}")


def _gave_up(store: Store, model: LoadedModel) -> bool:
    """The last scoring job of this model version and its retry failed: the loop scores itself."""
    last = store.score_jobs(limit=1)
    return bool(last) and last[0].model_version_id == model.version_id and last[0].attempt == 2 and \
        last[0].state in ("failed", "lost")


def advance_scoring(store: Store, config: CampaignConfig, model: LoadedModel, runner: RetrainRunner | None = None,
                    progress: bool = False) -> ScoreStep:
    """One tick of scoring: settle the live scoring job; with none live, predict the candidates
    the current model has not scored, as a job (``score_on = "backend"``, at least
    ``score_job_min_hops`` of them) or in this process."""
    step = ScoreStep()
    section = config.model
    live = store.live_score_job()
    if live is not None:
        _settle(store, config, model, live, runner or make_score_runner(config), step)
        return step
    missing, stale, scored = candidates_to_score(store, model)
    if not missing:
        return step
    if section.score_on == "backend" and len(missing) >= section.score_job_min_hops:
        if not _gave_up(store, model):
            _start(store, config, model, runner or make_score_runner(config), 1, [r.hop_id for r in missing], step)
            return step
        step.messages.append(f"scoring job {store.score_jobs(limit=1)[0].id} and its retry failed: scoring {len(missing)} "
                             f"candidates with model version {model.version_id} in the loop")
    step.scored = score_in_process(store, model, missing, stale, scored, section.score_chunk_hops, progress,
                                 config=config)
    return step


def run_score_job(run_dir: Path) -> int:
    """Body of the job: predict each chunk not predicted yet, write it atomically, then write
    ``exit.json`` (any failure ends up there, never as a silent LOST)."""
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")
    write_json_atomic(run_dir / "started.json", {"job_id": job_id, "pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid()),
                                                 "host": socket.gethostname(), "started_at": time.time()})
    try:
        from alem.acquisition import PredictionTable
        from alem.acquisition.model import POSTERIOR_DRAWS
        from alem.campaign.score import POSTERIOR_SEED
        from alem.ensemble import Ensemble
        from alem.inference.feature_cache import FeatureCache
        from alem.inference.sister_correction import host_of
        from alem.store.hop_rows import hop_from_row

        spec = json.loads((run_dir / score_runner.SPEC).read_text())
        ensemble = Ensemble.load(Path(spec["model"]))
        # written by alem itself at staging (score.json says what)
        with open(run_dir / score_runner.LABELLED, "rb") as handle:
            labelled = pickle.load(handle)
        cheap_file = run_dir / score_runner.CHEAP
        cheap = pickle.loads(cheap_file.read_bytes()) if cheap_file.is_file() else {}
        (run_dir / score_runner.PREDICTIONS_DIR).mkdir(exist_ok=True)
        Path(spec["feature_cache"]).parent.mkdir(parents=True, exist_ok=True)
        rows_of = set(spec.get("rows_of") or [])
        out = [run_dir / score_runner.PREDICTIONS_DIR / score_runner.chunk_name(k, "npz") for k in range(len(spec["chunks"]))]
        todo = [k for k in range(len(spec["chunks"])) if not out[k].is_file()]  # a job started again skips the chunks done

        def chunk_hops(k: int) -> list:
            rows = json.loads((run_dir / score_runner.HOPS_DIR / score_runner.chunk_name(k, "json")).read_text())
            return [hop_from_row(row) for row in rows]

        # a run staged before hosts were staged: the hosts of every label (each hop reads its own host's)
        hosts = spec["hosts"] if "hosts" in spec else {host_of(h) for h in labelled}
        with FeatureCache(spec["feature_cache"]) as cache:
            passes = ensemble.posterior_chunks((chunk_hops(k) for k in todo), hosts, POSTERIOR_DRAWS if rows_of else 0, POSTERIOR_SEED,
                                               cheap or None, labelled=labelled, cache=cache)
            for k, (prediction, draws) in zip(todo, passes, strict=True):
                hop_ids = spec["chunks"][k]
                here = [j for j, h in enumerate(hop_ids) if h in rows_of]
                rows = PredictionTable.from_prediction(hop_ids, prediction, draws).calibrated_members()[:, here] if here else None
                score_runner.write_chunk(out[k], hop_ids, prediction, [hop_ids[j] for j in here], rows)
                print(f"chunk {k + 1}/{len(spec['chunks'])}: {len(hop_ids)} hops predicted", flush=True)
    except Exception as exc:
        write_exit(run_dir, "failed", f"{type(exc).__name__}: {exc}")
        raise
    write_exit(run_dir, "completed", None)
    return 0


if __name__ == "__main__":
    sys.exit(run_score_job(Path(sys.argv[1])))
