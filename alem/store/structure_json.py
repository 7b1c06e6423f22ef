"""How the store writes a hop's structures: compact when nothing is lost, pymatgen's dict otherwise.

pymatgen's ``Structure.as_dict`` spells out every site (species list, fractional and Cartesian
coordinates, label, properties): ~20 kB per endpoint of a 60-site hop, so a 10^5-hop screening
store would hold 4 GB of it. A structure whose sites are plain elements without properties,
labels or charge is written as its lattice matrix, elements and fractional coordinates instead
(~4 kB), exactly (JSON floats round-trip): reading it back gives the same lattice and fractional
coordinates to the bit. Anything else keeps pymatgen's dict. Schema version 7 rewrites the rows of
older stores (:func:`migrate_to_v7`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymatgen.core import Structure

COMPACT_KEY = "lattice_mat"


def _compactable(structure: Structure) -> bool:
    from pymatgen.core import Element

    return (
        structure.is_ordered
        and not structure.site_properties
        and not structure.properties
        and not structure.charge
        and all(isinstance(site.specie, Element) and site.label == site.specie.symbol for site in structure)
    )


def structure_to_json(structure: Structure) -> str:
    if not _compactable(structure):
        return json.dumps(structure.as_dict())
    compact = {
        COMPACT_KEY: structure.lattice.matrix.tolist(),
        "elements": [site.specie.symbol for site in structure],
        "coords": structure.frac_coords.tolist(),
    }
    return json.dumps(compact, separators=(",", ":"))


def structure_from_json(text: str) -> Structure:
    from pymatgen.core import Lattice, Structure

    data = json.loads(text)
    if COMPACT_KEY in data:
        return Structure(Lattice(data[COMPACT_KEY]), [_element_composition(e) for e in data["elements"]], data["coords"])
    return Structure.from_dict(data)


#: One (immutable) pymatgen Composition per element, shared by the sites of every structure read:
#: building one per site was a third of reading a pool's structures (the same structure results).
_COMPOSITIONS: dict[str, Any] = {}


def _element_composition(symbol: str) -> Any:
    composition = _COMPOSITIONS.get(symbol)
    if composition is None:
        from pymatgen.core import Composition, Element

        composition = _COMPOSITIONS[symbol] = Composition({Element(symbol): 1})
    return composition


def migrate_to_v7(conn: sqlite3.Connection) -> None:
    """Rewrite every hop's structures in the compact form where nothing is lost (a row that does
    not hold a readable structure is left exactly as it is)."""
    rows = conn.execute("SELECT hop_id, initial_json, final_json FROM hops").fetchall()
    for hop_id, initial, final in rows:
        try:
            rewritten = (structure_to_json(structure_from_json(initial)), structure_to_json(structure_from_json(final)))
        except Exception:  # pymatgen raises many types for a dict that is not a structure
            continue
        conn.execute("UPDATE hops SET initial_json = ?, final_json = ? WHERE hop_id = ?", (*rewritten, hop_id))
