"""`alem doctor`: plain findings about a campaign's backend, non-zero exit on problems."""

import functools

import mongomock
import mongomock.gridfs
import pytest
from jobflow import JobStore
from maggma.stores import MemoryStore
from mongomock.store import ServerStore
from typer.testing import CliRunner

from alem.cli import app
from alem.config import CampaignConfig
from alem.doctor import check_job_store, check_launchpad, check_vasp, run_checks
from alem.neb.presets import load_preset


def campaign(tmp_path, **backend):
    config = CampaignConfig()
    for key, value in backend.items():
        section, field = key.split("__") if "__" in key else ("", key)
        setattr(getattr(config.backend, section) if section else config.backend, field, value)
    config.save(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_default_local_campaign_is_ready(tmp_path):
    result = CliRunner().invoke(app, ["doctor", "--campaign", str(campaign(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "CHGNet loads" in result.output and "ready" in result.output


def test_fireworks_campaign_without_launchpad_or_store_fails(tmp_path, monkeypatch):
    from jobflow import SETTINGS
    from pymatgen.core import SETTINGS as PMG_SETTINGS

    monkeypatch.setattr(SETTINGS, "JOB_STORE", JobStore(MemoryStore()))
    monkeypatch.delitem(PMG_SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch/qsub here
    directory = campaign(tmp_path, kind="fireworks", fireworks__launchpad_file="nope.yaml")
    result = CliRunner().invoke(app, ["doctor", "--campaign", str(directory), "--json"])
    assert result.exit_code == 1
    checks = {c.name: c for c in run_checks(CampaignConfig.load(directory))}
    assert checks["launchpad"].status == "problem" and "nope.yaml not found" in checks["launchpad"].message
    assert checks["queue"].status == "problem" and "sbatch" in checks["queue"].message
    assert checks["job store"].status == "problem" and "'data' additional store" in checks["job store"].message
    assert checks["POTCARs"].status == "problem" and "PMG_VASP_PSP_DIR is not set" in checks["POTCARs"].message
    assert checks["preset"].status == "ok"


def test_vasp_potcar_directory_and_launchpad_and_store_ok(tmp_path, monkeypatch):
    import fireworks.core.launchpad as launchpad_module
    from fireworks import LaunchPad
    from pymatgen.core import SETTINGS as PMG_SETTINGS

    (tmp_path / "potcars" / "POT_GGA_PAW_PBE").mkdir(parents=True)
    monkeypatch.setitem(PMG_SETTINGS, "PMG_VASP_PSP_DIR", str(tmp_path / "potcars"))
    checks = {c.name: c for c in check_vasp(load_preset("vasp_gga"))}
    assert checks["POTCARs"].status == "ok"
    monkeypatch.setitem(PMG_SETTINGS, "PMG_VASP_PSP_DIR", str(tmp_path))
    assert {c.name: c for c in check_vasp(load_preset("vasp_gga"))}["POTCARs"].status == "problem"

    mongomock.gridfs.enable_gridfs_integration()
    monkeypatch.setattr(launchpad_module, "MongoClient", functools.partial(mongomock.MongoClient, _store=ServerStore()))
    assert check_launchpad(None, launchpad=LaunchPad(name="doctor")).status == "ok"
    assert check_job_store(JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})).status == "ok"


def test_bad_preset_and_unknown_jobflow_remote_project(tmp_path, monkeypatch):
    import jobflow_remote

    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(tmp_path / "projects"))
    directory = campaign(tmp_path, kind="jobflow-remote", jobflow_remote__project="nosuch",
                         jobflow_remote__preset="typo_preset")
    checks = run_checks(CampaignConfig.load(directory))
    by_name = {c.name: c for c in checks}
    assert by_name["preset"].status == "problem" and "typo_preset" in by_name["preset"].message
    assert by_name["jobflow-remote project"].status == "problem" and "nosuch" in by_name["jobflow-remote project"].message


def test_a_screening_stage_is_checked_like_the_campaign_backend(tmp_path):
    """[screening.backend] gets the backend checks (named ``screening …``) and its preset must
    produce barriers of [screening] fidelity."""
    config = CampaignConfig.from_dict({
        "backend": {"kind": "replay", "replay": {"dataset": "missing.json"}},
        "screening": {"fidelity": "mlip:CHGNet", "backend": {"kind": "local", "local": {"preset": "mlip_chgnet"}}},
    })
    config.save(tmp_path)
    checks = {c.name: c for c in run_checks(CampaignConfig.load(tmp_path), check_potentials=False)}
    assert checks["replay dataset"].status == "problem"  # the campaign's own backend, as before
    assert checks["screening backend"].message == "local" and checks["screening preset"].status == "ok"
    assert checks["screening job store"].status == "ok"
    assert checks["screening fidelity"].status == "ok" and "mlip:CHGNet" in checks["screening fidelity"].message

    config.screening.fidelity = "mlip:SevenNet"  # the CHGNet preset cannot produce SevenNet barriers
    config.save(tmp_path)
    checks = {c.name: c for c in run_checks(CampaignConfig.load(tmp_path), check_potentials=False)}
    assert checks["screening fidelity"].status == "problem" and "produces mlip:CHGNet" in checks["screening fidelity"].message
    result = CliRunner().invoke(app, ["doctor", "--campaign", str(tmp_path), "--skip-potentials"])
    assert result.exit_code == 1 and "screening fidelity" in result.output

    config.screening.fidelity = ""  # no screening stage: nothing of it checked
    config.save(tmp_path)
    assert not [c for c in run_checks(CampaignConfig.load(tmp_path), check_potentials=False) if c.name.startswith("screening")]
