"""A campaign at screening scale, every step timed: Li hosts of the pre-training corpus, replay backend.

The hosts are the corpus's Li-containing structures in its own order (3,465 of 27,589; no filtering).
Hosts are enumerated in chunks until the store holds at least ``--hops`` candidate hops; then the
steps a screening campaign runs are timed one by one, each in its own process (wall seconds and
peak resident memory from ``/usr/bin/time``, start-up and model loading included):

* ``enumerate``: ``alem.candidates.pool.add_candidates`` per chunk of 100 hosts with the CLI's default
  workers (enumeration seconds summed over hosts, storing seconds apart; one transaction per chunk);
* ``first_scoring``: the loop's score step (``score_unscored_candidates``) with the shipped model,
  the feature cache empty;
* ``retrain``: a second model version that shares the frozen backbone (the shipped members with
  their heads' last bias moved by 0.02 eV, as a retraining changes the heads), registered as current;
* ``rescoring``: the score step again, for the new version (the feature cache full);
* ``host_answers``: the loop's next phase, the kept host answers brought up to date (every host
  after a new version), so the read commands after it measure reads, as a user meets them;
* ``propose_<strategy>``: ``alem propose --strategy S --batch 10`` for each strategy;
* the read commands: ``alem status``, ``proposals``, ``jobs``, ``history``, ``hosts``, ``review``
  (the page of the waiting batches), ``report``, each of the last two once more (``*_again``: its
  pictures kept), and ``alem show 1`` (``show_host``: one host's network);
* the store's and the feature cache's size on disk.

Resumable: every finished step is written to ``<workdir>/steps.json`` and skipped when the script
runs again on the same work directory; the enumeration resumes at the first host not in the store.
``--only`` runs some steps now and leaves the others for a later run (e.g. the read commands at
10^4 hops before the proposals).

    python benchmarks/scale/run_scale.py --hops 1000 --workdir /tmp/scale-1k
    python benchmarks/scale/run_scale.py --hops 10000 --workdir /tmp/scale-10k
    python benchmarks/scale/run_scale.py --table        # results.md from results.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORPUS = REPO / "data" / "pretrain_multiprop.jsonl.gz"
RESULTS = HERE / "results.json"
TABLE = HERE / "results.md"
STRATEGIES = ("explore", "discover", "balanced")
READ_COMMANDS = ("status", "proposals", "jobs", "history", "hosts", "review", "report")
#: Read commands that keep their pictures (``<cmd>_again``: the same command once more, nothing new to draw).
DRAWING_COMMANDS = ("review", "report")
#: Hosts per ``add_candidates`` call: the chunk ``alem candidates add`` stores in one transaction.
HOSTS_PER_CHUNK = 100


# ----------------------------------------------------------------------------- steps (in a child process)
def step_enumerate(campaign: Path, n_hops: int) -> dict:
    from alem.campaign.enumeration import enumeration_settings
    from alem.candidates.pool import add_candidates
    from alem.config import CampaignConfig
    from alem.hops.io import atoms_dict_to_structure, load_training_hops
    from alem.store import HopState, Store

    config = CampaignConfig.load(campaign)
    settings = enumeration_settings(config, None, None, None)
    hosts_dir = campaign.parent / "hosts"
    hosts_dir.mkdir(exist_ok=True)
    dataset = load_training_hops()
    totals = {"enumeration_s": 0.0, "storing_s": 0.0, "hosts_read": 0, "hosts_skipped": 0, "writing_cifs_s": 0.0}
    with Store.open(config.store_path) as store:
        done = {Path(h.source_file).name for h in store.hosts() if h.source_file}
        skipped_file = campaign.parent / "skipped_hosts.txt"
        done |= set(skipped_file.read_text().split()) if skipped_file.exists() else set()
        with gzip.open(CORPUS, "rt") as corpus:
            entries = (json.loads(line) for line in corpus)
            li_hosts = (e for e in entries if "Li" in e["atoms"]["elements"])
            chunk: list[Path] = []
            for entry in li_hosts:
                if store.hop_counts()[HopState.CANDIDATE.value] >= n_hops:
                    break
                name = f"{entry['id']}.cif"
                if name in done:
                    continue
                start = time.perf_counter()
                path = hosts_dir / name
                atoms_dict_to_structure(entry["atoms"]).to(filename=str(path))
                totals["writing_cifs_s"] += time.perf_counter() - start
                chunk.append(path)
                if len(chunk) < HOSTS_PER_CHUNK:
                    continue
                _add_chunk(store, chunk, settings, dataset, totals, skipped_file, add_candidates)
                chunk = []
            if chunk and store.hop_counts()[HopState.CANDIDATE.value] < n_hops:
                _add_chunk(store, chunk, settings, dataset, totals, skipped_file, add_candidates)
        totals["candidate_hops"] = store.hop_counts()[HopState.CANDIDATE.value]
        totals["hosts_in_store"] = len(store.hosts())
    return totals


def _add_chunk(store, chunk, settings, dataset, totals, skipped_file, add_candidates) -> None:
    # as `alem candidates add` runs: one process per core (at most 4)
    report = add_candidates(store, chunk, "Li", settings, dataset_hops=dataset, workers=None)
    totals["enumeration_s"] += sum(h.seconds for h in report.hosts) + sum(s.seconds for s in report.skipped_hosts)
    totals["storing_s"] += report.overhead_seconds
    totals["hosts_read"] += len(chunk)
    totals["hosts_skipped"] += len(report.skipped_hosts)
    with skipped_file.open("a") as handle:  # so a resumed run does not read them again
        handle.writelines(f"{s.path.name}\n" for s in report.skipped_hosts)


def step_score(campaign: Path) -> dict:
    from alem.campaign.model_versions import load_current_model
    from alem.campaign.score import score_unscored_candidates
    from alem.config import CampaignConfig
    from alem.store import Store

    config = CampaignConfig.load(campaign)
    with Store.open(config.store_path) as store:
        start = time.perf_counter()
        model = load_current_model(store, config)
        loaded = time.perf_counter()
        # as the loop scores: with the campaign, so the host rows of the version are kept in the same pass
        n_scored = score_unscored_candidates(store, model, chunk_hops=config.model.score_chunk_hops, config=config)
        return {"hops_scored": n_scored, "model_loading_s": loaded - start, "scoring_s": time.perf_counter() - loaded,
                "model_version": model.version_id, "chunk_hops": config.model.score_chunk_hops}


def step_retrain(campaign: Path) -> dict:
    import torch

    from alem.campaign.model_versions import ensure_model_version, load_ensemble, store_card
    from alem.config import CampaignConfig
    from alem.model_dir import member_filename
    from alem.store import Store

    config = CampaignConfig.load(campaign)
    with Store.open(config.store_path) as store:
        ensure_model_version(store, config)
        parent = Path(store.model_versions()[0].path)  # the shipped model the campaign started with
        if not parent.exists():  # a campaign copied from another checkout: this checkout's shipped model
            from alem.model_dir import default_ensemble_path

            parent = default_ensemble_path()
        target = config.store_path.parent / "models" / f"v-simulated-retraining-{len(store.model_versions()) + 1}"
        if target.exists():  # a run killed halfway through this step
            shutil.rmtree(target)
        shutil.copytree(parent, target)
        ensemble = load_ensemble(target)
        with torch.no_grad():
            for k, member in enumerate(ensemble.members):
                member.head.net[-1].bias[0] += 0.02
                torch.save(member.state_dict(), target / member_filename(k))
        card = load_ensemble(target).card
        version = store.add_model_version(target, store_card(card), card.get("dataset_hash"), card.get("n_training_hops"))
    return {"model_version": version}


def step_host_answers(campaign: Path) -> dict:
    from alem.campaign.host_answers import refresh_host_answers
    from alem.config import CampaignConfig
    from alem.store import Store

    config = CampaignConfig.load(campaign)
    with Store.open(config.store_path) as store:
        return {"hosts_analysed": refresh_host_answers(config, store)}


STEPS = {"enumerate": step_enumerate, "first_scoring": step_score, "retrain": step_retrain, "rescoring": step_score,
         "host_answers": step_host_answers}


# ----------------------------------------------------------------------------- the driver
def _timed(command: list[str], cwd: Path, log: Path) -> dict:
    """Run ``command`` under /usr/bin/time: exit code, wall seconds, peak resident memory (MB)."""
    stats = log.with_suffix(".time")
    with log.open("w") as out:
        process = subprocess.run(
            ["/usr/bin/time", "-o", str(stats), "-f", "%e %U %S %M", *command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "120"},
        )
    wall, user, system, peak_kb = stats.read_text().split()[-4:]
    return {
        "exit_code": process.returncode, "wall_s": float(wall), "cpu_s": round(float(user) + float(system), 2),
        "peak_rss_mb": round(int(peak_kb) / 1024, 1),
    }


def _size_mb(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return round(sum(f.stat().st_size for f in files if f.exists()) / 2**20, 1)


def _summary(steps: dict, campaign: Path) -> dict:
    """A run's results so far (a step not finished yet is absent)."""
    state = campaign / "state"
    return {
        "n_candidate_hops": steps["enumerate"]["candidate_hops"],
        "n_hosts": steps["enumerate"]["hosts_in_store"],
        "steps": steps,
        "store_mb": _size_mb(state / "alem.sqlite"),
        "feature_cache_mb": _size_mb(state / "feature_cache.sqlite"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other work, CPython {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def _save(n_hops: int, summary: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    results["runs"][str(n_hops)] = summary
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    TABLE.write_text(write_table(results))


def run(n_hops: int, workdir: Path, only: set[str] | None = None) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    campaign = workdir / "campaign"
    steps_file = workdir / "steps.json"
    steps = json.loads(steps_file.read_text()) if steps_file.exists() else {}
    if not campaign.exists():
        subprocess.run(["alem", "init", str(campaign), "--backend", "replay"], check=True, capture_output=True)
    (workdir / "logs").mkdir(exist_ok=True)

    def record(name: str, command: list[str], ok_codes: tuple[int, ...] = (0, 1)) -> None:
        if name in steps:
            print(f"{name}: done before ({steps[name]['wall_s']} s)")
            return
        if only is not None and name not in only:
            print(f"{name}: left out (--only)")
            return
        out = workdir / "logs" / f"{name}.json"
        out.unlink(missing_ok=True)
        result = _timed(command, campaign, workdir / "logs" / f"{name}.log")
        if result["exit_code"] not in ok_codes:
            sys.exit(f"{name} failed (exit code {result['exit_code']}): see {workdir / 'logs' / (name + '.log')}")
        if out.exists():
            result.update(json.loads(out.read_text()))
        result["measured_on"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        steps[name] = result
        steps_file.write_text(json.dumps(steps, indent=2))
        _save(n_hops, _summary(steps, campaign))  # a run stopped halfway still reports its finished steps
        print(f"{name}: {result}")

    me = [sys.executable, str(Path(__file__).resolve())]
    for name in STEPS:
        record(name, [*me, "--step", name, "--campaign", str(campaign), "--hops", str(n_hops),
                      "--step-out", str(workdir / "logs" / f"{name}.json")], ok_codes=(0,))
    for strategy in STRATEGIES:
        record(f"propose_{strategy}", ["alem", "propose", "--strategy", strategy, "--batch", "10"])
    for command in READ_COMMANDS:
        record(command, ["alem", command])
        if command in DRAWING_COMMANDS:  # the first page draws its pictures; the next one reads them back
            record(f"{command}_again", ["alem", command])
    record("show_host", ["alem", "show", "1"])
    return _summary(steps, campaign)


def write_table(results: dict) -> str:
    sizes = sorted(results["runs"], key=int)
    runs = [results["runs"][s] for s in sizes]
    names = list(dict.fromkeys(name for r in runs for name in r["steps"]))
    lines = [
        "| step: wall (CPU), peak memory | " + " | ".join(f"{r['n_candidate_hops']} hops ({r['n_hosts']} hosts)" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for name in names:
        cells = []
        for r in runs:
            step = r["steps"].get(name)
            gb = None if step is None else step["peak_rss_mb"] / 1024
            when = "" if step is None or "measured_on" not in step else f" (measured {step['measured_on']})"
            if step is not None and "tiled_from" in step:
                cells.append(f"— (tiled ×{step['copies']} from {step['tiled_from']} hops, not enumerated)")
                continue
            note = "" if step is None or "note" not in step else f"; {step['note']}"
            cells.append("—" if step is None else f"{step['wall_s']:.1f} s ({step['cpu_s']:.0f} s CPU), {gb:.2f} GB{when}{note}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| store size | " + " | ".join(f"{r['store_mb']} MB" for r in runs) + " |")
    lines.append("| feature cache size | " + " | ".join(f"{r['feature_cache_mb']} MB" for r in runs) + " |")
    enum = [r["steps"]["enumerate"] for r in runs]
    lines.append("| of enumerate: enumerating / storing | " + " | ".join(
        "—" if "tiled_from" in e else f"{e['enumeration_s']:.1f} s / {e['storing_s']:.1f} s" for e in enum) + " |")
    for name in ("first_scoring", "rescoring"):
        parts = [(r["steps"][name]["scoring_s"], r["n_candidate_hops"]) if name in r["steps"] else None for r in runs]
        cells = ["—" if p is None else f"{p[0]:.1f} s ({1000 * p[0] / p[1]:.1f} ms/hop)" for p in parts]
        lines.append(f"| of {name}: scoring alone | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=1000, help="candidate hops to reach (whole chunks of hosts)")
    parser.add_argument("--workdir", type=Path, help="campaign and logs; run again on it to resume")
    parser.add_argument("--table", action="store_true", help="only write results.md from results.json")
    parser.add_argument("--only", help="comma-separated steps to run now (the others are left for a later run)")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--campaign", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--step-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        function = STEPS[args.step]
        result = function(args.campaign, args.hops) if args.step == "enumerate" else function(args.campaign)
        args.step_out.write_text(json.dumps(result))
        return
    if not args.table:
        only = set(args.only.split(",")) if args.only else None
        _save(args.hops, run(args.hops, args.workdir or Path(f"/tmp/alem-scale-{args.hops}"), only))
    TABLE.write_text(write_table(json.loads(RESULTS.read_text())))
    print(TABLE.read_text())


if __name__ == "__main__":
    main()
