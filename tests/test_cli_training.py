"""The training commands as a user runs them: `alem pretrain` on a tiny corpus, then a finished
campaign's `alem export` fed to `alem train` on that backbone (a real training run: `slow`)."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from alem.cli import app
from tests._replay_campaign import make_replay_campaign

runner = CliRunner()
pytestmark = pytest.mark.slow


def _finished_replay_campaign(tmp_path, model_dir):
    """8 small shipped hops, labels hidden, run to the end on the replay backend."""
    config, barriers = make_replay_campaign(
        tmp_path, model_dir, n_hops=8, offset=40,
        approval__auto_approve=True, approval__max_running_jobs=8, acquisition__batch_size=4,
    )
    ran = runner.invoke(app, ["loop", "--campaign", str(config.campaign_dir), "--until-idle", "--no-retrain",
                              "--tick-seconds", "0", "--max-ticks", "30"])
    assert ran.exit_code == 0, ran.output
    return config, barriers


def test_pretrain_then_export_then_train_from_the_command_line(tmp_path, tiny_ensemble):
    from alem import REPO_ROOT
    from alem.ensemble import Ensemble
    from alem.hops import read_hops

    # alem pretrain on the first 30 structures of the shipped corpus, tiny backbone
    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(REPO_ROOT / "data" / "pretrain_multiprop.jsonl.gz", "rt") as src, gzip.open(corpus, "wt") as dst:
        for _, line in zip(range(30), src):
            dst.write(line)
    backbone = tmp_path / "pretrained"
    result = runner.invoke(app, ["pretrain", "--data", str(corpus), "--out", str(backbone), "--epochs", "2",
                                 "--hidden", "16", "--layers", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    pretrained_card = json.loads((backbone / "model_card.json").read_text())
    assert pretrained_card["n_structures"] == 30 and pretrained_card["epochs"] == 2
    assert pretrained_card["backbone_config"]["hidden"] == 16 and (backbone / "backbone.pt").is_file()
    assert all(f"{prop}" in result.output and f"{mae:.4f}" in result.output  # the card's numbers, printed
               for prop, mae in pretrained_card["validation_mae"].items())
    missing = runner.invoke(app, ["pretrain", "--data", str(tmp_path / "nope.jsonl.gz"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "nope.jsonl.gz: pre-training corpus not found" in " ".join(missing.output.split())

    # alem export of a finished campaign: every result, in the dataset layout
    config, barriers = _finished_replay_campaign(tmp_path, tiny_ensemble)
    exported = tmp_path / "results.json"
    result = runner.invoke(app, ["export", str(exported), "--campaign", str(config.campaign_dir)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {len(barriers)} hops with barriers to {exported}" in " ".join(result.output.split())
    assert {h.hop_id: h.barrier_ev for h in read_hops([exported])} == pytest.approx(barriers)

    # alem train on the exported file with the backbone just pre-trained
    ensemble_dir = tmp_path / "ensemble"
    result = runner.invoke(app, ["train", str(exported), "--out", str(ensemble_dir), "--members", "2", "--epochs", "3",
                                 "--freeze", "frozen", "--pretrained", str(backbone), "--cv-folds", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "grouped 2-fold CV: MAE" in result.output and f"saved 2-member ensemble to {ensemble_dir}" in " ".join(result.output.split())
    card = json.loads((ensemble_dir / "model_card.json").read_text())
    assert card["n_training_hops"] == len(barriers) and sorted(card["training_hop_ids"]) == sorted(barriers)
    assert card["cv_metrics"]["n"] == len(barriers) and card["calibration"]["sigma_scale"] > 0
    assert card["backbone_config"]["hidden"] == 16  # it fine-tuned the backbone given, not the shipped one
    prediction = Ensemble.load(ensemble_dir).predict(read_hops([exported]))
    assert prediction.member_ev.shape == (2, len(barriers))
