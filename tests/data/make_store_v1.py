"""Builds ``store_v1.sqlite``: a campaign store frozen at schema version 1, with rows in every
v1 table. Kept for the record; the committed file is what the migration tests open.

The schema is read from the first release of ``alem/store/schema.py`` in git history (commit
047aa2d, the release that wrote version-1 stores), never from today's migration code, so the file
stays what an old alem wrote even if the migration steps are edited by mistake.

    python tests/data/make_store_v1.py      # from the repository root; rewrites the file
"""

from __future__ import annotations

import ast
import json
import sqlite3
import subprocess
from pathlib import Path

from pymatgen.core import Lattice, Structure

FIRST_RELEASE = "047aa2d364f4ace27838a072410bc7a8ca321360"
HERE = Path(__file__).parent
HOST_SITES = [[0.5, 0.5, 0.5], [0.0, 0.5, 0.5]]
#: hop id -> (state, where the Li ends along x); the tests rebuild these hops to check them
HOPS = {"a": ("candidate", 0.3), "b": ("proposed", 0.4), "c": ("approved", 0.5), "d": ("rejected", 0.6)}
T0 = 1_763_000_000.0  # fixed times: the file is byte-stable apart from SQLite's own layout


def first_release_schema() -> tuple[list[str], str]:
    """The v1 DDL statements and the schema_version DDL, as the first release had them."""
    source = subprocess.run(["git", "show", f"{FIRST_RELEASE}:alem/store/schema.py"], check=True,
                            capture_output=True, text=True, cwd=HERE).stdout
    tree = ast.parse(source)
    v1 = next(ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_V1_CAMPAIGN")
    ensure = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "_ensure_version_table")
    version_ddl = next(ast.literal_eval(n.args[0]) for n in ast.walk(ensure) if isinstance(n, ast.Call) and n.args)
    return v1, version_ddl


def _hop_row(hop_id: str, ion_x: float) -> tuple[str, str, str]:
    """(initial JSON, final JSON, fingerprint) of a 3-site Li hop in a 5 Å cubic O host, as the
    first release stored them (pymatgen dicts; its hop fingerprint, unchanged since)."""
    from alem.hops import Hop
    from alem.hops.fingerprint import hop_fingerprint

    lattice = Lattice.cubic(5.0)
    initial = Structure(lattice, ["Li", "O", "O"], [[0.0, 0.0, 0.0], *HOST_SITES])
    final = Structure(lattice, ["Li", "O", "O"], [[ion_x, 0.0, 0.0], *HOST_SITES])
    hop = Hop(hop_id, initial, final, "Li")
    return json.dumps(initial.as_dict()), json.dumps(final.as_dict()), hop_fingerprint(hop)


def build(path: Path) -> None:
    v1, version_ddl = first_release_schema()
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute(version_ddl)
    for statement in v1:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 'campaign: hosts, hops, models, predictions, proposals, "
                 "decisions, events', ?)", (T0,))
    from alem.hops.fingerprint import structure_fingerprint

    host = Structure(Lattice.cubic(5.0), ["O", "O"], HOST_SITES)
    conn.execute("INSERT INTO hosts VALUES (1, 'O', ?, ?, 'O2.cif', 'tiny host', ?)",
                 (json.dumps(host.as_dict()), structure_fingerprint(host), T0))
    states = {hop_id: state for hop_id, (state, _) in HOPS.items()}
    for k, (hop_id, (state, ion_x)) in enumerate(HOPS.items()):
        initial, final, fingerprint = _hop_row(hop_id, ion_x)
        conn.execute(
            "INSERT INTO hops VALUES (?, 1, 'Li', ?, ?, ?, 3, ?, 'tiny-host', ?, ?, ?, ?)",
            (hop_id, initial, final, 5.0 * ion_x, fingerprint, json.dumps({"source": "O2.cif"}),
             state, T0 + k, T0 + 100 + k),
        )
    conn.execute("INSERT INTO model_versions VALUES (1, 'models/ensemble', ?, 'data-hash-1', 559, ?, 1)",
                 (json.dumps({"n_members": 5, "cv_metrics": {"mae_ev": 0.2}}), T0 + 10))
    for k, hop_id in enumerate(states):
        conn.execute("INSERT INTO predictions VALUES (?, 1, ?, ?, ?, ?)",
                     (hop_id, 0.3 + 0.1 * k, 0.1, 0.8 - 0.2 * k, T0 + 20))
    for k, hop_id in enumerate("bcd"):
        conn.execute("INSERT INTO proposals VALUES (?, 'batch-1', ?, 'explore', ?, ?, 0.1, 1, ?)",
                     (k + 1, hop_id, 0.5 - 0.1 * k, 0.4 + 0.1 * k, T0 + 30))
    conn.execute("INSERT INTO decisions VALUES (1, 'c', 2, 'approve', 'alice', 'cheap', ?)", (T0 + 40,))
    conn.execute("INSERT INTO decisions VALUES (2, 'd', 3, 'reject', 'bob', 'disordered layer', ?)", (T0 + 41,))
    for k, (kind, hop_id, message) in enumerate([
        ("hops_added", None, "4 hops added"), ("proposed", "b", "proposed by explore"),
        ("approved", "c", "approved by alice"), ("rejected", "d", "rejected by bob: disordered layer"),
    ]):
        conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, NULL, ?, '{}')", (k + 1, T0 + 50 + k, kind, hop_id, message))
    conn.execute("COMMIT")
    conn.close()


if __name__ == "__main__":
    build(HERE / "store_v1.sqlite")
    print(f"wrote {HERE / 'store_v1.sqlite'}")
