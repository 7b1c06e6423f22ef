"""Reading and writing hops.

Accepted inputs:

* the Em dataset layout: a JSON list (optionally ``.gz``) of objects with ``structure_ini``,
  ``structure_fin`` (JARVIS-style atoms dicts), ``working_ion`` and optionally ``target``;
* pymatgen JSON: an object ``{"initial": Structure, "final": Structure, ...}`` or a list of them;
* a pair of single-structure files (CIF, POSCAR/CONTCAR, pymatgen Structure JSON) given one
  after the other: initial, then final.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pymatgen.core import Lattice, Structure

from alem.hops.fidelity import DFT, SHIPPED_CHEAP_FIDELITY, CheapBarrier, fidelity_label, parse_fidelity
from alem.hops.hop import Hop, Provenance, group_of
from alem.hops.validate import HopError, check_hop

OnInvalid = Literal["error", "skip", "warn"]


def atoms_dict_to_structure(atoms: dict[str, Any]) -> Structure:
    """JARVIS-style atoms dict (``lattice_mat``, ``coords``, ``elements``, ``cartesian``) -> Structure."""
    return Structure(
        Lattice(atoms["lattice_mat"]),
        atoms["elements"],
        atoms["coords"],
        coords_are_cartesian=bool(atoms.get("cartesian", False)),
    )


def structure_to_atoms_dict(structure: Structure) -> dict[str, Any]:
    lattice = structure.lattice
    return {
        "lattice_mat": lattice.matrix.tolist(),
        "coords": structure.frac_coords.tolist(),
        "elements": [site.specie.symbol for site in structure],
        "abc": list(lattice.abc),
        "angles": list(lattice.angles),
        "cartesian": False,
        "props": [""] * len(structure),
    }


def _load_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as handle:
            return json.load(handle)
    except (OSError, EOFError) as exc:
        raise HopError(f"{path}: cannot read file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise HopError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def _is_json(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".json") or name.endswith(".json.gz")


def _read_single_structure(path: Path) -> Structure:
    if not path.exists():
        raise HopError(f"{path}: file not found")
    try:
        if _is_json(path):
            data = _load_json(path)
            if isinstance(data, dict) and "lattice_mat" in data:
                return atoms_dict_to_structure(data)
            return Structure.from_dict(data)
        return Structure.from_file(path)
    except HopError:
        raise
    except Exception as exc:  # pymatgen raises many types for unreadable files
        raise HopError(f"{path}: not a readable structure file ({type(exc).__name__}: {exc})") from exc


def _finite_or_none(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise HopError(f"{where}: barrier {value!r} is not a number") from exc
    if not math.isfinite(number):
        raise HopError(f"{where}: barrier is {number} (not finite)")
    return number


def _hop_from_dataset_entry(entry: dict[str, Any], index: int, path: Path) -> Hop:
    hop_id = str(entry.get("jid") or entry.get("hop_id") or f"{path.stem}-{index}")
    where = f"{path}: hop {hop_id}"
    try:
        initial = atoms_dict_to_structure(entry["structure_ini"])
        final = atoms_dict_to_structure(entry["structure_fin"])
    except KeyError as exc:
        raise HopError(f"{where}: missing key {exc.args[0]!r}") from exc
    except Exception as exc:
        raise HopError(f"{where}: malformed structure ({type(exc).__name__}: {exc})") from exc
    sys_name = entry.get("sys_name")
    ion = entry.get("working_ion") or initial[0].specie.symbol
    metadata = {
        key: entry[key]
        for key in ("sys_name", "formula", "crystal_class", "crystal_system", "space_group", "path_info", "provenance")
        if key in entry
    }
    if entry.get("image_energies_ev"):  # the NEB profile behind the barrier (an alem export writes it)
        metadata["image_energies_ev"] = [float(e) for e in entry["image_energies_ev"]]
    return Hop(
        hop_id=hop_id,
        initial=initial,
        final=final,
        working_ion=str(ion),
        barrier_ev=_finite_or_none(entry.get("target"), where),
        provenance=Provenance(
            source=entry.get("source", "literature"),
            xc=entry.get("XC"),
            citation=entry.get("citation"),
            # The Em dataset layout holds DFT-NEB barriers; an exported campaign file says its own.
            fidelity=parse_fidelity(entry["fidelity"]) if entry.get("fidelity") else fidelity_label(DFT, entry.get("XC")),
        ),
        group=group_of(sys_name) if sys_name else entry.get("group"),
        metadata=metadata,
    )


def _hop_from_pymatgen_entry(entry: dict[str, Any], index: int, path: Path, working_ion: str | None) -> Hop:
    hop_id = str(entry.get("hop_id") or f"{path.stem}-{index}")
    where = f"{path}: hop {hop_id}"
    try:
        initial = Structure.from_dict(entry["initial"])
        final = Structure.from_dict(entry["final"])
    except KeyError as exc:
        raise HopError(f"{where}: missing key {exc.args[0]!r}") from exc
    except Exception as exc:
        raise HopError(f"{where}: malformed structure ({type(exc).__name__}: {exc})") from exc
    ion = entry.get("working_ion") or working_ion or initial[0].specie.symbol
    prov = entry.get("provenance") or {}
    return Hop(
        hop_id=hop_id,
        initial=initial,
        final=final,
        working_ion=str(ion),
        barrier_ev=_finite_or_none(entry.get("barrier_ev"), where),
        provenance=Provenance(**{k: prov.get(k) for k in ("source", "xc", "citation", "fidelity")}),
        group=entry.get("group"),
        metadata=dict(entry.get("metadata") or {}),
    )


def _parsed_entries(
    entries: list[Any], parse: Callable[[Any, int], Hop], on_invalid: OnInvalid, problems: list[str], path: Path
) -> list[Hop]:
    """Every entry of a hop file as a Hop; an entry that cannot be read (missing key, malformed
    structure, a barrier that is not a number) raises under ``error`` and is otherwise left out
    with its problem appended: one bad hop does not sink the file."""
    hops = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise HopError(f"{path}: entry {index} is a {type(entry).__name__}, not a hop object")
            hops.append(parse(entry, index))
        except HopError as exc:
            if on_invalid == "error":
                raise
            problems.append(str(exc))
    return hops


def _hops_in_json(
    path: Path, working_ion: str | None, on_invalid: OnInvalid = "error", problems: list[str] | None = None
) -> list[Hop] | Structure:
    """Hops held by one JSON file, or the single Structure it holds (half of a pair)."""
    problems = problems if problems is not None else []
    data = _load_json(path)
    entries = data if isinstance(data, list) else [data]
    if not entries:
        raise HopError(f"{path}: empty list, no hops")
    first = entries[0]
    if not isinstance(first, dict):
        raise HopError(f"{path}: expected JSON objects, found {type(first).__name__}")
    if "structure_ini" in first:
        return _parsed_entries(entries, lambda e, i: _hop_from_dataset_entry(e, i, path), on_invalid, problems, path)
    if "initial" in first and "final" in first:
        return _parsed_entries(
            entries, lambda e, i: _hop_from_pymatgen_entry(e, i, path, working_ion), on_invalid, problems, path
        )
    if not isinstance(data, list) and ("lattice" in data or "lattice_mat" in data):
        return _read_single_structure(path)
    raise HopError(
        f"{path}: unrecognised JSON layout (expected the Em dataset layout with 'structure_ini'/"
        "'structure_fin', a pymatgen hop with 'initial'/'final', or a single Structure)"
    )


def _validated(hops: Iterable[Hop], path: Path, on_invalid: OnInvalid, problems: list[str]) -> list[Hop]:
    kept = []
    for hop in hops:
        try:
            check_hop(hop, source=str(path))
        except HopError as exc:
            if on_invalid == "error":
                raise
            problems.append(str(exc))
            if on_invalid == "skip":
                continue
        kept.append(hop)
    return kept


def read_hops(
    paths: Sequence[str | Path],
    working_ion: str | None = None,
    on_invalid: OnInvalid = "error",
    problems: list[str] | None = None,
) -> list[Hop]:
    """Read hops from files (see module docstring for the layouts).

    ``on_invalid``: ``error`` raises :class:`HopError` on the first invalid hop; ``skip`` drops
    invalid hops; ``warn`` keeps them. Skipped/kept problems are appended to ``problems``.
    """
    problems = problems if problems is not None else []
    hops: list[Hop] = []
    pending: tuple[Path, Structure] | None = None
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise HopError(f"{path}: file not found")
        content = _hops_in_json(path, working_ion, on_invalid, problems) if _is_json(path) else _read_single_structure(path)
        if isinstance(content, list):
            if pending is not None:
                raise HopError(f"{pending[0]}: single structure without a final structure to pair with")
            hops.extend(_validated(content, path, on_invalid, problems))
            continue
        if pending is None:
            pending = (path, content)
            continue
        initial_path, initial = pending
        pending = None
        hop = Hop(
            hop_id=f"{initial_path.stem}->{path.stem}",
            initial=initial,
            final=content,
            working_ion=working_ion or initial[0].specie.symbol,
            provenance=Provenance(source=f"{initial_path}|{path}"),
            group=initial.composition.reduced_formula,
        )
        hops.extend(_validated([hop], initial_path, on_invalid, problems))
    if pending is not None:
        raise HopError(f"{pending[0]}: single structure without a final structure to pair with")
    return hops


def hop_to_dataset_entry(hop: Hop) -> dict[str, Any]:
    """One hop in the Em dataset layout (so it can be trained on or evaluated)."""
    entry: dict[str, Any] = {
        "jid": hop.hop_id,
        "sys_name": hop.metadata.get("sys_name", hop.group or hop.hop_id),
        "formula": hop.metadata.get("formula", hop.initial.composition.reduced_formula),
        "crystal_class": hop.metadata.get("crystal_class"),
        "working_ion": hop.working_ion,
        "structure_ini": structure_to_atoms_dict(hop.initial),
        "structure_fin": structure_to_atoms_dict(hop.final),
        "target": hop.barrier_ev,
        "XC": hop.provenance.xc,
        "crystal_system": hop.metadata.get("crystal_system"),
        "space_group": hop.metadata.get("space_group"),
        "path_info": hop.metadata.get("path_info"),
    }
    if hop.provenance.source:
        entry["source"] = hop.provenance.source
    if hop.provenance.citation:
        entry["citation"] = hop.provenance.citation
    if hop.provenance.fidelity:
        entry["fidelity"] = hop.provenance.fidelity
    if hop.metadata.get("provenance"):  # a campaign result's inputs (alem.neb.provenance)
        entry["provenance"] = hop.metadata["provenance"]
    # what an alem export adds: the NEB profile, and for an unusable result the mark and its reason
    for key in ("image_energies_ev", "usable", "unusable_reason", "forward_barrier_ev", "effective_barrier_ev"):
        if hop.metadata.get(key) is not None and hop.metadata.get(key) != []:
            entry[key] = hop.metadata[key]
    return entry


def write_dataset(hops: Sequence[Hop], path: str | Path) -> Path:
    """Write hops in the Em dataset layout; written to a temporary file first, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(tmp, "wt") as handle:
        json.dump([hop_to_dataset_entry(h) for h in hops], handle)
    tmp.replace(path)
    return path


def load_training_hops(on_invalid: OnInvalid = "skip", problems: list[str] | None = None) -> list[Hop]:
    """The 559 literature DFT-NEB hops shipped with alem (invalid ones skipped by default)."""
    from alem import PACKAGE_DATA

    return read_hops([PACKAGE_DATA / "em_dataset_train.json.gz"], on_invalid=on_invalid, problems=problems)


def load_shipped_cheap_barriers(relaxed: bool = True) -> dict[str, CheapBarrier]:
    """MACE-MP NEB barriers of the shipped training hops, by hop id (3 hops have none unrelaxed).

    ``relaxed`` picks the NEB run after relaxing the endpoints (the authors' main MACE number).
    """
    from alem import PACKAGE_DATA

    key = "mace_neb_relaxed_ev" if relaxed else "mace_neb_unrelaxed_ev"
    path = PACKAGE_DATA / "em_dataset_train_mace_neb.json.gz"
    rows = _load_json(path)
    return {
        str(row["jid"]): CheapBarrier(SHIPPED_CHEAP_FIDELITY, float(row[key]))
        for row in rows
        if row.get(key) is not None and math.isfinite(float(row[key]))
    }
