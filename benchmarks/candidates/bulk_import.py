"""Bulk host import: `alem candidates add DIR` over N Li hosts of the pre-training corpus, one process.

The first N Li-containing structures of data/pretrain_multiprop.jsonl.gz (its own order, no
filtering by size or chemistry) are written as CIFs named by their corpus id into a temporary
directory; a fresh campaign imports the directory with one `alem candidates add` call (a real
subprocess, start-up included) and the per-host timings come from the library's report.

    python benchmarks/candidates/bulk_import.py --hosts 100   # writes bulk_import.json here
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from alem import REPO_ROOT
from alem.hops.io import atoms_dict_to_structure

CORPUS = REPO_ROOT / "data" / "pretrain_multiprop.jsonl.gz"


def write_li_hosts(directory: Path, n_hosts: int) -> list[Path]:
    paths = []
    with gzip.open(CORPUS, "rt") as corpus:
        for line in corpus:
            entry = json.loads(line)
            if "Li" not in entry["atoms"]["elements"]:
                continue
            path = directory / f"{entry['id']}.cif"
            atoms_dict_to_structure(entry["atoms"]).to(filename=str(path))
            paths.append(path)
            if len(paths) == n_hosts:
                break
    return paths


def _reason_kind(reason: str) -> str:
    """A skip reason with file names and numbers blanked, so alike reasons count together."""
    first_path_problem = reason.split("skipped: ")[1] if "skipped: " in reason else reason
    return re.sub(r"\d+(\.\d+)?", "N", re.sub(r"\S*/\S*", "FILE", first_path_problem)).split(";")[0][:160]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bulk_import.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        hosts = tmp_path / "hosts"
        hosts.mkdir()
        write_li_hosts(hosts, args.hosts)
        subprocess.run(["alem", "init", str(tmp_path / "campaign"), "--backend", "replay"], check=True, capture_output=True)
        start = time.perf_counter()
        cli = subprocess.run(
            ["alem", "candidates", "add", str(hosts), "--campaign", str(tmp_path / "campaign")],
            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
        )
        cli_seconds = time.perf_counter() - start

        # the same import in this process, for the per-host timings
        from alem.campaign import init_campaign
        from alem.candidates import EnumerationSettings
        from alem.candidates.pool import add_candidates, expand_host_paths
        from alem.store import Store

        config = init_campaign(tmp_path / "again", backend="replay")
        with Store.open(config.store_path) as store:
            start = time.perf_counter()
            report = add_candidates(store, expand_host_paths([hosts]), "Li", EnumerationSettings())
            library_seconds = time.perf_counter() - start
    per_host = sorted([h.seconds for h in report.hosts] + [s.seconds for s in report.skipped_hosts])
    result = {
        "what": "alem candidates add DIR, one call, N Li hosts (first N Li structures of the pre-training corpus as CIFs)",
        "n_hosts": args.hosts,
        "cli_exit_code": cli.returncode,
        "cli_wall_seconds": round(cli_seconds, 2),
        "library_seconds": round(library_seconds, 2),
        "hosts_added": len(report.hosts),
        "hosts_skipped": len(report.skipped_hosts),
        "candidate_hops_stored": len(report.added),
        "hops_already_known": report.n_known,
        "per_host_seconds": {
            "median": round(per_host[len(per_host) // 2], 3),
            "p90": round(per_host[int(0.9 * (len(per_host) - 1))], 3),
            "max": round(per_host[-1], 3),
            "sum": round(sum(per_host), 2),
        },
        "store_and_dataset_seconds": round(report.overhead_seconds, 2),
        "skip_reasons": dict(Counter(_reason_kind(s.reason) for s in report.skipped_hosts).most_common()),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}, shared 2-core VM",
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if cli.returncode not in (0, 1):
        print(cli.stdout, cli.stderr, file=sys.stderr)


if __name__ == "__main__":
    main()
