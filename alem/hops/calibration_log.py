"""Calibration logs: a screening potential's NEB barriers of DFT-labelled hops, one JSON line per hop.

``alem calibrate`` (:mod:`alem.campaign.calibrate`) and ``benchmarks/calibration/run_calibration.py``
append one line per finished NEB::

    {"hop_id": "em-0087", "fidelity": "mlip:CHGNet", "preset": "mlip_chgnet", "n_sites": 29,
     "barrier_ev": 0.27, "reverse_barrier_ev": 0.31, "converged": true, "failure_reason": null,
     "seconds": 412.3, "finished": "2026-12-06T19:40:00Z"}

A line is written with one ``write`` on a file opened for appending and flushed to disk before the
next NEB starts, so a kill loses at most the NEB that was running (a torn last line is skipped on
reading and the hop runs again). A failed NEB has its line too, with ``barrier_ev`` null and its
reason: it is not run again, and it is counted as unusable, never silently dropped.

Paired with the hops' DFT barriers, a log's usable lines are what a fidelity-aware add-on of that
potential learns from. Logs shipped with alem live in ``alem/data/calibration/<potential>.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alem.hops.fidelity import CheapBarrier, parse_fidelity

LOG_SUFFIX = ".jsonl"
SHIPPED_CALIBRATION_DIR = "calibration"


def log_name(fidelity: str) -> str:
    """File name of a potential's log: ``mlip:CHGNet`` -> ``mlip_CHGNet.jsonl``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", parse_fidelity(fidelity)) + LOG_SUFFIX


def shipped_log_path(fidelity: str) -> Path:
    """Where alem ships the log of ``fidelity`` (the file need not exist)."""
    from alem import PACKAGE_DATA

    return PACKAGE_DATA / SHIPPED_CALIBRATION_DIR / log_name(fidelity)


@dataclass(frozen=True)
class CalibrationLog:
    """One potential's log file (:mod:`alem.hops.calibration_log`)."""

    path: Path

    def rows(self) -> dict[str, dict[str, Any]]:
        """The lines by hop id (a hop's later line wins); a torn or foreign line is skipped."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return rows
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a process killed mid-write
            if isinstance(row, dict) and isinstance(row.get("hop_id"), str):
                rows[row["hop_id"]] = row
        return rows

    def append(self, row: dict[str, Any]) -> None:
        """Add one hop's line, on disk when this returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(row, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size and not _ends_with_newline(self.path):
                data = b"\n" + data  # a torn line stays alone on its line
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def pairs(self, fidelity: str) -> dict[str, CheapBarrier]:
        """The usable barriers of ``fidelity`` by hop id (:func:`row_unusable_reason` says which are not)."""
        wanted = parse_fidelity(fidelity).lower()
        return {
            hop_id: CheapBarrier(parse_fidelity(row["fidelity"]), float(row["barrier_ev"]))
            for hop_id, row in self.rows().items()
            if str(row.get("fidelity", "")).lower() == wanted and row_unusable_reason(row) is None
        }


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def row_unusable_reason(row: dict[str, Any]) -> str | None:
    """Why a line's barrier must not be paired (None: it may)."""
    if row.get("failure_reason"):
        return str(row["failure_reason"])
    if not row.get("converged"):
        return "NEB did not converge"
    barrier = row.get("barrier_ev")
    if barrier is None or not math.isfinite(float(barrier)):
        return f"barrier is {barrier}"
    return None


def load_shipped_calibration_pairs(fidelity: str) -> dict[str, CheapBarrier]:
    """The usable barriers of ``fidelity`` shipped with alem for its training hops (empty: none shipped)."""
    return CalibrationLog(shipped_log_path(fidelity)).pairs(fidelity)
