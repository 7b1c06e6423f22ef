"""`alem predict` and `alem evaluate` end to end, as a user runs them."""

import csv
import json

import pytest
from typer.testing import CliRunner

from alem.cli import app
from alem.hops import hop_to_dataset_entry, load_training_hops, write_dataset
from tests.conftest import rocksalt_hop

runner = CliRunner()


@pytest.fixture
def hop_file(tmp_path):
    hops = sorted(load_training_hops(), key=lambda h: len(h.initial))[30:36]
    return write_dataset(hops, tmp_path / "six_hops.json")


def test_predict_json_csv_and_table(tiny_ensemble, hop_file, tmp_path):
    result = runner.invoke(app, ["predict", str(hop_file), "--model", str(tiny_ensemble), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 6
    assert all(r["sigma_ev"] > 0 and 0 <= r["prob_below_065"] <= 1 for r in rows)
    result = runner.invoke(app, ["predict", str(hop_file), "--model", str(tiny_ensemble), "--csv"])
    assert result.exit_code == 0
    assert len(list(csv.DictReader(result.stdout.splitlines()))) == 6
    hop = rocksalt_hop("pair")
    hop.initial.to(filename=str(tmp_path / "ini.cif"))
    hop.final.to(filename=str(tmp_path / "fin.cif"))
    result = runner.invoke(app, ["predict", str(tmp_path / "ini.cif"), str(tmp_path / "fin.cif"), "--model", str(tiny_ensemble)])
    assert result.exit_code == 0, result.output
    assert "E_m (eV)" in result.stdout and "ini->fin" in result.stdout


def test_predict_bad_file_is_one_clear_error(tiny_ensemble, tmp_path):
    hop = rocksalt_hop("wrong-ion")
    entry = hop_to_dataset_entry(hop)
    entry["working_ion"] = "Mg"
    (tmp_path / "bad.json").write_text(json.dumps([entry]))
    result = runner.invoke(app, ["predict", str(tmp_path / "bad.json"), "--model", str(tiny_ensemble)])
    assert result.exit_code == 2
    assert "bad.json: hop wrong-ion: working ion Mg is not in the structure" in result.output.replace("\n", "")
    result = runner.invoke(app, ["predict", str(tmp_path / "bad.json"), "--model", str(tmp_path)])
    assert result.exit_code == 2


def test_evaluate_writes_metrics_parity_and_predictions(tiny_ensemble, hop_file, tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(hop_file), "--out", str(out), "--model", str(tiny_ensemble)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("n", "mae_ev", "rmse_ev", "r2", "accuracy_065", "precision_065", "recall_065",
                "spearman_sigma_abs_err", "coverage_68", "coverage_90", "coverage_95", "nll"):
        assert key in metrics
    assert metrics["n"] == 6 and metrics["mae_ev"] > 0
    assert (out / "parity.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 6 and float(rows[0]["sigma_ev"]) > 0
