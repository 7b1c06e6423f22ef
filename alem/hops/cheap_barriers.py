"""Reading cheap-fidelity barriers (e.g. MLIP NEB barriers) that a user feeds to a prediction.

A file maps hop ids to barriers in eV, either JSON (``{"hop_id": 0.42, ...}``) or CSV with the
columns ``hop_id`` and ``barrier_ev``. The file does not say which potential produced them: the
caller does (``alem predict --cheap-fidelity mlip:MACE-MP``), because a fidelity-aware model is
only valid for barriers of the potential it was fitted on.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from alem.hops.fidelity import CheapBarrier, FidelityError, parse_fidelity
from alem.hops.validate import HopError


def _barrier(value, hop_id: str, path: Path) -> float:
    try:
        barrier = float(value)
    except (TypeError, ValueError):
        raise HopError(f"{path}: barrier of {hop_id!r} is {value!r}, not a number (eV)") from None
    if not math.isfinite(barrier) or barrier < 0:
        raise HopError(f"{path}: barrier of {hop_id!r} is {barrier}, not a finite non-negative energy (eV)")
    return barrier


def read_cheap_barriers(path: str | Path, fidelity: str) -> dict[str, CheapBarrier]:
    """Barriers of ``fidelity`` by hop id from a JSON or CSV file (see the module docstring)."""
    path = Path(path)
    try:
        canonical = parse_fidelity(fidelity)
    except FidelityError as exc:
        raise HopError(f"{path}: {exc}") from None
    if not path.is_file():
        raise HopError(f"{path}: no such file of cheap barriers")
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {"hop_id", "barrier_ev"} <= set(rows[0]):
            raise HopError(f"{path}: a CSV of cheap barriers needs the columns hop_id and barrier_ev")
        pairs = [(row["hop_id"], row["barrier_ev"]) for row in rows]
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HopError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise HopError(f"{path}: cheap barriers must be a JSON object mapping hop ids to barriers in eV")
        pairs = list(data.items())
    return {str(hop_id): CheapBarrier(canonical, _barrier(value, str(hop_id), path)) for hop_id, value in pairs}
