"""The campaign's joint posterior rows of its host hops, kept per model version on disk.

``<state dir>/posterior_rows/model-<N>.npz`` holds the calibrated rows of every stored hop of a
host under model version N, with the digest of the MLIP barriers the model could read for them
and the digest of the labelled hops its sister correction read; rows are read back while the hop
set is covered and the MLIP digest unchanged (a proposal also wants the labels' digest unchanged:
its rows are then exactly the ones predicting the pool again would give). Written by the first
scoring of a model version (:func:`alem.campaign.score.score_in_process`, in the same chunked pass
that records the predictions) or by the first host answer that needs them
(:func:`alem.campaign.host_rows.host_rows`).

The file is an uncompressed ``.npz``: a question about a few hosts reads their columns of the rows
through a memory map of the archive member (:func:`_mapped_member`), not the whole n_rows x n_hops
array, so ``alem show HOST_ID`` on 10^5 hops reads kilobytes of it, not 50 MB.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
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


def read_rows(
    path: Path, hop_ids: Sequence[str], digest: str, labels: str | None = None, covering: Sequence[str] | None = None,
) -> PredictionTable | None:
    """The kept rows of ``hop_ids``, or None when they are not all kept under this MLIP digest
    (and, when ``labels`` is given, this :func:`labels_digest`); ``covering``: hops the file must
    also hold (the campaign's host hops, whose digest ``digest`` is, when ``hop_ids`` are a few of
    them). Only the asked hops' columns of the rows are read."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as kept:
            if str(kept["cheap_digest"]) != digest:
                return None
            if labels is not None and ("labels_digest" not in kept.files or str(kept["labels_digest"]) != labels):
                return None
            index = {h: k for k, h in enumerate(kept["hop_ids"].tolist())}
            if not all(h in index for h in hop_ids) or (covering is not None and not all(h in index for h in covering)):
                return None
            columns = [index[h] for h in hop_ids]
            mean_ev, std_ev = kept["mean_ev"][columns], kept["std_ev"][columns]
        rows_ev = _mapped_member(path, "rows_ev")
        if rows_ev.ndim != 2 or rows_ev.shape[1] != len(index):
            return None
        # C order, as computed rows are: the acquisition's products then round alike
        rows = np.ascontiguousarray(rows_ev[:, columns])
        del rows_ev  # the map closes with its last view
        return PredictionTable(tuple(hop_ids), rows, mean_ev, std_ev)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # an unreadable file is recomputed, never trusted


#: Fixed part of a zip member's local header (its name and extra field follow it).
_LOCAL_HEADER = struct.Struct("<4s22xHH")


def _mapped_member(path: Path, name: str) -> np.ndarray:
    """The ``name`` array of an uncompressed ``.npz``, memory-mapped (read-only): numpy's own
    loader reads a member whole. ValueError for a member stored compressed or cut short."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: {name} is compressed")
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        magic, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
        if magic != b"PK\x03\x04":
            raise ValueError(f"{path}: no zip member header for {name}")
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        handle.seek(start)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        offset = handle.tell()
    if dtype.hasobject or offset - start + int(np.prod(shape)) * dtype.itemsize > info.file_size:
        raise ValueError(f"{path}: {name} is cut short")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


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
