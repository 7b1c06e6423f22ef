"""The campaign commands through typer's CliRunner on a real campaign directory."""

import json
import tomllib

import pytest
from typer.testing import CliRunner

from alem.campaign import submit_approved
from alem.cli import app
from alem.config import CampaignConfig
from alem.hops import read_hops, write_dataset
from alem.store import Store

runner = CliRunner()


def _run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _flat(text):
    return " ".join(text.split())


@pytest.fixture
def campaign(tmp_path, tiny_hop, scratch_ensemble):
    """A replay campaign with hops a (done), b (in flight: replay delay), c (candidate); its model
    is a real ensemble with a real cross-validation in its card (registered as the loop does)."""
    directory = tmp_path / "camp"
    dataset = write_dataset([tiny_hop("a", 0.4, 0.31), tiny_hop("b", 0.5, 0.62)], tmp_path / "labelled.json")
    _run("init", directory, "--backend", "replay", "--ion", "Li", "--name", "demo", "--replay-dataset", dataset)
    config = CampaignConfig.load(directory)
    config.model.path = str(scratch_ensemble)
    from alem.backends.replay import ReplayBackend
    from alem.campaign.model_versions import ensure_model_version

    with Store.open(config.store_path) as store:
        store.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5), tiny_hop("c", 0.6)])
        model = ensure_model_version(store, config)
        store.record_predictions(model, ["a", "b", "c"], [0.3, 0.6, 0.9], [0.1, 0.2, 0.3], [0.9, 0.5, 0.1])
        store.approve(["a"], who="alice", reason="cheap")
        submit_approved(store, ReplayBackend.from_config(config), config)
        config.backend.replay.delay_s = 3600.0  # b stays running
        store.approve(["b"], who="alice")
        submit_approved(store, ReplayBackend.from_config(config), config)
        store.set_loop_status("waiting", "next tick in 60 s")
    config.save()
    return directory


def test_init_writes_a_documented_config_and_an_empty_store(tmp_path):
    directory = tmp_path / "new"
    result = _run("init", directory, "--ion", "Na", "--backend", "local")
    assert "Created campaign new" in result.output
    text = (directory / "alem.toml").read_text()
    assert "max_running_jobs = 4  # most NEB jobs in flight at once" in text
    config = tomllib.loads(text)
    assert config["campaign"]["working_ion"] == "Na" and config["backend"]["kind"] == "local"
    assert (directory / "state" / "alem.sqlite").is_file()
    again = _run("init", directory, ok=False)
    assert again.exit_code == 1 and "a campaign already exists here" in _flat(again.output)
    bad = _run("init", tmp_path / "x", "--backend", "sge", ok=False)
    assert bad.exit_code == 2 and "alem init: [backend] kind: Input should be" in _flat(bad.output)
    assert not (tmp_path / "x" / "alem.toml").exists()


def _card(campaign) -> dict:
    config = CampaignConfig.load(campaign)
    return json.loads((config.resolve(config.model.path) / "model_card.json").read_text())


def test_reconcile_then_status_in_json(campaign):
    result = _run("reconcile", "--campaign", campaign, "--json")
    report = json.loads(result.output)
    assert report["checked"] == 2 and report["completed"] == 1 and report["problems"] == []
    assert any("barrier 0.310 eV" in line for line in report["repairs"])
    status = json.loads(_run("status", "-C", campaign, "--json").output)
    assert status["campaign"] == "demo" and status["backend"] == "replay"
    assert status["hops"] == {
        "candidate": 1, "proposed": 0, "approved": 0, "rejected": 0, "submitted": 1, "done": 1, "failed": 0,
    }
    assert [j["hop_id"] for j in status["running_jobs"]] == ["b"]
    # the ensemble's CV MAE (not its single-member one), as written by the training run
    card = _card(campaign)
    assert card["cv_metrics"]["mae_ev"] != pytest.approx(card["cv_metrics_single_member"]["mae_ev"])
    assert status["model"]["cv_mae_ev"] == pytest.approx(card["cv_metrics"]["mae_ev"])
    assert status["model"]["n_training_hops"] == card["n_training_hops"] == 20
    assert status["results"] == {"usable": 1, "failed": 0, "new_since_current_model": 1}
    assert status["loop"]["phase"] == "waiting" and status["loop"]["alive"] is True  # this process, fresh heartbeat
    assert status["problems"] == []


def test_status_tables_are_readable(campaign, monkeypatch):
    monkeypatch.chdir(campaign / "state")  # found by walking up to alem.toml
    out = _flat(_run("status").output)
    assert "demo Li migration, backend replay" in out
    assert f"CV MAE {_card(campaign)['cv_metrics']['mae_ev']:.3f} eV" in out and "Jobs in flight" in out
    # when the model was registered here, not when it was trained; two counts, each of what it counts
    assert "registered in this campaign" in out and "trained on" in out
    assert "since then 0 new usable results of any fidelity, 0 of those it learns from (dft)" in out
    assert "(0 new dft results since the current model was registered)" in out


def test_approving_a_candidate_that_was_never_proposed_says_so(campaign):
    result = _run("approve", "c", "-C", campaign)
    assert "approved 1 hop(s): c" in _flat(result.output)
    assert "c was never proposed: approved straight from candidate" in _flat(result.output)


def test_show_lists_everything_about_a_hop(campaign):
    _run("reconcile", "-C", campaign)
    data = json.loads(_run("show", "a", "-C", campaign, "--json").output)
    assert data["hop"]["state"] == "done"
    assert data["predictions"][0]["mean_ev"] == pytest.approx(0.3)
    assert data["decisions"][0]["reason"] == "cheap"
    assert data["results"][0]["barrier_ev"] == pytest.approx(0.31)
    assert [e["kind"] for e in data["events"]] == ["approved", "job_created", "job_submitted", "result"]
    out = _flat(_run("show", "a", "-C", campaign).output)
    assert "state done" in out and "barrier 0.310 eV" in out and "approved by alice" in out


def test_show_of_an_unknown_hop_fails_with_a_clear_message(campaign):
    result = _run("show", "no-such-hop", "-C", campaign, ok=False)
    assert result.exit_code == 1
    assert "no hop 'no-such-hop' in" in _flat(result.output)


def test_jobs_and_history(campaign):
    _run("reconcile", "-C", campaign)
    live = json.loads(_run("jobs", "-C", campaign, "--json").output)
    assert [(j["hop_id"], j["state"]) for j in live] == [("b", "running")]
    every = json.loads(_run("jobs", "-C", campaign, "--json", "--all").output)
    assert [(j["hop_id"], j["state"]) for j in every] == [("b", "running"), ("a", "completed")]
    assert "Jobs in flight" in _run("jobs", "-C", campaign).output
    bad = _run("jobs", "-C", campaign, "--state", "zombie", ok=False)
    assert bad.exit_code == 2 and "not a job state" in _flat(bad.output)
    events = json.loads(_run("history", "-C", campaign, "--json", "--limit", "3").output)
    assert len(events) == 3 and events[-1]["kind"] == "job_state"
    results = json.loads(_run("history", "-C", campaign, "--json", "--kind", "result").output)
    assert [e["hop_id"] for e in results] == ["a"]
    assert "campaign_created" in _run("history", "-C", campaign, "-n", "100").output


def test_export_writes_a_trainable_dataset(campaign, tmp_path):
    _run("reconcile", "-C", campaign)
    out = tmp_path / "results.json"
    data = json.loads(_run("export", out, "-C", campaign, "--json").output)
    assert data == {"path": str(out), "n_hops": 1}
    (hop,) = read_hops([out])
    assert hop.hop_id == "a" and hop.barrier_ev == pytest.approx(0.31) and hop.provenance.source == "alem:replay"


def test_a_malformed_config_gets_one_message_naming_file_and_key(campaign):
    path = campaign / "alem.toml"
    path.write_text(path.read_text().replace("max_running_jobs = 4", 'max_running_jobs = "many"'))
    result = _run("status", "-C", campaign, ok=False)
    assert result.exit_code == 2
    message = _flat(result.output)
    assert f"{path}: [approval] max_running_jobs: Input should be a valid integer" in message
    path.write_text(path.read_text().replace('max_running_jobs = "many"', "max_runing_jobs = 4"))
    message = _flat(_run("jobs", "-C", campaign, ok=False).output)
    assert f"{path}: unknown key 'max_runing_jobs' in [approval]" in message
    path.write_text("[campaign\nname = 1")
    assert f"{path}: not valid TOML" in _flat(_run("history", "-C", campaign, ok=False).output)


def test_commands_outside_a_campaign_say_how_to_start_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALEM_CAMPAIGN", raising=False)
    result = _run("status", ok=False)
    assert result.exit_code == 2 and "alem init" in _flat(result.output)


def test_reconcile_says_plainly_what_it_repaired(campaign):
    out = _flat(_run("reconcile", "-C", campaign).output)
    assert "Checked 2 jobs on replay." in out and "completed: barrier 0.310 eV (replay:unknown); hop done" in out
    out = _flat(_run("reconcile", "-C", campaign).output)
    assert "Checked 1 jobs on replay. Nothing to repair" in out


def test_a_loop_whose_process_is_gone_is_reported_as_not_running(campaign):
    config = CampaignConfig.load(campaign)
    with Store.open(config.store_path) as store:
        store.set_loop_status("waiting", pid=2**22 + 12345)  # above the default pid_max: no such process
    status = json.loads(_run("status", "-C", campaign, "--json").output)
    assert status["loop"]["alive"] is False
    assert "Loop: not running" in _flat(_run("status", "-C", campaign).output)


def test_cancel_records_first_then_stops_the_backend_job_and_never_retries(campaign):
    from alem.backends.replay import ReplayBackend

    config = CampaignConfig.load(campaign)
    with Store.open(config.store_path) as store:
        external_id = store.live_job("b").external_id
    result = _run("cancel", "b", "--reason", "wrong supercell", "-C", campaign)
    assert f"cancelled hop b (job {external_id} on replay)" in _flat(result.output)
    with Store.open(config.store_path) as store:
        job = store.jobs(hop_id="b")[-1]
        assert store.hop("b").state.value == "failed" and job.state.value == "failed"
        assert job.error == "cancelled: wrong supercell" and store.live_job("b") is None
        # the log says what happened in words that hold: no "1 of 0 attempts used"
        (failed,) = [e.message for e in store.events(kind="hop_failed")]
        assert failed == "hop b failed: not retried: cancelled: wrong supercell"
    submission = [s for s in ReplayBackend.from_config(config).submissions() if s["external_id"] == external_id]
    assert submission[0]["cancelled"] == 1  # the backend was told, after the store recorded it
    # a reconcile afterwards leaves the cancelled hop alone: no retry, no new job
    _run("reconcile", "--campaign", campaign)
    with Store.open(config.store_path) as store:
        assert store.hop("b").state.value == "failed" and len(store.jobs(hop_id="b")) == 1
    # nothing in flight any more, and a done hop: both refused, nothing changes
    again = _run("cancel", "b", "a", "--reason", "again", "-C", campaign, ok=False)
    assert again.exit_code != 0
    assert "hop b has no job in flight (it is failed)" in _flat(again.output)
    assert "hop a has no job in flight (it is done)" in _flat(again.output)
    assert "nothing was cancelled" in _flat(again.output)
