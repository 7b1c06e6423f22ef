"""Reading host structures for hop enumeration (CIF, POSCAR/CONTCAR, pymatgen Structure JSON)."""

from __future__ import annotations

import warnings
from pathlib import Path

from pymatgen.core import Structure

from alem.hops.validate import MIN_SITE_DISTANCE_A, HopError


class HostError(HopError):
    """A host file that cannot be used for enumeration; the message names the file and the problem."""


def read_host(path: str | Path, working_ion: str, allow_disordered: bool = False) -> Structure:
    """Read one host structure and check it can host hops of ``working_ion``.

    Raises :class:`HostError` for a missing or unreadable file, partially occupied sites (unless
    ``allow_disordered``: the caller orders them), or a structure that does not contain the working ion.
    """
    path = Path(path)
    if not path.exists():
        raise HostError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            # CIFs store 1/3 as 0.333333; pymatgen snapping it back is what we want, not news
            warnings.filterwarnings("ignore", message=".*fractional coordinates rounded to ideal values.*")
            if path.name.lower().endswith(".json"):
                structure = Structure.from_str(path.read_text(), fmt="json")
            else:
                structure = Structure.from_file(path)
    except Exception as exc:  # pymatgen raises many types for unreadable files
        raise HostError(f"{path}: not a readable structure file ({type(exc).__name__}: {exc})") from exc
    if len(structure) == 0:
        raise HostError(f"{path}: the structure has no sites")
    if not structure.is_ordered:
        if allow_disordered:
            return structure  # overlaps are judged on the ordered stand-ins
        disordered = [i for i, site in enumerate(structure) if not site.is_ordered]
        raise HostError(
            f"{path}: disordered (partially occupied) sites {disordered[:5]} are not supported; "
            "add it with --orderings K (the K lowest-Ewald-energy orderings) or order the structure first "
            "(e.g. pymatgen's OrderDisorderedStructureTransformation)"
        )
    centers, neighbors, _, distances = structure.get_neighbor_list(r=MIN_SITE_DISTANCE_A)
    if len(distances):
        raise HostError(
            f"{path}: overlapping atoms: sites {int(centers[0])} and {int(neighbors[0])} are "
            f"{float(distances[0]):.3f} Å apart (minimum {MIN_SITE_DISTANCE_A} Å)"
        )
    elements = sorted({site.specie.symbol for site in structure})
    if working_ion not in elements:
        raise HostError(f"{path}: host contains no {working_ion} (elements: {', '.join(elements)})")
    return structure
