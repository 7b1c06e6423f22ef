"""Shared pytest fixtures. Each area keeps its additions in its own clearly marked section.

The structures the fixtures hand out are built by ``tests/_factories.py``; a test that needs one
directly imports it from there (never from this file)."""

import pytest

from tests._factories import make_li2o_vacancy_hop, make_tiny_hop, rocksalt_hop

# ---------------------------------------------------------------- store / campaign (alem.store, alem.campaign)


@pytest.fixture
def tiny_hop():
    """Factory: ``tiny_hop(hop_id, ion_x=0.4, barrier_ev=None)``."""
    return make_tiny_hop


# ---------------------------------------------------------------- NEB workflows / backends (alem.neb, alem.backends)


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
    from alem.model_dir import Calibration, Combination, EnsembleRecipe
    from alem.training.finetune import FinetuneConfig, train_ensemble

    hops = sorted(load_training_hops(), key=lambda h: len(h.initial))[:30]
    config = FinetuneConfig(freeze="frozen", epochs=20, l1_warmup_epochs=5)
    recipe = EnsembleRecipe(n_members=2, finetune=config, pretrained_path=str(tiny_pretrained[0]))
    return train_ensemble(hops, tmp_path_factory.mktemp("ens") / "ensemble", recipe, Combination(calibration=Calibration(sigma_scale=1.0)),
                          progress=False)


@pytest.fixture(scope="session")
def scratch_ensemble(tmp_path_factory):
    """A real 2-member ensemble trained from scratch for 3 epochs on 20 small shipped hops, with a
    2-fold grouped CV: its card holds real CV metrics and a fitted σ scale, and the out-of-fold
    predictions are stored with it (oof_predictions.npz)."""
    from alem.hops import load_training_hops
    from alem.model_dir import EnsembleRecipe
    from alem.training.finetune import FinetuneConfig
    from alem.training.recipe import calibrated_ensemble

    hops = [h for h in load_training_hops() if h.n_sites <= 60][:20]
    config = FinetuneConfig(freeze="scratch", epochs=3, l1_warmup_epochs=1)
    out = tmp_path_factory.mktemp("ens") / "tiny"
    calibrated_ensemble(hops, out, EnsembleRecipe(n_members=2, finetune=config, cv_folds=2), progress=False)
    return out


@pytest.fixture(scope="session")
def replay_ensemble_dir(tmp_path_factory):
    """A real 2-member ensemble trained from scratch for 3 epochs on 24 small shipped hops (~2 s):
    good enough to rank the candidates of a replay campaign (tests/_replay_campaign.py); the loop
    retrains it with the same recipe."""
    from tests._factories import train_tiny_ensemble
    from tests._replay_campaign import TINY_TRAINING_HOPS, small_dataset_hops

    return train_tiny_ensemble(tmp_path_factory.mktemp("ensemble") / "tiny", small_dataset_hops(TINY_TRAINING_HOPS))


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A folder of jobflow-remote projects (tests/_backends.py writes them), set as its projects folder."""
    import jobflow_remote

    folder = tmp_path / "projects"
    folder.mkdir()
    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
    return folder


