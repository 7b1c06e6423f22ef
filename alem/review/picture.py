"""A picture of one hop for a person deciding whether to pay for its NEB.

The migrating ion's straight path is drawn through the host atoms near it, projected along the
lattice or Cartesian direction most perpendicular to the hop (so the path is seen side-on, at
full length). Host atoms are coloured by element (Jmol colours, as ASE and most viewers use),
nearer atoms drawn larger and on top; the bottleneck - the point of the path closest to the host
- is marked with the atoms that form it, and the minimum ion-host distance is written on the plot.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alem.hops.hop import Hop

#: Host atoms within this distance (Å) of some point of the path are drawn.
SHOWN_WITHIN_A = 4.0
#: Points along the straight path at which distances to the host are measured.
N_PATH_POINTS = 41
#: Atoms within this factor of the minimum distance, seen from the bottleneck point, form it.
BOTTLENECK_SHELL = 1.15


@dataclass(frozen=True)
class Bottleneck:
    """Where the straight path passes closest to the host."""

    min_distance_a: float
    fraction: float  # 0 = start, 1 = end of the hop
    nearest_element: str
    n_atoms: int  # host atoms forming the window


@dataclass(frozen=True)
class _Neighbour:
    element: str
    cart: np.ndarray  # the periodic image nearest the path
    distance_a: float  # from the path


def _path_cart(hop: Hop, n_points: int = N_PATH_POINTS) -> np.ndarray:
    return hop.path_frac_coords(n_points) @ hop.initial.lattice.matrix


def _host_near_path(hop: Hop, path: np.ndarray) -> tuple[list[_Neighbour], np.ndarray]:
    """Host atoms (one image each) within :data:`SHOWN_WITHIN_A` of the path, and the matrix of
    distances path point x atom (``inf`` beyond the search radius)."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    host = hop.host
    lattice = host.lattice
    frac = np.ascontiguousarray(host.frac_coords, dtype=float)
    # every path point in one call (what Structure.get_sites_in_sphere does for one point)
    centres, indices, images, found = find_points_in_spheres(
        all_coords=np.ascontiguousarray(lattice.get_cartesian_coords(frac), dtype=float),
        center_coords=np.ascontiguousarray(path, dtype=float), r=float(SHOWN_WITHIN_A),
        pbc=np.ascontiguousarray(lattice.pbc, dtype=np.int64), lattice=np.ascontiguousarray(lattice.matrix, dtype=float), tol=1e-8,
    )
    by_point = np.argsort(centres, kind="stable")  # path point by path point: atoms numbered as first met
    centres, found = np.asarray(centres)[by_point], np.asarray(found)[by_point]
    keys = np.column_stack([np.asarray(indices)[by_point], np.rint(np.asarray(images)[by_point])]).astype(np.int64)
    if not len(keys):
        return [], np.full((len(path), 0), np.inf)
    unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    met = np.argsort(first, kind="stable")
    number = np.empty_like(met)
    number[met] = np.arange(len(met))
    distances = np.full((len(path), len(unique)), np.inf)
    distances[centres, number[inverse.ravel()]] = found
    carts = lattice.get_cartesian_coords(frac[unique[met, 0]] + unique[met, 1:])
    nearest = distances.min(axis=0)
    atoms = [_Neighbour(host[int(k)].specie.symbol, cart, float(d)) for k, cart, d in zip(unique[met, 0], carts, nearest)]
    return atoms, distances


def bottleneck(hop: Hop) -> Bottleneck:
    """The straight path's closest approach to the host and the atoms that form it."""
    path = _path_cart(hop)
    return _bottleneck_of(*_host_near_path(hop, path), len(path))


def _bottleneck_of(atoms: list[_Neighbour], distances: np.ndarray, n_points: int) -> Bottleneck:
    if not atoms:
        return Bottleneck(float("inf"), 0.5, "", 0)
    per_point = distances.min(axis=1)
    # the path's ends sit in the ion's own sites; the bottleneck is where the path is tightest
    point = int(np.argmin(per_point))
    shell = distances[point] <= BOTTLENECK_SHELL * per_point[point]
    nearest = int(np.argmin(distances[point]))
    return Bottleneck(float(per_point[point]), point / (n_points - 1), atoms[nearest].element, int(shell.sum()))


def view_direction(hop: Hop) -> tuple[np.ndarray, str]:
    """Unit vector to look along (the lattice vector or Cartesian axis most perpendicular to the
    hop) and its name."""
    lattice = hop.initial.lattice.matrix
    hop_unit = hop.displacement_cart / max(np.linalg.norm(hop.displacement_cart), 1e-9)
    candidates = [(lattice[k] / np.linalg.norm(lattice[k]), name) for k, name in enumerate("abc")]
    candidates += [(np.eye(3)[k], name) for k, name in enumerate("xyz")]
    return min(candidates, key=lambda item: abs(float(item[0] @ hop_unit)))


def _element_colour(symbol: str) -> tuple[float, float, float]:
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors

    return tuple(float(x) for x in jmol_colors[atomic_numbers.get(symbol, 0)])  # type: ignore[return-value]


def hop_picture_png(hop: Hop, size_in: tuple[float, float] = (4.2, 3.3), dpi: int = 100) -> bytes:
    """PNG of the hop through its host (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = _path_cart(hop)
    atoms, distances = _host_near_path(hop, path)
    neck = _bottleneck_of(atoms, distances, len(path))
    view, view_name = view_direction(hop)
    along = hop.displacement_cart - (hop.displacement_cart @ view) * view
    u = along / max(np.linalg.norm(along), 1e-9)
    w = np.cross(view, u)
    origin = path[0]

    def project(cart: np.ndarray) -> np.ndarray:
        shifted = np.atleast_2d(cart) - origin
        return np.stack([shifted @ u, shifted @ w, shifted @ view], axis=-1)

    fig, ax = plt.subplots(figsize=size_in, dpi=dpi)
    neck_point = int(round(neck.fraction * (len(path) - 1)))
    if atoms:
        in_neck = distances[neck_point] <= BOTTLENECK_SHELL * distances[neck_point].min()
        xyz = project(np.array([a.cart for a in atoms]))
        order = np.argsort(xyz[:, 2], kind="stable")  # far atoms first, near ones on top
        nearness = (xyz[:, 2] - xyz[:, 2].min()) / max(float(np.ptp(xyz[:, 2])), 1e-6)
        sizes = 90 + 160 * nearness  # nearer = larger
        colours = np.array([(*_element_colour(a.element), 0.55 + 0.45 * near) for a, near in zip(atoms, nearness)])
        # one collection draws in array order, so far-to-near keeps the near atoms on top (one
        # scatter per atom was most of a picture's time)
        ax.scatter(xyz[order, 0], xyz[order, 1], s=sizes[order], c=colours[order], edgecolors="0.25", linewidths=0.6, zorder=2)
        ring = order[in_neck[order]]
        ax.scatter(xyz[ring, 0], xyz[ring, 1], s=sizes[ring] + 140, facecolors="none", edgecolors="red", linewidths=1.8, zorder=3)
        for element in dict.fromkeys(atoms[k].element for k in order):  # a legend entry per element, in drawing order
            ax.scatter([], [], s=120, color=_element_colour(element), edgecolors="0.25", linewidths=0.6, label=element)
    line = project(path)
    ax.plot(line[:, 0], line[:, 1], color="black", lw=1.6, zorder=4)
    ax.annotate("", xy=line[-1, :2], xytext=line[-2, :2], arrowprops={"arrowstyle": "-|>", "color": "black"}, zorder=4)
    ion_colour = _element_colour(hop.working_ion)
    ax.scatter(*line[0, :2], s=150, color=ion_colour, edgecolors="black", linewidths=1.2, zorder=5,
               label=f"{hop.working_ion} start")
    ax.scatter(*line[-1, :2], s=150, facecolors="white", edgecolors=ion_colour, linewidths=2.0, zorder=5,
               label=f"{hop.working_ion} end")
    ax.scatter(*line[neck_point, :2], marker="x", s=70, color="red", zorder=6, label="bottleneck")
    ax.set_title(f"{hop.hop_length_a:.2f} Å hop, seen along {view_name}", fontsize=9)
    fig.text(0.5, 0.02, f"min {hop.working_ion}–host distance along the path: {neck.min_distance_a:.2f} Å "
             f"({neck.nearest_element}, at ×)", ha="center", va="bottom", fontsize=8.5, color="darkred", fontweight="bold")
    ax.set_aspect("equal")
    ax.set_xlabel("along the hop (Å)", fontsize=8, labelpad=1)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, markerscale=0.6)
    # the margins tight_layout chose for every picture (the legend's width is its fixed labels'):
    # laying each out again took a third of the drawing
    fig.subplots_adjust(left=0.1, right=0.74, bottom=0.11, top=0.95)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


#: Where a campaign keeps its hops' pictures (under its state directory): drawing one is most of a
#: review page's time, and a waiting hop is shown on every page until it is decided.
PICTURES_DIRNAME = "review_pictures"


def picture_key(hop: Hop) -> str:
    """What a hop's picture is drawn from: its structures (exact), its ion and the code drawing it."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for structure in (hop.initial, hop.final):
        digest.update(np.ascontiguousarray(structure.lattice.matrix, dtype=float).tobytes())
        digest.update(np.ascontiguousarray(structure.frac_coords, dtype=float).tobytes())
        digest.update(" ".join(site.species_string for site in structure).encode())
    digest.update(hop.working_ion.encode())
    return digest.hexdigest()


def kept_pictures(hops: list[Hop], keep_in: Path) -> dict[str, bytes]:
    """:func:`hop_picture_png` of each hop by hop id, read back from ``keep_in`` when the hop was
    drawn before by this code (:func:`picture_key`), else drawn and kept there. Pictures of hops
    no longer on the page (decided since) are removed, so the folder holds one page's worth."""
    keep_in = Path(keep_in)
    keep_in.mkdir(parents=True, exist_ok=True)
    pictures, shown = {}, set()
    for hop in hops:
        path = keep_in / f"{picture_key(hop)}.png"
        shown.add(path.name)
        try:
            pictures[hop.hop_id] = path.read_bytes()
            continue
        except OSError:
            pass  # not drawn yet
        pictures[hop.hop_id] = hop_picture_png(hop)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(pictures[hop.hop_id])
        os.replace(partial, path)  # a page drawn beside this one never reads half a picture
    for old in keep_in.glob("*.png"):
        if old.name not in shown:
            old.unlink(missing_ok=True)
    return pictures
