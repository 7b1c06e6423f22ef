"""Near-duplicate hops and conflicting labels in the 556 literature hops (reported, not dropped).

Two hops are near-duplicates when they have the same working ion and chemical system, hop lengths
within 0.05 Å and standardised v2 descriptors (bottleneck profile, coordination, bond valence,
electrostatics; composition-free parts only) within 0.25 of each other (RMS over descriptors).
A near-duplicate pair whose barriers differ by more than 0.3 eV is a conflict: the same physical
hop reported with very different barriers (different functionals, cells, or convergence).

Pairs inside one compound group never straddle a CV fold; pairs across groups could leak a label
from training into a test fold, so the CV score is also given without them.

    python benchmarks/cv/data_hygiene.py [--stack-results benchmarks/cv/stack_results.json]

Writes ``data_hygiene.json`` and ``data_hygiene.md`` beside this file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from alem.graphs.descriptors import hop_descriptors
from alem.hops import load_training_hops
from alem.training.cv import grouped_folds

HERE = Path(__file__).resolve().parent
LENGTH_TOL_A = 0.05
DESCRIPTOR_TOL = 0.25
CONFLICT_EV = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--oof", type=Path, help="an oof_predictions.npz with 'mean' (stacked) to re-score without cross-group pairs")
    args = parser.parse_args()
    hops = load_training_hops()
    y = np.array([h.barrier_ev for h in hops])
    x = np.stack([hop_descriptors(h, "v2") for h in hops])
    z = (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)
    chemsys = [h.initial.composition.chemical_system for h in hops]
    folds = grouped_folds([h.group for h in hops], 5, 0)
    pairs = []
    for i in range(len(hops)):
        for j in range(i + 1, len(hops)):
            if chemsys[i] != chemsys[j] or hops[i].working_ion != hops[j].working_ion:
                continue
            if abs(hops[i].hop_length_a - hops[j].hop_length_a) > LENGTH_TOL_A:
                continue
            distance = float(np.sqrt(np.mean((z[i] - z[j]) ** 2)))
            if distance > DESCRIPTOR_TOL:
                continue
            pairs.append({
                "a": hops[i].hop_id, "b": hops[j].hop_id,
                "a_name": hops[i].metadata.get("sys_name"), "b_name": hops[j].metadata.get("sys_name"),
                "same_group": hops[i].group == hops[j].group, "same_fold": bool(folds[i] == folds[j]),
                "hop_length_a": round(hops[i].hop_length_a, 3), "descriptor_rms": round(distance, 3),
                "barrier_a_ev": round(float(y[i]), 3), "barrier_b_ev": round(float(y[j]), 3),
                "xc_a": hops[i].provenance.xc,
                "xc_b": hops[j].provenance.xc,
                "conflict": bool(abs(y[i] - y[j]) > CONFLICT_EV),
            })
    conflicts = [p for p in pairs if p["conflict"]]
    leaking = [p for p in pairs if not p["same_fold"]]
    summary = {
        "n_hops": len(hops), "near_duplicate_pairs": len(pairs), "conflicting_pairs": len(conflicts),
        "pairs_across_folds": len(leaking),
        "hops_in_any_pair": len({p["a"] for p in pairs} | {p["b"] for p in pairs}),
        "criteria": {"length_tol_a": LENGTH_TOL_A, "descriptor_rms_tol": DESCRIPTOR_TOL, "conflict_ev": CONFLICT_EV},
        "handling": "kept: every hop stays in training and CV; conflicting labels are real literature disagreement, "
                    "and dropping one of a pair would need a rule we cannot justify (which functional is right?)",
    }
    if args.oof and leaking:
        oof = np.load(args.oof)
        ids = [h.hop_id for h in hops]
        assert list(oof["hop_id"]) == ids
        drop = {p["a"] for p in leaking} | {p["b"] for p in leaking}
        keep = np.array([i not in drop for i in ids])
        summary["stack_mae_all_ev"] = float(np.abs(oof["mean"] - y).mean())
        summary["stack_mae_without_cross_fold_pairs_ev"] = float(np.abs(oof["mean"] - y)[keep].mean())
    (HERE / "data_hygiene.json").write_text(json.dumps({"summary": summary, "pairs": pairs}, indent=2))
    lines = ["# Near-duplicate hops and conflicting labels", "", "```", json.dumps(summary, indent=2), "```", "",
             "| a | b | same compound | same fold | length (Å) | E_a (eV) | E_b (eV) | conflict |", "|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['a']} {p['a_name']} | {p['b']} {p['b_name']} | {p['same_group']} | {p['same_fold']} | "
                     f"{p['hop_length_a']} | {p['barrier_a_ev']} | {p['barrier_b_ev']} | {'**yes**' if p['conflict'] else ''} |")
    (HERE / "data_hygiene.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
