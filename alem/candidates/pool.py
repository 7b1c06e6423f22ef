"""Adding hosts' candidate hops to a campaign store, without hops the campaign already knows.

A hop is "known" when its supercell-independent signature (``alem.candidates.signature``) matches
a hop of the training dataset or a hop already in the store. Every host is read and enumerated
before anything is written, and all hosts are then stored in one transaction: a bad file leaves
the store untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pymatgen.core import Structure

from alem.candidates.enumerate import EnumerationSettings, enumerate_hops
from alem.candidates.hosts import read_host
from alem.candidates.signature import hop_signature
from alem.hops.hop import Hop

SIGNATURE_KEY = "signature"


@dataclass
class HostCandidates:
    """What enumeration found for one host file."""

    path: Path
    label: str
    structure: Structure
    hops: list[Hop]
    known: list[str] = field(default_factory=list)  # hop ids dropped: already in dataset or store
    skipped: list[str] = field(default_factory=list)  # paths that gave no valid hop, with why


@dataclass
class AddReport:
    hosts: list[HostCandidates]
    added: list[str]

    @property
    def n_known(self) -> int:
        return sum(len(h.known) for h in self.hosts)


def _elements(hop: Hop) -> frozenset[str]:
    return frozenset(site.specie.symbol for site in hop.initial)


def known_signatures(reference_hops: Iterable[Hop], like: Sequence[Hop]) -> set[str]:
    """Signatures of ``reference_hops`` that could match one of ``like`` (same ion and elements;
    computing a signature of every dataset hop would be wasted work)."""
    wanted = {(h.working_ion, _elements(h)) for h in like}
    return {hop_signature(h) for h in reference_hops if (h.working_ion, _elements(h)) in wanted}


def _store_signatures(store) -> set[str]:
    return {record.metadata[SIGNATURE_KEY] for record in store.hops() if SIGNATURE_KEY in record.metadata}


def _unique_id(hop_id: str, taken: set[str], signature: str) -> str:
    return hop_id if hop_id not in taken else f"{hop_id}-{signature[:6]}"


def enumerate_host_files(
    paths: Sequence[str | Path], working_ion: str, settings: EnumerationSettings
) -> list[HostCandidates]:
    """Read and enumerate every host (raises ``HostError`` for the first unusable one)."""
    found = []
    for raw in paths:
        path = Path(raw)
        structure = read_host(path, working_ion)
        problems: list[str] = []
        hops = enumerate_hops(structure, working_ion, path.stem, settings, problems, source=str(path))
        found.append(HostCandidates(path, path.stem, structure, hops, skipped=problems))
    return found


def add_candidates(
    store,
    paths: Sequence[str | Path],
    working_ion: str,
    settings: EnumerationSettings = EnumerationSettings(),
    dataset_hops: Sequence[Hop] | None = None,
) -> AddReport:
    """Enumerate the hosts in ``paths`` and store their new hops as candidates (one transaction).

    ``dataset_hops``: hops the model was trained on (default: alem's shipped dataset).
    """
    hosts = enumerate_host_files(paths, working_ion, settings)
    all_hops = [hop for host in hosts for hop in host.hops]
    if dataset_hops is None:
        from alem.hops.io import load_training_hops

        dataset_hops = load_training_hops()
    known = known_signatures(dataset_hops, all_hops) | _store_signatures(store)
    taken = {record.hop_id for record in store.hops()}
    added: list[str] = []
    with store.transaction():
        for host in hosts:
            new_hops = []
            for hop in host.hops:
                signature = hop_signature(hop)
                if signature in known:
                    host.known.append(hop.hop_id)
                    continue
                known.add(signature)
                hop_id = _unique_id(hop.hop_id, taken, signature)
                taken.add(hop_id)
                new_hops.append(replace(hop, hop_id=hop_id, metadata={**hop.metadata, SIGNATURE_KEY: signature}))
            host_id = store.add_host(host.structure, source_file=str(host.path), name=host.label)
            added.extend(store.add_hops(new_hops, host_id=host_id, source=str(host.path)))
    return AddReport(hosts, added)
