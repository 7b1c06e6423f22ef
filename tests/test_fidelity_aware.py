"""Fidelity-aware prediction: the shipped model reads a MACE-MP NEB barrier when it is given one,
keeps the structure-only prediction otherwise, never mixes another potential's barriers in, and
loop retraining rebuilds the add-on from paired cheap barriers."""

import json
import shutil
import warnings

import numpy as np
import pytest

from alem import REPO_ROOT
from alem.ensemble import Ensemble
from alem.hops import load_training_hops
from alem.hops.fidelity import SHIPPED_CHEAP_FIDELITY, CheapBarrier
from alem.hops.io import load_shipped_cheap_barriers
from alem.inference.fidelity_aware import (
    FIDELITY_CARD_KEY,
    FIDELITY_TREES_FILENAME,
    FORMS,
    form_barrier,
    form_target,
)

ENSEMBLE_DIR = REPO_ROOT / "models" / "ensemble"


@pytest.fixture(scope="module")
def shipped():
    return Ensemble.load()


@pytest.fixture(scope="module")
def hops_and_pairs():
    hops = load_training_hops()[10:16]
    pairs = load_shipped_cheap_barriers()
    return hops, {h.hop_id: pairs[h.hop_id] for h in hops}


@pytest.fixture(scope="module")
def structure_only(shipped, hops_and_pairs):
    return shipped.predict(hops_and_pairs[0], device="cpu")


def test_forms_invert_their_targets():
    y = np.array([0.05, 0.4, 1.3, 3.0])
    cheap = np.array([0.1, 0.9, 0.7, 2.5])
    for form in FORMS:
        np.testing.assert_allclose(form_barrier(form, form_target(form, y, cheap), cheap), y)


def test_shipped_model_reads_mace_barriers(shipped):
    assert shipped.cheap_fidelity == SHIPPED_CHEAP_FIDELITY
    (cheap,) = shipped.cheap_mixtures
    fidelity_trees = [c for c in cheap.mixture.components if c not in shipped.structure.components]
    assert len(fidelity_trees) == len(shipped.card[FIDELITY_CARD_KEY]["tree_specs"])


def test_a_cheap_barrier_changes_only_its_own_hop(shipped, hops_and_pairs, structure_only):
    hops, pairs = hops_and_pairs
    given = {hops[0].hop_id: pairs[hops[0].hop_id], hops[3].hop_id: pairs[hops[3].hop_id]}
    prediction = shipped.predict(hops, cheap_barriers=given, device="cpu")
    used = np.array([h.hop_id in given for h in hops])
    np.testing.assert_array_equal(prediction.used_cheap_barrier, used)
    assert not structure_only.used_cheap_barrier.any()
    # hops without a cheap barrier: bit-identical to the structure-only prediction
    np.testing.assert_array_equal(prediction.mean_ev[~used], structure_only.mean_ev[~used])
    np.testing.assert_array_equal(prediction.std_ev[~used], structure_only.std_ev[~used])
    np.testing.assert_array_equal(prediction.prob_good[~used], structure_only.prob_good[~used])
    # hops with one: another prediction, and another cheap barrier moves it
    assert (prediction.mean_ev[used] != structure_only.mean_ev[used]).all()
    raised = {k: CheapBarrier(v.fidelity, v.barrier_ev + 1.0) for k, v in given.items()}
    higher = shipped.predict(hops, cheap_barriers=raised, device="cpu")
    assert (higher.mean_ev[used] > prediction.mean_ev[used]).all()
    assert (higher.std_ev > 0).all()


def test_a_barrier_of_another_potential_warns_and_is_ignored(shipped, hops_and_pairs, structure_only):
    hops, pairs = hops_and_pairs
    chgnet = {k: CheapBarrier("mlip:CHGNet", v.barrier_ev) for k, v in pairs.items()}
    with pytest.warns(UserWarning, match=r"mlip:CHGNet.*mlip:MACE-MP"):
        prediction = shipped.predict(hops, cheap_barriers=chgnet, device="cpu")
    assert not prediction.used_cheap_barrier.any()
    np.testing.assert_array_equal(prediction.mean_ev, structure_only.mean_ev)
    np.testing.assert_array_equal(prediction.std_ev, structure_only.std_ev)


def test_a_model_without_the_add_on_ignores_cheap_barriers(tmp_path, hops_and_pairs, structure_only):
    old = tmp_path / "old"
    shutil.copytree(ENSEMBLE_DIR, old, ignore=shutil.ignore_patterns(FIDELITY_TREES_FILENAME, "*fidelity*.json", "*.png"))
    card = json.loads((old / "model_card.json").read_text())
    del card[FIDELITY_CARD_KEY]
    (old / "model_card.json").write_text(json.dumps(card))
    ensemble = Ensemble.load(old)
    assert ensemble.cheap_fidelity is None
    hops, pairs = hops_and_pairs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prediction = ensemble.predict(hops, cheap_barriers=pairs, device="cpu")
    assert not prediction.used_cheap_barrier.any()
    np.testing.assert_array_equal(prediction.mean_ev, structure_only.mean_ev)


def test_retraining_with_cheap_barriers_builds_the_add_on(tmp_path, shipped):
    from alem.model_dir import Combination, EnsembleRecipe
    from alem.training.finetune import FinetuneConfig, train_ensemble

    hops = load_training_hops()[:30]
    pairs = load_shipped_cheap_barriers()
    # a campaign's own pair of the same potential joins; one of another potential is left out
    cheap = {h.hop_id: pairs[h.hop_id] for h in hops[:24]}
    cheap[hops[24].hop_id] = CheapBarrier(SHIPPED_CHEAP_FIDELITY, 0.5)
    cheap[hops[25].hop_id] = CheapBarrier("mlip:CHGNet", 0.5)
    with pytest.warns(UserWarning, match="mlip:CHGNet"):
        path = train_ensemble(
            hops, tmp_path / "v2", EnsembleRecipe(n_members=1, finetune=FinetuneConfig(epochs=1)), Combination.of(shipped.model_card),
            progress=False, cheap_barriers=cheap,
        )
    assert (path / FIDELITY_TREES_FILENAME).is_file()
    retrained = Ensemble.load(path)
    section = retrained.card[FIDELITY_CARD_KEY]
    assert retrained.cheap_fidelity == SHIPPED_CHEAP_FIDELITY and section["n_paired_hops"] == 25
    assert section["weights"] == shipped.card[FIDELITY_CARD_KEY]["weights"]
    prediction = retrained.predict(hops[:3], cheap_barriers=cheap, device="cpu")
    assert prediction.used_cheap_barrier.all() and np.isfinite(prediction.mean_ev).all()


def test_alem_predict_takes_cheap_barriers_from_a_file(tmp_path, hops_and_pairs, structure_only):
    from typer.testing import CliRunner

    from alem.cli import app
    from alem.hops import write_dataset

    runner = CliRunner()
    hops, pairs = hops_and_pairs
    hop_file = write_dataset(hops, tmp_path / "hops.json")
    plain = runner.invoke(app, ["predict", str(hop_file), "--json"])
    assert plain.exit_code == 0, plain.output
    plain_rows = json.loads(plain.stdout)
    assert "used_cheap_barrier" not in plain_rows[0]  # output unchanged without the option
    np.testing.assert_allclose([r["barrier_ev"] for r in plain_rows], structure_only.mean_ev, atol=1e-4)

    (tmp_path / "mace.json").write_text(json.dumps({hops[1].hop_id: pairs[hops[1].hop_id].barrier_ev}))
    result = runner.invoke(app, ["predict", str(hop_file), "--json", "--cheap-barriers", str(tmp_path / "mace.json"),
                                 "--cheap-fidelity", "mlip:MACE-MP"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["used_cheap_barrier"] for r in rows] == [i == 1 for i in range(len(hops))]
    assert rows[1]["barrier_ev"] != plain_rows[1]["barrier_ev"] and rows[0]["barrier_ev"] == plain_rows[0]["barrier_ev"]

    result = runner.invoke(app, ["predict", str(hop_file), "--cheap-barriers", str(tmp_path / "mace.json")])
    assert result.exit_code == 2 and "--cheap-fidelity" in result.output
    (tmp_path / "bad.csv").write_text("hop_id,barrier_ev\nem-0010,fast\n")
    result = runner.invoke(app, ["predict", str(hop_file), "--cheap-barriers", str(tmp_path / "bad.csv"),
                                 "--cheap-fidelity", "mlip:MACE-MP"])
    assert result.exit_code == 2
    assert "bad.csv: barrier of 'em-0010' is 'fast', not a number (eV)" in result.output.replace("\n", "")
