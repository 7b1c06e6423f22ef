"""The slurm backend against a real one-node Slurm (tests/_slurm.py): scripts built by qtoolkit and
submitted with sbatch, queue states from squeue, a real CHGNet NEB run as a batch job, a job
killed with scancel becoming LOST and retried, finding a submission by its key after a crash,
cancel, ``alem doctor``; and the pbs backend's script checked against qtoolkit's PBS adapter."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from alem.backends.base import QueueState
from alem.backends.batch import BatchBackend
from alem.config import BatchBackendSection, CampaignConfig
from tests._backends import wait_for

pytest_plugins = ["tests._slurm"]

TERMINAL = {QueueState.COMPLETED, QueueState.FAILED, QueueState.LOST}


def held(**settings) -> BatchBackendSection:
    """Resources whose jobs Slurm keeps pending (held) until released: a queued job on demand."""
    return BatchBackendSection(extra_directives=["#SBATCH --hold"], **settings)


def test_held_job_is_queued_found_by_key_after_a_crash_and_cancelled(slurm_cluster, tmp_path, li2o_hop, fast_mlip_preset):
    backend = BatchBackend("slurm", tmp_path / "runs", fast_mlip_preset, held(walltime_minutes=5))
    job_id = backend.submit(li2o_hop, "alem-key-1")
    assert slurm_cluster.job_names()[job_id] == "alem-key-1"  # the key is the job name
    assert slurm_cluster.queue()[job_id] == "PD"
    assert backend.submit(li2o_hop, "alem-key-1") == job_id  # same key: no second sbatch
    assert len(slurm_cluster.queue()) == 1
    assert backend.poll([job_id, "999999"]) == {job_id: QueueState.QUEUED, "999999": QueueState.LOST}
    script = (tmp_path / "runs" / "runs" / "alem-key-1" / "job.sh").read_text()
    assert "#SBATCH --job-name=alem-key-1" in script and "#SBATCH --time=0-0:5:0" in script
    assert "-m alem.backends.batch" in script

    # `alem loop` killed right after sbatch, before anything recorded the id: found by its name
    run_dir = tmp_path / "runs" / "runs" / "alem-key-1"
    (run_dir / "job.json").unlink()
    (tmp_path / "runs" / "ids" / job_id).unlink()
    restarted = BatchBackend("slurm", tmp_path / "runs", fast_mlip_preset, held())
    assert restarted.find_by_key("alem-key-1") == job_id
    assert restarted.poll([job_id]) == {job_id: QueueState.QUEUED}
    assert restarted.find_by_key("alem-other") is None

    restarted.cancel(job_id)
    assert job_id not in slurm_cluster.queue()
    assert restarted.poll([job_id]) == {job_id: QueueState.FAILED}
    assert "cancelled" in restarted.outcome(job_id).failure_reason


def test_refused_submission_is_an_error_not_a_job(slurm_cluster, tmp_path, li2o_hop, fast_mlip_preset):
    backend = BatchBackend("slurm", tmp_path / "runs", fast_mlip_preset, BatchBackendSection(queue="no-such-partition"))
    with pytest.raises(RuntimeError, match="slurm refused .*job.sh.*(invalid partition|Invalid partition)"):
        backend.submit(li2o_hop, "alem-refused")
    assert backend.find_by_key("alem-refused") is None  # so the store abandons the row and retries


@pytest.mark.slow
def test_real_chgnet_neb_as_a_slurm_job(slurm_cluster, tmp_path, li2o_hop, fast_mlip_preset):
    backend = BatchBackend("slurm", tmp_path / "runs", fast_mlip_preset, BatchBackendSection(walltime_minutes=30))
    job_id = backend.submit(li2o_hop, "alem-neb-1")
    assert backend.poll([job_id])[job_id] in (QueueState.QUEUED, QueueState.RUNNING)
    assert wait_for(backend, job_id, {QueueState.RUNNING, *TERMINAL}) == QueueState.RUNNING
    assert wait_for(backend, job_id, TERMINAL) == QueueState.COMPLETED
    outcome = backend.outcome(job_id)
    assert outcome.usable, outcome.failure_reason
    assert 0.05 < outcome.barrier_ev < 1.5  # CHGNet gives ~0.27 eV for this vacancy hop
    assert outcome.method == "mlip:CHGNet CI-NEB"
    run_dir = tmp_path / "runs" / "runs" / "alem-neb-1"
    assert json.loads((run_dir / "started.json").read_text())["job_id"] == job_id  # ran as that Slurm job
    assert json.loads((run_dir / "exit.json").read_text())["state"] == "completed"


@pytest.mark.slow
def test_scancel_mid_run_is_lost_and_the_hop_retried(slurm_cluster, tmp_path, li2o_hop, fast_mlip_preset):
    from alem.campaign import reconcile, submit_approved
    from alem.store import HopState, JobStatus, Store

    fast_mlip_preset.neb.max_steps = 5000  # long enough to be killed while running
    config = CampaignConfig()
    config.campaign_dir = tmp_path
    config.backend.kind = "slurm"
    config.backend.max_attempts = 2
    backend = BatchBackend("slurm", tmp_path / "runs", fast_mlip_preset, config.backend.slurm)
    with Store.open(config.store_path) as store:
        store.add_hops([li2o_hop])
        store.approve([li2o_hop.hop_id], who="test")
        [(_, job_id)] = submit_approved(store, backend, config).submitted
        assert wait_for(backend, job_id, {QueueState.RUNNING, *TERMINAL}) == QueueState.RUNNING
        run_dir = backend.run_dir(job_id)
        deadline = time.time() + 300
        while not list((run_dir / "work").glob("job_*")) and time.time() < deadline:
            time.sleep(0.2)  # wait until jobflow is executing the first job of the flow
        assert list((run_dir / "work").glob("job_*")), "the batch job never started a jobflow job"

        slurm_cluster.run("scancel", job_id)
        deadline = time.time() + 60
        while job_id in slurm_cluster.queue() and time.time() < deadline:
            time.sleep(0.2)
        assert backend.poll([job_id]) == {job_id: QueueState.LOST}  # gone from squeue, no exit marker
        assert not (run_dir / "exit.json").exists()

        report = reconcile(store, backend, config)
        assert any("lost" in line and "will be retried" in line for line in report.repairs), report.repairs
        [first, second] = sorted(store.jobs(hop_id=li2o_hop.hop_id), key=lambda job: job.attempt)
        assert first.state is JobStatus.LOST and second.attempt == 2
        assert second.external_id != job_id and slurm_cluster.job_names()[second.external_id] == second.job_key
        assert store.hop(li2o_hop.hop_id).state is HopState.SUBMITTED
        backend.cancel(second.external_id)  # stop what this test started
        assert second.external_id not in slurm_cluster.queue()


def test_doctor_checks_the_scheduler_and_run_directory(slurm_cluster, tmp_path, monkeypatch):
    from alem.doctor import check_batch_scheduler

    settings = BatchBackendSection()
    checks = {check.name: check for check in check_batch_scheduler("slurm", tmp_path / "runs", settings)}
    assert checks["scheduler"].status == "ok" and "squeue answers" in checks["scheduler"].message
    assert checks["run directory"].status == "ok"

    (tmp_path / "broken.conf").write_text("NotAKey=1\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "broken.conf"))  # squeue fails
    checks = {check.name: check for check in check_batch_scheduler("slurm", tmp_path / "runs", settings)}
    assert checks["scheduler"].status == "problem" and "squeue" in checks["scheduler"].message
    missing = {check.name: check for check in check_batch_scheduler("pbs", tmp_path / "runs", settings)}
    assert missing["scheduler"].status == "problem" and "qsub" in missing["scheduler"].message

    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    from alem.doctor import run_checks

    config = CampaignConfig()
    config.campaign_dir = tmp_path
    config.backend.kind = "slurm"
    config.backend.slurm.preset = "mlip_chgnet"
    checks = {check.name: check for check in run_checks(config, check_potentials=False)}
    assert {"backend", "preset", "scheduler", "run directory"} <= set(checks)
    assert all(check.ok for check in checks.values()), checks


def test_doctor_flags_the_templates_placeholders_and_a_partition_slurm_does_not_have(slurm_cluster, tmp_path, monkeypatch):
    """The issue's case: hpc_configs/batch/alem_slurm.toml pasted verbatim. Doctor called the
    placeholder run directory writable and the made-up partition fine; sbatch then refused."""
    import tomllib
    from pathlib import Path

    from alem.doctor import check_batch_scheduler

    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    template = Path(__file__).parents[1] / "hpc_configs" / "batch" / "alem_slurm.toml"
    pasted = BatchBackendSection(**tomllib.loads(template.read_text())["backend"]["slurm"])
    checks = {check.name: check for check in check_batch_scheduler("slurm", Path(pasted.run_dir), pasted)}
    assert checks["scheduler"].status == "ok"
    assert checks["run directory"].status == "problem" and "placeholder path (YOUR_USER)" in checks["run directory"].message
    said = checks["placeholders"].message
    assert checks["placeholders"].status == "problem" and "YOUR_ACCOUNT" in said and "/path/to" in said
    assert checks["partition"].status == "problem"
    assert "queue = 'standard' is not one the scheduler knows" in checks["partition"].message
    assert f"it lists: {slurm_cluster.partition}" in checks["partition"].message
    assert "account" not in checks  # a placeholder already: not asked about twice

    own = BatchBackendSection(run_dir=str(tmp_path / "runs"), queue=slurm_cluster.partition, account="chem-lab")
    checks = {check.name: check for check in check_batch_scheduler("slurm", tmp_path / "runs", own)}
    assert checks["placeholders"].status == "ok" and checks["partition"].status == "ok"
    assert checks["run directory"].status == "ok"
    # the test cluster keeps no accounting database: the account cannot be checked, which is said
    # (a warning), not taken for a finding either way
    assert checks["account"].status == "warning" and "account = 'chem-lab' not checked: " in checks["account"].message
    assert all(check.ok for name, check in checks.items() if name != "account")


def test_pbs_script_matches_qtoolkits_pbs_adapter(tmp_path, li2o_hop, fast_mlip_preset):
    """No PBS server is installable here: the script is checked against qtoolkit's PBS adapter
    (the code jobflow-remote uses to submit to PBS) and bash, not submitted."""
    from qtoolkit.core.data_objects import QResources
    from qtoolkit.io import PBSIO

    settings = BatchBackendSection(queue="workq", account="proj1", nodes=5, tasks_per_node=32, walltime_minutes=90,
                                   pre_run=["module load vasp/6.4"], vasp_cmd="mpirun vasp_std")
    backend = BatchBackend("pbs", tmp_path / "runs", fast_mlip_preset, settings)
    run_dir = tmp_path / "runs" / "runs" / "alem-pbs-1"
    script = backend.script("alem-pbs-1", run_dir)
    directives = [line for line in script.splitlines() if line.startswith("#PBS")]
    expected = PBSIO().generate_header(QResources(
        job_name="alem-pbs-1", queue_name="workq", account="proj1", nodes=5, processes_per_node=32,
        threads_per_process=1, time_limit=90 * 60, output_filepath=str(run_dir / "batch.log"),
        error_filepath=str(run_dir / "batch.log")))
    assert directives == [line for line in expected.splitlines() if line.startswith("#PBS")]
    assert {"#PBS -N alem-pbs-1", "#PBS -q workq", "#PBS -A proj1", "#PBS -l select=5:ncpus=32:mpiprocs=32",
            "#PBS -l walltime=1:30:0"} <= set(directives)
    body = script.split("\n", len(directives) + 1)[-1]
    assert body.index("module load vasp/6.4") < body.index("-m alem.backends.batch")
    assert "export ATOMATE2_VASP_CMD='mpirun vasp_std'" in body
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    with pytest.raises(ValueError, match=r"\[backend.pbs\] qos"):
        BatchBackend("pbs", tmp_path / "runs", fast_mlip_preset, BatchBackendSection(qos="high")).script("k", run_dir)


@pytest.mark.parametrize("scheduler, directive", [("slurm", "#SBATCH --nodes=5"), ("pbs", "#PBS -l select=5:ncpus=32:mpiprocs=32")])
def test_hpc_config_templates_validate_render_and_round_trip(scheduler, directive, tmp_path, fast_mlip_preset):
    import tomllib
    from pathlib import Path

    template = Path(__file__).resolve().parents[1] / "hpc_configs" / "batch" / f"alem_{scheduler}.toml"
    config = CampaignConfig.from_dict(tomllib.loads(template.read_text()), source=template)
    assert config.backend.kind == scheduler
    section = getattr(config.backend, scheduler)
    script = BatchBackend(scheduler, tmp_path / "runs", fast_mlip_preset, section).script("alem-x", tmp_path / "x")
    assert directive in script and "module load vasp/6.4.2" in script and "export ATOMATE2_VASP_CMD=" in script
    assert script.splitlines()[-1] == "/path/to/alem/.venv/bin/python -m alem.backends.batch " + str(tmp_path / "x")
    config.save(tmp_path / "campaign")  # lists (pre_run) are written as TOML arrays and read back
    assert getattr(CampaignConfig.load(tmp_path / "campaign").backend, scheduler) == section


def test_demo_offers_local_and_slurm_only(tmp_path):
    from typer.testing import CliRunner

    from alem.cli import app

    refused = CliRunner().invoke(app, ["demo", str(tmp_path / "demo"), "--backend", "pbs"])
    assert refused.exit_code == 2 and "the demo runs on local or slurm" in refused.output
    assert not (tmp_path / "demo").exists()


def test_run_directory_staging_left_by_a_killed_process_is_replaced(tmp_path, li2o_hop, fast_mlip_preset):
    from alem.backends.rundir import read_json, stage_run

    leftover = tmp_path / ".alem-k.staging"
    leftover.mkdir()
    (leftover / "flow.json").write_text("half written")
    request = stage_run(tmp_path / "alem-k", li2o_hop, fast_mlip_preset, "alem-k", scheduler="slurm")
    assert read_json(tmp_path / "alem-k" / "request.json") == request and request["scheduler"] == "slurm"
    assert not leftover.exists() and (tmp_path / "alem-k" / "flow.json").read_text() != "half written"


@pytest.mark.slow
def test_walltime_kill_is_resubmitted_and_continues_from_its_last_images(slurm_cluster, tmp_path, li2o_hop, fast_mlip_preset):
    """A CHGNet NEB under a 1-minute walltime: Slurm kills it mid-NEB, alem resubmits it, and the
    next attempt starts from the images the killed one reached (not from IDPP), without relaxing
    the endpoints again; one usable barrier, never two live jobs, every attempt's core-hours once.

    So that no machine is fast enough to finish within the minute, the attempts ask for a force
    criterion (1e-7 eV/Å, below CHGNet's float32 noise) none can reach; once an attempt was killed mid-NEB the test sets
    the preset's 0.05 eV/Å and a 10-minute walltime, so the continued NEB finishes."""
    from alem.campaign import reconcile, submit_approved
    from alem.store import HopState, Store
    from tests.test_backends_restart import trajectory_energies

    # below CHGNet's float32 force noise: no attempt converges (1e-3 eV/Å did, in 22 s on an idle
    # machine), only the walltime stops one
    fast_mlip_preset.neb.fmax_ev_a = 1e-7
    fast_mlip_preset.neb.max_steps = 100_000
    # the endpoints relax to the same unreachable fmax and stop at their step limit: the pre-NEB
    # check would (rightly) stop the flow there, and this test is about the NEB's walltime
    fast_mlip_preset.checks.endpoint_check = False
    frames = fast_mlip_preset.neb.n_images + 2
    config = CampaignConfig()
    config.campaign_dir = tmp_path
    config.backend.kind = "slurm"
    config.backend.max_attempts = 8
    config.backend.slurm.walltime_minutes = 1
    backend = BatchBackend("slurm", tmp_path / "runs", fast_mlip_preset, config.backend.slurm)
    most_live = 0
    with Store.open(config.store_path) as store:
        store.add_hops([li2o_hop])
        store.approve([li2o_hop.hop_id], who="test")
        deadline = time.time() + 2400
        while store.hop(li2o_hop.hop_id).state not in (HopState.DONE, HopState.FAILED) and time.time() < deadline:
            submit_approved(store, backend, config)  # what `alem loop` does every tick
            live = [state for state in slurm_cluster.queue().values() if state in ("PD", "R", "CG", "CF")]
            most_live = max(most_live, len(live), len(store.jobs(live=True)))
            reconcile(store, backend, config, resubmit=False)
            ended = [job for job in store.jobs(hop_id=li2o_hop.hop_id) if job.state.value in ("failed", "lost")]
            if any(list((backend.run_dir(job.external_id) / "work").glob("*/alem_neb.traj")) for job in ended):
                config.backend.slurm.walltime_minutes = 10  # killed mid-NEB: let the next attempt finish
                fast_mlip_preset.neb.fmax_ev_a = 0.05
            time.sleep(2)
        jobs = sorted(store.jobs(hop_id=li2o_hop.hop_id), key=lambda job: job.attempt)
        assert store.hop(li2o_hop.hop_id).state is HopState.DONE, [(j.attempt, j.state, j.error) for j in jobs]
        [result] = store.results(hop_id=li2o_hop.hop_id)
        assert result.usable and 0.05 < result.barrier_ev < 1.5
        assert most_live == 1  # one live job at any time, in Slurm and in the store
        assert len(jobs) >= 2 and all(job.state.value in ("failed", "lost") for job in jobs[:-1])
        run_dirs = [backend.run_dir(job.external_id) for job in jobs]
        assert all("DUE TO TIME LIMIT" in (run_dir / "batch.log").read_text() for run_dir in run_dirs[:-1])

        costs = [backend.job_cost(job.external_id) for job in jobs]
        starts = [json.loads((run_dir / "started.json").read_text())["started_at"] for run_dir in run_dirs]
        last_energies, continued = None, 0
        for attempt, run_dir in enumerate(run_dirs):
            steps = trajectory_energies(run_dir, frames) if list((run_dir / "work").glob("*/alem_neb.traj")) else []
            if attempt:
                assert starts[attempt] >= starts[attempt - 1] + costs[attempt - 1].wall_s - 1.0  # never side by side
                if last_energies is not None:  # an earlier attempt reached the NEB
                    assert len(list((run_dir / "work").glob("job_*"))) == 1  # the NEB only: endpoints kept
                    if steps:  # not from IDPP: where the killed one stopped
                        assert steps[0] == pytest.approx(last_energies, abs=1e-5)
                        continued += 1
            last_energies = steps[-1] if steps else last_energies
        assert continued >= 1
        assert 45 < costs[0].wall_s < 240  # killed by the 1-minute limit

        recorded = [job.core_hours for job in jobs]
        assert all(hours is not None and hours > 0 for hours in recorded)
        assert recorded == pytest.approx([cost.core_hours for cost in costs])
        assert store.core_hours_spent() == pytest.approx(sum(recorded))  # each attempt once
        assert store.core_hours_by_hop() == {li2o_hop.hop_id: (pytest.approx(sum(recorded)), len(jobs))}
