"""The literature hops a prediction leans on: nearest training hops in descriptor space.

Each hop is described by the physical numbers the model's path-aware head reads
(``alem.graphs.descriptors``: hop length, bottleneck profile, coordination, ion, anion chemistry),
standardised over the training hops so no single unit dominates. The distance to the nearest
training hop, set against how far training hops are from *their* nearest neighbours, tells a
person whether a proposal lies inside the data the model learned from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from alem.hops.hop import Hop


@dataclass(frozen=True)
class ReferenceHop:
    """What a card shows of a reference hop."""

    hop_id: str
    formula: str
    working_ion: str
    barrier_ev: float | None
    hop_length_a: float
    xc: str | None


@dataclass(frozen=True)
class NeighbourHop(ReferenceHop):
    distance: float  # standardised descriptor units
    #: other literature entries that read the same (formula, ion, length, barrier, functional as
    #: shown): near-duplicates in the dataset, listed once with this note
    agreeing: tuple[str, ...] = ()

    def shown_as(self) -> tuple:
        """What a person reads of this hop; entries equal in it are one distinct hop."""
        barrier = None if self.barrier_ev is None else round(self.barrier_ev, 2)
        return self.formula, self.working_ion, round(self.hop_length_a, 2), barrier, self.xc


def hop_formula(hop: Hop) -> str:
    """The compound's reduced formula (as recorded with the hop, else of its cell)."""
    from pymatgen.core import Composition

    recorded = hop.metadata.get("formula")
    return Composition(str(recorded)).reduced_formula if recorded else hop.initial.composition.reduced_formula


#: The index of the shipped literature hops as kept in a campaign's state directory: building it
#: reads, validates and describes the 559 literature hops, most of what `alem review` took.
INDEX_FILENAME = "literature_index.npz"
#: The same index built once and shipped in the package (``alem/data``), so even a campaign's first
#: `alem review` reads it; rebuilt with :data:`REBUILD_COMMAND` whenever the dataset or
#: the code that describes its hops changes (``tests/test_read_scale.py`` fails while it is stale).
SHIPPED_INDEX = "literature_index.npz"
REBUILD_COMMAND = 'python -c "from alem.review.neighbours import write_shipped_index; write_shipped_index()"'


class LiteratureIndex:
    """Nearest-neighbour search over reference hops (default: the shipped training hops)."""

    def __init__(self, hops: Sequence[Hop]):
        from alem.graphs.descriptors import hop_descriptors

        #: the reference hops (an index read back from where it was kept or shipped holds none: only
        #: what its cards show, in ``references``)
        self.hops = list(hops)
        references = [ReferenceHop(h.hop_id, hop_formula(h), h.working_ion, h.barrier_ev, h.hop_length_a, h.provenance.xc) for h in hops]
        self._build(np.array([hop_descriptors(h) for h in hops], dtype=float), references)

    def _build(self, features: np.ndarray, references: list[ReferenceHop]) -> None:
        self.references = references
        self.raw_features = features
        self.mean = features.mean(axis=0)
        # constant descriptors (one ion only, say) carry no distance; a unit scale keeps them inert
        self.scale = np.where(features.std(axis=0) > 1e-9, features.std(axis=0), 1.0)
        self.features = (features - self.mean) / self.scale
        own = np.linalg.norm(self.features[:, None, :] - self.features[None, :, :], axis=-1)
        np.fill_diagonal(own, np.inf)
        #: each reference hop's distance to its nearest other reference hop
        self.own_nearest = own.min(axis=1)

    @classmethod
    def shipped(cls, keep_in: Path | None = None) -> LiteratureIndex:
        """The index of the shipped training hops: the one shipped in the package while its key
        (:func:`_shipped_key`: the dataset file and the code that describes its hops) is this
        alem's; else the one kept in ``keep_in`` (:data:`INDEX_FILENAME`) under that key; else
        built here, and kept in ``keep_in`` when given."""
        from alem import PACKAGE_DATA
        from alem.hops.io import load_training_hops

        key = _shipped_key()
        for path in (PACKAGE_DATA / SHIPPED_INDEX, *(() if keep_in is None else (Path(keep_in) / INDEX_FILENAME,))):
            index = cls._read(path, key)
            if index is not None:
                return index
        index = cls(load_training_hops())
        if keep_in is not None:
            index._write(Path(keep_in) / INDEX_FILENAME, key)
        return index

    @classmethod
    def _read(cls, path: Path, key: str) -> LiteratureIndex | None:
        """The index kept at ``path`` under ``key`` (None: absent, unreadable or another key)."""
        try:
            with np.load(path, allow_pickle=False) as kept:
                if str(kept["key"]) != key:
                    return None
                index = cls.__new__(cls)
                index.hops = []
                index._build(kept["features"], [ReferenceHop(*r) for r in json.loads(str(kept["references"]))])
                return index
        except (OSError, KeyError, ValueError, TypeError):
            return None  # absent, or written by another alem: built again

    def _write(self, path: Path, key: str) -> None:
        """Keep the index at ``path`` under ``key``, whole or not at all (compressed: it is shipped)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, key=np.array(key), features=self.raw_features,
                            references=np.array(json.dumps([dataclasses.astuple(r) for r in self.references])))
        os.replace(tmp, path)

    def nearest(self, hop: Hop, k: int = 5) -> list[NeighbourHop]:
        from alem.graphs.descriptors import hop_descriptors

        x = (hop_descriptors(hop).astype(float) - self.mean) / self.scale
        distances = np.linalg.norm(self.features - x, axis=1)
        distinct: dict[tuple, NeighbourHop] = {}
        for i in np.argsort(distances, kind="stable"):
            ref = self.references[i]
            neighbour = NeighbourHop(**vars(ref), distance=float(distances[i]))
            key = neighbour.shown_as()
            if key in distinct:  # a near-duplicate of a nearer entry: counted with it, not shown again
                first = distinct[key]
                distinct[key] = replace(first, agreeing=(*first.agreeing, neighbour.hop_id))
            elif len(distinct) < k:
                distinct[key] = neighbour
        # every reference hop is looked at: a near-duplicate may lie farther than the k-th distinct hop
        return list(distinct.values())

    def typicality(self, distance: float) -> float:
        """Fraction of reference hops whose own nearest neighbour is closer than ``distance``
        (near 1: this hop is farther from the data than almost any training hop is)."""
        return float((self.own_nearest < distance).mean())


#: The code a kept index was computed by (read as text: importing it would load torch).
_INDEX_CODE = ("graphs/descriptors.py", "graphs/path_physics.py", "graphs/neighbors.py", "hops/io.py", "hops/hop.py",
               "review/neighbours.py")


def _shipped_key() -> str:
    """The shipped dataset file's bytes and the source of the code that reads and describes its
    hops: a kept index is used only while neither changed."""
    from alem import PACKAGE_DATA

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256((PACKAGE_DATA / "em_dataset_train.json.gz").read_bytes())
    for name in _INDEX_CODE:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def write_shipped_index() -> Path:
    """Build the index of the shipped training hops and write it into the package (``alem/data``)."""
    from alem import PACKAGE_DATA
    from alem.hops.io import load_training_hops

    path = PACKAGE_DATA / SHIPPED_INDEX
    LiteratureIndex(load_training_hops())._write(path, _shipped_key())
    return path
