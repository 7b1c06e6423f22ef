"""Physical descriptors of a hop that the path-aware head reads beside the learned embeddings.

Barriers are set by a few things a chemist checks first: how long the hop is, how narrow the
bottleneck is (the ion's distance to the host along its path, to anions and to cations), how the
ion's coordination changes from its site to the saddle, the ion's charge and size, how open the
framework is and what the anions are. Giving the head these numbers explicitly lets 559 barriers
go further than learning them from scratch would.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Element

from alem.graphs.neighbors import periodic_neighbors
from alem.graphs.path_physics import PATH_PHYSICS_NAMES, path_physics_descriptors
from alem.hops.hop import Hop

ANIONS = frozenset({"O", "S", "Se", "Te", "F", "Cl", "Br", "I", "N"})
ANION_GROUPS = {"oxide": {"O"}, "chalcogenide": {"S", "Se", "Te"}, "halide": {"F", "Cl", "Br", "I"}, "nitride": {"N"}}
N_PROFILE_POINTS = 9
SEARCH_RADIUS_A = 6.0

DESCRIPTOR_NAMES = (
    ["hop_length_a"]
    + [f"bottleneck_a_t{k}" for k in range(N_PROFILE_POINTS // 2 + 1)]
    + ["min_host_distance_a", "min_anion_distance_a", "min_cation_distance_a", "saddle_minus_site_cation_distance_a",
       "anion_coordination_site", "anion_coordination_saddle", "volume_per_atom_a3", "ion_valence",
       "ion_electronegativity", "ion_radius_a", "host_mean_electronegativity", "host_std_electronegativity",
       "anion_mean_electronegativity", "working_ion_fraction"]
    + [f"anion_fraction_{name}" for name in ANION_GROUPS]
)

#: Named descriptor sets. A model card records the set its head was trained on (``v1`` when the
#: card predates sets), so a model always reads the numbers it learned from.
#: ``v2`` adds the bond-valence / electrostatic profile along a relaxed path
#: (:mod:`alem.graphs.path_physics`).
DESCRIPTOR_SETS: dict[str, tuple[str, ...]] = {
    "v1": tuple(DESCRIPTOR_NAMES),
    "v2": tuple(DESCRIPTOR_NAMES) + PATH_PHYSICS_NAMES,
}
LATEST_DESCRIPTOR_SET = "v2"


def descriptor_names(descriptor_set: str) -> tuple[str, ...]:
    try:
        return DESCRIPTOR_SETS[descriptor_set]
    except KeyError:
        raise ValueError(f"unknown descriptor set {descriptor_set!r} (known: {', '.join(DESCRIPTOR_SETS)})") from None


def _valence(symbol: str) -> float:
    states = Element(symbol).common_oxidation_states
    return float(max(states)) if states else 1.0


def hop_descriptors(hop: Hop, descriptor_set: str = "v1") -> np.ndarray:
    """The numbers of ``descriptor_set`` (:data:`DESCRIPTOR_SETS`) for one hop (float32)."""
    descriptor_names(descriptor_set)
    host = hop.host
    lattice = host.lattice.matrix
    symbols = np.array([site.specie.symbol for site in host])
    is_anion = np.isin(symbols, list(ANIONS))
    path_cart = hop.path_frac_coords(N_PROFILE_POINTS) @ lattice
    centers, sites, dist = periodic_neighbors(host.cart_coords, path_cart, lattice, SEARCH_RADIUS_A, 24, exclude_self=False)

    def per_point_min(mask: np.ndarray) -> np.ndarray:
        out = np.full(N_PROFILE_POINTS, SEARCH_RADIUS_A)
        np.minimum.at(out, centers[mask], dist[mask])
        return out

    nearest = per_point_min(np.ones_like(dist, dtype=bool))
    nearest_anion = per_point_min(is_anion[sites])
    nearest_cation = per_point_min(~is_anion[sites])
    # anions within 20 % of the nearest anion: the ion's coordination polyhedron
    shell = is_anion[sites] & (dist <= 1.2 * nearest_anion[centers])
    coordination = np.bincount(centers[shell], minlength=N_PROFILE_POINTS).astype(float)
    # average mirror points of the path: the descriptor does not depend on the hop's direction
    symmetric = 0.5 * (nearest + nearest[::-1])[: N_PROFILE_POINTS // 2 + 1]
    middle = N_PROFILE_POINTS // 2
    ends = [0, N_PROFILE_POINTS - 1]

    ion = Element(hop.working_ion)
    electronegativity = np.array([Element(s).X for s in symbols])
    electronegativity = np.where(np.isfinite(electronegativity), electronegativity, 1.5)
    anion_en = electronegativity[is_anion]
    radius = ion.ionic_radii.get(int(_valence(hop.working_ion)), ion.atomic_radius or 1.0)
    n_anion = max(int(is_anion.sum()), 1)
    values = [
        hop.hop_length_a,
        *symmetric,
        nearest.min(),
        nearest_anion.min(),
        nearest_cation.min(),
        nearest_cation[middle] - nearest_cation[ends].mean(),
        coordination[ends].mean(),
        coordination[middle],
        hop.initial.volume / len(hop.initial),
        _valence(hop.working_ion),
        ion.X,
        float(radius),
        electronegativity.mean(),
        electronegativity.std(),
        anion_en.mean() if len(anion_en) else 0.0,
        float(np.mean(symbols == hop.working_ion)),
        *[float(np.isin(symbols[is_anion], list(group)).sum()) / n_anion for group in ANION_GROUPS.values()],
    ]
    if descriptor_set == "v2":
        values += list(path_physics_descriptors(hop, is_anion, _valence(hop.working_ion), float(radius)))
    return np.asarray(values, dtype=np.float32)
