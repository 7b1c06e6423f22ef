"""Small Li hosts built from textbook crystal structures, shipped for the demo and used by tests.

Lattice parameters and Wyckoff positions are rounded literature values; the structures are
unrelaxed prototypes, good enough to enumerate hops and run quick MLIP NEBs, not reference data.
Their CIFs live in ``alem/data/hosts/`` (written by :func:`write_prototype_hosts`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pymatgen.core import Lattice, Structure


def layered_licoo2() -> Structure:
    """O3-layered LiCoO2 (R-3m, a = 2.82 Å, c = 14.05 Å), primitive cell of 4 atoms."""
    conventional = Structure.from_spacegroup(
        "R-3m", Lattice.hexagonal(2.82, 14.05), ["Li", "Co", "O"], [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2604]]
    )
    return conventional.get_primitive_structure()


def antifluorite_li2o() -> Structure:
    """Antifluorite Li2O (Fm-3m, a = 4.61 Å), primitive cell of 3 atoms."""
    conventional = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.61), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]]
    )
    return conventional.get_primitive_structure()


def spinel_limn2o4() -> Structure:
    """Spinel LiMn2O4 (Fd-3m origin choice 1, a = 8.24 Å, O x = 0.388), primitive cell of 14 atoms."""
    conventional = Structure.from_spacegroup(
        "Fd-3m", Lattice.cubic(8.24), ["Li", "Mn", "O"], [[0, 0, 0], [0.625] * 3, [0.388] * 3]
    )
    return conventional.get_primitive_structure()


def rocksalt_lif() -> Structure:
    """Rocksalt LiF (Fm-3m, a = 4.03 Å), primitive cell of 2 atoms."""
    conventional = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return conventional.get_primitive_structure()


def antifluorite_li2s() -> Structure:
    """Antifluorite Li2S (Fm-3m, a = 5.72 Å), primitive cell of 3 atoms."""
    conventional = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.72), ["Li", "S"], [[0.25, 0.25, 0.25], [0, 0, 0]]
    )
    return conventional.get_primitive_structure()


def alpha_li3n() -> Structure:
    """alpha-Li3N (P6/mmm, a = 3.65 Å, c = 3.88 Å): Li2N layers joined by Li, 4 atoms."""
    return Structure.from_spacegroup(
        "P6/mmm", Lattice.hexagonal(3.65, 3.88), ["N", "Li", "Li"], [[0, 0, 0], [0, 0, 0.5], [1 / 3, 2 / 3, 0]]
    )


def olivine_lifepo4() -> Structure:
    """Olivine LiFePO4 (Pnma, a = 10.33, b = 6.01, c = 4.69 Å), 28 atoms."""
    return Structure.from_spacegroup(
        "Pnma",
        Lattice.orthorhombic(10.33, 6.01, 4.69),
        ["Li", "Fe", "P", "O", "O", "O"],
        [[0, 0, 0], [0.282, 0.25, 0.975], [0.095, 0.25, 0.418], [0.097, 0.25, 0.743], [0.457, 0.25, 0.206], [0.166, 0.046, 0.285]],
    )


PROTOTYPES: dict[str, Callable[[], Structure]] = {
    "LiCoO2_layered": layered_licoo2,
    "Li2O_antifluorite": antifluorite_li2o,
    "LiMn2O4_spinel": spinel_limn2o4,
    "LiF_rocksalt": rocksalt_lif,
    "Li2S_antifluorite": antifluorite_li2s,
    "Li3N_alpha": alpha_li3n,
    "LiFePO4_olivine": olivine_lifepo4,
}


def shipped_host_files() -> list[Path]:
    """The shipped host CIFs, in a stable order."""
    from alem import PACKAGE_DATA

    return sorted((PACKAGE_DATA / "hosts").glob("*.cif"))


def write_prototype_hosts(directory: Path) -> list[Path]:
    """Write every prototype as ``<name>.cif`` (how ``alem/data/hosts`` was made)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in PROTOTYPES.items():
        path = directory / f"{name}.cif"
        build().to(filename=str(path))
        paths.append(path)
    return paths
