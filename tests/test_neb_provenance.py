"""Every label traceable: each NEB result carries its inputs' provenance (preset, settings hash,
INCAR or MLIP, code versions, VASP's version), an older store migrates, and `alem show`,
`alem export` and the report carry it."""

import json
import shutil
import socket
import sqlite3
from pathlib import Path

import pytest

from alem.neb.presets import load_preset
from alem.neb.provenance import installed_version, preset_provenance, settings_sha256, vasp_inputs_record
from alem.store import SCHEMA_VERSION, Store
from alem.store.provenance_column import NOT_RECORDED_NOTE
from alem.store.schema import MIGRATIONS, migrate
from tests._replay_campaign import invoke, make_replay_campaign

FROZEN_V1 = Path(__file__).parent / "data" / "store_v1.sqlite"


def test_the_settings_hash_follows_the_resolved_settings_not_the_name():
    gga = load_preset("vasp_gga")
    renamed = gga.model_copy(update={"name": "my_copy", "description": "same calculation"})
    assert settings_sha256(renamed) == settings_sha256(gga)
    changed = gga.model_copy(deep=True)
    changed.neb.n_images = gga.neb.n_images + 2
    assert settings_sha256(changed) != settings_sha256(gga)
    gga_u = load_preset("vasp_gga_u")
    assert settings_sha256(gga_u) != settings_sha256(gga)
    record = preset_provenance(load_preset("mlip_chgnet"))
    assert record.preset == "mlip_chgnet" and record.fidelity == "mlip:CHGNet" and record.engine == "mlip"
    assert record.mlip["force_field"] == "CHGNet" and record.mlip["package"] == "chgnet"
    assert record.code_versions["chgnet"] == installed_version("chgnet") is not None
    assert set(record.code_versions) == {"alem", "pymatgen", "atomate2", "jobflow", "chgnet"}
    assert record.attempts == []  # a job cannot know its restarts: filled from the jobs ledger on export


def test_vasp_inputs_and_version_are_read_from_the_neb_directory(tmp_path):
    from _vasp_outputs import outcar_text
    from pymatgen.io.vasp import Incar

    from tests._factories import make_li2o_vacancy_hop

    structure = make_li2o_vacancy_hop().initial
    neb_dir = tmp_path / "neb"
    (neb_dir / "01").mkdir(parents=True)
    Incar({"IMAGES": 1, "ENCUT": 520, "EDIFFG": -0.05, "LCLIMB": True}).write_file(neb_dir / "INCAR")
    (neb_dir / "01" / "OUTCAR").write_text(outcar_text(structure, -40.0, True, neb_image=True))
    record = vasp_inputs_record(f"{socket.gethostname()}:{neb_dir}")  # emmet's host:path form
    assert record["incar"] == {"IMAGES": 1, "ENCUT": 520, "EDIFFG": -0.05, "LCLIMB": True}
    assert record["vasp_version"].startswith("vasp.6.3.2 18Jan22")
    assert vasp_inputs_record(tmp_path / "nowhere") == {"incar": None, "vasp_version": None}


def _version_3_store_with_results(tmp_path) -> Path:
    path = tmp_path / "v3.sqlite"
    shutil.copyfile(FROZEN_V1, path)
    run_dir = tmp_path / "runs" / "local-1"
    run_dir.mkdir(parents=True)
    (run_dir / "request.json").write_text(json.dumps({"preset": "mlip_chgnet", "method": "mlip:CHGNet NEB"}))
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS, target=3)
    for job_id, hop, backend, method, details in (
        (1, "a", "local", "mlip:CHGNet NEB", {"run_dir": str(run_dir)}),
        (2, "b", "slurm", "vasp:GGA+U CI-NEB", {"run_dir": str(tmp_path / "gone")}),
    ):
        conn.execute("INSERT INTO jobs (id, job_key, hop_id, backend, external_id, state, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, 'completed', 0, 0)", (job_id, f"key-{job_id}", hop, backend, f"ext-{job_id}"))
        conn.execute("INSERT INTO results (job_id, hop_id, usable, barrier_ev, converged, method, details_json, created_at, fidelity) "
                     "VALUES (?, ?, 1, 0.5, 1, ?, ?, 0, ?)",
                     (job_id, hop, method, json.dumps(details), "mlip:CHGNet" if backend == "local" else "dft:GGA+U"))
    conn.close()
    return path


def test_a_version_3_store_migrates_and_old_results_say_what_is_known(tmp_path):
    path = _version_3_store_with_results(tmp_path)
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 4
        provenance = {r.hop_id: r.provenance for r in store.results()}
    assert provenance["a"]["preset"] == "mlip_chgnet"  # still readable in its run directory
    assert provenance["a"]["engine"] == "mlip" and provenance["a"]["fidelity"] == "mlip:CHGNet"
    assert provenance["b"]["preset"] is None and provenance["b"]["engine"] == "vasp"
    assert provenance["b"]["fidelity"] == "dft:GGA+U"
    assert all(p["note"] == NOT_RECORDED_NOTE and p["code_versions"] == {} for p in provenance.values())


def test_show_export_report_and_status_say_where_labels_came_from(tmp_path, replay_ensemble_dir):
    config, _ = make_replay_campaign(tmp_path, replay_ensemble_dir, n_hops=3, acquisition__batch_size=2,
                                     approval__auto_approve=True)
    ran = invoke(config, "loop", "--tick-seconds", "0", "--no-retrain", "--max-ticks", "3")
    assert ran.exit_code == 0, ran.output
    with Store.open(config.store_path) as store:
        results = store.results(usable=True)
    assert results, "the replay backend answered"
    result = results[0]
    assert result.provenance["engine"] == "replay" and result.provenance["fidelity"] == result.fidelity
    assert result.provenance["code_versions"] == {"alem": installed_version("alem")}

    shown = invoke(config, "show", result.hop_id)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "provenance: preset replay" in text and "no NEB was run" in text
    shown_json = json.loads(invoke(config, "show", result.hop_id, "--json").output)
    assert shown_json["results"][0]["provenance"] == result.provenance

    exported = invoke(config, "export", str(tmp_path / "labels.json"))
    assert exported.exit_code == 0, exported.output
    rows = {row["jid"]: row for row in json.loads((tmp_path / "labels.json").read_text())}
    exported_record = rows[result.hop_id]["provenance"]
    assert {k: v for k, v in exported_record.items() if k != "attempts"} == {
        k: v for k, v in result.provenance.items() if k != "attempts"}
    # the attempts come from the jobs ledger: the job that produced the result is the last one
    with Store.open(config.store_path) as store:
        job = store.job(result.job_id)
    assert exported_record["attempts"][-1]["job_id"] == result.job_id
    assert exported_record["attempts"][-1]["attempt"] == job.attempt
    assert exported_record["attempts"][-1]["state"] == job.state
    assert [a["attempt"] for a in exported_record["attempts"]] == sorted(a["attempt"] for a in exported_record["attempts"])

    reported = invoke(config, "report", "--out", str(tmp_path / "report.html"))
    assert reported.exit_code == 0, reported.output
    page = (tmp_path / "report.html").read_text()
    assert f'<a href="#provenance-{result.id}">replay</a>' in page
    assert f'<details id="provenance-{result.id}">' in page

    # and the model: `alem status` lists the fidelities (functionals) its card says it learned from
    card = json.loads((replay_ensemble_dir / "model_card.json").read_text())
    assert sum(card["training_fidelities"].values()) == card["n_training_hops"]
    status = " ".join(invoke(config, "status").output.split())
    learned = ", ".join(f"{n} {fidelity}" for fidelity, n in card["training_fidelities"].items())
    assert f"trained on fidelities: {learned}" in status


@pytest.mark.slow
def test_a_real_chgnet_neb_records_the_versions_where_it_ran(tmp_path, li2o_hop, fast_mlip_preset):
    from alem.backends.base import QueueState
    from alem.backends.local import LocalBackend
    from tests._backends import wait_for

    backend = LocalBackend(tmp_path / "jobstore", fast_mlip_preset)
    external_id = backend.submit(li2o_hop, "job-1")
    assert wait_for(backend, external_id, {QueueState.COMPLETED, QueueState.FAILED, QueueState.LOST}) == QueueState.COMPLETED
    outcome = backend.outcome(external_id)
    assert outcome.usable, outcome.failure_reason
    record = outcome.provenance
    assert record["preset"] == "mlip_chgnet" and record["settings_sha256"] == settings_sha256(fast_mlip_preset)
    assert record["settings"]["neb"]["n_images"] == 3  # the settings the run used, not the shipped file's
    assert record["mlip"]["force_field"] == "CHGNet" and record["mlip"]["neb"]["fmax_ev_a"] == 0.1
    assert record["code_versions_where"] == socket.gethostname()  # written by the worker itself
    assert record["code_versions"]["chgnet"] == installed_version("chgnet")
    assert record["code_versions"]["pymatgen"] == installed_version("pymatgen")
    assert record["incar"] is None and record["vasp_version"] is None
