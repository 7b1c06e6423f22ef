"""Enumerating and storing a fixed sample of corpus hosts, timed: what ``alem candidates add`` costs per host.

The sample is the first ``--hosts`` Li-containing structures of ``data/pretrain_multiprop.jsonl.gz``
in corpus order (as ``run_scale.py`` and ``benchmarks/candidates/bulk_import.py`` take them),
written once as CIFs into ``<workdir>/hosts``.
Each run adds them all to a fresh replay campaign with ``add_candidates`` (the campaign's
enumeration settings, the shipped dataset for de-duplication, ``--workers`` processes) in a child
process, timed from outside: wall seconds, CPU seconds of the child and its worker processes
(``RUSAGE_CHILDREN``), peak memory of the largest of them. The store's bytes are read per table
and column after the run (``SUM(length(..))``) and as the file of a ``VACUUM INTO`` copy.

Rows go to ``benchmarks/scale/enumeration.json`` under ``--label`` (one row per label and number
of workers, replaced when run again) and the table to ``enumeration.md``. The alem measured is the
one on ``PYTHONPATH``: to measure an older commit, export it (``git archive <commit> alem | tar -x
-C DIR``) and run this script with ``PYTHONPATH=DIR``.

    python benchmarks/scale/run_enumeration.py --hosts 300 --workers 1 --label after --workdir /tmp/enum
    python benchmarks/scale/run_enumeration.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORPUS = REPO / "data" / "pretrain_multiprop.jsonl.gz"
RESULTS = HERE / "enumeration.json"
TABLE = HERE / "enumeration.md"
#: What the extrapolation is to (issue #29's screening scale).
TARGET_HOSTS = 10_000
TARGET_HOPS = 100_000


def write_sample(workdir: Path, n_hosts: int) -> Path:
    """The sample's CIFs (written once) and the file listing them in corpus order."""
    sys.path.insert(0, str(REPO / "benchmarks" / "candidates"))
    from bulk_import import write_li_hosts  # the same hosts, written the same way

    listing = workdir / f"sample-{n_hosts}.json"
    if not listing.exists():
        hosts_dir = workdir / "hosts"
        hosts_dir.mkdir(parents=True, exist_ok=True)
        listing.write_text(json.dumps([str(p) for p in write_li_hosts(hosts_dir, n_hosts)]))
    return listing


def _cpu_s() -> float:
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def child(campaign: Path, listing: Path, workers: int, out: Path) -> None:
    """The timed run (in its own process): every host of the sample into the campaign's store."""
    from alem.campaign.enumeration import enumeration_settings
    from alem.candidates.pool import add_candidates
    from alem.config import CampaignConfig
    from alem.hops.io import load_training_hops
    from alem.store import Store

    config = CampaignConfig.load(campaign)
    settings = enumeration_settings(config, None, None, None)
    paths = [Path(p) for p in json.loads(listing.read_text())]
    dataset = load_training_hops()
    start, cpu_start = time.perf_counter(), _cpu_s()
    with Store.open(config.store_path) as store:
        report = add_candidates(store, paths, "Li", settings, dataset_hops=dataset, workers=workers)
    out.write_text(json.dumps({
        "add_candidates_wall_s": time.perf_counter() - start,
        "add_candidates_cpu_s": _cpu_s() - cpu_start,  # this process and its (joined) workers
        "hosts_enumerated": len({h.path for h in report.hosts}),
        "hosts_skipped": len(report.skipped_hosts),
        "hops_added": len(report.added),
        "enumeration_s_summed_over_hosts": sum(h.seconds for h in report.hosts) + sum(s.seconds for s in report.skipped_hosts),
        "storing_s": report.overhead_seconds,
    }))


def store_bytes(store_path: Path) -> dict:
    import sqlite3

    conn = sqlite3.connect(store_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    n_hops = conn.execute("SELECT COUNT(*) FROM hops").fetchone()[0]
    columns = {
        "hops.initial_json": "SELECT SUM(length(initial_json)) FROM hops",
        "hops.final_json": "SELECT SUM(length(final_json)) FROM hops",
        "hops.metadata_json": "SELECT SUM(length(metadata_json)) FROM hops",
        "hosts.structure_json": "SELECT SUM(length(structure_json)) FROM hosts",
        "host_networks.record_json": "SELECT SUM(length(record_json)) FROM host_networks",
    }
    sums = {name: conn.execute(sql).fetchone()[0] or 0 for name, sql in columns.items()}
    vacuumed = store_path.with_name("vacuumed.sqlite")
    vacuumed.unlink(missing_ok=True)
    conn.execute(f"VACUUM INTO '{vacuumed}'")
    conn.close()
    size = vacuumed.stat().st_size
    vacuumed.unlink()
    return {"hops": n_hops, "file_bytes_vacuumed": size, "bytes_per_hop": size / max(n_hops, 1),
            "column_bytes_per_hop": {k: v / max(n_hops, 1) for k, v in sums.items()}}


def measure(workdir: Path, n_hosts: int, workers: int, label: str) -> dict:
    listing = write_sample(workdir, n_hosts)
    campaign = workdir / f"campaign-{label}-w{workers}".replace(" ", "_")
    if campaign.exists():
        import shutil

        shutil.rmtree(campaign)
    subprocess.run(["alem", "init", str(campaign), "--backend", "replay"], check=True, capture_output=True)
    out = workdir / "child.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", str(campaign), "--listing", str(listing), "--workers", str(workers),
                    "--out", str(out)], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    from alem.config import CampaignConfig

    result = json.loads(out.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    hosts = result["hosts_enumerated"] + result["hosts_skipped"]
    row = {
        "label": label, "workers": workers, "hosts_read": n_hosts, **result,
        "wall_s": wall, "cpu_s": cpu, "peak_rss_mb_largest_process": after.ru_maxrss / 1024,
        # per host: add_candidates alone (start-up, imports and loading the dataset are once per run)
        "cpu_s_per_host": result["add_candidates_cpu_s"] / hosts, "wall_s_per_host": result["add_candidates_wall_s"] / hosts,
        "store": store_bytes(CampaignConfig.load(campaign).store_path),
        "load_average_after": os.getloadavg()[0], "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    return row


def save(row: dict) -> None:
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = [r for r in rows if (r["label"], r["workers"]) != (row["label"], row["workers"])] + [row]
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")


def table(rows: list[dict]) -> str:
    lines = [
        "| run | workers | hosts (skipped) | hops stored | wall / CPU (whole process) | add_candidates: wall / CPU | "
        f"per host: wall / CPU | {TARGET_HOSTS:,} hosts at this rate: wall / CPU | store per hop (VACUUM) | "
        f"{TARGET_HOPS:,} hops: store | load average |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_hop = r["store"]["bytes_per_hop"]
        lines.append(
            f"| {r['label']} | {r['workers']} | {r['hosts_read']} ({r['hosts_skipped']}) | {r['hops_added']} | "
            f"{r['wall_s']:.0f} s / {r['cpu_s']:.0f} s | {r['add_candidates_wall_s']:.0f} s / {r['add_candidates_cpu_s']:.0f} s | "
            f"{r['wall_s_per_host'] * 1000:.0f} / {r['cpu_s_per_host'] * 1000:.0f} ms | "
            f"{r['wall_s_per_host'] * TARGET_HOSTS / 60:.0f} / {r['cpu_s_per_host'] * TARGET_HOSTS / 60:.0f} min | "
            f"{per_hop / 1000:.1f} kB | {per_hop * TARGET_HOPS / 1e9:.2f} GB | {r['load_average_after']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=300, help="the first N Li hosts of the corpus")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--label", default="current", help="the row's name (e.g. the commit measured)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/alem-enumeration"))
    parser.add_argument("--table", action="store_true", help="only write enumeration.md from enumeration.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--listing", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.listing, args.workers, args.out)
        return
    if not args.table:
        row = measure(args.workdir, args.hosts, args.workers, args.label)
        save(row)
        print(json.dumps(row, indent=2))
    TABLE.write_text(table(json.loads(RESULTS.read_text())))


if __name__ == "__main__":
    main()
