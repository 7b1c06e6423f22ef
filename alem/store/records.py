"""Typed, read-only views of store rows (what the Store's query methods return).

Times are Unix seconds (UTC). ``as_dict()`` gives JSON-ready dicts for ``--json`` output.
Structures are not carried here; :meth:`Store.load_hops` rebuilds pymatgen-backed ``Hop`` objects.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from alem.store.states import HopState, JobStatus

#: field name -> (column, decoder) where the row's column differs from the field or needs decoding.
_COLUMNS: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "group": ("grp", None),
    "metadata": ("metadata_json", lambda v: json.loads(v) if v is not None else {}),
    "card": ("card_json", lambda v: json.loads(v) if v is not None else {}),
    "details": ("details_json", lambda v: json.loads(v) if v is not None else {}),
    "provenance": ("provenance_json", lambda v: json.loads(v) if v is not None else {}),
    "payload": ("payload_json", lambda v: json.loads(v) if v is not None else {}),
    "image_energies_ev": ("image_energies_json", lambda v: json.loads(v) if v is not None else []),
    "path_coordinate_a": ("path_coordinate_json", lambda v: json.loads(v) if v is not None else []),
}
_TYPES: dict[str, Callable[[Any], Any]] = {"HopState": HopState, "JobStatus": JobStatus, "bool": bool}

#: Each record class's (field, column, decoder, type conversion), worked out once: a read of 10^5
#: hop records spends its time here.
_PLANS: dict[type, list[tuple[str, str, Callable[[Any], Any] | None, Callable[[Any], Any] | None]]] = {}


def _plan(cls: type) -> list[tuple[str, str, Callable[[Any], Any] | None, Callable[[Any], Any] | None]]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = [
            (f.name, *_COLUMNS.get(f.name, (f.name, None)), _TYPES.get(str(f.type)))  # type: ignore[misc]
            for f in dataclasses.fields(cls)
        ]
    return plan


class _Record:
    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Self:
        """Build from a row whose columns are named like the fields (see ``_COLUMNS`` for the rest)."""
        values = {}
        for name, column, decode, convert in _plan(cls):
            value = row[column] if decode is None else decode(row[column])
            values[name] = convert(value) if convert is not None and value is not None else value
        return cls(**values)

    @classmethod
    def columns(cls) -> str:
        """The columns :meth:`from_row` reads, for a query that need fetch no others."""
        return ", ".join(_COLUMNS.get(field.name, (field.name,))[0] for field in dataclasses.fields(cls))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {
            key: value.value if isinstance(value, enum.Enum) else value
            for key, value in dataclasses.asdict(self).items()  # type: ignore[call-overload]
        }


@dataclass(frozen=True)
class HostRecord(_Record):
    id: int
    formula: str
    fingerprint: str
    source_file: str | None
    name: str | None
    created_at: float


@dataclass(frozen=True)
class HopRecord(_Record):
    hop_id: str
    host_id: int | None
    working_ion: str
    hop_length_a: float
    n_sites: int
    fingerprint: str
    group: str | None
    metadata: dict[str, Any]
    state: HopState
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ModelVersion(_Record):
    id: int
    path: str
    card: dict[str, Any]
    dataset_hash: str | None
    n_training_hops: int | None
    created_at: float
    is_current: bool


@dataclass(frozen=True)
class Prediction(_Record):
    hop_id: str
    model_version_id: int
    mean_ev: float
    std_ev: float
    prob_good: float | None
    created_at: float


@dataclass(frozen=True)
class ProposalInput:
    """One hop of a batch, as the acquisition step hands it to :meth:`Store.add_proposals`."""

    hop_id: str
    score: float
    mean_ev: float | None = None
    std_ev: float | None = None


@dataclass(frozen=True)
class Proposal(_Record):
    id: int
    batch_id: str
    hop_id: str
    strategy: str
    score: float
    mean_ev: float | None
    std_ev: float | None
    model_version_id: int | None
    created_at: float


@dataclass(frozen=True)
class Decision(_Record):
    id: int
    hop_id: str
    proposal_id: int | None
    decision: str
    who: str
    reason: str | None
    created_at: float


@dataclass(frozen=True)
class JobRecord(_Record):
    id: int
    job_key: str
    hop_id: str
    backend: str
    external_id: str | None
    state: JobStatus
    attempt: int
    created_at: float
    submitted_at: float | None
    updated_at: float
    error: str | None
    #: "target" (the approved track that moves the hop) or "screening" (cheap, never moves it)
    stage: str = "target"
    fidelity: str | None = None
    #: what the job spent, recorded when it ended (None: not yet, or the backend cannot tell)
    core_hours: float | None = None


@dataclass(frozen=True)
class ResultRecord(_Record):
    id: int
    job_id: int
    hop_id: str
    usable: bool
    barrier_ev: float | None
    reverse_barrier_ev: float | None
    image_energies_ev: list[float]
    path_coordinate_a: list[float]
    converged: bool
    method: str
    failure_reason: str | None
    details: dict[str, Any]
    created_at: float
    #: level of theory of the barrier, e.g. "dft:GGA+U" or "mlip:CHGNet" (alem.hops.fidelity)
    fidelity: str | None = None
    #: what produced it: preset, settings hash, INCAR or MLIP, code versions (alem.neb.provenance)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class CampaignRound(_Record):
    """The campaign's remaining promise when a batch was proposed (what the stop rule reads)."""

    id: int
    model_version_id: int | None
    batch_id: str | None
    n_pool: int
    threshold_ev: float
    expected_good: float
    best_acquisition: float | None
    created_at: float


@dataclass(frozen=True)
class Event(_Record):
    id: int
    time: float
    kind: str
    hop_id: str | None
    job_id: int | None
    message: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class LoopStatus(_Record):
    pid: int | None
    hostname: str | None
    phase: str
    message: str
    started_at: float | None
    heartbeat: float

