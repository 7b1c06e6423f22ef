"""`alem report` on a finished replay campaign and `alem demo` with a real CHGNet NEB."""

from __future__ import annotations

import base64
import re

import pytest
from typer.testing import CliRunner

from alem.cli import app
from alem.store import Store
from tests._chgnet_reference import LI2O_DEMO_EV, TOLERANCE_EV
from tests._replay_campaign import make_replay_campaign

runner = CliRunner()


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_is_self_contained_and_shows_the_campaign(tmp_path, scratch_ensemble):
    config, barriers = make_replay_campaign(
        tmp_path, scratch_ensemble, n_hops=8, offset=20, approval__auto_approve=True, acquisition__batch_size=3,
        model__retrain_after_results=3, model__n_members=2,
    )
    hops = list(barriers)  # hop ids

    # before anything ran the report still renders (empty plots say so)
    empty = runner.invoke(app, ["report", "--campaign", str(config.campaign_dir), "--out", str(tmp_path / "empty.html")])
    assert empty.exit_code == 0, empty.output
    assert len(_images((tmp_path / "empty.html").read_text())) == 4

    ran = runner.invoke(app, ["loop", "--campaign", str(config.campaign_dir), "--tick-seconds", "0", "--until-idle",
                              "--max-ticks", "15"])
    assert ran.exit_code == 0, ran.output
    result = runner.invoke(app, ["report", "--campaign", str(config.campaign_dir)])
    assert result.exit_code == 0, result.output
    page = (config.state_dir / "report.html").read_text()
    images = _images(page)
    with Store.open(config.store_path) as store:
        fidelities = {r.fidelity for r in store.results(usable=True)}
    # CV parity, one campaign parity plot per fidelity (never pooled), learning curve, history
    assert len(images) == 3 + len(fidelities) and all(img.startswith(b"\x89PNG") for img in images)
    for fidelity in fidelities:
        assert f'alt="campaign parity at {fidelity}"' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    for hop_id in hops:
        assert hop_id in page
    assert page.count("<tr><td>") >= 2 * len(hops)  # results table and parity table
    from alem.report import learning_curve, out_of_fold, parity_points

    with Store.open(config.store_path) as store:
        points = parity_points(store)
        curve = learning_curve(store)
        oof_version, oof_y, oof_predicted = out_of_fold(store)
    # the current (retrained) version has no CV of its own: the report falls back to version 1
    assert oof_version == 1 and len(oof_y) == len(oof_predicted) == 20
    assert len(points) == len(hops)
    assert len(curve) >= 2 and curve[0]["prospective"] and all(m["mae_ev"] is not None for m in curve[0]["prospective"].values())

    # every parity prediction was made before its NEB result: never by the model that learned it.
    # The retrained current model now predicts a hop it was trained on, after that hop's result:
    # the parity plot must not take that prediction.
    with Store.open(config.store_path) as store:
        current = store.current_model()
        results = {r.hop_id: r for r in store.results(usable=True)}
        learned = min(results, key=lambda hop_id: results[hop_id].created_at)
        assert results[learned].created_at < current.created_at  # the current model learned it
        store.record_predictions(current.id, [learned], [9.99], [0.01], [0.0])
        points = {p.hop_id: p for p in parity_points(store)}
        proposals = {p.hop_id: p for p in store.proposals()}
        assert points[learned].predicted_ev != pytest.approx(9.99)
        for hop_id, point in points.items():
            version = int(re.search(r"model v(\d+)", point.source).group(1))
            if point.source.startswith("proposal"):
                made = proposals[hop_id]
                assert made.model_version_id == version
            else:
                made = store.predictions(version)[hop_id]
            assert (made.mean_ev, made.std_ev) == (point.predicted_ev, point.sigma_ev)
            assert made.created_at < results[hop_id].created_at
            assert store.model_version(version).created_at < results[hop_id].created_at


@pytest.mark.slow
def test_demo_runs_a_real_chgnet_campaign(tmp_path, scratch_ensemble):
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--model", str(scratch_ensemble),
                                 "--host", "Li2O_antifluorite", "--max-minutes", "20"])
    assert result.exit_code == 0, result.output
    assert "Li2O_antifluorite: 1 distinct Li hops" in result.output
    assert "mlip:CHGNet" in result.output
    with Store.open(tmp_path / "demo" / "state" / "alem.sqlite") as store:
        (neb,) = store.results()
        assert neb.usable and neb.barrier_ev == pytest.approx(LI2O_DEMO_EV, abs=TOLERANCE_EV)
        assert len(neb.image_energies_ev) == 7  # 5 images + endpoints (the demo preset)
        assert store.decisions()[0].who.startswith("alem-loop")
        assert store.integrity_check() == []
    assert (tmp_path / "demo" / "state" / "report.html").is_file()

    # the README's command run again carries on with the same campaign: nothing is redone
    again = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--host", "Li2O_antifluorite"])
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())  # rich wraps long lines
    assert "continuing the demo campaign" in said and "(1 hops done, 0 to go)" in said
    with Store.open(tmp_path / "demo" / "state" / "alem.sqlite") as store:
        assert len(store.jobs()) == 1 and len(store.hops()) == 1

    # a campaign the demo did not make is left alone, even with --fresh
    from alem.campaign import init_campaign
    from alem.demo import remove_demo_campaign

    init_campaign(tmp_path / "mine")
    refused = runner.invoke(app, ["demo", str(tmp_path / "mine"), "--fresh"])
    assert refused.exit_code == 2 and "not an alem demo" in " ".join(refused.output.split())
    assert (tmp_path / "mine" / "alem.toml").is_file()
    remove_demo_campaign(tmp_path / "demo")  # what --fresh does before starting over
    assert not (tmp_path / "demo").exists()


def test_the_demo_summary_notes_an_mlip_barrier_below_a_tenth_of_an_ev(tmp_path):
    """The shipped demo's LiMn2O4 hop came out at 0.070 eV with CHGNet: said beside the number."""
    from test_report_browser import RESULTS, _campaign

    from alem.demo import summary_rows

    config = _campaign(tmp_path)
    with Store.open(config.store_path) as store:
        notes = {row["hop_id"]: row["note"] for row in summary_rows(store)}
    assert notes["h-mlip-1"].startswith("below 0.1 eV from an MLIP: check the path")
    assert not any(notes[hop_id] for hop_id in RESULTS if hop_id != "h-mlip-1")
