"""Replay with joint-draw posterior rows (issue #22 item 5): explore on held-out compounds, discover
± MACE screening against the expected number of good hops.

Same hops, surrogate (``surrogate.LogTreeEnsemble``: extra trees on log E_m, each tree a member,
NOT the GNN stack, for CPU reasons), seeds, initial 10 % and batches of 10 as
``run_two_fidelity.py``. What changes is the acquisition's rows: 256 joint draws
(``surrogate.joint_draws_of``: a tree per row shared by every hop, as the shipped stack's rows
pick a tree, plus per-hop Laplace noise whose scale is the prequential error of the tree mean),
where the committed two-fidelity results used the 100 trees themselves as rows.

(a) explore: a fixed 20 % of the compounds (groups; same split for every seed) never enter the
    pool. Recorded: the MAE on those held-out hops; target: the DFT labels (fraction of the pool)
    at which it first reaches the full-data error, the same surrogate on the same features fitted
    on every pool label (mean of the seeds), i.e. the error one would get by labelling everything.
    explore is measured in both forms: conditional σ and the integrated variance over the pool.
(b) discover on the whole 556-hop pool: DFT labels to find 90 % of the fast hops (E_m < 0.3 eV),
    with qLogEI of t − E_m and with the expected number of good hops (``qExpectedGoodHops``); t is
    the same 0.3 eV (``--fast-threshold``), as a campaign after fast hops sets ``good_barrier_ev``.

    python benchmarks/replay/run_joint_posterior.py [--seeds 3] [--only NAME ...]   # ~30 min on a shared 2-core VM
    python benchmarks/replay/run_joint_posterior.py --seeds 5 --out benchmarks/replay/joint_posterior/five_seeds \
        --only explore "explore + screening" "explore (integrated variance)" "explore (integrated variance) + screening"
    python benchmarks/replay/run_joint_posterior.py --only none   # references and tables from the saved runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_replay import labels_to_reach, run_one  # noqa: E402
from run_two_fidelity import two_fidelity_data  # noqa: E402
from surrogate import LogTreeEnsemble  # noqa: E402

from alem.acquisition.model import POSTERIOR_DRAWS  # noqa: E402

OUT = HERE / "joint_posterior"
HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 2026

#: (name, part, strategy, screened, joint rows, form: explore's or discover's, by the strategy)
ARMS = (
    ("random", "a", "random", False, False, "conditional_sd"),
    ("explore, tree rows (before)", "a", "explore", False, False, "conditional_sd"),
    ("explore", "a", "explore", False, True, "conditional_sd"),
    ("explore + screening, tree rows (before)", "a", "explore", True, False, "conditional_sd"),
    ("explore + screening", "a", "explore", True, True, "conditional_sd"),
    ("explore (integrated variance)", "a", "explore", False, True, "integrated_variance"),
    ("explore (integrated variance) + screening", "a", "explore", True, True, "integrated_variance"),
    ("discover (qLogEI)", "b", "discover", False, True, "log_ei"),
    ("discover (qLogEI) + screening", "b", "discover", True, True, "log_ei"),
    ("discover (expected good hops)", "b", "discover", False, True, "good_hops"),
    ("discover (expected good hops) + screening", "b", "discover", True, True, "good_hops"),
)


def held_out_split(groups: list[str]) -> np.ndarray:
    """True for the hops of a fixed 20 % of the compounds (groups)."""
    names = sorted(set(groups))
    chosen = set(np.random.default_rng(SPLIT_SEED).choice(names, size=round(HELD_OUT_FRACTION * len(names)), replace=False))
    return np.array([g in chosen for g in groups])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--fast-threshold", type=float, default=0.3)
    parser.add_argument("--only", nargs="*", default=[],
                        help="run only these arms (exact names, or parts of names); others keep their saved rows")
    parser.add_argument("--out", type=Path, default=OUT, help="results folder (default: joint_posterior/ beside this script)")
    args = parser.parse_args()
    started = time.time()
    hops, y, X, X_screened = two_fidelity_data()
    ids = np.array([h.hop_id for h in hops])
    held = held_out_split([h.group or h.hop_id for h in hops])
    pool = np.flatnonzero(~held)
    saved = args.out / "results.json"
    results: dict = json.loads(saved.read_text()) if args.only and saved.exists() else {"runs": {}}
    results.update({
        "n_hops": len(hops), "n_pool_a": len(pool), "n_held_out_a": int(held.sum()),
        "n_held_out_compounds_a": len({h.group for h, k in zip(hops, held) if k}),
        "n_fast": int((y < args.fast_threshold).sum()), "fast_threshold_ev": args.fast_threshold,
        # discover aims at the threshold it is scored at: the campaign's good_barrier_ev set to 0.3 eV
        "discover_threshold_ev": args.fast_threshold,
        "batch": args.batch, "seeds": args.seeds, "rows": POSTERIOR_DRAWS,
        "surrogate": "extra trees (100) on log E_m of the v2 descriptors + ion (+ MACE-MP barrier when screened)",
    })
    for key, features in (("full_pool_held_out_mae", X), ("full_pool_held_out_mae_screened", X_screened)):
        reference = []
        for seed in range(args.seeds):
            model = LogTreeEnsemble(seed=seed).fit(features[pool], y[pool])
            reference.append(float(np.abs(model.predict_members(features[held]).mean(0) - y[held]).mean()))
        results[key] = reference
    for name, part, strategy, screened, joint, form in ARMS:
        if args.only and not _chosen(name, args.only):
            continue
        features = X_screened if screened else X
        runs = []
        arm_started = time.time()
        for seed in range(args.seeds):
            if part == "a":
                n = len(pool)
                initial = np.random.default_rng(seed).choice(n, size=round(0.10 * n), replace=False).tolist()
                curve = run_one(features[pool], y[pool], list(ids[pool]), strategy, seed, initial, args.batch, int(0.9 * n),
                                threshold_ev=args.fast_threshold, surrogate=LogTreeEnsemble,
                                held_out=(features[held], y[held]), joint_draws=POSTERIOR_DRAWS if joint else 0,
                                explore_form=form)
            else:
                n = len(hops)
                initial = np.random.default_rng(seed).choice(n, size=round(0.10 * n), replace=False).tolist()
                curve = run_one(features, y, list(ids), strategy, seed, initial, args.batch, int(0.9 * n),
                                threshold_ev=args.fast_threshold, surrogate=LogTreeEnsemble,
                                joint_draws=POSTERIOR_DRAWS if joint else 0, discover_form=form)
            runs.append({"seed": seed, **curve})
            print(f"{name}: seed {seed} ({time.time() - started:.0f} s)", flush=True)
        results["runs"][name] = {"part": part, "screened": screened, "form": form, "wall_time_s": round(time.time() - arm_started, 1),
                                 "runs": runs}
        results["summary"] = summarise(results)
        args.out.mkdir(exist_ok=True)
        saved.write_text(json.dumps(results, indent=1))  # after each arm: a run cut short keeps what it measured
        (args.out / "results.md").write_text(markdown(results))
    results["summary"] = summarise(results)
    results["wall_time_s"] = round(time.time() - started, 1)  # of this invocation; each arm keeps its own
    (args.out / "results.md").write_text(markdown(results))
    saved.write_text(json.dumps(results, indent=1))
    print(markdown(results))


def _chosen(name: str, only: list[str]) -> bool:
    """An arm runs when one of ``only`` is its exact name or, where none is an exact name, part of it."""
    names = {arm[0] for arm in ARMS}
    exact = [o for o in only if o in names]
    return name in exact if exact else any(o in name for o in only)


def summarise(results: dict) -> dict:
    """Per arm: (a) labels until the held-out error first reaches the full-data error of the same
    surrogate on the same features (screened arms: with the MACE barrier); (b) labels until 90 %
    of the fast hops are labelled."""
    summary = {}
    order = [arm[0] for arm in ARMS]
    for name, arm in sorted(results["runs"].items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)):
        screened = arm.get("screened", "screening" in name)
        if arm["part"] == "a":
            reference = float(np.mean(results["full_pool_held_out_mae_screened" if screened else "full_pool_held_out_mae"]))
            labels = [labels_to_reach(r, "mae_held_out", reference, below=True) for r in arm["runs"]]
            n = results["n_pool_a"]
        else:
            labels = [labels_to_reach(r, "found_good_fraction", 0.9, below=False) for r in arm["runs"]]
            n = results["n_hops"]
        summary[name] = {"part": arm["part"], "labels": labels,
                         "fraction": None if None in labels else float(np.mean(labels)) / n}
        if arm["part"] == "a":  # the held-out error at the target's 25 % of the pool, against the full-data error
            at = [r["mae_held_out"][int(np.argmax(np.array(r["n_labels"]) >= 0.25 * n))] for r in arm["runs"]]
            # and over the whole curve (10 % to 90 % of the pool): less noisy than a first crossing
            summary[name].update(reference_mae_ev=reference, mae_at_25pct_ev=float(np.mean(at)),
                                 mean_mae_over_curve_ev=float(np.mean([r["mae_held_out"] for r in arm["runs"]])))
    return summary


def markdown(results: dict) -> str:
    reference = float(np.mean(results["full_pool_held_out_mae"]))
    screened_reference = float(np.mean(results["full_pool_held_out_mae_screened"]))
    lines = [
        f"Joint-draw replay, {results['seeds']} seeds, batches of {results['batch']}, {results['rows']} joint rows "
        "(a tree per row + per-hop Laplace noise at the prequential error); 'tree rows' = the 100 trees as rows (before).",
        "",
        f"(a) {results['n_held_out_a']} hops of {results['n_held_out_compounds_a']} compounds held out, pool "
        f"{results['n_pool_a']} hops; full-data error on the held-out hops {reference:.3f} eV "
        f"({screened_reference:.3f} eV with the MACE barrier: the screened arms' target). "
        f"(b) pool {results['n_hops']} hops, {results['n_fast']} fast (E_m < {results['fast_threshold_ev']} eV).",
        "",
        "| arm | target | DFT labels (fraction of the pool) | per seed | held-out MAE at 25 % (full-data) | mean held-out MAE, 10–90 % |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["summary"].items():
        target = "held-out error ≤ full-data error" if row["part"] == "a" else "90 % of fast hops"
        fraction = "not reached by 90 %" if row["fraction"] is None else f"{row['fraction']:.0%}"
        at = f"{row['mae_at_25pct_ev']:.3f} ({row['reference_mae_ev']:.3f}) eV" if row["part"] == "a" else "–"
        curve = f"{row['mean_mae_over_curve_ev']:.3f} eV" if row["part"] == "a" else "–"
        lines.append(f"| {name} | {target} | {fraction} | {row['labels']} | {at} | {curve} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
