"""The literature hops a prediction leans on: nearest training hops in descriptor space.

Each hop is described by the physical numbers the model's path-aware head reads
(``alem.graphs.descriptors``: hop length, bottleneck profile, coordination, ion, anion chemistry),
standardised over the training hops so no single unit dominates. The distance to the nearest
training hop, set against how far training hops are from *their* nearest neighbours, tells a
person whether a proposal lies inside the data the model learned from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from alem.hops.hop import Hop


@dataclass(frozen=True)
class NeighbourHop:
    hop_id: str
    formula: str
    working_ion: str
    barrier_ev: float | None
    hop_length_a: float
    xc: str | None
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


class LiteratureIndex:
    """Nearest-neighbour search over reference hops (default: the shipped training hops)."""

    def __init__(self, hops: Sequence[Hop]):
        from alem.graphs.descriptors import hop_descriptors

        self.hops = list(hops)
        features = np.array([hop_descriptors(h) for h in self.hops], dtype=float)
        self.mean = features.mean(axis=0)
        # constant descriptors (one ion only, say) carry no distance; a unit scale keeps them inert
        self.scale = np.where(features.std(axis=0) > 1e-9, features.std(axis=0), 1.0)
        self.features = (features - self.mean) / self.scale
        own = np.linalg.norm(self.features[:, None, :] - self.features[None, :, :], axis=-1)
        np.fill_diagonal(own, np.inf)
        #: each reference hop's distance to its nearest other reference hop
        self.own_nearest = own.min(axis=1)

    @classmethod
    def shipped(cls) -> LiteratureIndex:
        from alem.hops.io import load_training_hops

        return cls(load_training_hops())

    def nearest(self, hop: Hop, k: int = 5) -> list[NeighbourHop]:
        from alem.graphs.descriptors import hop_descriptors

        x = (hop_descriptors(hop).astype(float) - self.mean) / self.scale
        distances = np.linalg.norm(self.features - x, axis=1)
        distinct: dict[tuple, NeighbourHop] = {}
        for i in np.argsort(distances, kind="stable"):
            neighbour = NeighbourHop(
                self.hops[i].hop_id, hop_formula(self.hops[i]), self.hops[i].working_ion, self.hops[i].barrier_ev,
                self.hops[i].hop_length_a, self.hops[i].provenance.xc, float(distances[i]),
            )
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
