"""The campaign's joint posterior rows of its host hops, kept per model version on disk.

``<state dir>/posterior_rows/model-<N>.npz`` holds the calibrated rows of every stored hop of a
host under model version N, with the digest of the MLIP barriers the model could read for them
and the digest of the labelled hops its sister correction read; rows are read back while the hop
set is covered and the MLIP digest unchanged (a proposal also wants the labels' digest unchanged:
its rows are then exactly the ones predicting the pool again would give). Written by the first
scoring of a model version (:func:`alem.campaign.score.score_in_process`, in the same chunked pass
that records the predictions) or by the first host answer that needs them
(:func:`alem.campaign.host_rows.host_rows`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from alem.acquisition import PredictionTable
from alem.campaign.fidelity_labels import cheap_barriers_of

if TYPE_CHECKING:
    from pathlib import Path

    from alem.config import CampaignConfig
    from alem.hops.hop import Hop
    from alem.store import Store

ROWS_DIRNAME = "posterior_rows"


def rows_path(config: CampaignConfig, version_id: int) -> Path:
    return config.state_dir / ROWS_DIRNAME / f"model-{version_id}.npz"


def cheap_digest(store: Store, hop_ids: list[str]) -> str:
    """A fingerprint of the MLIP barriers the model could read for these hops (a new screening
    result changes a fidelity-aware model's rows)."""
    wanted = set(hop_ids)
    cheap = sorted((h, b.fidelity, round(b.barrier_ev, 9)) for h, b in cheap_barriers_of(store).items() if h in wanted)
    return hashlib.sha256(repr(cheap).encode()).hexdigest()


def labels_digest(labelled: Sequence[Hop]) -> str:
    """A fingerprint of the labelled hops a sister correction reads (their ids and barriers)."""
    labels = sorted((h.hop_id, h.group, None if h.barrier_ev is None else round(h.barrier_ev, 9)) for h in labelled)
    return hashlib.sha256(repr(labels).encode()).hexdigest()


def read_rows(path: Path, hop_ids: list[str], digest: str, labels: str | None = None) -> PredictionTable | None:
    """The kept rows of ``hop_ids``, or None when they are not all kept under this MLIP digest
    (and, when ``labels`` is given, this :func:`labels_digest`)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as kept:
            if str(kept["cheap_digest"]) != digest:
                return None
            if labels is not None and ("labels_digest" not in kept.files or str(kept["labels_digest"]) != labels):
                return None
            index = {h: k for k, h in enumerate(kept["hop_ids"].tolist())}
            if not all(h in index for h in hop_ids):
                return None
            columns = [index[h] for h in hop_ids]
            # C order, as computed rows are: the acquisition's products then round alike
            rows = np.ascontiguousarray(kept["rows_ev"][:, columns])
            return PredictionTable(tuple(hop_ids), rows, kept["mean_ev"][columns], kept["std_ev"][columns])
    except (OSError, KeyError, ValueError):
        return None  # an unreadable file is recomputed, never trusted


def write_rows(path: Path, table: PredictionTable, digest: str, labels: str = "") -> None:
    """A table of calibrated rows (:meth:`~alem.acquisition.PredictionTable.calibrated_members`),
    written whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(
        partial, hop_ids=np.array(table.hop_ids, dtype=str), rows_ev=table.member_ev,
        mean_ev=table.mean_ev, std_ev=table.std_ev, cheap_digest=np.array(digest), labels_digest=np.array(labels),
    )
    os.replace(partial, path)
