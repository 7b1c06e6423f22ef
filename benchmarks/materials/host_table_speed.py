"""Speed of the host table (`alem hosts`): a campaign of the first N Li corpus hosts, one core.

``--hosts N``: the first N Li structures of data/pretrain_multiprop.jsonl.gz are added by ``alem
candidates add`` to a fresh campaign (kept in ``--work`` for reruns; since schema 8 the add keeps
each host's network in the store), then scored by the loop's scoring step (which keeps the joint
posterior rows of every host hop). Timed: the add, the scoring, what keeping costs each of them
(the networks' JSON written to the store, the rows written to their file), the first ``alem hosts
--json`` and ``alem report`` after them (fresh processes: what a user runs, imports included),
and the table again in this process (one thread: OMP/MKL/torch).

``--campaign DIR``: an existing campaign (a COPY: it is changed), e.g. the 10^4-hop campaign of
benchmarks/scale: the first table on it as stored (a store written before schema 8 has no kept
networks: they are built and kept by this table, resumable), then the same fresh-process
``alem hosts`` and ``alem report`` and the kept table.

    OMP_NUM_THREADS=1 python benchmarks/materials/host_table_speed.py --hosts 100 --work /tmp/hosts
    OMP_NUM_THREADS=1 python benchmarks/materials/host_table_speed.py --campaign /tmp/copy-of-10k/campaign
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
    clock = Clock()
    added = CliRunner().invoke(app, ["candidates", "add", str(hosts_dir), "-C", str(config.campaign_dir)])
    if added.exit_code not in (0, 1):
        raise SystemExit(added.output)
    return config, clock.seconds()


class Clock:
    """Wall and CPU seconds (this process and its finished children: the machine is shared, so
    CPU seconds are what a step costs; wall seconds include waiting for a core)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def seconds(self) -> dict[str, float]:
        return {"wall_s": round(time.perf_counter() - self.wall, 2), "cpu_s": round(self._cpu() - self.cpu, 2)}


def _timed_command(arguments: list[str]) -> dict[str, float]:
    """Wall and CPU seconds of one ``alem`` command in a fresh process (one thread), which must succeed."""
    import subprocess

    clock = Clock()
    done = subprocess.run([str(Path(sys.executable).with_name("alem")), *arguments], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    if done.returncode != 0:
        raise SystemExit(f"alem {' '.join(arguments)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return clock.seconds()


def _keeping_costs(config, store) -> dict:
    """What keeping adds: the host networks' JSON written to the store (as ``candidates add`` does
    after building them for its no-percolation warning), the rows written to their file."""
    import tempfile

    from alem.campaign.host_rows import host_rows
    from alem.campaign.kept_rows import cheap_digest, write_rows
    from alem.candidates.network_record import records_of

    records = records_of(store.host_networks())
    start = time.process_time()
    for (host_id, _ion), record in records.items():
        store.keep_host_network(host_id, record.working_ion, record.covers_a, record.to_json())
    networks_s = time.process_time() - start
    table = host_rows(config, store).table
    hop_ids = list(table.hop_ids)
    start = time.process_time()
    with tempfile.TemporaryDirectory() as scratch:
        write_rows(Path(scratch) / "rows.npz", table, cheap_digest(store, hop_ids))
    rows_s = time.process_time() - start
    size = sum(len(store.host_networks()[key]) for key in records)
    return {"networks_kept": len(records), "networks_json_bytes": size, "networks_write_cpu_s": round(networks_s, 3),
            "rows_write_cpu_s": round(rows_s, 3), "rows_hops": len(hop_ids)}


def after_add_and_scoring(config, add_seconds: float | None) -> dict:
    """The loop's scoring step, then the first `alem hosts` and `alem report` and the kept table."""
    from alem.campaign.host_answers import host_table
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import score_unscored_candidates
    from alem.store import Store

    with Store.open(config.store_path) as store:
        clock = Clock()
        model = load_current_model(store, config)
        scored = score_unscored_candidates(store, model, config=config)
        scoring = clock.seconds()
        n_hosts = len(store.hosts())
        n_hops = sum(1 for r in store.hops() if r.host_id is not None)
        keeping = _keeping_costs(config, store)
    hosts_s = _timed_command(["hosts", "--json", "-C", str(config.campaign_dir)])
    report_s = _timed_command(["report", "-C", str(config.campaign_dir)])
    with Store.open(config.store_path) as store:
        kept = []
        for _ in range(2):
            clock = Clock()
            host_table(config, store)
            kept.append(clock.seconds())
    return {
        "hosts": n_hosts, "host_hops": n_hops,
        "candidates_add": add_seconds,
        "scoring": scoring, "hops_scored": scored,
        "keeping": keeping,
        "first_alem_hosts_fresh_process": hosts_s,
        "first_alem_report_fresh_process": report_s,
        "kept_table_in_process": min(kept, key=lambda k: k["cpu_s"]),
    }


def existing_campaign(directory: Path) -> dict:
    """The first table on a campaign as stored (networks built where none is kept), then as above."""
    from alem.campaign.host_answers import host_table
    from alem.campaign.host_rows import host_rows
    from alem.candidates.network_record import records_of
    from alem.config import CampaignConfig
    from alem.store import Store

    config = CampaignConfig.load(directory)
    with Store.open(config.store_path) as store:
        kept_before = len(records_of(store.host_networks()))
        clock = Clock()
        rows = host_rows(config, store)
        rows_s = clock.seconds()
        clock = Clock()
        table = host_table(config, store, rows)
        first_s = clock.seconds()
    out = {
        "networks_kept_before": kept_before,
        "rows": rows_s, "rows_are": rows.what,
        "first_table_as_stored": first_s,
        "hosts_with_error": sum(1 for h in table if h.get("error")),
        "hosts_without_percolation": sum(1 for h in table if h["percolation_barrier_ev"] is None),
    }
    out.update(after_add_and_scoring(config, None))
    return out


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
    parser.add_argument("--work", type=Path)
    parser.add_argument("--campaign", type=Path, help="an existing campaign (a copy: it is changed)")
    parser.add_argument("--kept-only", action="store_true", help="the earlier measurement: rows and tables in this process")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("host_table_speed.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if not args.kept_only:
        _after_add_and_scoring_main(args)
        return
    from alem.campaign.host_answers import host_table
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
        "candidates_add": add_seconds,
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


def _after_add_and_scoring_main(args) -> None:
    """Record one after-add-and-scoring measurement under ``after_add_and_scoring`` (earlier kept)."""
    if args.campaign is not None:
        name, result = f"campaign {args.campaign.name}", existing_campaign(args.campaign)
    else:
        if args.work is None:
            raise SystemExit("--work or --campaign is needed")
        config, add_seconds = campaign(args.work, args.hosts)
        name, result = f"first {args.hosts} Li corpus hosts", after_add_and_scoring(config, add_seconds)
    result.update({
        "cpu_seconds_per_host_hop_first_alem_hosts": round(result["first_alem_hosts_fresh_process"]["cpu_s"] / result["host_hops"], 5),
        "machine": f"{platform.machine()}, CPython {platform.python_version()}, shared 2-core VM",
        "load_average_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d"),
    })
    earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
    earlier.setdefault("after_add_and_scoring", {})[name] = result
    args.out.write_text(json.dumps(earlier, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
