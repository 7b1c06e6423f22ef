"""Restarts on the database-free batch backends and the core-hour ledger.

The PBS path runs through qtoolkit's PBS adapter against stand-in ``qsub``/``qstat`` commands
(they record the submission and list no jobs); the batch job's body runs in this process with the
environment PBS gives a job (``PBS_JOBID``, ``PBS_NODEFILE``). A real CHGNet NEB that stops at its
step limit with its images still moving is continued from its last images (endpoints not relaxed
again), and on the last attempt recorded as failed with that reason; every attempt's core-hours
are in the ledger once. The real walltime kill on Slurm is in ``tests/test_backends_slurm.py``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from alem.backends.batch import BatchBackend, run_batch_job, scheduler_allocation
from alem.config import CampaignConfig
from alem.neb.core_hours import JobCost, core_hours
from alem.neb.restart import NEB_TRAJECTORY
from alem.neb.schemas import NebOutcome


def fake_pbs(bin_dir: Path) -> Path:
    """``qsub`` that records each script and answers ``<n>.pbs-test``; ``qstat`` that lists nothing
    (every submitted job has left the queue, as after it ran)."""
    bin_dir.mkdir()
    submitted = bin_dir / "submitted.txt"
    scripts = {
        "qsub": f'echo "$1" >> {submitted}\necho "$(wc -l < {submitted}).pbs-test"\n',
        "qstat": "exit 0\n",
        "qdel": "exit 0\n",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return submitted


def step_energies(directories, frames_per_step: int) -> list[list[float]]:
    """Image energies of every complete step of the one MLIP NEB trajectory among ``directories``."""
    from ase.io.trajectory import Trajectory

    [path] = [Path(d) / NEB_TRAJECTORY for d in directories if (Path(d) / NEB_TRAJECTORY).is_file()]
    with Trajectory(str(path)) as trajectory:
        energies = [atoms.get_potential_energy() for atoms in trajectory]
    return [energies[i:i + frames_per_step] for i in range(0, len(energies) - frames_per_step + 1, frames_per_step)]


def trajectory_energies(run_dir: Path, frames_per_step: int) -> list[list[float]]:
    """Per-step image energies of the MLIP NEB in a batch run directory."""
    return step_energies((run_dir / "work").glob("*"), frames_per_step)


def launch_trajectory_energies(launchpad, external_id: str, frames_per_step: int) -> list[list[float]]:
    """Per-step image energies of the MLIP NEB of a FireWorks workflow (its launch directories)."""
    workflow = launchpad.get_wf_by_fw_id(int(external_id))
    return step_energies([launch.launch_dir for fw in workflow.fws for launch in fw.launches], frames_per_step)


def flow_trajectory_energies(job_controller, flow_id: str, frames_per_step: int) -> list[list[float]]:
    """Per-step image energies of the MLIP NEB of a jobflow-remote flow (its jobs' run directories)."""
    jobs = job_controller.get_jobs_info(flow_ids=[flow_id])
    return step_energies([job.run_dir for job in jobs if job.run_dir], frames_per_step)


def test_core_hours_is_nodes_times_cores_times_wall_time():
    assert core_hours(2, 32, 5400) == pytest.approx(96.0)
    cost = JobCost(nodes=5, cores_per_node=32, wall_s=24 * 3600, source="test")
    assert cost.core_hours == pytest.approx(3840.0)
    assert "3.84e+03 core-hours (5 node(s) x 32 cores" in cost.describe()


def test_scheduler_allocation_from_slurm_and_pbs_environments(tmp_path):
    assert scheduler_allocation({"SLURM_JOB_NUM_NODES": "3", "SLURM_CPUS_ON_NODE": "48"}) == {"nodes": 3, "cores_per_node": 48}
    node_file = tmp_path / "nodes"
    node_file.write_text("n1\nn1\nn1\nn2\nn2\nn2\n")  # PBS: one line per core slot
    assert scheduler_allocation({"PBS_NODEFILE": str(node_file)}) == {"nodes": 2, "cores_per_node": 3}
    assert scheduler_allocation({}) == {}


def test_unconverged_neb_continues_only_with_progress_and_attempts_left(tmp_path, li2o_hop):
    from alem.campaign.reconcile import _unconverged
    from alem.store import Store

    config = CampaignConfig()
    config.campaign_dir = tmp_path
    stuck = NebOutcome(image_energies_ev=[0.0, 0.3, 0.0], converged=False, failure_reason="NEB state is 'failed'",
                       details={"images_moved_a": 0.004})
    moving = stuck.model_copy(update={"details": {"images_moved_a": 0.4}})
    broken = NebOutcome(converged=False, failure_reason="no output of NEB job")
    with Store.open(config.store_path) as store:
        store.add_hops([li2o_hop])
        store.approve([li2o_hop.hop_id], who="test")
        job = store.begin_submission(li2o_hop.hop_id, "pbs")
        store.mark_submitted(job.id, "1.pbs-test")
        reason, _ = _unconverged(store, job, moving, max_attempts=2)
        assert reason.startswith("NEB stopped unconverged at its step limit, images still moving (0.400 Å")
        reason, recorded = _unconverged(store, job, stuck, max_attempts=2)
        assert reason is None and "without progress (atoms moved at most 0.004 Å" in recorded.failure_reason
        reason, recorded = _unconverged(store, job, moving, max_attempts=1)
        assert reason is None and "still unconverged after 1 of 1 attempts" in recorded.failure_reason
        assert _unconverged(store, job, broken, max_attempts=2) == (None, broken)  # judged, not continued


@pytest.mark.slow
def test_pbs_unconverged_neb_continues_from_its_last_images(tmp_path, monkeypatch, li2o_hop, fast_mlip_preset):
    from alem.campaign import reconcile, submit_approved
    from alem.store import HopState, JobStatus, Store

    submitted = fake_pbs(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    node_file = tmp_path / "nodefile"
    node_file.write_text("cn1\ncn1\ncn2\ncn2\n")  # 2 nodes x 2 cores
    monkeypatch.setenv("PBS_NODEFILE", str(node_file))
    fast_mlip_preset.neb.max_steps = 6  # stops unconverged, images still moving
    frames = fast_mlip_preset.neb.n_images + 2
    config = CampaignConfig()
    config.campaign_dir = tmp_path
    config.backend.kind = "pbs"
    config.backend.max_attempts = 2
    config.backend.pbs.nodes = 2
    config.backend.pbs.tasks_per_node = 2
    backend = BatchBackend("pbs", tmp_path / "runs", fast_mlip_preset, config.backend.pbs)
    with Store.open(config.store_path) as store:
        store.add_hops([li2o_hop])
        store.approve([li2o_hop.hop_id], who="test")
        [(_, first_id)] = submit_approved(store, backend, config).submitted
        assert first_id == "1.pbs-test"
        first_dir = backend.run_dir(first_id)
        assert "#PBS -l select=2:ncpus=2" in (first_dir / "job.sh").read_text()  # qtoolkit's PBS header
        monkeypatch.setenv("PBS_JOBID", first_id)
        run_batch_job(first_dir)  # the job body, as on the compute node

        report = reconcile(store, backend, config)
        assert any("images still moving" in line and "will be retried" in line for line in report.repairs), report.repairs
        [first, second] = sorted(store.jobs(hop_id=li2o_hop.hop_id), key=lambda job: job.attempt)
        assert first.state is JobStatus.FAILED and second.external_id == "2.pbs-test"
        assert len(submitted.read_text().split()) == 2  # one qsub per attempt
        second_dir = backend.run_dir(second.external_id)
        request = json.loads((second_dir / "request.json").read_text())
        assert "the last positions of its 5 images" in request["continues"]
        monkeypatch.setenv("PBS_JOBID", second.external_id)
        run_batch_job(second_dir)

        # attempt 2 starts where attempt 1 stopped (not from IDPP) and relaxes no endpoint again
        last_of_first = trajectory_energies(first_dir, frames)[-1]
        first_of_second = trajectory_energies(second_dir, frames)[0]
        assert first_of_second == pytest.approx(last_of_first, abs=1e-5)
        assert len(list((second_dir / "work").glob("job_*"))) == 1  # the NEB only
        assert len(list((first_dir / "work").glob("job_*"))) == 5  # 2 endpoints, endpoint check, images, NEB

        report = reconcile(store, backend, config)
        [result] = store.results(hop_id=li2o_hop.hop_id)  # recorded once, on the last attempt
        assert not result.usable and "still unconverged after 2 of 2 attempts" in result.failure_reason
        assert store.hop(li2o_hop.hop_id).state is HopState.FAILED
        costs = {job.attempt: job for job in store.jobs(hop_id=li2o_hop.hop_id)}
        for job in costs.values():
            cost = json.loads(store._conn.execute("SELECT cost_json FROM jobs WHERE id = ?", (job.id,)).fetchone()[0])
            assert (cost["nodes"], cost["cores_per_node"]) == (2, 2)  # from PBS's node file
            assert job.core_hours == pytest.approx(4 * cost["wall_s"] / 3600) and job.core_hours > 0
        assert store.core_hours_spent(hop_id=li2o_hop.hop_id) == pytest.approx(sum(j.core_hours for j in costs.values()))
        reconcile(store, backend, config)  # polled again: nothing counted twice
        assert store.core_hours_spent() == pytest.approx(sum(j.core_hours for j in costs.values()))
        assert store.core_hours_by_hop()[li2o_hop.hop_id][1] == 2


@pytest.mark.slow
def test_pbs_endpoints_run_as_their_own_smaller_job_before_the_neb(tmp_path, monkeypatch, li2o_hop, fast_mlip_preset):
    from alem.config import BatchBackendSection

    submitted = fake_pbs(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    fast_mlip_preset.neb.max_steps = 5
    resources = BatchBackendSection(nodes=3, tasks_per_node=2, endpoint_nodes=1, endpoint_walltime_minutes=30)
    backend = BatchBackend("pbs", tmp_path / "runs", fast_mlip_preset, resources)
    job_id = backend.submit(li2o_hop, "alem-split")
    assert job_id == "2.pbs-test"  # the NEB job is the attempt's id; the endpoint job went first
    run_dir = backend.run_dir(job_id)
    endpoint_script = (run_dir / "endpoints.job.sh").read_text()
    neb_script = (run_dir / "job.sh").read_text()
    assert submitted.read_text().split() == [str(run_dir / "endpoints.job.sh"), str(run_dir / "job.sh")]
    assert "#PBS -l select=1:ncpus=2" in endpoint_script and "#PBS -l walltime=0:30:0\n" in endpoint_script
    assert "-m alem.backends.batch" in endpoint_script and endpoint_script.rstrip().endswith("endpoints")
    assert "#PBS -l select=3:ncpus=2" in neb_script and "#PBS -W depend=afterok:1.pbs-test" in neb_script
    assert backend.submit(li2o_hop, "alem-split") == job_id and len(submitted.read_text().split()) == 2

    monkeypatch.setenv("PBS_JOBID", "1.pbs-test")
    run_batch_job(run_dir, "endpoints")  # the small job: both endpoint relaxations, nothing else
    assert len(list((run_dir / "work").glob("job_*"))) == 2 and not (run_dir / "exit.json").exists()
    monkeypatch.setenv("PBS_JOBID", job_id)
    run_batch_job(run_dir)  # the NEB job: endpoint check, images and NEB from the endpoints in the shared store
    assert len(list((run_dir / "work").glob("job_*"))) == 5
    outcome = backend.outcome(job_id)
    assert len(outcome.image_energies_ev) == fast_mlip_preset.neb.n_images + 2
    neb_cost, endpoint_cost = (backend.job_cost(job_id), json.loads((run_dir / "endpoints.started.json").read_text()))
    assert endpoint_cost["job_id"] == "1.pbs-test"
    from alem.backends.rundir import run_cost

    parts = [run_cost(run_dir, "batch.log", "neb"), run_cost(run_dir, "endpoints.log", "endpoints", "endpoints")]
    assert (parts[0].nodes, parts[1].nodes) == (3, 1)  # what each job asked for (no PBS node file here)
    assert neb_cost.core_hours == pytest.approx(parts[0].core_hours + parts[1].core_hours)


def test_a_killed_run_is_continued_from_its_last_complete_trajectory_step(tmp_path, li2o_hop, fast_mlip_preset):
    """No NEB runs here: a run directory as a killed MLIP attempt leaves it (two complete steps
    and a partial third in the optimiser's trajectory); the next flow starts from step two."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io.trajectory import Trajectory
    from pymatgen.io.ase import AseAtomsAdaptor

    from alem.backends.rundir import restart_from_run, stage_run
    from alem.neb.flows import neb_flow_for_hop

    run_dir = tmp_path / "run"
    stage_run(run_dir, li2o_hop, fast_mlip_preset, "alem-killed")
    frames = fast_mlip_preset.neb.n_images + 2
    neb_dir = run_dir / "work" / "job_neb"
    neb_dir.mkdir(parents=True)
    image = AseAtomsAdaptor.get_atoms(li2o_hop.initial)
    with Trajectory(str(neb_dir / NEB_TRAJECTORY), "w") as trajectory:
        for step in range(3):
            for index in range(frames if step < 2 else 3):  # killed while writing step 3
                atoms = image.copy()
                atoms.positions[0, 0] += 0.01 * step + 0.001 * index
                atoms.calc = SinglePointCalculator(atoms, energy=-50.0 - step - 0.1 * index)
                trajectory.write(atoms)
    restart = restart_from_run(run_dir, "7", "mlip")
    assert restart.image_energies_ev == pytest.approx([-51.0 - 0.1 * index for index in range(frames)])
    assert restart.describe() == f"continues 7: reuses the last positions of its {frames} images"
    flow = neb_flow_for_hop(li2o_hop, fast_mlip_preset, restart=restart)
    [neb_job] = flow.jobs  # no endpoint relaxation, no interpolation: the NEB from those images
    first_image = neb_job.function_args[0][1]
    assert first_image.cart_coords[0, 0] == pytest.approx(image.positions[0, 0] + 0.01 + 0.001)
    assert flow.metadata["alem_restart"]["previous_id"] == "7"
    assert restart_from_run(tmp_path / "never-staged", "8", "mlip") is None
