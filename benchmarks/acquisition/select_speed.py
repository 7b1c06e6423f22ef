"""Time of choosing a batch of 10 from a pool of n candidate hops, per strategy (issue #22 item 4).

The pool's table is synthetic but shaped like the campaign's: 256 posterior rows
(:data:`alem.acquisition.model.POSTERIOR_DRAWS`) from 8 shared components (so hops co-vary, as
joint draws of the stack do) plus per-hop Laplace noise; 5 pending hops. Rows are float32 (a
10^6-hop table is 1 GB); selection computes in float64 column blocks. Only ``select_batch`` is
timed (scoring the pool with the model is not), as wall time and as the process's CPU time
(the machine is shared, so wall time includes waiting for a core). With ``--check-botorch N``
the batch of every strategy is also chosen through BoTorch's ``optimize_acqf_discrete``
(:func:`select_batch_botorch`) on the first N hops and compared. Writes ``select_speed.json``
and ``select_speed.md`` beside this file.

    python benchmarks/acquisition/select_speed.py [--sizes 10000 100000 1000000] [--check-botorch 2000]
    python benchmarks/acquisition/select_speed.py --only "discover good_hops" --check-botorch 0
    python benchmarks/acquisition/select_speed.py --only "explore integrated_variance" --check-botorch 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from alem.acquisition import PredictionTable, SelectionRequest, select_batch
from alem.acquisition.model import POSTERIOR_DRAWS
from alem.acquisition.selection import select_batch_botorch
from alem.acquisition.strategies import DISCOVER_FORM, STRATEGIES

HERE = Path(__file__).resolve().parent
PENDING = 5
#: Before this change (commit 830bfb6, BoTorch's optimize_acqf_discrete over the whole pool).
BEFORE_S = {(10_000, "explore"): 9.4, (10_000, "discover"): 41.18, (10_000, "balanced"): 7.91, (100_000, "explore"): 50.58}


def synthetic_table(n_hops: int, seed: int = 0, block: int = 65_536) -> PredictionTable:
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(np.log(0.6), 0.5, n_hops)
    loadings = rng.normal(0.0, 0.1, (8, n_hops))  # 8 shared components
    components = rng.standard_normal((POSTERIOR_DRAWS, 8))
    rows = np.empty((POSTERIOR_DRAWS, n_hops), dtype=np.float32)
    for start in range(0, n_hops, block):
        cols = slice(start, min(start + block, n_hops))
        noise = rng.laplace(0.0, 0.1, (POSTERIOR_DRAWS, cols.stop - cols.start))
        rows[:, cols] = mean[cols] + components @ loadings[:, cols] + noise
    std = np.concatenate([rows[:, s : s + block].std(axis=0, ddof=1, dtype=np.float64) for s in range(0, n_hops, block)])
    return PredictionTable(tuple(f"h{k}" for k in range(n_hops)), rows, mean, std)


#: Timed variants: each strategy, discover's expected-good-hops form and explore's integrated variance.
VARIANTS = (*STRATEGIES, "discover good_hops", "explore integrated_variance")


def _request(variant: str) -> SelectionRequest:
    strategy, _, form = variant.partition(" ")
    forms = {"explore_form": form} if strategy == "explore" and form else {"discover_form": form or DISCOVER_FORM}
    return SelectionRequest(strategy, 10, pending=[f"h{k}" for k in range(PENDING)], **forms)


def check_against_botorch(n_hops: int, variants: tuple[str, ...] = VARIANTS) -> dict:
    table = synthetic_table(n_hops, seed=1)
    table = PredictionTable(table.hop_ids, table.member_ev.astype(np.float64), table.mean_ev, table.std_ev)
    same = {}
    for variant in variants:
        fast = [p.hop_id for p in select_batch(table, _request(variant))]
        slow = [p.hop_id for p in select_batch_botorch(table, _request(variant))]
        same[variant] = fast == slow
        print(f"{variant} at {n_hops}: same batch as BoTorch: {fast == slow}", flush=True)
    return {"n_hops": n_hops, "same_batch": same}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--check-botorch", type=int, default=2000, help="pool size for the BoTorch comparison (0: skip)")
    parser.add_argument("--only", nargs="+", default=None, help="time only these variants; keep the saved rows of others")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the target is one CPU core
    saved = json.loads((HERE / "select_speed.json").read_text()) if args.only else {"results": [], "botorch_check": None}
    results: list[dict] = [r for r in saved["results"] if r["strategy"] not in (args.only or VARIANTS)]
    check = saved["botorch_check"]
    if args.check_botorch:
        fresh = check_against_botorch(args.check_botorch, tuple(args.only or VARIANTS))
        if check and args.only and check["n_hops"] == fresh["n_hops"]:
            fresh["same_batch"] = {**check["same_batch"], **fresh["same_batch"]}
        check = fresh
    for n_hops in args.sizes:
        table = synthetic_table(n_hops)
        for variant in args.only or VARIANTS:
            wall, cpu = time.perf_counter(), time.process_time()
            picks = select_batch(table, _request(variant))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            row = {"n_hops": n_hops, "strategy": variant, "batch": len(picks), "wall_s": round(wall, 2),
                   "cpu_s": round(cpu, 2), "before_wall_s": BEFORE_S.get((n_hops, variant))}
            results.append(row)
            results.sort(key=lambda r: (r["n_hops"], VARIANTS.index(r["strategy"])))
            print(row, flush=True)
            _write(results, check)  # after each: a run cut short keeps what it measured
        del table


def _write(results: list[dict], check: dict | None) -> None:
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other sessions), torch threads 1",
        "table": f"synthetic: {POSTERIOR_DRAWS} float32 rows, 8 shared components + Laplace noise per hop",
        "pending": PENDING,
        "target": "issue #22 item 4: every strategy <= 10 s at 10^5 hops, <= 120 s at 10^6, one CPU core",
        "botorch_check": check,
        "results": results,
    }
    (HERE / "select_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["| hops | strategy | wall s | CPU s | before (wall s) |", "|---|---|---|---|---|"]
    for r in results:
        before = "–" if r["before_wall_s"] is None else f"{r['before_wall_s']}"
        lines.append(f"| {r['n_hops']:,} | {r['strategy']} | {r['wall_s']} | {r['cpu_s']} | {before} |")
    (HERE / "select_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
