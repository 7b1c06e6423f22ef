"""Time of choosing a batch of 10 from a pool of n candidate hops, per strategy (issue #22 item 4).

The pool's table is synthetic but shaped like the campaign's: 256 posterior rows
(:data:`alem.acquisition.model.POSTERIOR_DRAWS`) from a few shared components (so hops co-vary)
plus per-hop noise; 5 pending hops. Only ``select_batch`` is timed (scoring the pool with the
model is not). Writes ``select_speed.json`` beside this file.

    python benchmarks/acquisition/select_speed.py [--sizes 10000 100000]
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
from alem.acquisition.strategies import STRATEGIES

HERE = Path(__file__).resolve().parent


def synthetic_table(n_hops: int, seed: int = 0) -> PredictionTable:
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(np.log(0.6), 0.5, n_hops)
    loadings = rng.normal(0.0, 0.1, (8, n_hops))  # 8 shared components
    rows = mean + rng.standard_normal((POSTERIOR_DRAWS, 8)) @ loadings + rng.laplace(0.0, 0.1, (POSTERIOR_DRAWS, n_hops))
    return PredictionTable(tuple(f"h{k}" for k in range(n_hops)), rows, mean, rows.std(axis=0, ddof=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    torch.set_num_threads(1)  # the target is one CPU core
    results = []
    for n_hops in args.sizes:
        table = synthetic_table(n_hops)
        for strategy in STRATEGIES:
            request = SelectionRequest(strategy, 10, pending=[f"h{k}" for k in range(5)])
            start = time.perf_counter()
            picks = select_batch(table, request)
            seconds = time.perf_counter() - start
            results.append({"n_hops": n_hops, "strategy": strategy, "batch": len(picks), "seconds": round(seconds, 2)})
            print(results[-1], flush=True)
            _write(results)  # after each: a run cut short keeps what it measured


def _write(results: list[dict]) -> None:
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), torch threads 1",
        "rows": POSTERIOR_DRAWS,
        "pending": 5,
        "results": results,
    }
    (HERE / "select_speed.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
