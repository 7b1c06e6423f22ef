"""Every label knows its fidelity: results (and jobs) carry one, an older store migrates, backends
set it, the export carries it, and a hop may have a screening job beside its target job."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from alem.backends.base import NebOutcome
from alem.store import SCHEMA_VERSION, IllegalTransition, Store
from alem.store.schema import MIGRATIONS, migrate

FROZEN_V1 = Path(__file__).parent / "data" / "store_v1.sqlite"


def _version_2_store_with_results(tmp_path) -> Path:
    """A store as the previous alem wrote it (schema 2) with results from every backend kind."""
    path = tmp_path / "v2.sqlite"
    shutil.copyfile(FROZEN_V1, path)
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS, target=2)
    finished = [  # job id, hop, backend, method, details
        (1, "a", "local", "mlip:CHGNet NEB", {}),
        (2, "b", "replay", "replay:GGA+U", {"xc": "GGA+U", "dataset": "x.json"}),
        (3, "c", "slurm", "vasp:GGA+U CI-NEB", {}),
        (4, "d", "fireworks", "vasp:GGA CI-NEB", {}),
    ]
    for job_id, hop, backend, method, details in finished:
        conn.execute(
            "INSERT INTO jobs (id, job_key, hop_id, backend, external_id, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'completed', 0, 0)",
            (job_id, f"key-{job_id}", hop, backend, f"ext-{job_id}"),
        )
        conn.execute(
            "INSERT INTO results (job_id, hop_id, usable, barrier_ev, converged, method, details_json, created_at) "
            "VALUES (?, ?, 1, 0.5, 1, ?, ?, 0)",
            (job_id, hop, method, json.dumps(details)),
        )
    conn.execute(
        "INSERT INTO jobs (id, job_key, hop_id, backend, external_id, state, created_at, updated_at) "
        "VALUES (5, 'key-5', 'c', 'local', 'ext-5', 'submitted', 0, 0)"
    )
    conn.close()
    return path


def test_a_version_2_store_migrates_and_every_result_gets_its_fidelity(tmp_path):
    path = _version_2_store_with_results(tmp_path)
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        fidelity = {r.hop_id: r.fidelity for r in store.results()}
        assert fidelity == {"a": "mlip:CHGNet", "b": "dft:GGA+U", "c": "dft:GGA+U", "d": "dft:GGA"}
        jobs = {j.id: j for j in store.jobs()}
        assert {j.stage for j in jobs.values()} == {"target"}
        assert jobs[1].fidelity == "mlip:CHGNet" and jobs[3].fidelity == "dft:GGA+U"
        assert jobs[5].fidelity == "mlip:CHGNet"  # a local job still running: the backend tells
        assert store.campaign_rounds() == []


def test_the_export_and_training_hops_carry_the_fidelity(tmp_path):
    from alem.campaign import export_dataset, result_hops
    from alem.hops.io import read_hops

    path = _version_2_store_with_results(tmp_path)
    with Store.open(path) as store:
        assert {h.hop_id: h.provenance.fidelity for h in result_hops(store)}["a"] == "mlip:CHGNet"
        assert {h.hop_id for h in result_hops(store, ["dft"])} == {"b", "c", "d"}
        out, n = export_dataset(store, tmp_path / "export.json")
    assert n == 4
    assert {h.hop_id: h.provenance.fidelity for h in read_hops([out])} == {
        "a": "mlip:CHGNet", "b": "dft:GGA+U", "c": "dft:GGA+U", "d": "dft:GGA"}


def test_a_hop_may_have_one_live_job_per_stage_never_two_in_one(tmp_path, tiny_hop):
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_hops([tiny_hop("a", 0.4)])
        screening = store.begin_screening("a", "local", "mlip:CHGNet")
        store.mark_screening_submitted(screening.id, "ext-s")
        with pytest.raises(IllegalTransition, match="already has screening job"):
            store.begin_screening("a", "local", "mlip:CHGNet")
        assert store.hop("a").state.value == "candidate"  # screening never moves the hop
        store.approve(["a"], who="alice")
        target = store.begin_submission("a", "replay", "dft:GGA")
        store.mark_submitted(target.id, "ext-t")
        with pytest.raises(sqlite3.IntegrityError):  # the store's own index, not only the check
            store._conn.execute(
                "INSERT INTO jobs (job_key, hop_id, backend, state, external_id, created_at, updated_at, stage) "
                "VALUES ('dup', 'a', 'local', 'submitted', 'x', 0, 0, 'screening')"
            )
        with pytest.raises(IllegalTransition, match="screening job"):
            store.record_result(screening.id, NebOutcome(barrier_ev=0.4, converged=True))
        result = store.record_screening_result(screening.id, NebOutcome(barrier_ev=0.4, converged=True, method="mlip:CHGNet NEB"))
        assert result.fidelity == "mlip:CHGNet" and store.hop("a").state.value == "submitted"
        with pytest.raises(IllegalTransition, match="already screened"):
            store.begin_screening("a", "local", "mlip:CHGNet")  # never the same (hop, fidelity) twice
        done = store.record_result(target.id, NebOutcome(barrier_ev=0.6, converged=True, method="vasp:GGA CI-NEB"))
        assert done.fidelity == "dft:GGA" and store.hop("a").state.value == "done"
        assert store.integrity_check() == []


def _replay_answer(tmp_path, barrier: str):
    from alem.backends.replay import ReplayBackend
    from alem.hops.io import load_training_hops, write_dataset

    hop = load_training_hops()[0]
    dataset = write_dataset([hop], tmp_path / f"{barrier}.json")
    backend = ReplayBackend(dataset, tmp_path / f"{barrier}.sqlite", barrier=barrier)
    with Store.open(tmp_path / f"{barrier}-store.sqlite") as store:
        store.add_hops([hop])
        store.approve([hop.hop_id], who="alice")
        job = store.begin_submission(hop.hop_id, backend.name, backend.fidelity)
        external = backend.submit(hop, job.job_key)
        store.mark_submitted(job.id, external)
        return hop, store.record_result(job.id, backend.outcome(external))


def test_backends_set_the_fidelity_of_their_results(tmp_path):
    from alem.hops.io import load_shipped_cheap_barriers
    from alem.neb.presets import load_preset

    hop, result = _replay_answer(tmp_path, "dataset")
    assert result.fidelity == hop.provenance.fidelity == f"dft:{hop.provenance.xc}"
    assert result.barrier_ev == pytest.approx(hop.barrier_ev)
    hop, result = _replay_answer(tmp_path, "mace")
    assert result.fidelity == "mlip:MACE-MP"
    assert result.barrier_ev == pytest.approx(load_shipped_cheap_barriers()[hop.hop_id].barrier_ev)
    assert load_preset("mlip_chgnet").fidelity == "mlip:CHGNet"
    assert load_preset("vasp_gga").fidelity == "dft:GGA" and load_preset("vasp_gga_u").fidelity == "dft:GGA+U"
