"""A scoring job (``[model] score_on = "backend"``): one model version's predictions of a large
candidate pool, computed on a compute node (or in a detached process for ``local``) through the
retraining jobs' runners (:mod:`alem.backends.retrain_runner`: the same submit-once, find-by-key
and queue-state rules). This module stages and reads the run directory; the job's body is
:func:`alem.campaign.score_job.run_score_job`.

A scoring run directory (written whole by :mod:`alem.campaign.score_job`)::

    score.json              the job key, model version and directory, feature cache, the hop ids
                            of every chunk
    hops/chunk-NNNNN.json   the hop rows of one chunk exactly as the store holds them (compact
                            structures: the login node builds no pymatgen structure to stage them)
    labelled.pickle         the labelled hops the model's sister correction reads (may be empty)
    cheap_barriers.pickle   the MLIP barriers the model reads, by hop id (may be empty)
    job.sh, job.json        the batch script and scheduler job id (slurm/pbs), as for retraining
    started.json            job id (or pid), host and start time, written by the job itself
    score.log               the job's stdout/stderr
    predictions/chunk-NNNNN.npz   one chunk's hop ids, mean, σ and P(good), and the calibrated
                            joint posterior rows of its hops listed in score.json's ``rows_of``
                            (the campaign's host hops, when the job keeps their rows); each
                            appears whole (written beside and renamed), so a job started again
                            skips the chunks already done
    exit.json               written last: {"state": "completed"|"failed", "error"}

The job holds one chunk's hops and features at a time, so its memory does not grow with the pool.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alem.backends.rundir import read_json, write_json_atomic

SPEC = "score.json"
HOPS_DIR = "hops"
LABELLED = "labelled.pickle"
CHEAP = "cheap_barriers.pickle"
PREDICTIONS_DIR = "predictions"
LOG = "score.log"
#: What a scoring job runs (``python -m``): its body reads hop rows with the store's code, so it
#: lives in the campaign layer (:func:`alem.campaign.score_job.run_score_job`).
ENTRY_MODULE = "alem.campaign.score_job"


class ScoreRunError(RuntimeError):
    """A scoring run directory whose predictions are missing or do not match its hops."""


@dataclass(frozen=True)
class ChunkPrediction:
    hop_ids: list[str]
    mean_ev: np.ndarray
    std_ev: np.ndarray
    prob_good: np.ndarray
    #: The hops of the chunk whose calibrated joint rows the job kept, and those rows (n_draws x n).
    rows_hop_ids: list[str]
    rows_ev: np.ndarray


def chunk_name(k: int, suffix: str) -> str:
    return f"chunk-{k:05d}.{suffix}"


def stage_score_run(run_dir: Path, row_chunks: Iterable[list[dict]], labelled: list, registration: dict[str, Any],
                    cheap_barriers: dict | None = None) -> int:
    """Write a scoring run directory whole (a staging directory renamed into place), one JSON file
    per chunk of hop rows (:meth:`~alem.store.Store.hop_rows_as_stored`; ``row_chunks`` is consumed
    one chunk at a time); returns how many hops."""
    staging = run_dir.with_name(f".{run_dir.name}.staging")
    if staging.exists():  # left by a process killed while staging this same run
        shutil.rmtree(staging)
    (staging / HOPS_DIR).mkdir(parents=True)
    chunk_ids: list[list[str]] = []
    for k, rows in enumerate(row_chunks):
        (staging / HOPS_DIR / chunk_name(k, "json")).write_text(json.dumps(rows))
        chunk_ids.append([row["hop_id"] for row in rows])
    with open(staging / LABELLED, "wb") as handle:
        pickle.dump(list(labelled), handle)
    with open(staging / CHEAP, "wb") as handle:
        pickle.dump(dict(cheap_barriers or {}), handle)
    write_json_atomic(staging / SPEC, {**registration, "chunks": chunk_ids, "staged_at": time.time()})
    os.replace(staging, run_dir)
    return sum(len(ids) for ids in chunk_ids)


def write_chunk(path: Path, hop_ids: list[str], prediction, rows_hop_ids: list[str] = (), rows_ev: np.ndarray | None = None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    rows = np.zeros((0, 0)) if rows_ev is None else rows_ev
    np.savez(tmp, hop_ids=np.array(hop_ids), mean_ev=prediction.mean_ev, std_ev=prediction.std_ev, prob_good=prediction.prob_good,
             rows_hop_ids=np.array(list(rows_hop_ids), dtype=str), rows_ev=rows)
    os.replace(tmp, path)


def read_predictions(run_dir: Path) -> Iterator[ChunkPrediction]:
    """The job's predictions chunk by chunk, each checked against the hops it staged."""
    spec = read_json(run_dir / SPEC)
    if spec is None:
        raise ScoreRunError(f"{run_dir / SPEC} is missing or unreadable")
    for k, hop_ids in enumerate(spec["chunks"]):
        path = run_dir / PREDICTIONS_DIR / chunk_name(k, "npz")
        try:
            with np.load(path, allow_pickle=False) as saved:
                rows_ids = saved["rows_hop_ids"].tolist() if "rows_hop_ids" in saved.files else []
                rows = saved["rows_ev"] if rows_ids else np.zeros((0, 0))
                chunk = ChunkPrediction(saved["hop_ids"].tolist(), saved["mean_ev"], saved["std_ev"], saved["prob_good"], rows_ids, rows)
        except (OSError, KeyError, ValueError) as exc:
            raise ScoreRunError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if chunk.hop_ids != hop_ids or not len(chunk.mean_ev) == len(chunk.std_ev) == len(chunk.prob_good) == len(hop_ids):
            raise ScoreRunError(f"{path}: its predictions are not those of the {len(hop_ids)} hops staged in chunk {k}")
        if chunk.rows_hop_ids and (not set(chunk.rows_hop_ids) <= set(hop_ids) or chunk.rows_ev.shape[1] != len(chunk.rows_hop_ids)):
            raise ScoreRunError(f"{path}: its posterior rows are not those of hops staged in chunk {k}")
        yield chunk

