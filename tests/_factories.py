"""Small real hops built with pymatgen, shared by the tests (the fixtures in ``conftest.py`` hand
them out; a test may also import them directly)."""

from __future__ import annotations


def make_tiny_hop(hop_id: str, ion_x: float = 0.4, barrier_ev: float | None = None):
    """A valid 3-site Li hop in a 5 Å cubic O host; ``ion_x`` sets where the Li ends (distinct
    values give distinct hops)."""
    from pymatgen.core import Lattice, Structure

    from alem.hops import Hop

    lattice = Lattice.cubic(5.0)
    host = [[0.5, 0.5, 0.5], [0.0, 0.5, 0.5]]
    initial = Structure(lattice, ["Li", "O", "O"], [[0.0, 0.0, 0.0], *host])
    final = Structure(lattice, ["Li", "O", "O"], [[ion_x, 0.0, 0.0], *host])
    return Hop(hop_id, initial, final, "Li", barrier_ev=barrier_ev)


def make_li2o_vacancy_hop(hop_id: str = "li2o-vacancy"):
    """Li vacancy hop in antifluorite Li2O (conventional cell, 11 atoms after the vacancy):
    the Li at site 0 moves 2.3 Å to the neighbouring vacant Li site."""
    from pymatgen.core import Lattice, Structure

    from alem.hops import Hop

    cell = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.61), ["O", "Li"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    li_sites = [i for i, site in enumerate(cell) if site.specie.symbol == "Li"]
    ion = li_sites[0]
    vacancy = min(li_sites[1:], key=lambda j: cell.get_distance(ion, j))
    host = [site for i, site in enumerate(cell) if i not in (ion, vacancy)]
    initial = Structure.from_sites([cell[ion], *host])
    final = initial.copy()
    final.replace(0, "Li", cell[vacancy].frac_coords)
    return Hop(hop_id, initial, final, "Li")


def rocksalt_hop(hop_id: str = "rs-1", ion: str = "Li", barrier_ev: float | None = 0.5, neighbor_rank: int = 0):
    """A Li (or other ion) vacancy hop in a 2x2x2 rocksalt LiO-type host (62 sites + the ion).

    The ion at Li site 0 moves into the ``neighbor_rank``-th nearest vacant Li site; different
    ranks give hops of different length in the same host.
    """
    import numpy as np
    from pymatgen.core import Lattice, Structure

    from alem.hops import Hop

    cell = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), [ion, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cell.make_supercell([2, 2, 2])
    ion_sites = [i for i, s in enumerate(cell) if s.specie.symbol == ion]
    start = ion_sites[0]
    distances = [(cell.get_distance(start, j), j) for j in ion_sites[1:]]
    shells = sorted({round(d, 3) for d, _ in distances})
    target = min(j for d, j in distances if round(d, 3) == shells[neighbor_rank])
    host_indices = [i for i in range(len(cell)) if i not in (start, target)]
    species = [ion] + [cell[i].specie.symbol for i in host_indices]
    host_frac = np.array([cell[i].frac_coords for i in host_indices])
    initial = Structure(cell.lattice, species, np.vstack([cell[start].frac_coords, host_frac]))
    final = Structure(cell.lattice, species, np.vstack([cell[target].frac_coords, host_frac]))
    return Hop(hop_id, initial, final, ion, barrier_ev=barrier_ev, group=f"rocksalt-{ion}")


def train_tiny_ensemble(out, hops):
    """A real 2-member ensemble trained from scratch for 3 epochs on ``hops`` (seconds for two dozen
    small hops): good enough to rank candidates; the loop retrains it with the same recipe."""
    from alem.model_dir import EnsembleRecipe
    from alem.training.finetune import FinetuneConfig, train_ensemble

    config = FinetuneConfig(freeze="scratch", epochs=3, l1_warmup_epochs=1)
    return train_ensemble(list(hops), out, EnsembleRecipe(n_members=2, finetune=config), progress=False)


#: Libraries a read command must not load: seconds of start-up on a login node, and none of them
#: is needed to show what the store and the kept rows, networks and pictures hold.
HEAVY_MODULES = ("torch", "torch_geometric", "botorch", "pymatgen.analysis.diffusion", "atomate2")


def modules_loaded_by(campaign_dir, *args: str, watch: tuple[str, ...] = HEAVY_MODULES) -> dict:
    """Run ``alem ARGS --campaign DIR`` in a fresh Python process: its exit code and which of
    ``watch`` it imported."""
    import json
    import subprocess
    import sys

    script = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from alem.cli import app\n"
        f"result = CliRunner().invoke(app, [*{list(args)!r}, '--campaign', {str(campaign_dir)!r}])\n"
        f"print(json.dumps({{'exit': result.exit_code, 'loaded': [m for m in {tuple(watch)!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
