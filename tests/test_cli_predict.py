"""`alem predict` and `alem evaluate` end to end, as a user runs them."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from alem.cli import app
from alem.ensemble import Ensemble
from alem.hops import hop_to_dataset_entry, load_training_hops, read_hops, write_dataset
from alem.metrics import barrier_metrics
from tests._factories import rocksalt_hop

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


def test_the_predict_table_fits_the_terminal(tiny_ensemble, hop_file):
    from tests.test_cli_tables import WIDTHS, fits

    ids = [h.hop_id for h in read_hops([hop_file])]
    for width in WIDTHS:
        result = runner.invoke(app, ["predict", str(hop_file), "--model", str(tiny_ensemble)], env={"COLUMNS": str(width)})
        assert result.exit_code == 0 and fits(result.stdout, width) == [], result.output
        assert all(hop_id in result.stdout for hop_id in ids) and "E_m" in result.stdout


def test_predict_bad_file_is_one_clear_error(tiny_ensemble, tmp_path):
    hop = rocksalt_hop("wrong-ion")
    entry = hop_to_dataset_entry(hop)
    entry["working_ion"] = "Mg"
    (tmp_path / "bad.json").write_text(json.dumps([entry]))
    result = runner.invoke(app, ["predict", str(tmp_path / "bad.json"), "--model", str(tiny_ensemble)])
    assert result.exit_code == 2
    assert "bad.json: hop wrong-ion: working ion Mg is not in the structure" in result.output.replace("\n", "")
    result = runner.invoke(app, ["predict", str(tmp_path / "bad.json"), "--model", str(tmp_path)])
    assert result.exit_code == 2  # the hop file is read first: its problem is the one named
    assert "bad.json: hop wrong-ion: working ion Mg is not in the structure" in result.output.replace("\n", "")
    # a good hop file with no model there names the model directory and what is missing
    good = write_dataset([rocksalt_hop("good")], tmp_path / "good.json")
    result = runner.invoke(app, ["predict", str(good), "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path}: no model_card.json here (not an alem ensemble)" in result.output.replace("\n", "")


def _file_with_invalid_hops(hop_file, path):
    """The six good hops of ``hop_file`` and five bad ones: a structure without the working ion, two
    overlapping atoms, a NaN coordinate, a NaN barrier, an entry without its final structure."""
    entries = json.loads(hop_file.read_text())
    no_ion = hop_to_dataset_entry(rocksalt_hop("no-li"))
    no_ion["working_ion"] = "Na"
    overlapping = hop_to_dataset_entry(rocksalt_hop("overlap"))
    for key in ("structure_ini", "structure_fin"):
        overlapping[key]["coords"][5] = [c + 0.01 for c in overlapping[key]["coords"][4]]
    nan_coords = hop_to_dataset_entry(rocksalt_hop("nan-coords"))
    nan_coords["structure_fin"]["coords"][3][0] = float("nan")
    nan_barrier = hop_to_dataset_entry(rocksalt_hop("nan-barrier"))
    nan_barrier["target"] = float("nan")
    no_final = hop_to_dataset_entry(rocksalt_hop("no-final"))
    del no_final["structure_fin"]
    bad = [no_ion, overlapping, nan_coords, nan_barrier, no_final]
    path.write_text(json.dumps(entries[:3] + bad + entries[3:]))  # json writes NaN as NaN, as Python reads it
    return path, [e["jid"] for e in entries]


def test_predict_leaves_out_invalid_hops_and_names_each(tiny_ensemble, hop_file, tmp_path):
    mixed, good_ids = _file_with_invalid_hops(hop_file, tmp_path / "mixed.json")
    result = runner.invoke(app, ["predict", str(mixed), "--model", str(tiny_ensemble), "--json"])
    assert result.exit_code == 1, result.output  # some hops left out, the rest predicted
    rows = json.loads(result.stdout)
    assert [r["hop_id"] for r in rows] == good_ids
    # the valid hops' predictions are those of the file without the bad ones
    clean = json.loads(runner.invoke(app, ["predict", str(hop_file), "--model", str(tiny_ensemble), "--json"]).stdout)
    assert rows == clean
    lines = [line for line in result.stderr.splitlines() if line.startswith("invalid hop")]
    assert len(lines) == 5, result.stderr
    expected = {
        "no-li": "working ion Na is not in the structure",
        "overlap": "overlapping atoms in initial: sites 4 and 5",
        "nan-coords": "final has a lattice or coordinates that are not finite numbers",
        "nan-barrier": "barrier is nan (not finite)",
        "no-final": "missing key 'structure_fin'",
    }
    for hop_id, problem in expected.items():
        assert any(f"mixed.json: hop {hop_id}: " in line and problem in line for line in lines), (hop_id, lines)
    assert "6 hop(s) predicted, 5 invalid hop(s) left out" in result.stderr
    # the table too, with the same exit code
    result = runner.invoke(app, ["predict", str(mixed), "--model", str(tiny_ensemble)])
    assert result.exit_code == 1 and all(hop_id in result.stdout for hop_id in good_ids)
    # --strict: all or nothing, every invalid hop named
    result = runner.invoke(app, ["predict", str(mixed), "--model", str(tiny_ensemble), "--strict", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert len([line for line in result.stderr.splitlines() if line.startswith("invalid hop")]) == 5
    assert "5 invalid hop(s); nothing predicted (--strict" in result.stderr


def test_evaluate_writes_metrics_parity_and_predictions(tiny_ensemble, hop_file, tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(hop_file), "--out", str(out), "--model", str(tiny_ensemble)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # the numbers are the ensemble's predictions of these hops scored against their labels
    hops = read_hops([hop_file])
    prediction = Ensemble.load(tiny_ensemble).predict(hops)
    expected = barrier_metrics([h.barrier_ev for h in hops], prediction.mean_ev, prediction.std_ev)
    for key in ("n", "mae_ev", "rmse_ev", "r2", "accuracy_065", "precision_065", "recall_065",
                "spearman_sigma_abs_err", "coverage_68", "coverage_90", "coverage_95", "nll"):
        assert metrics[key] == pytest.approx(expected[key], nan_ok=True), key
    assert metrics["n"] == 6 and metrics["n_unlabelled_skipped"] == 0
    assert (out / "parity.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["hop_id"] for r in rows] == [h.hop_id for h in hops]
    assert [float(r["sigma_ev"]) for r in rows] == pytest.approx(prediction.std_ev, abs=1e-4)
    assert [float(r["abs_error_ev"]) for r in rows] == pytest.approx(
        np.abs(prediction.mean_ev - [h.barrier_ev for h in hops]), abs=1e-4)


def test_evaluate_scores_suspicious_hops_with_a_warning(tiny_ensemble, hop_file, tmp_path):
    """A hop whose host relaxes too much between endpoints is still scored, and said so: `n`
    counts every hop in the file."""
    suspicious = rocksalt_hop("relaxed-host", barrier_ev=0.8)
    moved = suspicious.final.frac_coords[5] + [0.8 / 8.4, 0.0, 0.0]  # 0.8 Å along a (8.4 Å cell)
    suspicious.final.replace(5, suspicious.final[5].specie, moved)
    entries = json.loads(hop_file.read_text()) + [hop_to_dataset_entry(suspicious)]
    (tmp_path / "seven.json").write_text(json.dumps(entries))
    result = runner.invoke(app, ["evaluate", str(tmp_path / "seven.json"), "--out", str(tmp_path / "eval"),
                                 "--model", str(tiny_ensemble)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning: " in said and "hop relaxed-host: host site 5 moves 0.80 Å between endpoints" in said
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 7
    rows = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    assert rows[-1]["hop_id"] == "relaxed-host" and float(rows[-1]["reference_ev"]) == pytest.approx(0.8)
