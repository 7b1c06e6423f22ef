"""A 10^5-hop campaign for the scale benchmark, tiled from its 10^4-hop campaign.

The pre-training corpus holds 3,465 Li-containing structures; enumerated at the percolation cutoff
they give 11,510 hops (3,465 hosts, 513 skipped; `enumeration.md`), so no campaign of
this corpus reaches 10^5 hops. The steps after enumeration (scoring, proposing, the read commands,
the store's size, peak memory) depend on how many hops and hosts a campaign holds, not on which; so
this script copies a finished campaign and repeats its hosts ``--copies`` times in its store under
new names, each copy with its hops, its kept migration network and every model version's
predictions, as if the same structures had been added again under other names (``<name>t<k>``,
fingerprints suffixed ``~t<k>`` so the store's uniqueness holds). The hop contents are unchanged, so
the feature cache (keyed by hop content) is full for every copy: a rescoring of the tiled campaign
is a rescoring with a full cache, which is the step the issue sets its 5-minute target for.
Enumeration and the first scoring (empty cache) are not measured on a tiled campaign: they are per
host and per hop, measured at 10^3 and 10^4.

    python benchmarks/scale/tile_campaign.py /tmp/scale-10k /tmp/scale-100k --copies 10
    python benchmarks/scale/run_scale.py --hops 100000 --workdir /tmp/scale-100k --only rescoring,...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path


def tile_store(store_path: Path, copies: int) -> dict:
    """Repeat every host of ``store_path`` ``copies - 1`` more times, in one transaction."""
    with closing(sqlite3.connect(store_path)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        (n_hosts,) = db.execute("SELECT MAX(id) FROM hosts").fetchone()
        (n_hops,) = db.execute("SELECT COUNT(*) FROM hops").fetchone()
        with db:
            for k in range(1, copies):
                offset, tag = k * n_hosts, f"t{k}"
                db.execute(
                    "INSERT INTO hosts (id, formula, structure_json, fingerprint, source_file, name, created_at) "
                    "SELECT id + ?, formula, structure_json, fingerprint || '~' || ?, source_file, name || ?, created_at "
                    "FROM hosts WHERE id <= ?", (offset, tag, tag, n_hosts))
                db.execute(
                    "INSERT INTO hops (hop_id, host_id, working_ion, initial_json, final_json, hop_length_a, n_sites, "
                    "fingerprint, grp, metadata_json, state, created_at, updated_at) "
                    "SELECT replace(hop_id, grp || '-', grp || ? || '-'), host_id + ?, working_ion, initial_json, final_json, "
                    "hop_length_a, n_sites, fingerprint || '~' || ?, grp || ?, metadata_json, 'candidate', created_at, updated_at "
                    "FROM hops WHERE host_id <= ?", (tag, offset, tag, tag, n_hosts))
                db.execute(
                    "INSERT INTO host_networks (host_id, working_ion, covers_a, record_json, created_at) "
                    "SELECT host_id + ?, working_ion, covers_a, record_json, created_at FROM host_networks WHERE host_id <= ?",
                    (offset, n_hosts))
                db.execute(
                    "INSERT INTO predictions (hop_id, model_version_id, mean_ev, std_ev, prob_good, created_at) "
                    "SELECT replace(p.hop_id, h.grp || '-', h.grp || ? || '-'), p.model_version_id, p.mean_ev, p.std_ev, "
                    "p.prob_good, p.created_at FROM predictions p JOIN hops h ON h.hop_id = p.hop_id WHERE h.host_id <= ?",
                    (tag, n_hosts))
        (tiled_hops,) = db.execute("SELECT COUNT(*) FROM hops").fetchone()
        (tiled_hosts,) = db.execute("SELECT COUNT(*) FROM hosts").fetchone()
    return {"source_hosts": n_hosts, "source_hops": n_hops, "hosts": tiled_hosts, "hops": tiled_hops, "copies": copies}


def retarget_paths(store_path: Path, dest: Path) -> None:
    """Model versions registered inside a campaign's state directory (a simulated retraining) point
    into the copy's, wherever the source campaign was copied from."""
    marker = "/campaign/state/"
    with closing(sqlite3.connect(store_path)) as db, db:
        for version_id, path in db.execute("SELECT id, path FROM model_versions").fetchall():
            if marker in path:
                moved = str(dest / "campaign" / "state" / path.split(marker, 1)[1])
                db.execute("UPDATE model_versions SET path = ? WHERE id = ?", (moved, version_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a run_scale.py work directory (its store at schema 9 or later)")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    source, dest = args.source.resolve(), args.dest.resolve()
    if dest.exists():
        raise SystemExit(f"{dest} exists; choose a new work directory")
    started = time.perf_counter()
    # what is derived from the hosts' names or pictures is computed again for the tiled campaign
    derived = ("posterior_rows", "*.html", "host_networks", "host_answers.sqlite*", "review_pictures", "report_figures")
    shutil.copytree(source / "campaign", dest / "campaign", ignore=shutil.ignore_patterns(*derived))
    store_path = dest / "campaign" / "state" / "alem.sqlite"
    retarget_paths(store_path, dest)
    summary = tile_store(store_path, args.copies)
    # run_scale.py reads the campaign's size from its enumerate step: this one was tiled, not enumerated
    enumerate_step = {"tiled_from": summary["source_hops"], "copies": args.copies, "candidate_hops": summary["hops"],
                      "hosts_in_store": summary["hosts"], "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0}
    (dest / "steps.json").write_text(json.dumps({"enumerate": enumerate_step}, indent=2))
    print(summary, f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
