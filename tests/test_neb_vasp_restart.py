"""A fizzled VASP NEB retried through the FireWorks backend continues where it stopped.

Everything real except VASP: alem's flow, jobflow -> FireWorks, a LaunchPad on mongomock, rapidfire,
atomate2's Makers (input writing, output parsing, fizzling on an unconverged NEB). VASP is replaced
the way atomate2's own test harness (atomate2.utils.testing.vasp) replaces it: ``run_vasp`` is
patched to write output files (tests/_vasp_outputs.py) and inputs are written with potcar_spec.
"""

import functools
from pathlib import Path

import mongomock
import mongomock.gridfs
import numpy as np
import pytest
from _vasp_outputs import NUDGE_A, FakeVasp, install_fake_vasp
from jobflow import JobStore
from maggma.stores import JSONStore
from mongomock.store import ServerStore
from pymatgen.core import Structure

from alem.backends.base import QueueState
from alem.backends.fireworks_backend import FireWorksBackend
from alem.neb.presets import load_preset
from alem.neb.provenance import installed_version, settings_sha256
from alem.neb.restart import NebRestart
from alem.neb.vasp_jobs import previous_images


@pytest.fixture
def fake_vasp(monkeypatch):
    fake = FakeVasp()
    install_fake_vasp(fake, monkeypatch.setattr)
    return fake


@pytest.fixture
def backend(monkeypatch, tmp_path):
    import fireworks.core.launchpad as launchpad_module
    from fireworks import LaunchPad

    mongomock.gridfs.enable_gridfs_integration()
    server = ServerStore()
    monkeypatch.setattr(launchpad_module, "MongoClient", functools.partial(mongomock.MongoClient, _store=server))
    launchpad = LaunchPad(name="alem_restart_test", strm_lvl="ERROR")
    launchpad.reset("", require_password=False)
    store = JobStore(JSONStore(str(tmp_path / "docs.json"), read_only=False),
                     additional_stores={"data": JSONStore(str(tmp_path / "data.json"), read_only=False)})
    preset = load_preset("vasp_gga")
    preset.supercell.min_image_distance_a = 0.0  # the 11-atom Li2O cell keeps the fake runs small
    preset.neb.n_images = 3
    preset.neb.max_steps = 4
    return FireWorksBackend(preset, launchpad=launchpad, job_store=store, embed_job_store=True)


def _run_all(backend, tmp_path, monkeypatch):
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import rapidfire

    monkeypatch.chdir(tmp_path)  # rapidfire writes launcher_* directories in the cwd
    rapidfire(backend.launchpad, FWorker(), nlaunches=0, strm_lvl="ERROR")


def _firework_names(backend, external_id: str) -> list[str]:
    nodes = backend.launchpad.workflows.find_one({"nodes": int(external_id)})["nodes"]
    return [fw["name"] for fw in backend.launchpad.fireworks.find({"fw_id": {"$in": nodes}})]


def test_retry_continues_from_last_images_and_skips_finished_endpoints(backend, fake_vasp, li2o_hop, tmp_path, monkeypatch):
    backend.preset.vasp.nodes_per_image = 2
    first = backend.submit(li2o_hop, "job-1")
    nodes = {fw["name"]: fw["spec"]["_queueadapter"]["nodes"] for fw in backend.launchpad.fireworks.find({})}
    # qlaunch -r asks for these: the NEB needs IMAGES x the nodes of one image, an endpoint one image's
    assert nodes == {"GGA endpoint relax endpoint 1": 2, "GGA endpoint relax endpoint 2": 2,
                     "endpoint check": 1, "get_images_from_endpoints": 1, "GGA NEB": 6, "collect_vasp_neb_output": 1}
    _run_all(backend, tmp_path, monkeypatch)
    assert backend.poll([first])[first] == QueueState.FAILED  # atomate2 fizzles the unconverged NEB
    assert [kind for kind, _ in fake_vasp.runs] == ["relax", "relax", "neb"]
    reached = backend.restart_for(li2o_hop)
    assert reached.previous_id == first and all(reached.endpoints) and reached.neb_dir
    last_images = previous_images(reached.neb_dir)

    fake_vasp.runs.clear()
    fake_vasp.neb_converges = True
    second = backend.submit(li2o_hop, "job-2")
    workflow = backend.launchpad.workflows.find_one({"nodes": int(second)})
    assert sorted(_firework_names(backend, second)) == ["GGA NEB", "collect_vasp_neb_output", "images_from_previous_neb"]
    _run_all(backend, tmp_path, monkeypatch)
    assert backend.poll([second])[second] == QueueState.COMPLETED
    # no endpoint relaxation ran again; the NEB started from the CONTCARs the first NEB reached
    assert [kind for kind, _ in fake_vasp.runs] == ["neb"]
    started_from = fake_vasp.runs[0][1]
    for given, reached_image in zip(started_from, last_images):
        assert np.allclose(given.cart_coords, reached_image.cart_coords, atol=1e-5)
    first_neb_start = [Structure.from_file(Path(reached.neb_dir) / f"{i:02d}" / "POSCAR") for i in (1, 2, 3)]
    assert np.linalg.norm(started_from[2][0].coords - first_neb_start[1][0].coords) == pytest.approx(NUDGE_A, abs=1e-4)

    outcome = backend.outcome(second)
    assert outcome.usable, outcome.failure_reason
    assert outcome.barrier_ev == pytest.approx(0.45)
    # traceable: the preset and its settings' hash, the INCAR the NEB ran with, VASP's version from its OUTCAR
    record = outcome.provenance
    assert record["preset"] == "vasp_gga" and record["settings_sha256"] == settings_sha256(backend.preset)
    assert record["incar"]["IMAGES"] == 3 and record["incar"]["EDIFFG"] == -backend.preset.neb.fmax_ev_a
    assert record["vasp_version"].startswith("vasp.6.3.2")
    assert record["code_versions"]["atomate2"] == installed_version("atomate2") and record["fidelity"] == "dft:GGA"
    assert backend.outcome(first).provenance["preset"] == "vasp_gga"  # the failed attempt too
    # the metadata of the retry remembers what it reused, for a third attempt
    assert NebRestart.model_validate(workflow["metadata"]["alem_restart"]).endpoints == reached.endpoints


def test_failed_endpoint_is_redone_and_the_finished_one_kept(backend, fake_vasp, li2o_hop, tmp_path, monkeypatch):
    from jobflow import CURRENT_JOB

    write = FakeVasp.__call__

    def second_endpoint_fails(self, *args, **kwargs):
        if CURRENT_JOB.job.name.endswith("endpoint 2"):
            raise RuntimeError("wall time exceeded")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(FakeVasp, "__call__", second_endpoint_fails)
    first = backend.submit(li2o_hop, "job-1")
    _run_all(backend, tmp_path, monkeypatch)
    assert backend.poll([first])[first] == QueueState.FAILED
    restart = backend.restart_for(li2o_hop)
    assert restart.endpoints[0] is not None and restart.endpoints[1] is None and restart.neb_dir is None

    fake_vasp.runs.clear()
    second = backend.submit(li2o_hop, "job-2")
    names = _firework_names(backend, second)
    assert sorted(names) == ["GGA NEB", "GGA endpoint relax endpoint 2", "collect_vasp_neb_output", "endpoint check",
                            "get_images_from_endpoints"]
    monkeypatch.setattr(FakeVasp, "__call__", write)
    fake_vasp.neb_converges = True
    _run_all(backend, tmp_path, monkeypatch)
    assert [kind for kind, _ in fake_vasp.runs] == ["relax", "neb"]
    outcome = backend.outcome(second)
    assert outcome.usable and outcome.barrier_ev == pytest.approx(0.45)


@pytest.mark.slow
def test_jobflow_remote_retry_continues_from_last_images(tmp_path, monkeypatch, li2o_hop):
    """The same retry through jobflow-remote: its runner executes every job in a new process
    (``jf execution run``), where a ``sitecustomize`` installs the fake VASP."""
    import json
    import sys

    import jobflow_remote
    import yaml
    from jobflow_remote import JobController
    from jobflow_remote.config import ConfigManager
    from jobflow_remote.jobs.runner import Runner

    from alem.backends.jobflow_remote_backend import JobflowRemoteBackend

    tests_dir = Path(__file__).resolve().parent
    log = tmp_path / "vasp_runs.jsonl"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(tests_dir)!r})\n"
        "from _vasp_outputs import FakeVasp, install_fake_vasp\n"
        f"install_fake_vasp(FakeVasp({str(log)!r}), setattr)\n")
    folder = tmp_path / "projects"
    folder.mkdir()
    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
    monty = {"type": "MontyStore", "database_path": str(tmp_path / "out"), "storage": "sqlite"}
    python_path = ":".join([str(site), str(tests_dir.parent)])
    (folder / "fake.yaml").write_text(yaml.safe_dump({
        "name": "fake", "queue": {"store": {"type": "MemoryStore", "collection_name": "jobs"}},
        "workers": {"local_shell": {
            "type": "local", "scheduler_type": "shell", "work_dir": str(tmp_path / "work"), "resources": {},
            "pre_run": f"export PATH={Path(sys.executable).parent}:$PATH\nexport PYTHONPATH={python_path}"}},
        "jobstore": {"docs_store": {**monty, "collection_name": "o"},
                     "additional_stores": {"data": {**monty, "collection_name": "d"}}},
        "runner": {"delay_checkout": 1, "delay_check_run_status": 1, "delay_advance_status": 1},
    }))
    controller = JobController.from_project(ConfigManager().get_project("fake"))
    controller.reset()
    preset = load_preset("vasp_gga")
    preset.supercell.min_image_distance_a = 0.0
    preset.neb.n_images, preset.neb.max_steps = 3, 4
    backend = JobflowRemoteBackend(preset, project="fake", worker="local_shell", job_controller=controller)

    def run_all():
        runner = Runner(project_name="fake")
        runner.job_controller = controller  # share the in-memory queue database
        runner.run_all_jobs(max_seconds=600)  # a bound, not a timing

    def runs():
        return [json.loads(line)["kind"] for line in log.read_text().splitlines()] if log.exists() else []

    first = backend.submit(li2o_hop, "job-1")
    run_all()
    assert backend.poll([first])[first] == QueueState.FAILED and runs() == ["relax", "relax", "neb"]
    restart = backend.restart_for(li2o_hop)
    assert restart.previous_id == first and all(restart.endpoints) and restart.neb_dir
    last_images = previous_images(restart.neb_dir)

    Path(f"{log}.converge").touch()
    second = backend.submit(li2o_hop, "job-2")
    run_all()
    assert backend.poll([second])[second] == QueueState.COMPLETED
    assert runs() == ["relax", "relax", "neb", "neb"]  # no endpoint ran again
    started_from = [Structure.from_dict(d) for d in json.loads(log.read_text().splitlines()[-1])["structures"]]
    assert all(np.allclose(a.cart_coords, b.cart_coords, atol=1e-5) for a, b in zip(started_from, last_images))
    outcome = backend.outcome(second)
    assert outcome.usable and outcome.barrier_ev == pytest.approx(0.45)
