"""Schema version 4: every result carries the provenance of its inputs (``results.provenance_json``:
preset, settings hash, INCAR or MLIP, code versions; :mod:`alem.neb.provenance`).

Results recorded before this version get what the store can still tell: their method, fidelity
and engine, the preset named in their run directory's ``request.json`` when that file is still
readable, and a note that the inputs were not recorded.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

#: The note of a result recorded before the store kept provenance.
NOT_RECORDED_NOTE = "recorded before alem kept provenance (store schema 4): settings, inputs and versions unknown"


def _engine(method: str) -> str | None:
    engine = (method or "").partition(":")[0]
    return engine if engine in ("vasp", "mlip", "replay") else None


def _preset_of_run(details: dict) -> str | None:
    run_dir = details.get("run_dir")
    if not run_dir:
        return None
    try:
        return json.loads((Path(run_dir) / "request.json").read_text()).get("preset")
    except (OSError, ValueError):
        return None


def backfilled_provenance(method: str, fidelity: str | None, details: dict) -> dict:
    """The record of a result written before schema 4."""
    return {"preset": _preset_of_run(details), "engine": _engine(method), "fidelity": fidelity,
            "code_versions": {}, "attempts": [], "note": NOT_RECORDED_NOTE}


def migrate_to_v4(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE results ADD COLUMN provenance_json TEXT NOT NULL DEFAULT '{}'")
    rows = conn.execute("SELECT id, method, fidelity, details_json FROM results").fetchall()
    for result_id, method, fidelity, details_json in rows:
        record = backfilled_provenance(method, fidelity, json.loads(details_json or "{}"))
        conn.execute("UPDATE results SET provenance_json = ? WHERE id = ?", (json.dumps(record), result_id))
