"""Hosts and candidate hops: storing them (de-duplicated) and reading them back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from alem.hops.fingerprint import hop_fingerprint, structure_fingerprint
from alem.store.core import StoreCore, _dumps, _values
from alem.store.records import HopRecord, HostRecord
from alem.store.schema import SIGNATURE_SQL
from alem.store.states import HopState, StoreError
from alem.store.structure_json import (
    content_key_of_columns,
    endpoint_columns,
    endpoints_from_columns,
    packed_structure_json,
    structure_from_json,
)

#: The columns of a hop row a :class:`~alem.hops.hop.Hop` is rebuilt from (:func:`hop_from_row`).
HOP_COLUMNS = ("hop_id", "initial_json", "final_json", "working_ion", "grp", "metadata_json", "content_key")


def hop_from_row(row: Mapping[str, Any]) -> LazyHop:
    """The hop of a stored row (or of :meth:`HopTables.hop_rows_as_stored`'s dict), no barrier:
    its pymatgen structures built when first read (:class:`~alem.hops.lazy_hop.LazyHop`) and its
    content key the row's, so a hop whose features are cached is predicted without its
    structures (a row without one: the key is computed from the structures when asked for)."""
    from alem.hops.lazy_hop import LazyHop

    key = row["content_key"] if "content_key" in row.keys() else None  # a row staged by an older alem has none
    return LazyHop.deferred(row["hop_id"], row["working_ion"], partial(endpoints_from_columns, row["initial_json"], row["final_json"]),
                            key, group=row["grp"], metadata=json.loads(row["metadata_json"]))


if TYPE_CHECKING:
    from pymatgen.core import Structure

    from alem.hops.hop import Hop
    from alem.hops.lazy_hop import LazyHop


class HopTables(StoreCore):
    # ------------------------------------------------------------ hosts & hops
    def add_host(self, structure: Structure, source_file: str | None = None, name: str | None = None) -> int:
        """Store a host structure; the same structure again returns the existing id."""
        fingerprint = structure_fingerprint(structure)
        with self.transaction():
            row = self._conn.execute("SELECT id FROM hosts WHERE fingerprint = ?", (fingerprint,)).fetchone()
            if row:
                return int(row["id"])
            formula = structure.composition.reduced_formula
            cursor = self._conn.execute(
                "INSERT INTO hosts (formula, structure_json, fingerprint, source_file, name, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (formula, packed_structure_json(structure), fingerprint, source_file, name, self.now()),
            )
            host_id = int(cursor.lastrowid)
            self._event("host_added", f"host {host_id} {formula} added", payload={"source_file": source_file})
            return host_id

    def host(self, host_id: int) -> HostRecord:
        row = self._conn.execute("SELECT * FROM hosts WHERE id = ?", (host_id,)).fetchone()
        if row is None:
            raise StoreError(f"no host {host_id} in {self.path}")
        return HostRecord.from_row(row)

    def hosts(self) -> list[HostRecord]:
        return [HostRecord.from_row(r) for r in self._query("SELECT * FROM hosts ORDER BY id")]

    def host_structure(self, host_id: int) -> Structure:
        """The host's structure as stored (every working-ion site occupied)."""
        row = self._conn.execute("SELECT structure_json FROM hosts WHERE id = ?", (host_id,)).fetchone()
        if row is None:
            raise StoreError(f"no host {host_id} in {self.path}")
        return structure_from_json(row["structure_json"])

    def keep_host_network(self, host_id: int, working_ion: str, covers_a: float, record_json: str) -> None:
        """Keep the host's migration network (``alem.candidates.network_record``: JSON the store does
        not read) unless the one kept covers longer hops: a host added again with a shorter cutoff
        keeps the wider network its stored hops need."""
        with self.transaction():
            row = self._conn.execute(
                "SELECT covers_a FROM host_networks WHERE host_id = ? AND working_ion = ?", (host_id, working_ion)
            ).fetchone()
            if row is not None and row["covers_a"] > covers_a:
                return
            self._conn.execute(
                "INSERT OR REPLACE INTO host_networks (host_id, working_ion, covers_a, record_json, created_at) VALUES (?, ?, ?, ?, ?)",
                (host_id, working_ion, covers_a, record_json, self.now()),
            )

    def host_networks(self, host_ids: Sequence[int] | None = None) -> dict[tuple[int, str], str]:
        """Every kept host network's JSON (or those of ``host_ids``), by (host id, working ion)."""
        where, params = ("", ()) if host_ids is None else (
            f" WHERE host_id IN ({','.join('?' * len(host_ids))})", tuple(int(h) for h in host_ids))
        return {(int(r["host_id"]), r["working_ion"]): r["record_json"]
                for r in self._query(f"SELECT host_id, working_ion, record_json FROM host_networks{where}", params)}

    def add_hops(self, hops: Sequence[Hop], host_id: int | None = None, source: str | None = None) -> list[str]:
        """Store candidate hops; returns the stored hop id of each, in order.

        A hop whose structure is already stored (same fingerprint) maps to the existing id and is
        not added again. A new hop whose ``hop_id`` is taken by a different hop is an error, and
        then nothing is added.
        """
        ids: list[str] = []
        added = 0
        with self.transaction():
            for hop in hops:
                fingerprint = hop_fingerprint(hop)
                row = self._conn.execute("SELECT hop_id FROM hops WHERE fingerprint = ?", (fingerprint,)).fetchone()
                if row:
                    ids.append(row["hop_id"])
                    continue
                if self._conn.execute("SELECT 1 FROM hops WHERE hop_id = ?", (hop.hop_id,)).fetchone():
                    raise StoreError(
                        f"hop id {hop.hop_id!r}{f' from {source}' if source else ''} is already used by a "
                        "different hop in the store; give the new hop another id"
                    )
                now = self.now()
                initial_json, final_json, key = endpoint_columns(hop.initial, hop.final, hop.working_ion)
                self._conn.execute(
                    "INSERT INTO hops (hop_id, host_id, working_ion, initial_json, final_json, content_key, hop_length_a, "
                    "n_sites, fingerprint, grp, metadata_json, state, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'candidate', ?, ?)",
                    (
                        hop.hop_id,
                        host_id,
                        hop.working_ion,
                        initial_json,
                        final_json,
                        key,
                        hop.hop_length_a,
                        hop.n_sites,
                        fingerprint,
                        hop.group,
                        _dumps(hop.metadata),
                        now,
                        now,
                    ),
                )
                ids.append(hop.hop_id)
                added += 1
            if hops:
                self._event(
                    "hops_added",
                    f"{added} candidate hops added, {len(hops) - added} already stored"
                    + (f" (from {source})" if source else ""),
                    payload={"host_id": host_id, "source": source, "added": added, "duplicates": len(hops) - added},
                )
        return ids

    def hop(self, hop_id: str) -> HopRecord:
        """The hop's record; :class:`UnknownHopError` if the store has no such hop."""
        return HopRecord.from_row(self._hop_row(hop_id))

    def hops(
        self,
        state: HopState | str | Sequence[HopState | str] | None = None,
        host_id: int | None = None,
        limit: int | None = None,
    ) -> list[HopRecord]:
        """Hop records, oldest first, optionally of some states / one host."""
        states = _values(state, HopState)
        # not the two structures of each hop: a record carries none, and they are most of a row
        rows = self._select("hops", {"state": states, "host_id": host_id}, "created_at, rowid", limit, HopRecord.columns())
        return [HopRecord.from_row(r) for r in rows]

    def host_hop_ids(self) -> list[str]:
        """The ids of every hop that belongs to a host, oldest first (one query; no record built)."""
        # the covering index of hop records: the rows themselves start with two structures
        return [r["hop_id"] for r in self._query(
            "SELECT hop_id FROM hops INDEXED BY hops_records WHERE host_id IS NOT NULL ORDER BY created_at, rowid")]

    def hop_with_signature(self, signature: str, other_than_host: int | None = None) -> HopRecord | None:
        """The newest stored hop with this supercell-independent signature (metadata ``signature``)
        that is not a hop of host ``other_than_host``; None: no such hop. One indexed lookup."""
        row = self._conn.execute(
            f"SELECT {HopRecord.columns()} FROM hops WHERE {SIGNATURE_SQL} = ? AND host_id IS NOT ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (signature, other_than_host),
        ).fetchone()
        return None if row is None else HopRecord.from_row(row)

    def load_hops(self, hop_ids: Sequence[str]) -> list[LazyHop]:
        """The hops, in order (:func:`hop_from_row`: no barrier; pymatgen structures built on first use)."""
        return [hop_from_row(self._hop_row(hop_id)) for hop_id in hop_ids]

    def keep_content_keys(self, hop_ids: Sequence[str] | None = None) -> int:
        """Write the content key of every hop (of ``hop_ids``) whose row has none (stored before
        schema 12, or its structures changed since), computed from its columns; returns how many.
        Scoring calls it first, so it and every later rescoring read the keys."""
        missing = [r["hop_id"] for r in self._query("SELECT hop_id FROM hops WHERE content_key IS NULL")]  # a partial index
        if hop_ids is not None:
            wanted = set(hop_ids)
            missing = [h for h in missing if h in wanted]
        if missing:
            rows = [self._hop_row(h) for h in missing]
            keys = [(content_key_of_columns(r["working_ion"], r["initial_json"], r["final_json"]), r["hop_id"], r["working_ion"],
                     r["initial_json"], r["final_json"]) for r in rows]
            with self.transaction():  # each key only onto the very content it was computed from (another process may rewrite a row)
                self._conn.executemany("UPDATE hops SET content_key = ? WHERE hop_id = ? AND working_ion = ? AND initial_json = ? "
                                       "AND final_json = ?", keys)
        return len(missing)

    def hop_rows_as_stored(self, hop_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The columns :func:`hop_from_row` reads, as stored (no structure built): what a scoring
        job is staged with, so the login node spends no time on pymatgen."""
        return [{column: row[column] for column in HOP_COLUMNS} for row in map(self._hop_row, hop_ids)]

    def hop_marks(self, model_version_id: int | None) -> list[tuple[str, int | None, str]]:
        """Per hop, without decoding a structure: its id, host, and what a host answer reads of it
        that can change (state and update time, newest result, the prediction time of
        ``model_version_id``) as one string."""
        rows = self._conn.execute(
            "SELECT h.hop_id, h.host_id, h.state || '|' || h.updated_at || '|' || IFNULL(r.last_id, '') || '|' "
            "|| IFNULL(p.created_at, '') FROM hops h "
            "LEFT JOIN (SELECT hop_id, MAX(id) AS last_id FROM results GROUP BY hop_id) r ON r.hop_id = h.hop_id "
            "LEFT JOIN predictions p ON p.hop_id = h.hop_id AND p.model_version_id = ?",
            (model_version_id,),
        ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def hop_signatures(self, hop_ids: Sequence[str]) -> dict[str, str]:
        """The supercell-independent signature (``alem.candidates.signature``) of each of these
        hops that has one, read without decoding a structure."""
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(hop_ids))
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start:start + 500]
            rows = self._conn.execute(
                f"SELECT hop_id, json_extract(metadata_json, '$.signature') FROM hops WHERE hop_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update({row[0]: row[1] for row in rows if row[1] is not None})
        return found

    def host_marks(self) -> dict[int, str]:
        """Per host: what a host answer reads of it that can change (formula, name, the kept
        networks' times) as one string."""
        rows = self._conn.execute(
            "SELECT h.id, h.formula || '|' || IFNULL(h.name, '') || '|' || "
            "IFNULL(GROUP_CONCAT(n.working_ion || ':' || n.created_at), '') FROM hosts h "
            "LEFT JOIN host_networks n ON n.host_id = h.id GROUP BY h.id"
        ).fetchall()
        return {int(row[0]): row[1] for row in rows}

    def hop_counts(self) -> dict[str, int]:
        """Number of hops in every state (all states present, zeros included)."""
        counts = {state.value: 0 for state in HopState}
        for row in self._query("SELECT state, COUNT(*) AS n FROM hops GROUP BY state"):
            counts[row["state"]] = int(row["n"])
        return counts
