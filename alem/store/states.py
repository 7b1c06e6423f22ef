"""Hop and job states, and which hop transitions the store allows.

Hop life cycle::

    candidate --propose--> proposed --approve--> approved --submit--> submitted --result--> done
        |                     |  \\--reject--> rejected                  |  \\--unusable/--> failed
        \\------approve--------/  (candidate/proposed/approved may be    \\  retries exhausted
                                   rejected)                             \\--retry--> approved

A failed hop may be approved again (a person decides to retry it); a rejected hop may be
proposed or approved again only through :meth:`Store.reopen`.
"""

from __future__ import annotations

import enum

from alem.errors import AlemError
from alem.store.schema import LIVE_JOB_STATES


class HopState(str, enum.Enum):
    CANDIDATE = "candidate"
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"


class JobStatus(str, enum.Enum):
    """What the store records about a job row: alem's own view of a job, kept across restarts.

    Not the backend's :class:`~alem.backends.base.QueueState`, which is what a queue answers when
    polled now; :func:`alem.campaign.reconcile.reconcile` maps one onto the other. ``created`` (no
    external id yet) and ``abandoned`` exist only here, because only the store sees a submission
    that never reached the backend.
    """

    #: Row committed, backend.submit not (known to be) done yet: no external id.
    CREATED = "created"
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    LOST = "lost"
    #: Created but never reached the backend (crash before submit, found by nobody).
    ABANDONED = "abandoned"

    @property
    def live(self) -> bool:
        return self in LIVE_JOB_STATUSES


LIVE_JOB_STATUSES = frozenset(JobStatus(state) for state in LIVE_JOB_STATES)

#: action -> hop states it may start from, and the state it leads to.
HOP_TRANSITIONS: dict[str, tuple[frozenset[HopState], HopState]] = {
    "propose": (frozenset({HopState.CANDIDATE, HopState.PROPOSED}), HopState.PROPOSED),
    "approve": (frozenset({HopState.CANDIDATE, HopState.PROPOSED, HopState.FAILED}), HopState.APPROVED),
    "reject": (frozenset({HopState.CANDIDATE, HopState.PROPOSED, HopState.APPROVED}), HopState.REJECTED),
    "withdraw": (frozenset({HopState.PROPOSED}), HopState.CANDIDATE),
    "reopen": (frozenset({HopState.REJECTED}), HopState.CANDIDATE),
    "submit": (frozenset({HopState.APPROVED}), HopState.SUBMITTED),
    "retry": (frozenset({HopState.SUBMITTED}), HopState.APPROVED),
    "finish": (frozenset({HopState.SUBMITTED}), HopState.DONE),
    "fail": (frozenset({HopState.SUBMITTED, HopState.APPROVED}), HopState.FAILED),
}

_WHY_NOT = {
    HopState.REJECTED: "it was rejected (use reopen to consider it again)",
    HopState.SUBMITTED: "its NEB is already submitted",
    HopState.DONE: "its NEB is done and the result recorded",
    HopState.APPROVED: "it is already approved and waiting for submission",
}


class StoreError(AlemError, RuntimeError):
    """A request the store refuses; nothing was written."""


class StoreUnavailableError(StoreError):
    """No store at the path, or a file that is not a usable SQLite store."""


class UnknownHopError(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class IllegalTransition(StoreError):
    """A hop or job state change the life cycle does not allow."""


def check_transition(hop_id: str, state: HopState, action: str) -> HopState:
    """The state ``action`` leads to from ``state``; :class:`IllegalTransition` if not allowed."""
    allowed, target = HOP_TRANSITIONS[action]
    if state not in allowed:
        reason = _WHY_NOT.get(state, f"it is {state.value}")
        starts = ", ".join(sorted(s.value for s in allowed))
        raise IllegalTransition(
            f"cannot {action} hop {hop_id}: {reason} (state {state.value}; {action} needs {starts})"
        )
    return target
