"""The replay backend: NEB "jobs" answered from a labelled dataset instead of a calculation.

A submitted hop is matched to an entry of an Em-dataset-layout file, by ``hop_id`` first and by
structure fingerprint otherwise; after ``delay_s`` seconds the job completes with that entry's
barrier. It exercises everything around a real backend (submission, polling, lost and failed
jobs, restarts, retraining on new results) in seconds, and replays a published dataset as a
simulated campaign to benchmark acquisition strategies.

With ``barrier="mace"`` the answers are the shipped MACE-MP NEB barriers of the matched hops
(``alem.hops.io.load_shipped_cheap_barriers``), fidelity ``mlip:MACE-MP``: a cheap screening
oracle for replayed two-stage campaigns.

Submissions persist in a small SQLite file in the campaign's state directory, so they survive
restarts like a real queue would; each job's run time (``delay_s``) is fixed when it is
submitted. Deleting that file makes every earlier job LOST.

Outcomes:

* hop matched, row with ``image_energies_ev`` (an alem export) -> COMPLETED, the profile judged as a
  fresh NEB's (:func:`alem.neb.barrier.outcome_from_path`: an intermediate minimum or no interior
  maximum makes it unusable, with the reason);
* hop matched, finite barrier            -> COMPLETED, usable outcome (``method`` "replay:<XC>",
  ``details["fidelity"]`` the row's fidelity, ``dft:<XC>`` for literature rows);
* hop matched, no barrier in the dataset -> COMPLETED, outcome with a failure reason;
* hop not in the dataset                 -> FAILED, outcome with a failure reason;
* cancelled                              -> FAILED.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from alem.backends.base import Backend, QueueState
from alem.errors import AlemError
from alem.hops.hop import Hop
from alem.neb.barrier import outcome_from_path
from alem.neb.provenance import NebProvenance, installed_version
from alem.neb.schemas import NebOutcome

if TYPE_CHECKING:
    from alem.config import CampaignConfig

STATE_FILENAME = "replay_backend.sqlite"

_SCHEMA = """CREATE TABLE IF NOT EXISTS submissions (
    external_id TEXT PRIMARY KEY,
    job_key TEXT NOT NULL,
    hop_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
)"""


class ReplayError(AlemError, ValueError):
    """The replay backend cannot be set up (no dataset, unreadable dataset)."""


class ReplayBackend(Backend):
    """Answer NEB submissions with barriers from an Em-dataset-layout file."""

    name = "replay"

    def __init__(
        self,
        dataset: str | Path,
        state_file: str | Path,
        delay_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        barrier: str = "dataset",
    ):
        if barrier not in ("dataset", "mace"):
            raise ReplayError(f"replay barrier {barrier!r}: use 'dataset' or 'mace'")
        self.barrier = barrier
        self._cheap: dict | None = None
        self.dataset = Path(dataset)
        if not self.dataset.is_file():
            raise ReplayError(f"{self.dataset}: replay dataset not found")
        self.state_file = Path(state_file)
        self.delay_s = float(delay_s)
        self._clock = clock
        self._by_id: dict[str, Hop] | None = None
        self._by_fingerprint: dict[str, Hop] = {}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn, conn:
            conn.execute(_SCHEMA)

    @classmethod
    def from_config(cls, config: CampaignConfig) -> ReplayBackend:
        """The replay backend of a campaign (``[backend.replay]`` in alem.toml)."""
        section = config.backend.replay
        if not section.dataset:
            raise ReplayError(f"{config.config_path}: [backend.replay] dataset is empty; name an Em-dataset-layout file")
        return cls(
            config.resolve(section.dataset), config.state_dir / STATE_FILENAME, section.delay_s, barrier=section.barrier
        )

    @property
    def fidelity(self) -> str | None:
        """``mlip:MACE-MP`` when answering with the shipped MACE barriers; else per dataset row."""
        from alem.hops.fidelity import SHIPPED_CHEAP_FIDELITY

        return SHIPPED_CHEAP_FIDELITY if self.barrier == "mace" else None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.state_file, timeout=30.0)
        conn.row_factory = sqlite3.Row
        return conn

    def _index(self) -> dict[str, Hop]:
        if self._by_id is None:
            from alem.hops.fingerprint import hop_fingerprint
            from alem.hops.io import read_hops
            from alem.hops.validate import HopError

            try:
                # "warn": an entry that breaks a sanity check still carries a published barrier.
                hops = read_hops([self.dataset], on_invalid="warn")
            except HopError as exc:
                raise ReplayError(f"replay dataset unusable: {exc}") from exc
            self._by_id = {hop.hop_id: hop for hop in hops}
            self._by_fingerprint = {hop_fingerprint(hop): hop for hop in hops}
        return self._by_id

    def _match(self, hop_id: str, fingerprint: str) -> tuple[Hop | None, str]:
        by_id = self._index()
        if hop_id in by_id:
            return by_id[hop_id], "hop_id"
        if fingerprint in self._by_fingerprint:
            return self._by_fingerprint[fingerprint], "structure"
        return None, ""

    # ------------------------------------------------------------- Backend API
    def submit(self, hop: Hop, job_key: str) -> str:
        from alem.hops.fingerprint import hop_fingerprint

        external_id = f"replay-{uuid.uuid4().hex[:12]}"
        now = self._clock()
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO submissions (external_id, job_key, hop_id, fingerprint, submitted_at, ready_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (external_id, job_key, hop.hop_id, hop_fingerprint(hop), now, now + self.delay_s),
            )
        return external_id

    def _submission(self, external_id: str) -> sqlite3.Row | None:
        with closing(self._connect()) as conn:
            return conn.execute("SELECT * FROM submissions WHERE external_id = ?", (external_id,)).fetchone()

    def poll(self, external_ids: Sequence[str]) -> dict[str, QueueState]:
        states = {}
        for external_id in external_ids:
            row = self._submission(external_id)
            if row is None:
                states[external_id] = QueueState.LOST
            elif row["cancelled"]:
                states[external_id] = QueueState.FAILED
            elif self._clock() < row["ready_at"]:
                states[external_id] = QueueState.RUNNING
            else:
                match, _ = self._match(row["hop_id"], row["fingerprint"])
                states[external_id] = QueueState.COMPLETED if match is not None else QueueState.FAILED
        return states

    def outcome(self, external_id: str) -> NebOutcome:
        outcome = self._replayed(external_id)
        # no calculation ran: the label's inputs are the dataset row's, whatever produced it
        outcome.provenance = NebProvenance(
            engine="replay", fidelity=outcome.details.get("fidelity"),
            code_versions={"alem": installed_version("alem")}, code_versions_where="submitting alem",
            note=f"replayed from {self.dataset} (row {outcome.details.get('dataset_hop_id', '?')}); no NEB was run",
        ).model_dump(mode="json")
        return outcome

    def _replayed(self, external_id: str) -> NebOutcome:
        row = self._submission(external_id)
        if row is None:
            return NebOutcome(failure_reason=f"replay job {external_id} is unknown (state file {self.state_file})")
        if row["cancelled"]:
            return NebOutcome(failure_reason=f"replay job {external_id} was cancelled")
        match, matched_by = self._match(row["hop_id"], row["fingerprint"])
        if match is None:
            return NebOutcome(
                failure_reason=f"hop {row['hop_id']} is not in the replay dataset {self.dataset} "
                "(matched neither by hop id nor by structure)"
            )
        details = {"dataset": str(self.dataset), "matched_by": matched_by, "dataset_hop_id": match.hop_id}
        if match.provenance.xc:
            details["xc"] = match.provenance.xc
        if match.provenance.citation:
            details["citation"] = match.provenance.citation
        if self.barrier == "mace":
            return self._mace_outcome(match, details)
        details["fidelity"] = match.provenance.fidelity
        method = f"replay:{match.provenance.xc or 'unknown'}"
        if match.metadata.get("image_energies_ev"):
            # a row with its NEB profile is judged like a fresh NEB (intermediate minimum, no interior maximum)
            return outcome_from_path(match.metadata["image_energies_ev"], method=method, details=details)
        if match.barrier_ev is None:
            return NebOutcome(
                method=method,
                details=details,
                failure_reason=f"the replay dataset has no barrier for hop {match.hop_id}",
            )
        return NebOutcome(barrier_ev=match.barrier_ev, converged=True, method=method, details=details)

    def _mace_outcome(self, match: Hop, details: dict) -> NebOutcome:
        from alem.hops.io import load_shipped_cheap_barriers

        if self._cheap is None:
            self._cheap = load_shipped_cheap_barriers()
        cheap = self._cheap.get(match.hop_id)
        method = "replay:mlip:MACE-MP NEB"
        if cheap is None:
            return NebOutcome(
                method=method, details=details, failure_reason=f"no shipped MACE-MP barrier for hop {match.hop_id}"
            )
        details["fidelity"] = cheap.fidelity
        return NebOutcome(barrier_ev=cheap.barrier_ev, converged=True, method=method, details=details)

    def find_by_key(self, job_key: str) -> str | None:
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT external_id FROM submissions WHERE job_key = ? ORDER BY submitted_at DESC LIMIT 1", (job_key,)
            ).fetchone()
        return row["external_id"] if row else None

    def cancel(self, external_id: str) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute("UPDATE submissions SET cancelled = 1 WHERE external_id = ?", (external_id,))

    def submissions(self) -> list[dict]:
        """Every submission this backend received (to check that nothing was submitted twice)."""
        with closing(self._connect()) as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM submissions ORDER BY submitted_at")]
