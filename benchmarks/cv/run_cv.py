"""Grouped 5-fold cross-validation on the 559 literature hops (folds by compound).

Compares fine-tuning strategies of the pre-trained backbone (frozen / partial / none), a model
trained from scratch, single models and the ensemble, and a predict-the-training-mean baseline.
Writes ``results.json`` and ``results.md`` beside this file.

    python benchmarks/cv/run_cv.py --strategy frozen:5:150 --strategy scratch:1:30 ...

Each ``--strategy`` is ``FREEZE:MEMBERS:EPOCHS``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from alem.hops import load_training_hops
from alem.inference.device import device_description, peak_memory_mb, pick_device
from alem.metrics import barrier_metrics
from alem.model_dir import OOF_FILENAME, ModelCard, default_pretrained_path
from alem.training.cv import cross_validate, grouped_folds
from alem.training.finetune import FinetuneConfig, Pretrained, TrainingSet

HERE = Path(__file__).resolve().parent
KEYS = ("mae_ev", "rmse_ev", "r2", "accuracy_065", "precision_065", "recall_065", "spearman_sigma_abs_err",
        "coverage_68", "coverage_90", "coverage_95", "nll")


def mean_baseline(hops, n_folds: int, seed: int) -> dict:
    y = np.array([h.barrier_ev for h in hops])
    folds = grouped_folds([h.group for h in hops], n_folds, seed)
    pred = np.zeros_like(y)
    sigma = np.zeros_like(y)
    for f in range(n_folds):
        train = folds != f
        pred[~train], sigma[~train] = y[train].mean(), y[train].std()
    return barrier_metrics(y, pred, sigma)


def run(strategy: str, n_members: int, epochs: int, hops, device, n_folds: int, seed: int) -> dict:
    config = FinetuneConfig(freeze=strategy, epochs=epochs)
    pretrained = None if strategy == "scratch" else Pretrained.load(default_pretrained_path())
    started = time.time()
    training_set = TrainingSet.prepare(hops, pretrained, config, device)
    result = cross_validate(hops, training_set, config, n_members, n_folds, seed, device, progress=True)
    entry = {
        "freeze": strategy,
        "epochs": epochs,
        "n_members": n_members,
        "wall_time_s": round(time.time() - started, 1),
        "seconds_per_member": round(float(np.mean(result.seconds_per_member)), 1),
        "single": result.metrics(member=0)[0],
    }
    if n_members > 1:
        entry["ensemble"] = result.metrics()[0]
    np.savez_compressed(HERE / f"oof_{strategy}.npz", y=result.y_ev, location=result.member_location_ev,
                        scale=result.member_scale_ev, folds=result.folds, seconds=np.array(result.seconds_per_member))
    return entry


def markdown(results: dict) -> str:
    lines = [
        f"Grouped {results['n_folds']}-fold CV on {results['n_hops']} hops (folds by compound), {results['device']}.",
        "σ recalibrated per row on its own out-of-fold predictions (one scale factor).", "",
        "| model | members | epochs | MAE (eV) | RMSE | R² | acc@0.65 | prec@0.65 | rec@0.65 | ρ(σ,|err|) "
        "| cov68 | cov90 | cov95 | NLL | s/member |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    def row(name, members, epochs, m, secs):
        vals = " | ".join(f"{m[k]:.3f}" for k in KEYS)
        return f"| {name} | {members} | {epochs} | {vals} | {secs} |"
    lines.append(row("training-fold mean", "-", "-", results["mean_baseline"], "-"))
    for e in results["runs"]:
        label = "from scratch" if e["freeze"] == "scratch" else f"pre-trained, freeze={e['freeze']}"
        lines.append(row(label + " (single)", 1, e["epochs"], e["single"], e["seconds_per_member"]))
        if "ensemble" in e:
            lines.append(row(label + " (ensemble)", e["n_members"], e["epochs"], e["ensemble"], e["seconds_per_member"]))
    lines += ["", "Published MODEL-3 (fine-tuned multi-property ALIGNN, 60-hop test split): MAE 0.261 eV, R² 0.703.",
              "Descriptor random forest under grouped CV (data README): MAE 0.31 eV, R² 0.54."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strategy", action="append", default=[], help="FREEZE:MEMBERS:EPOCHS")
    parser.add_argument("--merge", type=Path, action="append", default=[], help="fold other results files into --out")
    parser.add_argument("--from-model", type=Path, help="take a row from an ensemble trained by `alem train` (its card's CV)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    device = pick_device()
    hops = load_training_hops()
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    results.update({"n_hops": len(hops), "n_folds": args.folds, "seed": args.seed, "device": device_description(device),
                    "mean_baseline": mean_baseline(hops, args.folds, args.seed)})
    if args.from_model:
        card = ModelCard.load(args.from_model)
        oof = np.load(args.from_model / OOF_FILENAME)
        entry = {"freeze": card.freeze, "epochs": card.finetune_config["epochs"],
                 "n_members": card.n_members, "seconds_per_member": round(float(oof["seconds"].mean()), 1),
                 "single": card.cv_metrics_single_member, "ensemble": card.cv_metrics, "source": "alem train card"}
        results["runs"] = [r for r in results["runs"] if r["freeze"] != entry["freeze"]] + [entry]
        args.out.write_text(json.dumps(results, indent=2))
        args.out.with_suffix(".md").write_text(markdown(results))
    for other in args.merge:
        runs = json.loads(other.read_text())["runs"]
        names = {r["freeze"] for r in runs}
        results["runs"] = [r for r in results["runs"] if r["freeze"] not in names] + runs
        args.out.write_text(json.dumps(results, indent=2))
        args.out.with_suffix(".md").write_text(markdown(results))
    for spec in args.strategy:
        freeze, members, epochs = spec.split(":")
        entry = run(freeze, int(members), int(epochs), hops, device, args.folds, args.seed)
        results["runs"] = [r for r in results["runs"] if r["freeze"] != freeze] + [entry]
        results["peak_memory_mb"] = round(peak_memory_mb(device), 1)
        args.out.write_text(json.dumps(results, indent=2))
        args.out.with_suffix(".md").write_text(markdown(results))
        print(markdown(results))


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
