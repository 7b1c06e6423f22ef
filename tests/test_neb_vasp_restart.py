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
from jobflow import JobStore
from maggma.stores import JSONStore
from mongomock.store import ServerStore
from pymatgen.core import Structure
from pymatgen.io.vasp import Incar

from _vasp_outputs import write_vasp_run
from alem.backends.base import JobState
from alem.backends.fireworks_backend import FireWorksBackend
from alem.neb.presets import load_preset
from alem.neb.restart import NebRestart
from alem.neb.vasp_jobs import previous_images

IMAGE_ENERGIES = [-39.80, -39.55, -39.75]
ENDPOINT_ENERGY = -40.0
NUDGE_A = 0.05  # how far the fizzled NEB moved its images (written to their CONTCARs)


class FakeVasp:
    """Writes VASP outputs for the inputs in the current directory and records what it ran."""

    def __init__(self):
        self.runs: list[tuple[str, list[Structure]]] = []
        self.neb_converges = False

    def __call__(self, *args, **kwargs):
        incar = dict(Incar.from_file("INCAR"))
        if "IMAGES" in incar:
            n_images = int(incar["IMAGES"])
            frames = [Structure.from_file(f"{i:02d}/POSCAR") for i in range(n_images + 2)]
            self.runs.append(("neb", frames))
            for index in range(1, n_images + 1):
                reached = frames[index].copy()
                if not self.neb_converges:  # ran out of NSW part-way: the images moved a little
                    reached.translate_sites([0], [NUDGE_A, 0, 0], frac_coords=False)
                write_vasp_run(f"{index:02d}", reached, IMAGE_ENERGIES[index - 1], incar, converged=self.neb_converges)
        else:
            structure = Structure.from_file("POSCAR")
            self.runs.append(("relax", [structure]))
            write_vasp_run(".", structure, ENDPOINT_ENERGY, incar, magmoms=[0.0] * len(structure))


@pytest.fixture
def fake_vasp(monkeypatch):
    import atomate2.vasp.jobs.base
    import atomate2.vasp.jobs.neb
    from atomate2.vasp.sets.base import VaspInputGenerator
    from pymatgen.io.vasp.sets import VaspInputSet

    fake = FakeVasp()
    monkeypatch.setattr(atomate2.vasp.jobs.base, "run_vasp", fake)
    monkeypatch.setattr(atomate2.vasp.jobs.neb, "run_vasp", fake)
    original = VaspInputGenerator.get_input_set
    monkeypatch.setattr(VaspInputSet, "get_input_set",
                        lambda self, *a, **k: original(self, *a, **{**k, "potcar_spec": True}))
    monkeypatch.setattr(VaspInputSet, "nelect", property(lambda self: 8))
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
                     "get_images_from_endpoints": 1, "GGA NEB": 6, "collect_vasp_neb_output": 1}
    _run_all(backend, tmp_path, monkeypatch)
    assert backend.poll([first])[first] == JobState.FAILED  # atomate2 fizzles the unconverged NEB
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
    assert backend.poll([second])[second] == JobState.COMPLETED
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
    assert backend.poll([first])[first] == JobState.FAILED
    restart = backend.restart_for(li2o_hop)
    assert restart.endpoints[0] is not None and restart.endpoints[1] is None and restart.neb_dir is None

    fake_vasp.runs.clear()
    second = backend.submit(li2o_hop, "job-2")
    names = _firework_names(backend, second)
    assert sorted(names) == ["GGA NEB", "GGA endpoint relax endpoint 2", "collect_vasp_neb_output", "get_images_from_endpoints"]
    monkeypatch.setattr(FakeVasp, "__call__", write)
    fake_vasp.neb_converges = True
    _run_all(backend, tmp_path, monkeypatch)
    assert [kind for kind, _ in fake_vasp.runs] == ["relax", "neb"]
    outcome = backend.outcome(second)
    assert outcome.usable and outcome.barrier_ev == pytest.approx(0.45)
