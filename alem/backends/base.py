"""What every NEB submission backend offers (local jobflow, FireWorks, jobflow-remote, replay).

A backend knows nothing about the state store: it submits one hop's NEB, reports the state of
external ids, and hands back the outcome of a finished one. The store (and ``alem reconcile``)
decide what to do with that.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence

from alem.errors import AlemError
from alem.hops.hop import Hop
from alem.neb.core_hours import JobCost
from alem.neb.schemas import NebOutcome


class BackendUnavailableError(AlemError, RuntimeError):
    """The backend did not answer (a queue command failed, its database is out of reach): nothing
    is known about any job, so nothing in the store changes; the next attempt asks again."""


class QueueState(str, enum.Enum):
    """Backend-side state of one submitted NEB."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    #: The backend has no record of the id any more (lost run, deleted workflow, killed worker).
    LOST = "lost"


class Backend(ABC):
    """Submit NEB calculations and observe them."""

    name: str

    @property
    def fidelity(self) -> str | None:
        """Fidelity of this backend's barriers (``mlip:CHGNet``, ``dft:GGA+U``, from its preset);
        None when it differs per result (the outcome's ``details["fidelity"]`` says then)."""
        preset = getattr(self, "preset", None)
        return preset.fidelity if preset is not None else None

    @abstractmethod
    def submit(self, hop: Hop, job_key: str) -> str:
        """Start the NEB of ``hop`` and return the backend's external id.

        ``job_key`` is alem's own id for the job; backends record it with the submission so
        that a submission whose id never reached the store can be found again (idempotence).
        """

    @abstractmethod
    def poll(self, external_ids: Sequence[str]) -> dict[str, QueueState]:
        """Current state of each external id (ids the backend does not know map to LOST)."""

    @abstractmethod
    def outcome(self, external_id: str) -> NebOutcome:
        """The parsed result of a COMPLETED (or FAILED) job."""

    def find_by_key(self, job_key: str) -> str | None:
        """External id of a submission made under ``job_key``, if the backend has one."""
        return None

    def job_cost(self, external_id: str) -> JobCost | None:
        """Allocation and wall time an ended job held (:mod:`alem.neb.core_hours`); None where
        the backend cannot tell."""
        return None

    def cancel(self, external_id: str) -> None:  # noqa: B027 (optional: a no-op where a backend cannot stop jobs)  # pragma: no cover
        """Stop a job if the backend can."""
