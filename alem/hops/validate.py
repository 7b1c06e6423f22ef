"""Checks that a hop follows the dataset convention and is physically sane."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from alem.errors import AlemError

if TYPE_CHECKING:
    from alem.hops.hop import Hop

#: Two sites closer than this (Å) are overlapping atoms, not a structure.
MIN_SITE_DISTANCE_A = 0.5
#: Host sites may relax this much (Å) between endpoints and still count as "the same host".
HOST_TOLERANCE_A = 0.5
#: The ion must move at least this far (Å) for the hop to be a hop.
MIN_HOP_LENGTH_A = 0.5
LATTICE_TOLERANCE_A = 1e-3


class HopError(AlemError, ValueError):
    """A hop or hop file that alem cannot use; the message names the file, the hop and the problem."""


def _closest_pair(structure) -> tuple[float, int, int] | None:
    centers, neighbors, _, distances = structure.get_neighbor_list(r=MIN_SITE_DISTANCE_A)
    if len(distances) == 0:
        return None
    k = int(np.argmin(distances))
    return float(distances[k]), int(centers[k]), int(neighbors[k])


def hop_problems(hop: Hop) -> list[str]:
    """Every convention or sanity problem of ``hop`` (empty when it is valid)."""
    ini, fin = hop.initial, hop.final
    if len(ini) != len(fin):
        return [f"initial has {len(ini)} sites but final has {len(fin)}"]
    if len(ini) < 2:
        return ["a hop needs a host: the structure has fewer than 2 sites"]
    for label, structure in (("initial", ini), ("final", fin)):
        # NaN coordinates pass every distance test silently (NaN < x is False): refuse them first
        if not (np.isfinite(structure.lattice.matrix).all() and np.isfinite(structure.frac_coords).all()):
            return [f"{label} has a lattice or coordinates that are not finite numbers (NaN or inf)"]
    if not np.allclose(ini.lattice.matrix, fin.lattice.matrix, atol=LATTICE_TOLERANCE_A):
        return ["initial and final have different lattices"]
    if not ini.is_ordered or not fin.is_ordered:
        return ["disordered (partially occupied) sites are not supported"]
    problems: list[str] = []
    ion = hop.working_ion
    if not any(site.specie.symbol == ion for site in ini):
        problems.append(f"working ion {ion} is not in the structure")
    elif ini[0].specie.symbol != ion or fin[0].specie.symbol != ion:
        problems.append(
            f"site 0 must be the migrating {ion} ion, found {ini[0].specie.symbol} (initial) / "
            f"{fin[0].specie.symbol} (final)"
        )
    if [s.specie for s in ini] != [s.specie for s in fin]:
        problems.append("initial and final hosts differ in species or site order")
    else:
        dfrac = fin.frac_coords - ini.frac_coords
        dfrac -= np.round(dfrac)
        moved = np.linalg.norm(dfrac @ ini.lattice.matrix, axis=1)
        if moved[0] < MIN_HOP_LENGTH_A:
            problems.append(f"the migrating ion moves only {moved[0]:.3f} Å (site 0 must move)")
        host_moved = moved[1:]
        worst = int(np.argmax(host_moved))
        if host_moved[worst] > HOST_TOLERANCE_A:
            problems.append(
                f"host site {worst + 1} moves {host_moved[worst]:.2f} Å between endpoints "
                f"(only site 0 may move; tolerance {HOST_TOLERANCE_A} Å)"
            )
    for label, structure in (("initial", ini), ("final", fin)):
        pair = _closest_pair(structure)
        if pair is not None:
            distance, i, j = pair
            problems.append(
                f"overlapping atoms in {label}: sites {i} and {j} are {distance:.3f} Å apart "
                f"(minimum {MIN_SITE_DISTANCE_A} Å)"
            )
    if hop.barrier_ev is not None and not np.isfinite(hop.barrier_ev):
        problems.append(f"barrier is {hop.barrier_ev} (not finite)")
    return problems


def check_hop(hop: Hop, source: str | None = None) -> None:
    """Raise :class:`HopError` naming the file, the hop and its problems."""
    problems = hop_problems(hop)
    if problems:
        where = f"{source}: hop {hop.hop_id}" if source else f"hop {hop.hop_id}"
        raise HopError(f"{where}: " + "; ".join(problems))
