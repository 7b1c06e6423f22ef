"""Start a DFT NEB from the converged path of a cheap (MLIP) NEB of the same hop, not from IDPP.

A usable screening result already holds a relaxed minimum-energy path. Its images are a far
better first guess for the DFT images than an IDPP interpolation: fewer ionic steps on the most
expensive part of the calculation. The MLIP result keeps its path compactly
(:func:`path_record`: lattice, species, fractional coordinates per image); the VASP flow maps it
onto the DFT NEB cell (:func:`map_path`: the same sites in the VASP species order, on the DFT
lattice), resamples it to the preset's image count, and puts it between the relaxed DFT
endpoints (:func:`images_from_screening_path`). A path that does not map (another supercell,
another site set) is not used, and the flow says so in its metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jobflow import job
from pymatgen.core import Lattice, Structure

#: Hop metadata key a submission fills with the hop's usable screening path (a :func:`path_record`).
SCREENING_PATH_KEY = "screening_path"
#: Flow metadata key: where the DFT images started from, in words.
INITIAL_PATH_KEY = "alem_initial_path"
#: Largest distance (Å) between a DFT site and the screening path's site it is matched to.
MATCH_TOLERANCE_A = 0.5


def path_record(structures: list[Structure]) -> dict:
    """A converged NEB path in a compact, JSON-friendly form (stored in the result's details)."""
    return {"lattice": structures[0].lattice.matrix.tolist(), "species": [s.species_string for s in structures[0]],
            "frac_coords": [np.round(s.frac_coords, 6).tolist() for s in structures]}


def map_path(record: dict, start: Structure) -> list[np.ndarray] | str:
    """The path's images as fractional coordinates in ``start``'s site order, or why it does not map."""
    species = record["species"]
    frames = [np.asarray(f, dtype=float) for f in record["frac_coords"]]
    if len(species) != len(start):
        return f"the screening path has {len(species)} sites, the DFT NEB cell {len(start)}"
    if not np.allclose(np.asarray(record["lattice"]), start.lattice.matrix, atol=0.5):
        return "the screening path's cell is not the DFT NEB cell"
    order = []
    free = set(range(len(species)))
    for site in start:
        candidates = [j for j in free if species[j] == site.species_string]
        if not candidates:
            return f"no {site.species_string} site left to match in the screening path"
        dfrac = frames[0][candidates] - site.frac_coords
        dfrac -= np.round(dfrac)
        distances = np.linalg.norm(dfrac @ start.lattice.matrix, axis=1)
        best = int(np.argmin(distances))
        if distances[best] > MATCH_TOLERANCE_A:
            return f"site {site.species_string} at {np.round(site.frac_coords, 3).tolist()} has no match in the screening path"
        order.append(candidates[best])
        free.remove(candidates[best])
    return [frame[order] for frame in frames]


def _resampled(frames: list[np.ndarray], n_images: int) -> list[np.ndarray]:
    """``n_images`` interior frames at evenly spaced fractions of the path (linear between frames)."""
    unwrapped = [frames[0]]
    for frame in frames[1:]:  # continuous coordinates: no jump across a cell face
        step = frame - unwrapped[-1]
        unwrapped.append(unwrapped[-1] + step - np.round(step))
    positions = np.linspace(0.0, len(frames) - 1, n_images + 2)[1:-1]
    out = []
    for position in positions:
        low = min(int(np.floor(position)), len(frames) - 2)
        weight = position - low
        out.append((1 - weight) * unwrapped[low] + weight * unwrapped[low + 1])
    return out


@job
def images_from_screening_path(endpoints: list[Structure], frames: list[list], n_images: int) -> list[Structure]:
    """The DFT NEB images: the relaxed DFT endpoints around the screening path's interior images
    (mapped frames, resampled to ``n_images``), with the endpoints' initial moments."""
    initial, final = endpoints
    interior = _resampled([np.asarray(f) for f in frames], n_images)
    lattice: Lattice = initial.lattice
    properties = {"magmom": initial.site_properties["magmom"]} if "magmom" in initial.site_properties else None
    images = [Structure(lattice, initial.species, coords, site_properties=properties) for coords in interior]
    return [initial, *images, final]


def screening_frames(hop: Any, start: Structure) -> tuple[list | None, str]:
    """The hop's screening path mapped onto ``start``'s cell (None if none or unmappable), and
    where the DFT images start from, in words."""
    record = (getattr(hop, "metadata", None) or {}).get(SCREENING_PATH_KEY)
    if not record:
        return None, "IDPP between the relaxed endpoints (no usable screening path)"
    mapped = map_path(record, start)
    if isinstance(mapped, str):
        return None, f"IDPP between the relaxed endpoints (screening path not used: {mapped})"
    source = record.get("source", "a screening result")
    return [m.tolist() for m in mapped], f"the converged path of {source}, between the relaxed DFT endpoints"
