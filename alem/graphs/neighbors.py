"""Periodic neighbour lists, vectorised (pymatgen's C neighbour search, numpy for the rest)."""

from __future__ import annotations

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

#: Distances this close to the k-th neighbour's count as a tie and are kept, so that symmetric
#: shells are never cut in half (otherwise the graph would depend on site order).
TIE_TOLERANCE_A = 1e-3


def periodic_neighbors(
    site_cart: np.ndarray,
    center_cart: np.ndarray,
    lattice_matrix: np.ndarray,
    cutoff_a: float,
    max_neighbors: int,
    exclude_self: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """For each centre, the periodic neighbours among ``site_cart`` within ``cutoff_a``.

    Keeps the ``max_neighbors`` nearest (plus any tied with the last kept one).
    Returns ``(center_index, site_index, distance_a)`` as arrays, sorted by centre then distance.
    """
    centers, sites, _, distances = find_points_in_spheres(
        np.ascontiguousarray(site_cart, dtype=float),
        np.ascontiguousarray(center_cart, dtype=float),
        r=float(cutoff_a),
        pbc=np.array([1, 1, 1], dtype=np.int64),
        lattice=np.ascontiguousarray(lattice_matrix, dtype=float),
        tol=1e-8,
    )
    if exclude_self:
        keep = distances > 1e-8
        centers, sites, distances = centers[keep], sites[keep], distances[keep]
    order = np.lexsort((distances, centers))
    centers, sites, distances = centers[order], sites[order], distances[order]
    if len(centers) == 0:
        return centers.astype(np.int64), sites.astype(np.int64), distances
    group_start = np.r_[0, np.flatnonzero(np.diff(centers)) + 1]
    counts = np.diff(np.r_[group_start, len(centers)])
    rank = np.arange(len(centers)) - np.repeat(group_start, counts)
    # distance of the last neighbour each centre may keep (its k-th, or its farthest)
    last = group_start + np.minimum(counts, max_neighbors) - 1
    limit = np.repeat(distances[last], counts) + TIE_TOLERANCE_A
    keep = (rank < max_neighbors) | (distances <= limit)
    return centers[keep].astype(np.int64), sites[keep].astype(np.int64), distances[keep]
