"""The sister-label correction (alem.inference.sister_correction): the GP on the stack's residuals
with a host-identity kernel, the sister-aware CV folds, and the shipped model that carries it
(labelled sisters move a hop; a hop without one keeps the stack's prediction bit for bit)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from alem.inference.sister_correction import ResidualStore, SisterParams, correct, residual_of
from alem.training.cv import sister_folds

FLAT = SisterParams("ev", None, 1.0)


def _store(hosts, residuals, descriptors=None):
    n = len(hosts)
    descriptors = np.zeros((n, 3)) if descriptors is None else np.asarray(descriptors, dtype=float)
    return ResidualStore([f"l{k}" for k in range(n)], np.array(hosts, dtype=object), descriptors, np.asarray(residuals, dtype=float))


def test_a_hop_without_labelled_sisters_keeps_the_stack_prediction_bit_for_bit():
    store = _store(["A", "A"], [0.3, 0.5])
    mean, sigma = np.array([0.4123456789, 0.9]), np.array([0.21, 0.33])
    fixed = correct(FLAT, store, ["x", "y"], ["B", "C"], np.zeros((2, 3)), mean, sigma)
    assert fixed.mean_ev.tobytes() == mean.tobytes() and fixed.sigma_ev.tobytes() == sigma.tobytes()
    assert not fixed.n_sisters.any() and not fixed.shift.any()


def test_sisters_shift_a_hop_by_the_shrunk_mean_of_their_residuals_and_narrow_its_sigma():
    mean, sigma = np.array([1.0]), np.array([0.4])
    one = correct(FLAT, _store(["A"], [0.2]), ["x"], ["A"], np.zeros((1, 3)), mean, sigma)
    # one sister, flat kernel, ratio 1: half its residual; the host part's variance halves
    assert one.mean_ev[0] == pytest.approx(1.1) and one.n_sisters[0] == 1
    assert one.sigma_ev[0] == pytest.approx(0.4 * np.sqrt(0.75))
    three = correct(FLAT, _store(["A"] * 3, [0.2] * 3), ["x"], ["A"], np.zeros((1, 3)), mean, sigma)
    assert three.mean_ev[0] == pytest.approx(1.0 + 0.2 * 3 / 4)  # more sisters, less shrinkage
    assert three.sigma_ev[0] < one.sigma_ev[0]
    off = correct(SisterParams("ev", None, 0.0), _store(["A"], [0.2]), ["x"], ["A"], np.zeros((1, 3)), mean, sigma)
    assert off.mean_ev[0] == 1.0 and off.sigma_ev[0] == 0.4
    kept = correct(SisterParams("ev", None, 1.0, narrow_sigma=False), _store(["A"], [0.2]), ["x"], ["A"], np.zeros((1, 3)), mean, sigma)
    assert kept.mean_ev[0] == pytest.approx(1.1) and kept.sigma_ev[0] == 0.4


def test_sigma_factor_scales_sigma_of_hops_with_labelled_sisters_only():
    mean, sigma = np.array([1.0, 0.7]), np.array([0.4, 0.3])
    store = _store(["A"], [0.2])
    kept = correct(SisterParams("ev", None, 1.0, narrow_sigma=False, sigma_factor=1.5), store, ["x", "y"], ["A", "B"],
                   np.zeros((2, 3)), mean, sigma)
    assert kept.sigma_ev[0] == pytest.approx(0.4 * 1.5) and kept.mean_ev[0] == pytest.approx(1.1)
    assert kept.sigma_ev[1] == 0.3 and kept.mean_ev[1] == 0.7  # no labelled sister: the stack's, bit for bit
    narrowed = correct(dataclasses.replace(FLAT, sigma_factor=1.5), store, ["x"], ["A"], np.zeros((1, 3)), mean[:1], sigma[:1])
    assert narrowed.sigma_ev[0] == pytest.approx(0.4 * np.sqrt(0.75) * 1.5)


def test_a_card_section_without_sigma_factor_keeps_the_stack_sigma():
    from alem.model_dir import SisterCorrectionSection

    old = {"space": "ev", "length_scale": 0.03, "variance_ratio": 3.0, "narrow_sigma": False,
           "descriptor_mean": [0.0], "descriptor_std": [1.0]}
    assert SisterCorrectionSection.model_validate(old).sigma_factor == 1.0
    with pytest.raises(ValueError):
        SisterCorrectionSection.model_validate({**old, "sigma_factor": 0.0})


def test_dissimilar_sisters_count_less_and_a_hop_never_reads_its_own_residual():
    near_far = _store(["A", "A"], [0.3, -0.3], [[0.0, 0, 0], [5.0, 5, 5]])
    fixed = correct(SisterParams("ev", 0.5, 10.0), near_far, ["x"], ["A"], np.zeros((1, 3)), np.array([1.0]), np.array([0.2]))
    assert fixed.mean_ev[0] == pytest.approx(1.0 + 0.3 * 10 / 11, abs=1e-6)  # the far one's kernel is ~0
    own = correct(FLAT, _store(["A"], [0.2]), ["l0"], ["A"], np.zeros((1, 3)), np.array([1.0]), np.array([0.2]))
    assert own.mean_ev[0] == 1.0 and own.n_sisters[0] == 0


def test_log_space_residuals_scale_the_mean_and_its_sigma():
    assert residual_of(np.array([0.5]), np.array([0.25]), "log")[0] == pytest.approx(np.log(2))
    fixed = correct(SisterParams("log", None, 1e9), _store(["A"], [np.log(2)]), ["x"], ["A"], np.zeros((1, 3)),
                    np.array([0.3]), np.array([0.1]))
    assert fixed.mean_ev[0] == pytest.approx(0.6, rel=1e-6)


def test_sister_folds_hold_out_hops_whose_compound_keeps_others_in_training():
    from alem.hops import load_training_hops

    groups = [h.group for h in load_training_hops()]
    folds = sister_folds(groups, 5, seed=0)
    sizes = Counter(groups)
    assert all((f == -1) == (sizes[g] == 1) for g, f in zip(groups, folds))
    for fold in range(5):
        held = Counter(g for g, f in zip(groups, folds) if f == fold)
        assert held and all(n < sizes[g] for g, n in held.items()), "a compound held out whole"
        small = [g for g in held if sizes[g] <= 5]
        assert all(held[g] == 1 for g in small)  # one at a time while the compound fits the folds


@pytest.fixture(scope="module")
def shipped():
    from alem.ensemble import Ensemble

    return Ensemble.load()


@pytest.fixture(scope="module")
def literature():
    from alem.hops import load_training_hops

    return {h.hop_id: h for h in load_training_hops()}


def test_the_shipped_model_corrects_a_new_hop_of_a_known_host_and_nothing_else(shipped, literature):
    assert shipped.sister is not None and len(shipped.sister.store) == shipped.card["n_training_hops"]
    known = literature["em-0010"]
    new_in_known_host = dataclasses.replace(known, hop_id="new-0010", barrier_ev=None)
    elsewhere = dataclasses.replace(known, hop_id="new-0010b", group="a host nobody labelled", barrier_ev=None)
    prediction = shipped.predict([new_in_known_host, elsewhere, known], device="cpu")
    assert prediction.n_sisters.tolist()[1:] == [0, 0]  # a labelled (training) hop keeps its stack prediction
    assert prediction.n_sisters[0] > 0 and prediction.mean_ev[0] != prediction.stack_mean_ev[0]
    assert prediction.mean_ev[1] == prediction.stack_mean_ev[1] == prediction.stack_mean_ev[0]


def test_the_shipped_sigma_factor_widens_hops_of_known_hosts_and_no_other(shipped, literature):
    from alem.training.sister import DEFAULT_SISTER_PARAMS

    factor = shipped.sister.params.sigma_factor
    assert factor == shipped.model_card.sister_correction.sigma_factor == DEFAULT_SISTER_PARAMS.sigma_factor > 1.0
    known = literature["em-0010"]
    hops = [dataclasses.replace(known, hop_id="new-0010", barrier_ev=None),
            dataclasses.replace(known, hop_id="new-0010b", group="a host nobody labelled", barrier_ev=None)]
    widened = shipped.predict(hops, device="cpu")
    saved = shipped.sister
    shipped.sister = dataclasses.replace(saved, params=dataclasses.replace(saved.params, sigma_factor=1.0))
    try:
        plain = shipped.predict(hops, device="cpu")
    finally:
        shipped.sister = saved
    assert widened.std_ev[0] == pytest.approx(plain.std_ev[0] * factor) and widened.mean_ev[0] == plain.mean_ev[0]
    assert widened.std_ev[1] == plain.std_ev[1] and widened.mean_ev[1] == plain.mean_ev[1]


def test_labels_passed_in_move_their_sisters_by_the_gp_posterior_and_leave_other_hosts_alone(shipped, literature):
    ensemble = shipped
    saved = ensemble.sister
    ensemble.sister = dataclasses.replace(saved, params=FLAT)
    try:
        labelled = dataclasses.replace(literature["em-0169"], hop_id="c-1", group="campaign host")
        sister = dataclasses.replace(literature["em-0227"], hop_id="c-2", group="campaign host", barrier_ev=None)
        other = dataclasses.replace(literature["em-0087"], hop_id="c-3", group="another host", barrier_ev=None)
        before = ensemble.predict([sister, other], device="cpu")
        after = ensemble.predict([sister, other], device="cpu", labelled=[labelled])
        stack_of_label = ensemble.predict([dataclasses.replace(labelled, barrier_ev=None)], device="cpu").mean_ev[0]
        assert after.mean_ev[0] == pytest.approx(before.mean_ev[0] + (labelled.barrier_ev - stack_of_label) / 2)
        assert after.std_ev[0] == pytest.approx(before.std_ev[0] * np.sqrt(0.75))
        assert after.mean_ev[1] == before.mean_ev[1] and after.std_ev[1] == before.std_ev[1]
        draws_before = ensemble.sample([sister, other], 64, seed=3, device="cpu")
        draws_after = ensemble.sample([sister, other], 64, seed=3, device="cpu", labelled=[labelled])
        assert np.array_equal(draws_before[:, 1], draws_after[:, 1]) and not np.allclose(draws_before[:, 0], draws_after[:, 0])
        # a label of a hop the model was trained on teaches nothing (its residual would be in-sample)
        trained = dataclasses.replace(literature["em-0169"], group="campaign host")
        ignored = ensemble.predict([sister, other], device="cpu", labelled=[trained])
        assert ignored.mean_ev.tolist() == before.mean_ev.tolist() and not ignored.n_sisters.any()
    finally:
        ensemble.sister = saved


def test_a_card_without_the_section_loads_a_model_without_correction(scratch_ensemble, tmp_path):
    import json
    import shutil

    from alem.ensemble import Ensemble
    from alem.model_dir import SISTER_RESIDUALS_FILENAME, card_path

    copy = tmp_path / "old"
    shutil.copytree(scratch_ensemble, copy)
    card = json.loads(card_path(copy).read_text())
    assert "sister_correction" in card  # the recipe's CV writes it
    del card["sister_correction"]
    card_path(copy).write_text(json.dumps(card, indent=2))
    (copy / SISTER_RESIDUALS_FILENAME).unlink()
    old = Ensemble.load(copy)
    assert old.sister is None and "sister_correction" not in old.card
