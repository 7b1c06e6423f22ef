"""Bond-valence and electrostatic profiles of a hop along a relaxed path.

The straight line between two sites is rarely the path an ion takes: it bends around the
cations and through the widest anion window. A NEB finds that bend at great cost; here each
interior point of the straight path may instead move up to ``max(RELAX_RADII_A)`` Å sideways (in
the plane perpendicular to the hop) to the position where the ion's bond-valence sum is closest
to its valence, as in bond-valence pathway analyses (Adams & Rao's softBV idea, without its
fitted energy scale). Along that relaxed path we read:

* the bond-valence mismatch ``(BVS − V)²`` at the site and its rise at the worst point (as
  ``log1p``: overlapping atoms make it explode, and a network reads standardised inputs);
* how under-bonded the ion becomes (lowest BVS / V) — an open, weakly bonded path is fast;
* the rise of the electrostatic potential the ion feels (cations with bond-valence-derived
  charges, anions with their nominal charge, erfc-screened Coulomb sum; as ``asinh`` of eV);
* the widest bottleneck the sideways search finds, and bottlenecks relative to the ion's radius.

Bond-valence parameters are pymatgen's (O'Keeffe & Brese 1991 element parameters).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from pymatgen.core import Element
from scipy.special import erfc

from alem.graphs.neighbors import periodic_neighbors
from alem.hops.hop import Hop

#: Brown's universal softness of a bond-valence bond (Å).
BV_SOFTNESS_A = 0.37
N_PATH_POINTS = 9
RELAX_RADII_A = (0.3, 0.6, 0.9)
N_RELAX_ANGLES = 8
#: Anion shell that bonds to the ion (Å).
BV_CUTOFF_A = 5.0
#: Anions that bond to a host cation when its charge is estimated (Å).
CATION_BV_CUTOFF_A = 3.5
COULOMB_CUTOFF_A = 8.0
#: erfc screening length: the far field of a vacancy cell is neutral, the near field sets the rise.
COULOMB_SCREENING_A = 4.0
#: A straight path can run through a host atom (a curved literature path drawn straight): closer
#: than this, distances are held here so that one such hop cannot produce a 1/d singularity.
CLOSEST_APPROACH_A = 0.5
#: Bond-valence sums are reported up to this multiple of the valence (beyond it the ion overlaps).
MAX_BVS_OVER_VALENCE = 3.0

PATH_PHYSICS_NAMES = (
    "relaxed_bottleneck_a",
    "relaxed_bottleneck_over_radius",
    "bottleneck_over_radius",
    "bv_mismatch_site",
    "bv_mismatch_rise_relaxed",
    "bv_mismatch_rise_straight",
    "bvs_min_over_valence_relaxed",
    "bvs_min_over_valence_straight",
    "bvs_site_over_valence",
    "electrostatic_rise_relaxed_ev",
    "electrostatic_rise_straight_ev",
    "electrostatic_endpoint_asymmetry_ev",
    "ion_charge_density",
)

_COULOMB_EV_A = 14.399645


@cache
def bv_r0_a(cation: str, anion: str) -> float:
    """Bond-valence R0 of a cation–anion pair from element parameters; 0 when unknown."""
    # imported here: pymatgen reads its bond-valence tables when the module loads (seconds), and
    # the v1 descriptors (the review page's literature neighbours) never need them
    from pymatgen.analysis.bond_valence import BV_PARAMS

    try:
        p1, p2 = BV_PARAMS[Element(cation)], BV_PARAMS[Element(anion)]
    except KeyError:
        return 0.0
    r1, r2, c1, c2 = p1["r"], p2["r"], p1["c"], p2["c"]
    return r1 + r2 - r1 * r2 * (np.sqrt(c1) - np.sqrt(c2)) ** 2 / (c1 * r1 + c2 * r2)


@cache
def nominal_anion_charge(symbol: str) -> float:
    states = Element(symbol).common_oxidation_states
    return float(min(states)) if states and min(states) < 0 else -1.0


def _trial_points(hop: Hop) -> np.ndarray:
    """``N_PATH_POINTS x n_trials x 3`` Cartesian positions: each straight-path point and its
    sideways displacements (trial 0 is the straight path itself)."""
    start = hop.initial.cart_coords[0]
    step = hop.displacement_cart
    along = step / np.linalg.norm(step)
    helper = np.array([1.0, 0.0, 0.0]) if abs(along[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    side_a = np.cross(along, helper)
    side_a /= np.linalg.norm(side_a)
    side_b = np.cross(along, side_a)
    angles = np.linspace(0.0, 2 * np.pi, N_RELAX_ANGLES, endpoint=False)
    offsets = [np.zeros(3)] + [r * (np.cos(a) * side_a + np.sin(a) * side_b) for r in RELAX_RADII_A for a in angles]
    t = np.linspace(0.0, 1.0, N_PATH_POINTS)
    return start + t[:, None, None] * step + np.asarray(offsets)[None, :, :]


def _host_charges(symbols: np.ndarray, is_anion: np.ndarray, host_cart: np.ndarray, lattice: np.ndarray, ion_valence: float) -> np.ndarray:
    """Cations: their bond-valence sum (a robust oxidation-state estimate that needs no charge
    balancing); anions: nominal charges scaled so the host plus the ion is neutral."""
    charge = np.zeros(len(symbols))
    if not is_anion.any():
        return charge
    anion_index = np.flatnonzero(is_anion)
    cation_at, anion_at, dist = periodic_neighbors(
        host_cart[is_anion], host_cart, lattice, CATION_BV_CUTOFF_A, 64, exclude_self=False
    )
    r0 = np.array([0.0 if is_anion[c] else bv_r0_a(symbols[c], symbols[anion_index[a]]) for c, a in zip(cation_at, anion_at)])
    bonded = r0 > 0
    np.add.at(charge, cation_at[bonded], np.exp((r0[bonded] - dist[bonded]) / BV_SOFTNESS_A))
    anion_charge = np.array([nominal_anion_charge(s) for s in symbols[is_anion]])
    positive = charge.sum() + ion_valence
    if anion_charge.sum() < 0 and positive > 0:
        anion_charge *= positive / -anion_charge.sum()
    charge[is_anion] = anion_charge
    return charge


def path_physics_descriptors(hop: Hop, is_anion: np.ndarray, ion_valence: float, ion_radius_a: float) -> np.ndarray:
    """The numbers in :data:`PATH_PHYSICS_NAMES` for one hop (float32)."""
    host = hop.host
    lattice = host.lattice.matrix
    symbols = np.array([site.specie.symbol for site in host])
    points = _trial_points(hop)
    n_points, n_trials, _ = points.shape
    centers, sites, dist = periodic_neighbors(
        host.cart_coords, points.reshape(-1, 3), lattice, COULOMB_CUTOFF_A, 100_000, exclude_self=False
    )
    n_total = n_points * n_trials
    nearest = np.full(n_total, COULOMB_CUTOFF_A)
    np.minimum.at(nearest, centers, dist)

    r0_by_anion = {s: bv_r0_a(hop.working_ion, s) for s in set(symbols[is_anion])}
    r0 = np.array([r0_by_anion.get(s, 0.0) for s in symbols])
    dist = np.maximum(dist, CLOSEST_APPROACH_A)
    bonds = is_anion[sites] & (dist < BV_CUTOFF_A) & (r0[sites] > 0)
    bvs = np.zeros(n_total)
    np.add.at(bvs, centers[bonds], np.exp((r0[sites[bonds]] - dist[bonds]) / BV_SOFTNESS_A))

    charge = _host_charges(symbols, is_anion, host.cart_coords, lattice, ion_valence)
    potential = np.zeros(n_total)
    np.add.at(potential, centers, _COULOMB_EV_A * charge[sites] * erfc(dist / COULOMB_SCREENING_A) / dist)

    nearest, bvs, potential = (a.reshape(n_points, n_trials) for a in (nearest, bvs, potential))
    valence = max(ion_valence, 1e-6)
    bvs = np.minimum(bvs, MAX_BVS_OVER_VALENCE * valence)
    mismatch = (bvs - ion_valence) ** 2
    # endpoints are the sites themselves; interior points take their best sideways trial
    choice = np.argmin(mismatch, axis=1)
    choice[[0, -1]] = 0
    rows = np.arange(n_points)
    widest = nearest.max(1)
    widest[[0, -1]] = nearest[[0, -1], 0]
    ends = [0, n_points - 1]
    site_mismatch = mismatch[ends, 0].mean()
    site_potential = potential[ends, 0].mean()
    return np.array(
        [
            widest.min(),
            widest.min() / ion_radius_a,
            nearest[:, 0].min() / ion_radius_a,
            np.log1p(site_mismatch),
            np.log1p(mismatch[rows, choice].max()) - np.log1p(site_mismatch),
            np.log1p(mismatch[:, 0].max()) - np.log1p(site_mismatch),
            bvs[rows, choice].min() / valence,
            bvs[:, 0].min() / valence,
            bvs[ends, 0].mean() / valence,
            np.arcsinh(ion_valence * (potential[rows, choice].max() - site_potential)),
            np.arcsinh(ion_valence * (potential[:, 0].max() - site_potential)),
            np.arcsinh(ion_valence * abs(potential[0, 0] - potential[-1, 0])),
            ion_valence / ion_radius_a**2,
        ],
        dtype=np.float32,
    )
