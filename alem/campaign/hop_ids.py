"""Hop ids as a person types them: a unique prefix stands for the whole id.

An id that exists exactly is always taken as itself (``LiCoO2-p1`` is not ambiguous with
``LiCoO2-p12``). A prefix shared by several hops is refused, naming them, so a decision never
lands on a hop the person did not mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from alem.store import HopState, StoreError

if TYPE_CHECKING:
    from alem.store import Store

#: Most matching ids an ambiguity message lists.
SHOWN_MATCHES = 6


class HopIdError(StoreError):
    """A typed hop id that names no hop, or more than one."""


def resolve_hop_ids(
    typed: Sequence[str], known: Iterable[str], actionable: Iterable[str] | None = None, what: str = "hop"
) -> list[str]:
    """The full id of each of ``typed`` among ``known`` ids (exact match, else unique prefix).

    ``actionable``: the ids the caller can act on (e.g. hops waiting for a decision); a prefix is
    matched among them first, so a finished hop sharing the prefix does not make it ambiguous.
    Raises :class:`HopIdError` naming every id that matches nothing or several hops.
    """
    known = sorted(set(known))
    exact = set(known)
    first = sorted(set(actionable)) if actionable is not None else known
    resolved, problems = [], []
    for text in typed:
        if text in exact:
            resolved.append(text)
            continue
        matches = [hop_id for hop_id in first if hop_id.startswith(text)] or [
            hop_id for hop_id in known if hop_id.startswith(text)
        ]
        if len(matches) == 1:
            resolved.append(matches[0])
        elif not matches:
            problems.append(f"no {what} {text!r} (and no {what} id starts with it)")
        else:
            listed = ", ".join(matches[:SHOWN_MATCHES]) + (", ..." if len(matches) > SHOWN_MATCHES else "")
            problems.append(f"{text!r} is ambiguous: {len(matches)} {what}s start with it ({listed}); type more of the id")
    if problems:
        raise HopIdError("; ".join(problems))
    return list(dict.fromkeys(resolved))


#: Hops a prefix is matched against first, per action: those the action is meant for.
_ASKED = {
    "approve": (HopState.PROPOSED,),
    "reject": (HopState.PROPOSED, HopState.APPROVED),
    "cancel": (HopState.SUBMITTED,),
}


def decision_targets(store: Store, typed: Sequence[str], action: str) -> list[str]:
    """Full ids for ``alem approve``/``reject``/``cancel``: prefixes match the hops the action is
    meant for first (waiting proposals; for reject also approved hops; for cancel submitted ones),
    then any hop, so a wrong state gets the store's own message."""
    asked = [record.hop_id for record in store.hops(state=_ASKED[action])]
    return resolve_hop_ids(typed, (record.hop_id for record in store.hops()), asked)
