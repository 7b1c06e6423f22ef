"""CHGNet NEB barriers of the shipped training hops, for the CHGNet add-on (issue 24, item 1).

A thin caller of what ``alem calibrate`` runs (:mod:`alem.campaign.calibrate`) without a campaign:
the shipped ``mlip_chgnet`` preset unchanged (5 images, fmax 0.05 eV/Å, 300 steps; the hops'
published cells), its NEBs in local worker processes, smallest cells first, one JSON line per hop
appended to ``alem/data/calibration/mlip_CHGNet.jsonl`` (the log alem ships and reads). Resumable:
run it again and it goes on from the hops not yet in the log; a NEB running when it was killed is
waited for, not run twice. A wall-time budget stops new submissions.

    nice python benchmarks/calibration/run_calibration.py --limit 200 --budget-min 30
    python benchmarks/calibration/run_calibration.py --jobs 8 --limit 200     # a GPU/many-core node
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def markdown_table(log_path: Path) -> str:
    """The docs table of a log: one row per hop (its DFT barrier beside), then the totals."""
    from alem.campaign.calibrate import unusable_counts
    from alem.hops import load_training_hops
    from alem.hops.calibration_log import CalibrationLog, row_unusable_reason

    dft = {h.hop_id: h.barrier_ev for h in load_training_hops()}
    rows = list(CalibrationLog(log_path).rows().values())
    lines = ["| hop | sites | CHGNet forward (eV) | reverse (eV) | DFT (eV) | verdict | s |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        reason = row_unusable_reason(r)
        verdict = "usable" if reason is None else reason.split(":")[0].split(" (")[0]
        cells = [r["hop_id"], r.get("n_sites", ""), _ev(r["barrier_ev"]), _ev(r.get("reverse_barrier_ev")),
                 _ev(dft.get(r["hop_id"])), verdict, f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    usable = [r for r in rows if row_unusable_reason(r) is None]
    errors = [abs(r["barrier_ev"] - dft[r["hop_id"]]) for r in usable if r["hop_id"] in dft]
    mae = f"; CHGNet vs DFT MAE {sum(errors) / len(errors):.3f} eV on the usable ones" if errors else ""
    unusable = ", ".join(f"{n} {k}" for k, n in unusable_counts(rows).items()) or "none"
    seconds = sum(r["seconds"] for r in rows)
    lines += ["", f"{len(rows)} NEBs ({seconds / 60:.0f} min): {len(usable)} usable, unusable: {unusable}{mae}. "
              f"From `{log_path.name}`."]
    return "\n".join(lines)


def _ev(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def main() -> None:
    from alem.backends.local import LocalBackend
    from alem.campaign.calibrate import calibration_hops, describe_row, published_cell_preset, run_calibration
    from alem.hops.calibration_log import CalibrationLog, shipped_log_path
    from alem.neb.presets import load_preset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mlip_chgnet", help="NEB preset (its fidelity names the log)")
    parser.add_argument("--limit", type=int, default=200, help="smallest training hops to calibrate on")
    parser.add_argument("--jobs", type=int, default=1, help="NEBs at once")
    parser.add_argument("--budget-min", type=float, default=30.0, help="no new NEB starts after this many minutes")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="run directories (kept for a resume)")
    parser.add_argument("--log", type=Path, help="the JSONL log (default: the one alem ships for the preset's potential)")
    parser.add_argument("--table", action="store_true", help="print the docs table of the log and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(args.log or shipped_log_path(load_preset(args.preset).fidelity)))
        return

    preset = published_cell_preset(load_preset(args.preset))
    log = CalibrationLog(args.log or shipped_log_path(preset.fidelity))
    backend = LocalBackend(args.work, preset)
    hops = calibration_hops(args.limit)
    start = time.time()
    run = run_calibration(hops, backend, log, preset.fidelity, preset.name, max_running=args.jobs,
                          on_row=lambda row: print(describe_row(row), flush=True),
                          keep_going=lambda: time.time() - start < args.budget_min * 60)
    print(f"{len(run.written)} NEBs now, {run.already_done} done before, {len(log.rows())} lines in {log.path}"
          + ("; budget reached" if run.stopped_early else ""))


if __name__ == "__main__":
    main()
