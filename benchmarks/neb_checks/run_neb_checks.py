"""What the NEB checks of issue 20 do on real CHGNet NEBs: how many results each check stops, how
many image calculations the pre-NEB endpoint check saved, and how the intermediate-minimum rule
changes the barrier.

Hops: the shortest Li hop of each shipped demo host (alem/data/hosts, enumerated as
`alem candidates add` does, at the preset's 8 Å) and the smallest literature hops of the shipped
Em dataset (cells as published). Each runs the real local-backend path: the shipped
``mlip_chgnet`` preset's flow (endpoint relaxations, the endpoint check job, IDPP images, CHGNet
CI-NEB) staged and run with alem.backends.rundir, its outcome read by the same reader the loop
uses. To stay within a shared 2-core machine the NEBs are made cheaper than the shipped preset
(3 images, fmax 0.1 eV/Å, at most 150 NEB steps and 150 endpoint steps, the hop's own cell for the
literature hops) and a wall-time budget stops launching new hops (hops not run are listed).

    nice python benchmarks/neb_checks/run_neb_checks.py --literature 20 --budget-min 25
    python benchmarks/neb_checks/run_neb_checks.py --table benchmarks/neb_checks/*.json   # README table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def demo_hops(max_atoms: int) -> list:
    from alem import PACKAGE_DATA
    from alem.neb.vasp_inputs import example_hop

    hops = []
    for path in sorted((PACKAGE_DATA / "hosts").glob("*.cif")):
        try:
            hop = example_hop(path.name, max_hop_length_a=4.0)
        except Exception as exc:  # a host without a short hop: say so, keep going
            print(f"{path.name}: no hop ({type(exc).__name__}: {exc})")
            continue
        if hop.n_sites <= max_atoms:
            hop.hop_id = f"demo:{path.stem}"
            hops.append(hop)
    return hops


def literature_hops(n: int) -> list:
    from alem.hops import load_training_hops

    hops = [h for h in load_training_hops() if h.working_ion == "Li"]
    return sorted(hops, key=lambda h: (h.n_sites, h.hop_id))[:n]


def _category(reason: str | None) -> str:
    if not reason:
        return "usable"
    for key, label in (("endpoint check failed", "endpoint check"), ("intermediate minimum", "intermediate minimum"),
                       ("no interior maximum", "no interior maximum"), ("discontinuous", "discontinuous path"),
                       ("NEB state", "NEB not converged")):
        if key in reason:
            return label
    return "other"


def run_one(hop, preset, work: Path) -> dict:
    from alem.backends.rundir import run_flow, run_outcome, stage_run
    from alem.neb.barrier import DEFAULT_CRITERIA, PathCriteria, path_problems

    run_dir = work / hop.hop_id.replace(":", "_")
    started = time.time()
    stage_run(run_dir, hop, preset, hop.hop_id)
    try:
        run_flow(run_dir)
    except Exception as exc:  # recorded in exit.json; the outcome says why
        print(f"{hop.hop_id}: flow raised {type(exc).__name__}: {exc}")
    outcome = run_outcome(run_dir, hop.hop_id, "worker.log", lambda: "finished")
    energies = outcome.image_energies_ev
    old_rules = PathCriteria(intermediate_minimum_tolerance_ev=math.inf)
    row = {
        "hop_id": hop.hop_id, "n_sites": hop.n_sites, "seconds": round(time.time() - started, 1),
        "literature_barrier_ev": hop.barrier_ev, "verdict": _category(outcome.failure_reason),
        "failure_reason": outcome.failure_reason, "barrier_ev": outcome.barrier_ev,
        "effective_barrier_ev": outcome.details.get("effective_barrier_ev"),
        "images_not_run": (outcome.details.get("endpoint_check") or {}).get("n_images_not_run", 0),
        "endpoint_check": {k: v for k, v in (outcome.details.get("endpoint_check") or {}).items() if k != "problems"},
        "image_energies_ev": energies,
    }
    if energies:  # would the path have been a label before the intermediate-minimum rule?
        row["usable_without_minimum_rule"] = outcome.converged and not path_problems(energies, None, old_rules)
        row["usable_with_minimum_rule"] = outcome.converged and not path_problems(energies, None, DEFAULT_CRITERIA)
    return row


def _ev(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def markdown_table(paths: list[Path]) -> str:
    """The README table of one or more result files: one row per hop, then the totals."""
    by_hop: dict[str, dict] = {}
    for path in paths:  # a hop run by more than one file: its first run counts
        for row in json.loads(path.read_text())["hops"]:
            by_hop.setdefault(row["hop_id"], row)
    rows = list(by_hop.values())
    lines = ["| hop | sites | verdict | forward (eV) | effective (eV) | images not run | CHGNet s |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['hop_id']} | {r['n_sites']} | {r['verdict']} | {_ev(r['barrier_ev'])} | "
                     f"{_ev(r['effective_barrier_ev'])} | {r['images_not_run']} | {r['seconds']:.0f} |")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines.append("")
    lines.append(f"{len(rows)} NEBs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + "; "
                 f"{sum(r['images_not_run'] for r in rows)} image calculations not run (endpoint check); "
                 f"{sum(1 for r in rows if r.get('usable_without_minimum_rule') and not r.get('usable_with_minimum_rule'))}"
                 " stopped by the intermediate-minimum rule alone.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, nargs="+", help="print the README table of these result files and stop")
    parser.add_argument("--literature", type=int, default=20)
    parser.add_argument("--no-demo", action="store_true", help="literature hops only")
    parser.add_argument("--max-atoms", type=int, default=60, help="largest demo NEB cell run")
    parser.add_argument("--budget-min", type=float, default=25.0, help="no new hop starts after this many minutes")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--resume", action="store_true", help="keep the hops --out already holds and run only the others")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(args.table))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from alem.neb.presets import load_preset

    preset = load_preset("mlip_chgnet")
    preset.neb.n_images, preset.neb.fmax_ev_a, preset.neb.max_steps = 3, 0.1, 150
    preset.neb.endpoint_max_steps = 150
    literature = load_preset("mlip_chgnet")
    literature.neb = preset.neb
    literature.supercell.min_image_distance_a = 0.0  # published cells are already NEB supercells

    demo = [] if args.no_demo else demo_hops(args.max_atoms)
    plan = [(hop, preset) for hop in demo] + [(hop, literature) for hop in literature_hops(args.literature)]
    rows, skipped, earlier_min = [], [], 0.0
    if args.resume and args.out.is_file():  # a run stopped by its budget (or a kill) goes on where it was
        earlier = json.loads(args.out.read_text())
        rows, earlier_min = earlier["hops"], float(earlier["summary"].get("wall_min", 0.0))
        done = {row["hop_id"] for row in rows}
        plan = [(hop, hop_preset) for hop, hop_preset in plan if hop.hop_id not in done]
    start = time.time()
    with tempfile.TemporaryDirectory() as work:
        for hop, hop_preset in plan:
            if time.time() - start > args.budget_min * 60:
                skipped.append(hop.hop_id)
                continue
            row = run_one(hop, hop_preset, Path(work))
            print(f"{row['hop_id']:>28} {row['n_sites']:4d} sites {row['seconds']:7.1f} s  {row['verdict']}"
                  + (f": {row['failure_reason']}" if row["failure_reason"] else f" {row['barrier_ev']:.3f} eV"))
            rows.append(row)
            partial = {"partial": True, "wall_min": round(earlier_min + (time.time() - start) / 60, 1)}
            args.out.write_text(json.dumps({"summary": partial, "hops": rows}, indent=1))  # survives a kill
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    changed = [r for r in rows if r.get("effective_barrier_ev") is not None]
    summary = {
        "n_run": len(rows), "not_run_budget": skipped, "verdicts": counts,
        "images_saved_by_endpoint_check": sum(r["images_not_run"] for r in rows),
        "stopped_by_minimum_rule_only": sum(1 for r in rows if r.get("usable_without_minimum_rule")
                                            and not r.get("usable_with_minimum_rule")),
        "barrier_change_ev": [{"hop_id": r["hop_id"], "forward_ev": r["barrier_ev"],
                               "effective_ev": r["effective_barrier_ev"]} for r in changed],
        "wall_min": round(earlier_min + (time.time() - start) / 60, 1),
        "settings": {"n_images": 3, "fmax_ev_a": 0.1, "max_steps": 150, "endpoint_max_steps": 150,
                     "checks": preset.checks.model_dump()},
        "machine": f"{platform.node()} ({os.cpu_count()} cores, shared), {platform.python_version()}",
    }
    args.out.write_text(json.dumps({"summary": summary, "hops": rows}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
