"""Pairing a potential with the model: ``alem calibrate`` logs one line per NEB and survives a
kill without running a hop twice, refuses to fit on too few pairs, fits and registers an add-on of
a new potential beside the shipped MACE-MP one; the model then reads each hop's barrier with the
add-on of its potential, falls back to structure-only (with one warning) for a potential it has no
add-on for and for barriers below the floor; ``alem doctor`` says when the screening potential has
no add-on; a real CHGNet NEB goes through the same calibration code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter

import numpy as np
import pytest

from alem import REPO_ROOT
from alem.campaign.calibrate import MIN_CALIBRATION_PAIRS, calibration_hops, run_calibration
from alem.campaign.fidelity_labels import calibration_log_for
from alem.hops.calibration_log import CalibrationLog
from alem.hops.fidelity import SHIPPED_CHEAP_FIDELITY, CheapBarrier
from alem.hops.io import load_shipped_cheap_barriers
from alem.inference.fidelity_aware import CHEAP_BARRIER_FLOOR_EV
from alem.model_dir import FIDELITY_TREES_FILENAME, ModelCard, default_ensemble_path
from alem.store import Store
from tests._replay_campaign import invoke, make_replay_campaign, replay_submissions

pytest_plugins = ["tests._slurm"]

CHGNET = "mlip:CHGNet"


def _mace_calibration_campaign(tmp_path, n_hops, delay_s):
    """A campaign screening with MACE-MP through a replay backend that answers with the shipped
    MACE-MP NEB barriers of the smallest training hops (each after ``delay_s``)."""
    hops = calibration_hops(n_hops)
    config, _ = make_replay_campaign(tmp_path, default_ensemble_path(), hops=hops)
    config.screening.fidelity = SHIPPED_CHEAP_FIDELITY
    config.screening.backend.kind = "replay"
    config.screening.backend.replay.dataset = config.backend.replay.dataset
    config.screening.backend.replay.barrier = "mace"
    config.screening.backend.replay.delay_s = delay_s
    config.save()
    return config, hops


def _log_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_calibrate_resumes_after_a_kill_without_running_a_hop_twice(tmp_path):
    config, hops = _mace_calibration_campaign(tmp_path, n_hops=6, delay_s=1.0)
    log = calibration_log_for(config, SHIPPED_CHEAP_FIDELITY).path
    command = [sys.executable, "-c", "from alem.cli import app; app()", "calibrate", "-C", str(config.campaign_dir),
               "--limit", "6", "--jobs", "2", "--no-fit", "--poll-s", "0.1", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and len(_log_lines(log)) >= 2):
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # mid-run: hops logged, two NEBs submitted and not logged
    first.wait()
    killed_at = len(_log_lines(log))
    assert 2 <= killed_at < 6

    result = invoke(config, "calibrate", "--limit", "6", "--jobs", "2", "--no-fit", "--poll-s", "0.1", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["done_before"] == killed_at and summary["run_now"] == 6 - killed_at
    lines = _log_lines(log)
    assert Counter(row["hop_id"] for row in lines) == Counter(h.hop_id for h in hops)  # each hop once
    assert set(replay_submissions(config).values()) == {1}  # each NEB submitted once, kill or not
    mace = load_shipped_cheap_barriers()
    for row in lines:
        assert row["barrier_ev"] == pytest.approx(mace[row["hop_id"]].barrier_ev, abs=1e-6)
        assert row["converged"] and row["failure_reason"] is None and row["fidelity"] == SHIPPED_CHEAP_FIDELITY
        assert {"reverse_barrier_ev", "seconds", "n_sites", "preset"} <= set(row)

    # 6 pairs: no add-on, and the message says how many are needed
    refused = invoke(config, "calibrate", "--fit-only")
    assert refused.exit_code != 0
    assert f"only 6 usable {SHIPPED_CHEAP_FIDELITY}" in refused.output and f"at least {MIN_CALIBRATION_PAIRS}" in refused.output


def test_a_torn_last_line_is_skipped_and_the_next_line_stays_whole(tmp_path):
    log = CalibrationLog(tmp_path / "x.jsonl")
    log.append({"hop_id": "a", "fidelity": CHGNET, "barrier_ev": 0.3, "converged": True, "failure_reason": None})
    with open(log.path, "a") as handle:
        handle.write('{"hop_id": "b", "barr')  # killed mid-write
    log.append({"hop_id": "c", "fidelity": CHGNET, "barrier_ev": None, "converged": False, "failure_reason": "NEB state failed"})
    assert set(log.rows()) == {"a", "c"}
    assert set(log.pairs(CHGNET)) == {"a"}  # the failed NEB is logged, never paired


@pytest.fixture(scope="module")
def paired_campaign(tmp_path_factory):
    """A campaign screening with CHGNet whose calibration log holds CHGNet lines for 40 training
    hops, then ``alem calibrate --fit-only``: a new model version with a CHGNet add-on beside the
    shipped MACE-MP one. The barriers are the shipped MACE-MP values relabelled (a real potential's
    barriers of these hops; computing 40 CHGNet NEBs takes hours on a test machine)."""
    tmp_path = tmp_path_factory.mktemp("paired")
    hops = calibration_hops(12)
    config, _ = make_replay_campaign(tmp_path, default_ensemble_path(), hops=hops)
    config.screening.fidelity = CHGNET  # local backend, mlip_chgnet preset: the campaign default
    config.save()
    with Store.open(config.store_path) as store:
        from alem.campaign.model_versions import ensure_model_version

        ensure_model_version(store, config)
    from alem.doctor import check_screening_addon

    before = check_screening_addon(config)
    log = calibration_log_for(config, CHGNET)
    mace = load_shipped_cheap_barriers()
    paired = [h for h in calibration_hops(60) if h.hop_id in mace][:40]
    for hop in paired:
        log.append({"hop_id": hop.hop_id, "fidelity": CHGNET, "n_sites": hop.n_sites, "barrier_ev": mace[hop.hop_id].barrier_ev,
                    "reverse_barrier_ev": None, "converged": True, "failure_reason": None, "seconds": 1.0})
    result = invoke(config, "calibrate", "--fit-only", "--json")
    assert result.exit_code == 0, result.output
    return config, json.loads(result.stdout), before, check_screening_addon(config)


def test_calibrate_registers_a_version_with_an_add_on_of_the_new_potential(paired_campaign):
    config, summary, _, _ = paired_campaign
    with Store.open(config.store_path) as store:
        current = store.current_model()
        assert current.id == summary["model_version"] == 2
        assert any(e.kind == "calibrated" for e in store.events())
    card = ModelCard.load(summary["model_path"])
    assert card.cheap_fidelities == [SHIPPED_CHEAP_FIDELITY, CHGNET]
    (chgnet,) = card.fidelity_addons
    assert chgnet.n_paired_hops == summary["n_paired_hops"] >= MIN_CALIBRATION_PAIRS
    from pathlib import Path

    new, shipped = Path(summary["model_path"]), default_ensemble_path()
    assert (new / chgnet.trees_file).is_file() and chgnet.trees_file != FIDELITY_TREES_FILENAME
    # the shipped add-on is untouched
    assert (new / FIDELITY_TREES_FILENAME).read_bytes() == (shipped / FIDELITY_TREES_FILENAME).read_bytes()
    assert card.fidelity_aware == ModelCard.load(shipped).fidelity_aware


def test_doctor_warns_until_the_screening_potential_has_an_add_on(paired_campaign):
    _, _, before, after = paired_campaign
    assert before.status == "warning" and CHGNET in before.message and "alem calibrate" in before.message
    assert "model version 1" in before.message
    assert after.status == "ok" and "model version 2" in after.message


@pytest.fixture(scope="module")
def two_addon_ensemble(paired_campaign):
    from alem.ensemble import Ensemble

    return Ensemble.load(paired_campaign[1]["model_path"])


def test_each_hop_is_read_by_the_add_on_of_its_potential(two_addon_ensemble):
    from alem.ensemble import Ensemble

    shipped = Ensemble.load()
    hops = calibration_hops(200)[100:106]  # not among the 40 the CHGNet add-on was fitted on
    ids = [h.hop_id for h in hops]
    cheap = {
        ids[0]: CheapBarrier(SHIPPED_CHEAP_FIDELITY, 0.35),
        ids[1]: CheapBarrier(CHGNET, 0.42),
        ids[2]: CheapBarrier("mlip:SevenNet", 0.42),  # no add-on: structure-only, warned
        ids[3]: CheapBarrier(CHGNET, CHEAP_BARRIER_FLOOR_EV / 5),  # below the floor: structure-only
        ids[4]: (CheapBarrier(CHGNET, 0.01), CheapBarrier(SHIPPED_CHEAP_FIDELITY, 0.5)),  # the usable one is read
    }
    with pytest.warns(UserWarning, match="mlip:SevenNet") as caught:
        prediction = two_addon_ensemble.predict(hops, cheap_barriers=cheap, device="cpu")
    assert len([w for w in caught if "ignored" in str(w.message)]) == 1
    structure = two_addon_ensemble.predict(hops, device="cpu")
    np.testing.assert_array_equal(prediction.used_cheap_barrier, [True, True, False, False, True, False])
    for i in (2, 3, 5):  # bit-identical to the structure-only prediction
        assert prediction.mean_ev[i] == structure.mean_ev[i] and prediction.std_ev[i] == structure.std_ev[i]
    # the MACE-MP hop is predicted exactly as the shipped model predicts it; the CHGNet hop differs
    by_shipped = shipped.predict(hops[:1], cheap_barriers={ids[0]: cheap[ids[0]]}, device="cpu")
    assert prediction.mean_ev[0] == pytest.approx(by_shipped.mean_ev[0], rel=1e-9)
    assert prediction.mean_ev[1] != structure.mean_ev[1]
    higher = two_addon_ensemble.predict(hops[1:2], cheap_barriers={ids[1]: CheapBarrier(CHGNET, 1.4)}, device="cpu")
    assert higher.mean_ev[0] > prediction.mean_ev[1]
    notes = prediction.cheap_barrier_note
    assert notes[1] == f"used {CHGNET} 0.420 eV" and notes[5] == ""
    assert "no add-on for mlip:SevenNet" in notes[2] and notes[2].endswith("structure-only")
    assert f"below the {CHEAP_BARRIER_FLOOR_EV} eV floor" in notes[3] and notes[3].endswith("structure-only")
    assert notes[4] == f"used {SHIPPED_CHEAP_FIDELITY} 0.500 eV"


def test_a_near_zero_cheap_barrier_keeps_the_structure_only_prediction():
    from alem.ensemble import Ensemble

    shipped = Ensemble.load()
    hops = calibration_hops(3)
    structure = shipped.predict(hops, device="cpu")
    tiny = {h.hop_id: CheapBarrier(SHIPPED_CHEAP_FIDELITY, v) for h, v in zip(hops, (0.0, 0.049, float("nan")), strict=True)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prediction = shipped.predict(hops, cheap_barriers=tiny, device="cpu")
    assert not prediction.used_cheap_barrier.any()
    np.testing.assert_array_equal(prediction.mean_ev, structure.mean_ev)
    assert "not finite" in prediction.cheap_barrier_note[2]
    just_above = shipped.predict(hops[:1], cheap_barriers={hops[0].hop_id: CheapBarrier(SHIPPED_CHEAP_FIDELITY, 0.05)}, device="cpu")
    assert just_above.used_cheap_barrier[0]


def test_the_campaign_feeds_screening_barriers_of_a_paired_potential_without_a_warning(paired_campaign, two_addon_ensemble):
    from alem.campaign.fidelity_labels import MISMATCH_EVENT, campaign_cheap_barriers

    config, summary, _, _ = paired_campaign
    with Store.open(config.store_path) as store:
        cheap, warning = campaign_cheap_barriers(store, config, two_addon_ensemble, summary["model_version"])
        assert warning is None and store.events(kind=MISMATCH_EVENT) == []
        config.screening.fidelity = "mlip:SevenNet"
        _, warning = campaign_cheap_barriers(store, config, two_addon_ensemble, summary["model_version"])
        assert "mlip:SevenNet" in warning and "alem calibrate" in warning
        assert campaign_cheap_barriers(store, config, two_addon_ensemble, summary["model_version"])[1] is None  # once
    config.screening.fidelity = CHGNET


@pytest.mark.slow
def test_a_real_chgnet_neb_goes_through_the_calibration_code(tmp_path, li2o_hop, fast_mlip_preset):
    from alem.backends.local import LocalBackend
    from tests._chgnet_reference import LI2O_FAST_RELAXED_EV, TOLERANCE_EV

    log = CalibrationLog(tmp_path / "chgnet.jsonl")
    run = run_calibration([li2o_hop], LocalBackend(tmp_path / "jobs", fast_mlip_preset), log, CHGNET, "fast", poll_s=0.5)
    (row,) = run.written
    assert row["converged"] and row["failure_reason"] is None
    assert row["barrier_ev"] == pytest.approx(LI2O_FAST_RELAXED_EV, abs=TOLERANCE_EV)
    assert row["reverse_barrier_ev"] is not None and row["seconds"] > 0
    assert log.pairs(CHGNET)[li2o_hop.hop_id].barrier_ev == row["barrier_ev"]
    again = run_calibration([li2o_hop], LocalBackend(tmp_path / "jobs", fast_mlip_preset), log, CHGNET, "fast")
    assert again.written == [] and again.already_done == 1


def test_a_retraining_run_directory_carries_each_potentials_pairs(two_addon_ensemble):
    """Retraining as a job writes its cheap barriers to JSON: one per potential per hop survives
    the round trip, and a run directory written before (one barrier per hop) still reads."""
    from alem.backends.retrain_runner import decode_train_kwargs, encode_train_kwargs
    from alem.model_dir import Combination, EnsembleRecipe, TrainingRecord

    cheap = {"a": (CheapBarrier(SHIPPED_CHEAP_FIDELITY, 0.3), CheapBarrier(CHGNET, 0.4)), "b": CheapBarrier(CHGNET, 0.5)}
    kwargs = {"recipe": EnsembleRecipe(), "combination": Combination.of(two_addon_ensemble.model_card),
              "record": TrainingRecord(), "cheap_barriers": cheap}
    decoded = decode_train_kwargs(json.loads(json.dumps(encode_train_kwargs(kwargs))))
    assert decoded["cheap_barriers"] == {"a": cheap["a"], "b": (cheap["b"],)}
    assert [a.cheap_fidelity for a in decoded["combination"].addons] == [SHIPPED_CHEAP_FIDELITY, CHGNET]
    old = {**encode_train_kwargs({**kwargs, "cheap_barriers": None}), "cheap_barriers": {"b": [CHGNET, 0.5]}}
    assert decode_train_kwargs(old)["cheap_barriers"] == {"b": (cheap["b"],)}


def test_a_screened_hop_below_the_floor_is_predicted_structure_only_and_says_so(paired_campaign):
    from alem.campaign.fidelity_labels import campaign_cheap_barriers
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import predict_pool
    from alem.neb.schemas import NebOutcome
    from alem.store import HopState

    config, _, _, _ = paired_campaign
    with Store.open(config.store_path) as store:
        low, fine = [r.hop_id for r in store.hops(state=HopState.CANDIDATE)][:2]
        for hop_id, barrier in ((low, 0.01), (fine, 0.45)):
            job = store.begin_screening(hop_id, "local", CHGNET)
            store.mark_screening_submitted(job.id, f"ext-{hop_id}")
            store.record_screening_result(job.id, NebOutcome(barrier_ev=barrier, reverse_barrier_ev=barrier, converged=True,
                                                             method="mlip:CHGNet CI-NEB"))
        model = load_current_model(store, config)
        cheap, warning = campaign_cheap_barriers(store, config, model.ensemble, model.version_id)
        assert warning is None and {low, fine} <= set(cheap)
        predict_pool(store, model, [store.hop(low), store.hop(fine)], cheap_barriers=cheap)
        events = store.events(kind="cheap-barrier-unused")
    assert [e.hop_id for e in events] == [low]
    assert f"below the {CHEAP_BARRIER_FLOOR_EV} eV floor" in events[0].message and "structure-only" in events[0].message


@pytest.mark.slow
def test_calibrate_runs_its_nebs_as_slurm_batch_jobs(slurm_cluster, tmp_path):
    """The screening backend on Slurm: the shipped preset's NEB of a training hop runs as a real
    batch job and its line lands in the log (em-0007: its endpoint relaxation moves the ion off its
    site, so the endpoint check stops it after the relaxations, with its reason: the quickest real
    outcome of the unchanged preset on a training hop)."""
    from alem.campaign import init_campaign

    config = init_campaign(tmp_path / "campaign", backend="local")
    config.screening.fidelity = CHGNET
    config.screening.backend.kind = "slurm"
    config.screening.backend.slurm.preset = "mlip_chgnet"
    config.screening.backend.slurm.walltime_minutes = 30
    config.save()
    result = invoke(config, "calibrate", "--hop", "em-0007", "--no-fit", "--poll-s", "1", "--json")
    assert result.exit_code == 0, result.output
    (row,) = _log_lines(calibration_log_for(config, CHGNET).path)
    assert (row["hop_id"], row["preset"], row["n_sites"]) == ("em-0007", "mlip_chgnet", 29)
    assert row["failure_reason"].startswith("endpoint check failed") and row["barrier_ev"] is None
    assert json.loads(result.stdout)["unusable"] == {"endpoint check failed before the NEB": 1}
    from alem.campaign.calibrate import calibration_backend

    backend, _ = calibration_backend(config)
    run_dir = backend.run_dir(row["external_id"])  # a Slurm job id this backend submitted
    assert row["external_id"].isdigit() and (run_dir / "job.sh").is_file() and "#SBATCH" in (run_dir / "job.sh").read_text()
