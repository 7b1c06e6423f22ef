"""jobflow jobs of alem's VASP NEB flow that run on the compute side next to atomate2's.

- :func:`collect_vasp_neb_output` builds the NEB document the way atomate2's
  ``collect_neb_output`` does (emmet ``NebTaskDoc.from_directories``) and repairs its ``state``
  (emmet-core 0.87.x bug, see :func:`frame_states`);
- :func:`images_from_previous_neb` continues a fizzled NEB from the images it reached (CONTCARs);
- :func:`endpoints_on_relaxed_host` puts the NEB cell on a relaxed host lattice.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
from jobflow import job
from monty.os.path import zpath
from pymatgen.core import Lattice, Structure

from alem.neb.schemas import ENDPOINTS_FILE, STATE_FROM_CALCULATIONS_TAG, frame_states


@job
def collect_vasp_neb_output(endpoint_dirs: list[str], neb_dir: str):
    """The NEB ``NebTaskDoc`` of the endpoint relaxations and the NEB run, with a true ``state``.

    emmet-core 0.87.3 BUG (workaround, remove once emmet fixes it): ``NebTaskDoc.from_directories``
    takes each endpoint's state as ``getattr(calc, "state", TaskState.FAILED)``, but emmet's
    ``Calculation`` has no ``state`` field (it has ``has_vasp_completed``), so every document
    it builds says "failed" even when every calculation finished. Here the calculations are
    parsed (``store_calculations=True``), the state is recomputed from each one's
    ``has_vasp_completed`` (what emmet itself uses for the images), and the bulky calculations
    are dropped again, as atomate2's collector does (``store_calculations=False``).
    """
    from atomate2.utils.path import strip_hostname
    from emmet.core.neb import NebTaskDoc
    from emmet.core.vasp.task_valid import TaskState

    endpoint_dirs = [strip_hostname(d) for d in endpoint_dirs]
    document = NebTaskDoc.from_directories(endpoint_dirs, strip_hostname(neb_dir), store_calculations=True)
    # atomate2's NEB directory holds only POSCARs in 00/NN: say where the endpoint OUTCARs are,
    # so outcome_from_vasp_dir(neb_dir) works on it alone.
    with contextlib.suppress(OSError):
        (Path(strip_hostname(neb_dir)) / ENDPOINTS_FILE).write_text(json.dumps({"endpoint_dirs": endpoint_dirs}))
    states = frame_states(document.calculations or [])
    failed = [i for i, state in enumerate(states) if state != TaskState.SUCCESS.value]
    document.state = TaskState.FAILED if failed or not states else TaskState.SUCCESS
    document.tags = [*(document.tags or []), STATE_FROM_CALCULATIONS_TAG,
                     *(f"alem: frame {i} has_vasp_completed={states[i]}" for i in failed)]
    document.calculations = None
    document.objects = None
    return document


def _read_structure(directory: Path, names: tuple[str, ...]) -> Structure | None:
    for name in names:
        path = Path(zpath(str(directory / name)))
        if path.is_file() and path.stat().st_size > 0:
            return Structure.from_file(path)
    return None


def previous_images(neb_dir: str | Path) -> list[Structure]:
    """Endpoints (``00``/``NN`` POSCAR) and the images a NEB run reached (``01``.. CONTCAR, POSCAR if
    an image never wrote one), with the run's own MAGMOM as ``magmom`` so it restarts from the
    same magnetic initialisation."""
    from pymatgen.io.vasp import Incar

    neb_dir = Path(neb_dir)
    image_dirs = sorted(p for p in neb_dir.iterdir() if p.is_dir() and p.name.isdigit() and len(p.name) == 2)
    if len(image_dirs) < 3:
        raise FileNotFoundError(f"{neb_dir}: no NEB image directories 00, 01, ... to continue from")
    images = []
    for index, image_dir in enumerate(image_dirs):
        terminal = index in (0, len(image_dirs) - 1)
        structure = _read_structure(image_dir, ("POSCAR",) if terminal else ("CONTCAR", "POSCAR"))
        if structure is None:
            raise FileNotFoundError(f"{image_dir}: neither CONTCAR nor POSCAR to continue from")
        images.append(structure)
    incar_path = Path(zpath(str(neb_dir / "INCAR")))
    magmom = Incar.from_file(incar_path).get("MAGMOM") if incar_path.is_file() else None
    if isinstance(magmom, list) and len(magmom) == len(images[0]):
        for image in images:
            image.add_site_property("magmom", [float(m) for m in magmom])
    return images


@job
def images_from_previous_neb(neb_dir: str) -> list[Structure]:
    """The images of a fizzled NEB run (see :func:`previous_images`), to continue from."""
    from atomate2.utils.path import strip_hostname

    return previous_images(strip_hostname(neb_dir))


def on_lattice(structure: Structure, lattice: Lattice) -> Structure:
    """``structure`` with the same fractional coordinates on ``lattice``."""
    return Structure(lattice, structure.species, structure.frac_coords, site_properties=structure.site_properties)


@job
def endpoints_on_relaxed_host(initial: Structure, final: Structure, host: Structure, relaxed_host: Structure) -> list[Structure]:
    """The NEB endpoints strained like the host cell was by its relaxation.

    The NEB cell is an integer supercell of ``host``: its lattice is ``M @ host.lattice``.
    The relaxed NEB cell is ``M @ relaxed_host.lattice`` with the same fractional coordinates.
    """
    supercell = np.linalg.solve(host.lattice.matrix.T, initial.lattice.matrix.T).T
    rounded = np.round(supercell)
    if np.abs(supercell - rounded).max() > 1e-3:
        raise ValueError("the NEB cell is not an integer supercell of the host cell")
    lattice = Lattice(rounded @ relaxed_host.lattice.matrix)
    return [on_lattice(initial, lattice), on_lattice(final, lattice)]
