"""Speed of the predictor: fine-tune wall time per member, ensemble inference throughput, peak memory.

    python benchmarks/speed/run_speed.py            # CPU here, CUDA when present
    python benchmarks/speed/run_speed.py --device cpu   # (or ALEM_DEVICE=cpu) the CPU row on a GPU machine
    python benchmarks/speed/run_speed.py --hops 40      # a quick check of the script; writes nothing

Writes ``results_<cpu|cuda>.json`` and ``results.md`` (a row per results file) beside this file. On a
GPU every timer stops after ``torch.cuda.synchronize()`` (CUDA kernels run asynchronously) and the
JSON records the GPU, the CUDA and torch versions, and the GPU allocator's peak memory.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from alem.ensemble import Ensemble
from alem.hops import load_training_hops
from alem.inference.device import device_description, peak_memory_mb, pick_device
from alem.model_dir import EnsembleRecipe, default_pretrained_path
from alem.training.finetune import Pretrained, TrainingSet, fit_members
from alem.training.trees import fit_trees

HERE = Path(__file__).resolve().parent


def _stop(started: float, device: torch.device) -> float:
    """Seconds since ``started``, once the GPU has finished what was queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--hops", type=int, default=0, help="only the first N hops; prints, writes no result (0 = all)")
    args = parser.parse_args()
    device = pick_device(args.device)
    hops = load_training_hops()
    if args.hops:
        hops = hops[: args.hops]
    ensemble = Ensemble.load()
    recipe = EnsembleRecipe.of(ensemble.model_card)  # the shipped model's recipe, 2 members timed
    config = recipe.finetune
    pretrained = Pretrained.load(default_pretrained_path())

    started = time.time()
    training_set = TrainingSet.prepare(hops, pretrained, config, device)
    prepare_s = _stop(started, device)
    _, member_seconds = fit_members(training_set, None, config, 2, seed=0, device=device)
    trees_s = 0.0
    specs = recipe.components or []
    if specs:
        started = time.time()
        # descriptors and (for the kernel model) the backbone's features, then the fits
        fit_trees(specs, training_set.component_inputs(hops, specs, device), [h.barrier_ev for h in hops])
        trees_s = _stop(started, device)

    started = time.time()
    inputs = ensemble.hop_inputs(hops, device=device)
    inputs.graphs  # noqa: B018 - timed apart from the model
    graph_s = time.time() - started
    started = time.time()
    ensemble.gnn.member_predictions(inputs)
    model_s = _stop(started, device)
    started = time.time()
    ensemble.predict(hops, device=str(device))
    end_to_end_s = _stop(started, device)

    per_member = sum(member_seconds) / len(member_seconds)
    result = {
        "device": device_description(device),
        "n_hops": len(hops),
        "freeze": config.freeze,
        "epochs": config.epochs,
        "prepare_graphs_and_host_context_s": round(prepare_s, 1),
        "finetune_s_per_member": round(per_member, 1),
        "finetune_ensemble_of_5_s": round(prepare_s + 5 * per_member + trees_s, 1),
        "fit_trees_s": round(trees_s, 1),
        "inference_hops_per_s_model_only": round(len(hops) / model_s, 1),
        "inference_hops_per_s_end_to_end": round(len(hops) / end_to_end_s, 1),
        "graph_building_hops_per_s": round(len(hops) / graph_s, 1),
        "n_members": len(ensemble.members),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
    }
    if args.hops:
        print(json.dumps(result, indent=2))
        return
    name = "cuda" if device.type == "cuda" else "cpu"
    (HERE / f"results_{name}.json").write_text(json.dumps(result, indent=2))
    rows = []
    for file in sorted(HERE.glob("results_*.json")):
        r = json.loads(file.read_text())
        rows.append(f"| {r['device']} | {r['finetune_s_per_member']} | {r['finetune_ensemble_of_5_s'] / 60:.1f} | "
                    f"{r['inference_hops_per_s_end_to_end']} | {r['inference_hops_per_s_model_only']} | {r['peak_memory_mb']:.0f} |")
    table = ["| device | fine-tune s/member (556 hops) | ensemble of 5, min | inference hops/s (incl. graphs) "
             "| hops/s (model only) | peak MB |",
             "|---|---|---|---|---|---|", *rows,
             "", "Ensemble of 5: graphs + host context, 5 GNN members and the stack's other components (fit_trees_s in the JSON:",
             "the backbone features of the kernel model included).",
             "Target: an ensemble of 5 fine-tuned on 559 hops in ≤ 60 min on 2 CPU cores; `alem train` (25-model grouped CV",
             "+ the final ensemble, stack with the kernel model) took 39 min 37 s wall on this 2-core machine while a second",
             "CV job shared it (50 CPU-minutes; 16 min 47 s for the previous recipe with less competition)."]
    (HERE / "results.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
