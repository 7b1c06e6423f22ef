"""What a frozen backbone and the featurisation make of a hop, kept on disk and reused.

Scoring a pool spends most of its time before any model version is involved: the hop graphs
(pymatgen neighbour lists of every image), the host context the frozen backbone computes from
them, the head's descriptors and the backbone's path features. None of these depend on what a
retraining changes (the GNN members' path side, the trees, the kernel model), so after a
retraining only those are run again; everything else is read from this cache.

A row is keyed by three hashes:

* the hop's exact content (:func:`~alem.hops.content_key.hop_content_key`: ion, lattice, species
  and coordinates of both endpoints as stored bytes), so a cached row is the very hop and a hit is
  bit-identical; the store keeps it with each hop, so a rescoring whose rows are all cached builds
  no pymatgen structure (:class:`~alem.hops.lazy_hop.LazyHop`);
* the featurisation (:func:`featurisation_key`: :data:`FEATURISATION_VERSION` and the graph
  settings), so a change of how hops become graphs or descriptors misses every old row;
* the backbone (:func:`backbone_key`: its weights' bytes), so two model versions that share the
  frozen pre-trained backbone share the rows and a model with another backbone does not.

The cache is an SQLite file (WAL) beside the campaign's store; a row is written in one
transaction with its hop's arrays, so a kill leaves whole rows or none. A row's arrays are stored
raw (dtype, shape, bytes: :meth:`HopFeatures.to_bytes`) and read back with ``numpy.frombuffer``,
since a rescoring reads every row of the pool; rows an older alem wrote as ``.npz`` archives (in
their own table) are still read, and moved to the raw layout when they are.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alem.graphs.crystal_graph import GraphSettings
from alem.hops.content_key import hop_content_key as hop_content_key  # where the cache key of a hop is made
from alem.hops.hop import Hop
from alem.nn.models import BarrierModel

#: Bump when the code that turns a hop into a graph, its descriptors or the backbone's features
#: changes in a way the graph settings do not show: every cached row then misses.
FEATURISATION_VERSION = 1
#: File name of the cache beside a campaign's store.
CACHE_FILENAME = "feature_cache.sqlite"

#: Rows in the raw layout of :meth:`HopFeatures.to_bytes`.
TABLE = "hop_feature_rows"
#: Rows written before as one ``.npz`` archive each: read when a hop has no row in :data:`TABLE`,
#: then moved there (an older alem reading the file finds only its own layout, never a row it cannot open).
NPZ_TABLE = "hop_features"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    hop_key TEXT NOT NULL,
    featurisation_key TEXT NOT NULL,
    backbone_key TEXT NOT NULL,
    arrays BLOB NOT NULL,
    PRIMARY KEY (hop_key, featurisation_key, backbone_key)
) WITHOUT ROWID
"""


def featurisation_key(settings: GraphSettings) -> str:
    """SHA-256 of :data:`FEATURISATION_VERSION` and the graph settings."""
    text = json.dumps({"version": FEATURISATION_VERSION, "settings": settings.model_dump()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def backbone_key(model: BarrierModel) -> str:
    """SHA-256 of the backbone's weights (names, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.backbone.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


#: First bytes of a cache row in the raw layout of :meth:`HopFeatures.to_bytes`.
ROW_FORMAT = b"alem-hop-features-1\n"
#: The dtypes a row's arrays may have (a row stores the index).
_DTYPES = ("<f4", "<f8", "<i8", "<i4", "<i2", "|u1", "|i1", "|b1")


@dataclass
class HopFeatures:
    """One hop's featurisation: its slice of the path tensors, its descriptors, its backbone features."""

    src_h: np.ndarray  # n_edges x n_layers x hidden
    dst_local: np.ndarray  # n_edges
    path_dist: np.ndarray  # n_edges
    path_z: np.ndarray  # n_images
    host_pooled: np.ndarray  # hidden
    path_desc: np.ndarray  # n_path_descriptors
    descriptors: np.ndarray  # n_descriptors + n_ions (the trees' inputs)
    backbone_features: np.ndarray  # 4 * hidden

    def to_bytes(self) -> bytes:
        """:data:`ROW_FORMAT`, then per field (in :data:`ROW_FIELDS` order) its dtype, its shape
        and its bytes: read back with no parsing beyond a few integers (an ``.npz`` per row
        cost a millisecond per hop to open, as much as the new model version's own work)."""
        parts = [ROW_FORMAT]
        for name in ROW_FIELDS:
            array = np.ascontiguousarray(getattr(self, name))
            parts += [struct.pack("<BB", _DTYPES.index(array.dtype.str), array.ndim), struct.pack(f"<{array.ndim}I", *array.shape),
                      array.tobytes()]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> HopFeatures:
        """A row of :meth:`to_bytes`."""
        if not blob.startswith(ROW_FORMAT):
            raise ValueError("not a hop-features row")
        fields, offset = {}, len(ROW_FORMAT)
        for name in ROW_FIELDS:
            dtype_index, ndim = struct.unpack_from("<BB", blob, offset)
            shape = struct.unpack_from(f"<{ndim}I", blob, offset + 2)
            offset += 2 + 4 * ndim
            dtype = np.dtype(_DTYPES[dtype_index])
            count = int(np.prod(shape, dtype=np.int64))
            fields[name] = np.frombuffer(blob, dtype, count, offset).reshape(shape)
            offset += count * dtype.itemsize
        return cls(**fields)

    @classmethod
    def from_npz(cls, blob: bytes) -> HopFeatures:
        """A row written before :data:`ROW_FORMAT`: one ``.npz`` archive (the same arrays)."""
        with np.load(io.BytesIO(blob)) as arrays:
            return cls(**{name: arrays[name] for name in arrays.files})


#: The fields of a row, in the order :meth:`HopFeatures.to_bytes` writes them.
ROW_FIELDS = tuple(HopFeatures.__dataclass_fields__)


class FeatureCache:
    """Hop features on disk (SQLite), by hop content, featurisation and backbone.

    Args:
        path: the SQLite file (created with its folder when missing).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        for table in (TABLE, NPZ_TABLE):
            self._conn.execute(_SCHEMA.format(table=table))
        self._conn.commit()
        #: Rows read and rows written since it was opened.
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, hop_keys: Sequence[str], featurisation: str, backbone: str) -> dict[str, HopFeatures]:
        """The cached features of those of ``hop_keys`` that have a row for this featurisation and
        backbone; rows found only in the ``.npz`` layout (:data:`NPZ_TABLE`) are moved to :data:`TABLE`."""
        unique = list(dict.fromkeys(hop_keys))
        found = {key: HopFeatures.from_bytes(blob) for key, blob in self._rows(TABLE, unique, featurisation, backbone)}
        rest = [key for key in unique if key not in found]
        older = {key: HopFeatures.from_npz(blob) for key, blob in self._rows(NPZ_TABLE, rest, featurisation, backbone)} if rest else {}
        if older:  # read once in the slow layout, not on every rescoring
            with self._conn:
                self._write(older, featurisation, backbone)
                self._conn.executemany(f"DELETE FROM {NPZ_TABLE} WHERE hop_key = ? AND featurisation_key = ? AND backbone_key = ?",
                                       [(key, featurisation, backbone) for key in older])
        return {**found, **older}

    def _rows(self, table: str, keys: Sequence[str], featurisation: str, backbone: str) -> list[tuple[str, bytes]]:
        rows = []
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            chunk = keys[start : start + 500]
            rows += self._conn.execute(
                f"SELECT hop_key, arrays FROM {table} WHERE featurisation_key = ? AND backbone_key = ? "
                f"AND hop_key IN ({','.join('?' * len(chunk))})",
                [featurisation, backbone, *chunk],
            ).fetchall()
        return rows

    def put(self, features: dict[str, HopFeatures], featurisation: str, backbone: str) -> None:
        """Store rows (one transaction; an existing row is replaced by the same content)."""
        with self._conn:
            self._write(features, featurisation, backbone)

    def _write(self, features: dict[str, HopFeatures], featurisation: str, backbone: str) -> None:
        self._conn.executemany(
            f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)",
            [(key, featurisation, backbone, f.to_bytes()) for key, f in features.items()],
        )

    def __len__(self) -> int:
        return sum(int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]) for table in (TABLE, NPZ_TABLE))


def split_path_tensors(tensors, descriptors: np.ndarray, backbone_features: np.ndarray) -> list[HopFeatures]:
    """Per hop, its part of ``tensors`` (:class:`~alem.inference.hop_graphs.PathTensors`) and its rows
    of the descriptors and backbone features."""
    edge_hop = tensors.edge_hop.cpu().numpy()
    counts = np.bincount(edge_hop, minlength=tensors.n_hops)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    # host_context_tensors writes a hop's edges contiguously, hops in order
    if len(edge_hop) and np.any(np.diff(edge_hop) < 0):
        raise ValueError("path tensors with a hop's edges not contiguous")
    src_h, dst_local, path_dist = (t.cpu().numpy() for t in (tensors.src_h, tensors.dst_local, tensors.path_dist))
    path_z, host_pooled, path_desc = (t.cpu().numpy() for t in (tensors.path_z, tensors.host_pooled, tensors.path_desc))
    return [
        HopFeatures(
            src_h=src_h[bounds[i] : bounds[i + 1]],
            dst_local=dst_local[bounds[i] : bounds[i + 1]],
            path_dist=path_dist[bounds[i] : bounds[i + 1]],
            path_z=path_z[i],
            host_pooled=host_pooled[i],
            path_desc=path_desc[i],
            descriptors=descriptors[i],
            backbone_features=backbone_features[i],
        )
        for i in range(tensors.n_hops)
    ]


def join_path_tensors(features: Sequence[HopFeatures], hops: Sequence[Hop]):
    """The :class:`~alem.inference.hop_graphs.PathTensors` of ``features`` (one per hop, in order),
    ``y`` the hops' barriers (NaN where unknown), as :func:`host_context_tensors` makes them."""
    from alem.inference.hop_graphs import PathTensors

    n_images = int(features[0].path_z.shape[0]) if features else 0
    counts = [len(f.dst_local) for f in features]
    barriers = [np.nan if h.barrier_ev is None else h.barrier_ev for h in hops]
    return PathTensors(
        src_h=torch.from_numpy(np.concatenate([f.src_h for f in features])),
        edge_hop=torch.from_numpy(np.repeat(np.arange(len(features), dtype=np.int64), counts)),
        dst_local=torch.from_numpy(np.concatenate([f.dst_local for f in features])),
        path_dist=torch.from_numpy(np.concatenate([f.path_dist for f in features])),
        path_z=torch.from_numpy(np.stack([f.path_z for f in features])),
        path_t=torch.linspace(0.0, 1.0, n_images),
        host_pooled=torch.from_numpy(np.stack([f.host_pooled for f in features])),
        path_desc=torch.from_numpy(np.stack([f.path_desc for f in features])),
        y=torch.tensor(barriers, dtype=torch.float32),
    )
