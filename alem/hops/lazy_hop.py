"""A hop read back from where it is kept, its endpoint structures built on first use.

Building a hop's two pymatgen structures costs more than a rescoring's whole model side per hop
(1.4 ms of 3.2 for a 10^4-hop pool): sites are Python objects. A rescoring after a retraining reads
every hop's features from the feature cache by the hop's content key alone, so a hop whose key
was kept with it (the store's ``content_key`` column) never needs its structures there. A
:class:`LazyHop` is a :class:`~alem.hops.hop.Hop` in every respect: ``initial`` and ``final`` are
built (both at once) the first time either is read, and its known content key is dropped as soon
as its content changes (``initial``, ``final`` or ``working_ion`` set), so a key it carries is
always the key of what it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alem.hops.hop import Hop, Provenance

if TYPE_CHECKING:
    from pymatgen.core import Structure

#: The attributes a hop's content key (:func:`alem.hops.content_key.hop_content_key`) is made of.
CONTENT_FIELDS = ("initial", "final", "working_ion")


class LazyHop(Hop):
    """A :class:`~alem.hops.hop.Hop` whose endpoints ``endpoints()`` builds on first use; made by
    :meth:`deferred`. Copies (``dataclasses.replace``, pickling) are ordinary hops or keep both
    the deferred endpoints and the key."""

    @classmethod
    def deferred(
        cls,
        hop_id: str,
        working_ion: str,
        endpoints: Callable[[], tuple[Structure, Structure]],
        content_key: str | None,
        group: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> LazyHop:
        """The hop without its structures: ``endpoints`` (picklable, e.g. a ``functools.partial``
        of a module function) gives ``(initial, final)``; ``content_key``: the content key of
        those structures and ``working_ion`` (:func:`alem.hops.content_key.content_key`), None if unknown."""
        hop = cls.__new__(cls)
        hop.__dict__.update(hop_id=hop_id, working_ion=working_ion, barrier_ev=None, provenance=Provenance(), group=group,
                            metadata=metadata if metadata is not None else {}, _endpoints=endpoints, _content_key=content_key)
        return hop

    @property
    def content_key(self) -> str | None:
        """The content key it was read with, while its content is unchanged (None otherwise)."""
        return self.__dict__.get("_content_key")

    def __getattr__(self, name: str) -> Any:
        # called only for attributes not set: the endpoints before their first use
        endpoints = self.__dict__.get("_endpoints")
        if name not in ("initial", "final") or endpoints is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        initial, final = endpoints()
        self.__dict__.pop("_endpoints", None)
        # one set before the other was ever read keeps its new value (and has dropped the key)
        self.__dict__.setdefault("initial", initial)
        self.__dict__.setdefault("final", final)
        return self.__dict__[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in CONTENT_FIELDS:
            self.__dict__.pop("_content_key", None)
        super().__setattr__(name, value)
