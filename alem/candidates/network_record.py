"""A host's migration network as kept in the store, with what enumeration learnt about its paths.

``candidates add`` builds each host's network (:func:`alem.candidates.network.host_network`) to
warn about a host that cannot percolate, and signs every hop it enumerates to drop hops already
known. Both are what the host answers (``alem hosts``, the report, the ``materials`` strategy)
need, and both cost more than the answer itself: the network (pymatgen's path finder and migration
graph) about 0.25 s a host, re-signing a host's paths a fresh enumeration, and matching them to the
shipped training set a read of the whole dataset. So ``candidates add`` keeps them in the store, in
this compact JSON form, and the answers read them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from alem.candidates.network import HostNetwork, NetworkEdge

#: A stored hop is on a kept network when it is no longer than the network's cutoff plus this (Å).
COVER_TOLERANCE_A = 1e-3


@dataclass(frozen=True)
class NetworkRecord:
    """One host's network (or why pymatgen could not build it) and its paths' signatures."""

    working_ion: str
    #: every hop of the host up to this length (Å) is on the network (:func:`reach_a`), or, when
    #: the network could not be built, the longest hop it was tried for
    covers_a: float
    network: HostNetwork | None
    error: str = ""
    #: supercell-independent signature of each distinct path, by path number (those enumeration signed)
    signatures: Mapping[int, str] = field(default_factory=dict)
    #: path number -> (hop id, DFT barrier eV) of a training-set hop identical to the path
    dataset_matches: Mapping[int, tuple[str, float]] = field(default_factory=dict)
    #: whether ``signatures`` and ``dataset_matches`` cover every path of the network (a path
    #: enumeration skipped for its cell size has no signature until one is computed for it)
    paths_signed: bool = False
    volume_a3: float | None = None

    def covers(self, length_a: float) -> bool:
        """Whether a hop of this length lies within the network (or was tried for it)."""
        return length_a <= self.covers_a + COVER_TOLERANCE_A

    def with_signatures(self, signatures: Mapping[int, str], dataset_matches: Mapping[int, tuple[str, float]]) -> NetworkRecord:
        return replace(self, signatures=dict(signatures), dataset_matches=dict(dataset_matches), paths_signed=True)

    def to_json(self) -> str:
        network = self.network
        data: dict = {
            "ion": self.working_ion, "covers_a": self.covers_a, "error": self.error, "volume_a3": self.volume_a3,
            "signatures": {str(n): s for n, s in self.signatures.items()},
            "dataset_matches": {str(n): list(m) for n, m in self.dataset_matches.items()},
            "paths_signed": self.paths_signed,
        }
        if network is not None:
            data["network"] = {
                "cutoff_a": network.cutoff_a,
                "site_classes": list(network.site_classes),
                "path_classes": {str(n): list(c) for n, c in network.path_classes.items()},
                "path_lengths_a": {str(n): length for n, length in network.path_lengths_a.items()},
                # one row per edge: start, end, image (3), path number, length
                "edges": [[e.start, e.end, *e.image, e.path_number, e.length_a] for e in network.edges],
            }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NetworkRecord:
        data = json.loads(text)
        network = None
        if "network" in data:
            n = data["network"]
            network = HostNetwork(
                working_ion=data["ion"],
                cutoff_a=n["cutoff_a"],
                site_classes=tuple(n["site_classes"]),
                path_classes={int(k): (c[0], c[1]) for k, c in n["path_classes"].items()},
                path_lengths_a={int(k): v for k, v in n["path_lengths_a"].items()},
                edges=tuple(NetworkEdge(e[0], e[1], (e[2], e[3], e[4]), e[5], e[6]) for e in n["edges"]),
            )
        return cls(
            working_ion=data["ion"], covers_a=data["covers_a"], network=network, error=data["error"],
            signatures={int(k): s for k, s in data["signatures"].items()},
            dataset_matches={int(k): (m[0], m[1]) for k, m in data["dataset_matches"].items()},
            paths_signed=data["paths_signed"], volume_a3=data["volume_a3"],
        )


def reach_a(network: HostNetwork) -> float:
    """The longest hop on ``network`` (Å): its cutoff, or a path pymatgen's finder kept a little beyond it."""
    return max(network.cutoff_a, *network.path_lengths_a.values())


def path_number(path_info: object) -> int | None:
    """The distinct path an enumerated hop copies, from its ``path_info`` ("PATH N")."""
    text = str(path_info or "")
    return int(text[5:]) if text.startswith("PATH ") and text[5:].isdigit() else None


def signed_paths(signatures: Mapping[int, str], network: HostNetwork | None) -> bool:
    """Whether every path of ``network`` has a signature."""
    return network is not None and all(n in signatures for n in network.path_lengths_a)


def records_of(kept: Mapping[tuple[int, str], str]) -> dict[tuple[int, str], NetworkRecord]:
    """Decoded :meth:`Store.host_networks` rows (an unreadable one is left out: it is rebuilt)."""
    out = {}
    for key, text in kept.items():
        try:
            out[key] = NetworkRecord.from_json(text)
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return out
