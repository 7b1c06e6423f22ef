"""Shared pytest fixtures. Each area keeps its additions in its own clearly marked section."""

import pytest

# ---------------------------------------------------------------- store / campaign (alem.store, alem.campaign)


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


@pytest.fixture
def tiny_hop():
    """Factory: ``tiny_hop(hop_id, ion_x=0.4, barrier_ev=None)``."""
    return make_tiny_hop


# ---------------------------------------------------------------- NEB workflows / backends (alem.neb, alem.backends)


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


@pytest.fixture
def li2o_hop():
    return make_li2o_vacancy_hop()


@pytest.fixture
def fast_mlip_preset():
    """The shipped CHGNet preset made cheap for tests: no supercell, 3 images, loose fmax."""
    from alem.neb.presets import load_preset

    preset = load_preset("mlip_chgnet")
    preset.supercell.min_image_distance_a = 0.0
    preset.neb.n_images = 3
    preset.neb.fmax_ev_a = 0.1
    preset.neb.max_steps = 150
    preset.neb.endpoint_max_steps = 100
    return preset


# ---------------------------------------------------------------- predictor (alem.hops io, alem.graphs, alem.nn, alem.training)


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


@pytest.fixture
def rocksalt():
    """Factory: ``rocksalt(hop_id, ion='Li', barrier_ev=0.5, neighbor_rank=0)``."""
    return rocksalt_hop



@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """A real pre-training run on the first 40 structures of the shipped corpus, tiny backbone."""
    import gzip

    from alem import REPO_ROOT
    from alem.nn import BackboneConfig
    from alem.training.pretrain import PretrainConfig, pretrain

    out = tmp_path_factory.mktemp("pretrained")
    corpus = out / "corpus.jsonl.gz"
    with gzip.open(REPO_ROOT / "data" / "pretrain_multiprop.jsonl.gz", "rt") as src, gzip.open(corpus, "wt") as dst:
        for _, line in zip(range(40), src):
            dst.write(line)
    config = PretrainConfig(epochs=6, batch_size=8, learning_rate=3e-3, backbone=BackboneConfig(hidden=16, n_layers=2, n_rbf=12))
    card = pretrain(corpus, out, config, progress=False)
    return out, card


@pytest.fixture(scope="session")
def tiny_ensemble(tiny_pretrained, tmp_path_factory):
    """A 2-member ensemble fine-tuned on 30 small literature hops (frozen tiny backbone)."""
    from alem.hops import load_training_hops
    from alem.training.finetune import FinetuneConfig, train_ensemble

    hops = sorted(load_training_hops(), key=lambda h: len(h.initial))[:30]
    config = FinetuneConfig(freeze="frozen", epochs=20, l1_warmup_epochs=5)
    return train_ensemble(hops, tmp_path_factory.mktemp("ens") / "ensemble", n_members=2, config=config,
                          pretrained_path=tiny_pretrained[0], calibration_scale=1.0, progress=False)


@pytest.fixture(scope="session")
def scratch_ensemble(tmp_path_factory):
    """A real 2-member ensemble trained from scratch for 3 epochs on 20 small shipped hops, with a
    2-fold grouped CV: its card holds real CV metrics and a fitted σ scale, and the out-of-fold
    predictions are stored with it (oof_predictions.npz)."""
    from alem.hops import load_training_hops
    from alem.training.finetune import FinetuneConfig
    from alem.training.recipe import calibrated_ensemble

    hops = [h for h in load_training_hops() if h.n_sites <= 60][:20]
    config = FinetuneConfig(freeze="scratch", epochs=3, l1_warmup_epochs=1)
    out = tmp_path_factory.mktemp("ens") / "tiny"
    calibrated_ensemble(hops, out, config, n_members=2, cv_folds=2, progress=False)
    return out
