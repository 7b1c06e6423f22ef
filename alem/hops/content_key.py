"""A hop's exact content as one hash: what the feature cache (:mod:`alem.inference.feature_cache`)
keys a hop's features by.

Unlike :func:`alem.hops.fingerprint.hop_fingerprint`, nothing is rounded or re-ordered: two hops
share a key only when they are the same hop site for site, to the bit, so a cached row is the
very hop. The store keeps each hop's key with the hop (schema 12), so a rescoring reads it instead
of building the hop's structures (:class:`alem.hops.lazy_hop.LazyHop`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from alem.hops.lazy_hop import LazyHop

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from alem.hops.hop import Hop


def content_key(working_ion: str, lattice: Sequence | np.ndarray, symbols: Sequence[str],
                initial_frac: Sequence | np.ndarray, final_frac: Sequence | np.ndarray) -> str:
    """SHA-256 of the ion, the lattice matrix, the species in site order and both endpoints'
    fractional coordinates as float64 bytes (lists as the store's compact JSON holds them, or arrays)."""
    digest = hashlib.sha256(working_ion.encode())
    digest.update(np.ascontiguousarray(lattice, dtype=np.float64).tobytes())
    digest.update(",".join(symbols).encode())
    for coords in (initial_frac, final_frac):
        digest.update(np.ascontiguousarray(coords, dtype=np.float64).tobytes())
    return digest.hexdigest()


def hop_content_key(hop: Hop) -> str:
    """The hop's :func:`content_key`: the one a hop read from the store carries (its structures
    not built), else computed from its structures (initial lattice and species, both endpoints'
    fractional coordinates)."""
    if isinstance(hop, LazyHop) and hop.content_key is not None:
        return hop.content_key
    return structures_content_key(hop.working_ion, hop.initial, hop.final)


def structures_content_key(working_ion: str, initial: Structure, final: Structure) -> str:
    """:func:`content_key` of two endpoint structures."""
    return content_key(working_ion, initial.lattice.matrix, [site.specie.symbol for site in initial], initial.frac_coords,
                       final.frac_coords)
