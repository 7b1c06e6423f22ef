"""Ordered stand-ins for a partially occupied host (most solid electrolytes: garnets, NASICONs,
argyrodites), so its hops can be enumerated like any other host's.

The smallest diagonal supercell (within an atom limit) in which every species count is whole is
ordered by pymatgen's ``OrderDisorderedStructureTransformation``, which ranks the orderings by
Ewald energy with guessed oxidation states; symmetry-equivalent orderings are kept once. Each
ordering records where it came from. A host that cannot be ordered this way is refused with the
sites named and how to order it by hand.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.transformations.standard_transformations import OrderDisorderedStructureTransformation

from alem.candidates.hosts import HostError

#: Species counts within this of a whole number are whole.
WHOLE_COUNT_TOLERANCE = 1e-3
#: Largest multiple of a lattice vector tried when looking for a supercell.
MAX_MULTIPLE = 4
BY_HAND = (
    "order it by hand (e.g. pymatgen's OrderDisorderedStructureTransformation, or enumlib's "
    "EnumerateStructureTransformation for larger cells) and add the ordered structure"
)


@dataclass(frozen=True)
class Ordering:
    """One ordered stand-in of a disordered host, lowest Ewald energy first."""

    structure: Structure
    rank: int
    ewald_energy_ev: float
    supercell: tuple[int, int, int]
    provenance: dict[str, Any]


def disordered_sites(structure: Structure) -> str:
    """The partially occupied sites, named with their occupancies, for a message."""
    groups: dict[str, list[int]] = {}
    for i, site in enumerate(structure):
        if not site.is_ordered:
            groups.setdefault(site.species.formula, []).append(i)
    parts = []
    for indices in groups.values():
        occupancy = ", ".join(f"{el} {amount:g}" for el, amount in structure[indices[0]].species.items())
        parts.append(f"sites {_ranges(indices)} ({occupancy})")
    return "; ".join(parts)


def _ranges(indices: list[int]) -> str:
    runs = []
    for _, run in itertools.groupby(enumerate(indices), key=lambda pair: pair[1] - pair[0]):
        values = [v for _, v in run]
        runs.append(str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}")
    return ", ".join(runs)


def _whole_supercell(structure: Structure, max_atoms: int) -> tuple[int, int, int] | None:
    """The smallest diagonal supercell (fewest atoms, then most cubic) in which every species count is whole."""
    counts = np.array(list(structure.composition.values()))
    shapes = sorted(
        itertools.product(range(1, MAX_MULTIPLE + 1), repeat=3),
        key=lambda n: (n[0] * n[1] * n[2], max(n) - min(n)),
    )
    for shape in shapes:
        factor = shape[0] * shape[1] * shape[2]
        if len(structure) * factor > max_atoms:
            continue
        scaled = counts * factor
        if np.all(np.abs(scaled - np.round(scaled)) < WHOLE_COUNT_TOLERANCE):
            return shape
    return None


def order_host(structure: Structure, n_orderings: int = 3, max_atoms: int = 160, source: str = "host") -> list[Ordering]:
    """The ``n_orderings`` lowest-Ewald-energy distinct orderings of a partially occupied host.

    Raises :class:`HostError` naming the sites when no supercell of at most ``max_atoms`` atoms
    makes every species count whole, or when no oxidation states can be guessed for the Ewald sum.
    """
    where = f"{source}: disordered {disordered_sites(structure)}"
    shape = _whole_supercell(structure, max_atoms)
    if shape is None:
        raise HostError(f"{where}: no supercell of at most {max_atoms} atoms makes every species count whole; {BY_HAND}")
    cell = structure * shape
    charged = cell.copy()
    try:
        charged.add_oxidation_state_by_guess()
    except Exception as exc:  # pymatgen raises several kinds when no charge-balanced guess exists
        raise HostError(f"{where}: no oxidation states could be guessed for the Ewald ranking ({exc}); {BY_HAND}") from exc
    ranked = OrderDisorderedStructureTransformation().apply_transformation(charged, return_ranked_list=4 * n_orderings)
    matcher = StructureMatcher()
    kept: list[tuple[Structure, float]] = []
    for entry in sorted(ranked, key=lambda e: e["energy"]):
        ordered = entry["structure"].copy()
        ordered.remove_oxidation_states()
        if not any(matcher.fit(ordered, other) for other, _ in kept):
            kept.append((ordered, float(entry["energy"])))
        if len(kept) == n_orderings:
            break
    return [
        Ordering(
            structure=ordered,
            rank=rank,
            ewald_energy_ev=energy,
            supercell=shape,
            provenance={
                "ordered_from": source,
                "method": "pymatgen OrderDisorderedStructureTransformation (Ewald energy, guessed oxidation states)",
                "supercell": list(shape),
                "rank": rank,
                "ewald_energy_ev": energy,
            },
        )
        for rank, (ordered, energy) in enumerate(kept, start=1)
    ]
