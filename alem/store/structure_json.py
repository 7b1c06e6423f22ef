"""How the store writes a hop's structures: compact when nothing is lost, pymatgen's dict otherwise.

pymatgen's ``Structure.as_dict`` spells out every site (species list, fractional and Cartesian
coordinates, label, properties): ~20 kB per endpoint of a 60-site hop, so a 10^5-hop screening
store would hold 4 GB of it. A structure whose sites are plain elements without properties,
labels or charge is written as its lattice matrix, elements and fractional coordinates instead
(~4 kB), exactly (JSON floats round-trip): reading it back gives the same lattice and fractional
coordinates to the bit. Anything else keeps pymatgen's dict. Schema version 7 rewrites the rows of
older stores (:func:`migrate_to_v7`).

Schema version 10 packs a hop's two endpoints (:func:`endpoint_columns`): the initial structure's
JSON compressed (zlib, as base64 text so a row stays JSON for a scoring job's staging; symmetry
copies repeat their digits, so it shrinks about fourfold), and the final structure as the ion's
position alone when it is the initial structure with site 0 moved and nothing else changed to the
bit (every enumerated hop: alem's convention), compressed JSON otherwise. The 10.5 kB of a
100-site hop become about 1.8 kB; reading back gives the same structures to the bit
(:func:`endpoints_from_columns`). A host's structure is compressed the same way (6.4 kB of
pymatgen's dict become about 1.5 kB). :func:`migrate_to_v10` rewrites older rows without pymatgen.

Schema version 12 keeps each hop's content key (:mod:`alem.hops.content_key`) beside its
columns: :func:`endpoint_columns` gives it with them, :func:`content_key_of_columns` computes it
for an older row, from the compact lists without building a structure.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymatgen.core import Structure

COMPACT_KEY = "lattice_mat"


def _compactable(structure: Structure) -> bool:
    """Plain elements, fully occupied, no properties, labels or charge. One pass over the sites
    reading what pymatgen keeps (``_label``, ``_charge``): its ``is_ordered``, ``label``, ``specie``
    and ``charge`` properties each walk the sites again or build strings, which made this check
    most of storing a hop."""
    from pymatgen.core import Element

    if structure.properties or getattr(structure, "_charge", None):  # plain elements: no formal charge
        return False
    for site in structure:
        species = site.species
        if len(species) != 1 or site.properties:
            return False
        ((specie, amount),) = species.items()
        if amount != 1 or not isinstance(specie, Element) or getattr(site, "_label", None) not in (None, specie.symbol):
            return False
    return True


def _structure_dict(structure: Structure) -> dict[str, Any]:
    """The compact dict where nothing is lost, pymatgen's otherwise."""
    if not _compactable(structure):
        return structure.as_dict()
    return {
        COMPACT_KEY: structure.lattice.matrix.tolist(),
        "elements": [site.specie.symbol for site in structure],
        "coords": structure.frac_coords.tolist(),
    }


def structure_to_json(structure: Structure) -> str:
    """A structure's JSON text as schemas 7 to 9 wrote it (not packed)."""
    data = _structure_dict(structure)
    return json.dumps(data, separators=(",", ":")) if COMPACT_KEY in data else json.dumps(data)


def _structure(data: dict[str, Any]) -> Structure:
    from pymatgen.core import Lattice, Structure

    if COMPACT_KEY in data:
        return Structure(Lattice(data[COMPACT_KEY]), [_element_composition(e) for e in data["elements"]], data["coords"])
    return Structure.from_dict(data)


def structure_from_json(text: str) -> Structure:
    """A structure from its JSON text, packed (schema 10) or not."""
    return _structure(_unpacked(text))


#: Text of a compressed column starts with this (then base64 of zlib of the JSON).
PACKED_PREFIX = "zlib:"
#: A final column that is the initial structure with site 0 moved holds only that site's fractional coordinates.
MOVED_KEY = "ion_moved_to"


def _packed(data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":"))
    return PACKED_PREFIX + base64.b64encode(zlib.compress(text.encode(), 6)).decode("ascii")


def _unpacked(text: str) -> dict[str, Any]:
    if text.startswith(PACKED_PREFIX):
        text = zlib.decompress(base64.b64decode(text[len(PACKED_PREFIX):])).decode()
    return json.loads(text)


def _same_bits(a: list, b: list) -> bool:
    import numpy as np

    a_array, b_array = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a_array.shape == b_array.shape and a_array.tobytes() == b_array.tobytes()


def _final_column(initial: dict[str, Any], final: dict[str, Any]) -> str:
    moved_only = (
        COMPACT_KEY in initial and COMPACT_KEY in final and initial["elements"] == final["elements"]
        and len(final["coords"]) > 0 and _same_bits(initial[COMPACT_KEY], final[COMPACT_KEY])
        and _same_bits(initial["coords"][1:], final["coords"][1:])
    )
    return json.dumps({MOVED_KEY: final["coords"][0]}) if moved_only else _packed(final)


def packed_structure_json(structure: Structure) -> str:
    """A host's ``structure_json`` column (schema 10): compact where nothing is lost, compressed."""
    return _packed(_structure_dict(structure))


def endpoint_columns(initial: Structure, final: Structure, working_ion: str) -> tuple[str, str, str]:
    """A hop's ``initial_json`` and ``final_json`` columns (schema 10: see the module) and its
    ``content_key`` column (schema 12): the :func:`~alem.hops.content_key.content_key` of what
    the two columns read back as."""
    initial_dict, final_dict = _structure_dict(initial), _structure_dict(final)
    return (_packed(initial_dict), _final_column(initial_dict, final_dict),
            _content_key_of_dicts(working_ion, initial_dict, final_dict))


def _content_key_of_dicts(working_ion: str, initial: dict[str, Any], final: dict[str, Any]) -> str:
    """The content key of the structures two endpoint dicts read back as: from the lists of the
    compact form directly (it reads back to the bit), through pymatgen for its own dicts."""
    from alem.hops.content_key import content_key, structures_content_key

    if COMPACT_KEY in initial and COMPACT_KEY in final:
        return content_key(working_ion, initial[COMPACT_KEY], initial["elements"], initial["coords"], final["coords"])
    return structures_content_key(working_ion, _structure(initial), _structure(final))


def content_key_of_columns(working_ion: str, initial_text: str, final_text: str) -> str:
    """The content key of a stored hop's endpoints, from its columns (packed or as older schemas
    wrote them), without building its structures where they are in the compact form."""
    return _content_key_of_dicts(working_ion, *_endpoint_dicts(initial_text, final_text))


def _endpoint_dicts(initial_text: str, final_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    initial = _unpacked(initial_text)
    final = _unpacked(final_text)
    if MOVED_KEY in final:
        final = {**initial, "coords": [final[MOVED_KEY], *initial["coords"][1:]]}
    return initial, final


def endpoints_from_columns(initial_text: str, final_text: str) -> tuple[Structure, Structure]:
    """The hop's two structures from its columns, packed or as older schemas wrote them."""
    initial, final = _endpoint_dicts(initial_text, final_text)
    return _structure(initial), _structure(final)


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


def migrate_to_v10(conn: sqlite3.Connection) -> None:
    """Pack every host's structure and every hop's endpoints (:func:`endpoint_columns`) from the JSON older schemas wrote,
    without building structures (the same dicts, so the same structures read back); a row that
    does not hold readable JSON is left exactly as it is."""
    for rowid, text in conn.execute("SELECT rowid, structure_json FROM hosts").fetchall():
        try:
            data = _unpacked(text)
        except (ValueError, TypeError, zlib.error):
            continue
        if isinstance(data, dict):
            conn.execute("UPDATE hosts SET structure_json = ? WHERE rowid = ?", (_packed(data), rowid))
    rows = conn.execute("SELECT rowid, initial_json, final_json FROM hops").fetchall()
    for rowid, initial_text, final_text in rows:
        try:
            initial, final = _endpoint_dicts(initial_text, final_text)
        except (ValueError, TypeError, zlib.error):
            continue
        if not isinstance(initial, dict) or not isinstance(final, dict):
            continue
        conn.execute("UPDATE hops SET initial_json = ?, final_json = ? WHERE rowid = ?",
                     (_packed(initial), _final_column(initial, final), rowid))
