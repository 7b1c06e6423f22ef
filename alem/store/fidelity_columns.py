"""Schema version 3: every job knows its stage and fidelity, every result its fidelity, and the
campaign remembers its remaining promise per round.

A job belongs to a stage: ``target`` (the approved, usually DFT track that moves the hop through
its life cycle) or ``screening`` (cheap MLIP NEBs run without approval; they never move the hop).
At most one live job per (hop, stage). Results written before this version get their fidelity
from what the store already knew: the backend of their job and the method text of the outcome
(local backend -> ``mlip:<potential>``, default ``mlip:CHGNet``; replay -> ``dft:<XC>`` of the
replayed dataset row; VASP backends -> ``dft:<functional of the preset>``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from alem.hops.fidelity import (
    DEFAULT_DFT_METHOD,
    FidelityError,
    fidelity_label,
    parse_fidelity,
)

TARGET_STAGE = "target"
SCREENING_STAGE = "screening"
STAGES = (TARGET_STAGE, SCREENING_STAGE)
#: Potential of the local backend's shipped preset (mlip_chgnet): what old local results were.
DEFAULT_LOCAL_POTENTIAL = "CHGNet"
_VASP_BACKENDS = ("slurm", "pbs", "fireworks", "jobflow-remote")


def fidelity_from_method(method: str, backend: str, details: dict | None = None) -> str | None:
    """Fidelity of a result from its outcome's method text and backend (None: cannot tell).

    ``details["fidelity"]`` wins when the backend wrote one; else ``mlip:CHGNet NEB`` ->
    ``mlip:CHGNet``, ``vasp:GGA+U CI-NEB`` -> ``dft:GGA+U``, ``replay:GGA`` -> ``dft:GGA``.
    """
    details = details or {}
    if details.get("fidelity"):
        try:
            return parse_fidelity(str(details["fidelity"]))
        except FidelityError:
            return None
    engine, _, rest = (method or "").partition(":")
    words = rest.split()
    name = words[0] if words else ""
    try:
        if engine == "mlip":
            return fidelity_label("mlip", name or DEFAULT_LOCAL_POTENTIAL)
        if engine == "vasp":
            return fidelity_label("dft", name or DEFAULT_DFT_METHOD)
        if engine == "replay":
            xc = str(details.get("xc") or (name if name != "unknown" else "")) or DEFAULT_DFT_METHOD
            return fidelity_label("dft", xc)
    except FidelityError:
        return None
    if backend == "local":
        return fidelity_label("mlip", DEFAULT_LOCAL_POTENTIAL)
    if backend in _VASP_BACKENDS or backend == "replay":
        return fidelity_label("dft", DEFAULT_DFT_METHOD)
    return None


def _backfill(conn: sqlite3.Connection) -> None:
    rows = conn.execute(
        "SELECT r.id, r.job_id, r.method, r.details_json, j.backend FROM results r JOIN jobs j ON j.id = r.job_id"
    ).fetchall()
    for result_id, job_id, method, details_json, backend in rows:
        details = json.loads(details_json or "{}")
        fidelity = fidelity_from_method(method, backend, details)
        conn.execute("UPDATE results SET fidelity = ? WHERE id = ?", (fidelity, result_id))
        conn.execute("UPDATE jobs SET fidelity = ? WHERE id = ?", (fidelity, job_id))
    # jobs without a result: the backend tells the kind, not always the method
    for job_id, backend in conn.execute("SELECT id, backend FROM jobs WHERE fidelity IS NULL").fetchall():
        if backend == "local":
            conn.execute("UPDATE jobs SET fidelity = ? WHERE id = ?", (f"mlip:{DEFAULT_LOCAL_POTENTIAL}", job_id))


def migrate_to_v3(conn: sqlite3.Connection, live_job_states: Sequence[str]) -> None:
    """Schema 3 (the fidelity columns, one live job per hop and stage, campaign rounds); the
    schema module passes its live job states (it imports this module, not the other way round)."""
    live_sql = ", ".join(f"'{s}'" for s in live_job_states)
    statements = [
        "ALTER TABLE jobs ADD COLUMN stage TEXT NOT NULL DEFAULT 'target' CHECK (stage IN ('target', 'screening'))",
        "ALTER TABLE jobs ADD COLUMN fidelity TEXT",
        "ALTER TABLE results ADD COLUMN fidelity TEXT",
        "DROP INDEX jobs_one_live_per_hop",
        # "never submit a hop twice" now holds per stage: a hop may be screened and run in DFT.
        f"CREATE UNIQUE INDEX jobs_one_live_per_hop_stage ON jobs(hop_id, stage) WHERE state IN ({live_sql})",
        "CREATE INDEX results_fidelity ON results(fidelity)",
        """CREATE TABLE campaign_rounds (
            id INTEGER PRIMARY KEY,
            model_version_id INTEGER REFERENCES model_versions(id),
            batch_id TEXT,
            n_pool INTEGER NOT NULL,
            threshold_ev REAL NOT NULL,
            expected_good REAL NOT NULL,
            best_acquisition REAL,
            created_at REAL NOT NULL
        )""",
    ]
    for statement in statements:
        conn.execute(statement)
    _backfill(conn)
