"""The campaign's joint posterior rows of its host hops, kept per model version on disk.

``<state dir>/posterior_rows/model-<N>.npz`` holds the calibrated rows of every stored hop of a
host under model version N, with the digest of the MLIP barriers the model could read for them;
rows are read back while the hop set is covered and the digest unchanged. Written by the first
scoring of a model version (:func:`alem.campaign.score.keep_host_rows`) or by the first host
answer that needs them (:func:`alem.campaign.host_rows.host_rows`).
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import numpy as np

from alem.acquisition import PredictionTable
from alem.campaign.fidelity_labels import cheap_barriers_of

if TYPE_CHECKING:
    from pathlib import Path

    from alem.config import CampaignConfig
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


def read_rows(path: Path, hop_ids: list[str], digest: str) -> PredictionTable | None:
    """The kept rows of ``hop_ids``, or None when they are not all kept under this digest."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as kept:
            if str(kept["cheap_digest"]) != digest:
                return None
            index = {h: k for k, h in enumerate(kept["hop_ids"].tolist())}
            if not all(h in index for h in hop_ids):
                return None
            columns = [index[h] for h in hop_ids]
            return PredictionTable(tuple(hop_ids), kept["rows_ev"][:, columns], kept["mean_ev"][columns], kept["std_ev"][columns])
    except (OSError, KeyError, ValueError):
        return None  # an unreadable file is recomputed, never trusted


def write_rows(path: Path, table: PredictionTable, digest: str) -> None:
    """Calibrated rows, written whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(
        partial, hop_ids=np.array(table.hop_ids, dtype=str), rows_ev=table.calibrated_members(),
        mean_ev=table.mean_ev, std_ev=table.std_ev, cheap_digest=np.array(digest),
    )
    os.replace(partial, path)
