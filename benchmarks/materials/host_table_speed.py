"""Speed of the host table (`alem hosts`): a campaign of the first N Li corpus hosts, one core.

The first ``--hosts`` Li structures of data/pretrain_multiprop.jsonl.gz are added by ``alem
candidates add`` to a fresh campaign (kept in ``--work`` for reruns). Timed, in one process with one
thread (OMP/MKL/torch): the joint posterior rows of every host hop under the shipped model (once per
model version, then kept), the first host table (every host's migration network built, then kept)
and the table again (rows and networks read back: what `alem hosts` costs between model versions).
The per-hop time of the kept table, times 10^4, is the estimate for a 10^4-hop campaign.

    OMP_NUM_THREADS=1 python benchmarks/materials/host_table_speed.py --hosts 100 --work /tmp/hosts
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "candidates"))
from bulk_import import write_li_hosts  # noqa: E402

TARGET_HOPS = 10_000
TARGET_SECONDS = 30.0


def campaign(work: Path, n_hosts: int):
    from typer.testing import CliRunner

    from alem.campaign import init_campaign
    from alem.cli import app
    from alem.config import CampaignConfig

    directory = work / f"campaign-{n_hosts}"
    if (directory / "alem.toml").exists():
        return CampaignConfig.load(directory), None
    hosts_dir = work / f"hosts-{n_hosts}"
    hosts_dir.mkdir(parents=True, exist_ok=True)
    write_li_hosts(hosts_dir, n_hosts)
    config = init_campaign(directory, backend="local")
    start = time.perf_counter()
    added = CliRunner().invoke(app, ["candidates", "add", str(hosts_dir), "-C", str(config.campaign_dir)])
    if added.exit_code not in (0, 1):
        raise SystemExit(added.output)
    return config, time.perf_counter() - start


def _rows_kept(config, store, hop_ids: list[str]) -> bool:
    """Whether the current model's kept rows already cover every host hop."""
    import numpy as np

    from alem.campaign.host_rows import rows_path

    current = store.current_model()
    path = None if current is None else rows_path(config, current.id)
    if path is None or not path.exists():
        return False
    with np.load(path) as kept:
        return set(hop_ids) <= set(kept["hop_ids"].tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("host_table_speed.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from alem.campaign.host_networks import host_table
    from alem.campaign.host_rows import host_rows
    from alem.store import Store

    config, add_seconds = campaign(args.work, args.hosts)
    with Store.open(config.store_path) as store:
        n_hosts = len(store.hosts())
        host_hop_ids = [r.hop_id for r in store.hops() if r.host_id is not None]
        n_hops = len(host_hop_ids)
        # a rerun (or a campaign grown by more hosts) finds rows and networks kept: say which were
        rows_kept = _rows_kept(config, store, host_hop_ids)
        networks_built = sum(1 for h in store.hosts() if not (config.state_dir / "host_networks" / f"host-{h.id}.pkl").exists())
        start = time.perf_counter()
        rows = host_rows(config, store)
        rows_s = time.perf_counter() - start
        start = time.perf_counter()
        first = host_table(config, store, rows)
        first_s = time.perf_counter() - start
        kept_s = []
        for _ in range(2):
            start = time.perf_counter()
            host_table(config, store)  # rows read back from their file, networks from theirs
            kept_s.append(time.perf_counter() - start)
    kept = min(kept_s)
    per_hop = kept / n_hops
    out = {
        "what": __doc__.splitlines()[0],
        "hosts_requested": args.hosts, "hosts": n_hosts, "host_hops": n_hops,
        "candidates_add_seconds": None if add_seconds is None else round(add_seconds, 1),
        "rows_seconds_once_per_model_version": None if rows_kept else round(rows_s, 2),
        "rows_seconds_read_back": round(rows_s, 2) if rows_kept else None,
        "first_table_seconds_networks_built": round(first_s, 2) if networks_built else None,
        "networks_built_in_first_table": networks_built,
        "kept_table_seconds": round(kept, 3),
        "kept_seconds_per_hop": round(per_hop, 6),
        "estimate_seconds_at_1e4_hops": round(per_hop * TARGET_HOPS, 1),
        "target_seconds_at_1e4_hops": TARGET_SECONDS,
        "hosts_without_percolation": sum(1 for h in first if h["percolation_barrier_ev"] is None),
        "threads": 1,
        "machine": f"{platform.machine()}, CPython {platform.python_version()}, shared 2-core VM",
        "date": time.strftime("%Y-%m-%d"),
    }
    # notes of earlier runs (a cold run's times, the history of the kept table) stay
    earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
    out.update({key: value for key, value in earlier.items() if key not in out})
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
