"""Adding hosts' candidate hops to a campaign store, without hops the campaign already knows.

A hop is "known" when its supercell-independent signature (``alem.candidates.signature``) matches
a hop of the training dataset or a hop already in the store. Every host is read and enumerated
before anything is written, and all usable hosts are then stored in one transaction. A host that
yields no hop (unreadable, no working ion, no hop that fits the cell-size rule) is skipped with
its reason, so one bad file among a hundred does not stop the rest; ``strict=True`` restores
all-or-nothing (a bad file leaves the store untouched).
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pymatgen.core import Structure

from alem.candidates.enumerate import EnumerationSettings, enumerate_hops
from alem.candidates.hosts import HostError, read_host
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
    seconds: float = 0.0  # reading and enumerating this host
    #: why this host's hops cannot make a conductor: no network of them reaches a site's periodic
    #: image within the enumeration cutoff ("" = they can)
    no_percolation: str = ""


@dataclass(frozen=True)
class SkippedHost:
    """A host file that gave no hop, and why (the message names the file)."""

    path: Path
    reason: str
    seconds: float


@dataclass
class AddReport:
    hosts: list[HostCandidates]
    added: list[str]
    skipped_hosts: list[SkippedHost] = field(default_factory=list)
    #: loading the training dataset's signatures and writing the store (not per host)
    overhead_seconds: float = 0.0

    @property
    def n_known(self) -> int:
        return sum(len(h.known) for h in self.hosts)


#: File names taken from a directory: what ``read_host`` reads.
HOST_SUFFIXES = (".cif", ".json", ".vasp", ".poscar")
HOST_PREFIXES = ("POSCAR", "CONTCAR")


def _is_host_file(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() in HOST_SUFFIXES or path.name.startswith(HOST_PREFIXES))


def expand_host_paths(arguments: Sequence[str | Path]) -> list[Path]:
    """Host files named by ``arguments``: files as given, a directory's structure files (CIF,
    JSON, POSCAR/CONTCAR, *.vasp), and glob patterns (quoted, so alem expands them); sorted
    within each argument, duplicates dropped. Raises ``HostError`` for an argument that names
    nothing."""
    paths: list[Path] = []
    for argument in map(str, arguments):
        if Path(argument).is_dir():
            found = sorted(p for p in Path(argument).iterdir() if _is_host_file(p))
            if not found:
                raise HostError(f"{argument}: directory holds no structure files ({', '.join(HOST_SUFFIXES)}, POSCAR*, CONTCAR*)")
        elif glob.has_magic(argument):
            found = sorted(Path(p) for p in glob.glob(argument, recursive=True) if _is_host_file(Path(p)))
            if not found:
                raise HostError(f"{argument}: the pattern matches no structure file")
        else:
            found = [Path(argument)]
        paths.extend(found)
    return list(dict.fromkeys(paths))


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
    paths: Sequence[str | Path], working_ion: str, settings: EnumerationSettings, orderings: int = 0
) -> tuple[list[HostCandidates], list[SkippedHost]]:
    """Read and enumerate every host: those that yield hops, and those skipped with their reason.

    A partially occupied host is refused, or with ``orderings`` K > 0 replaced by its K
    lowest-Ewald-energy orderings (:func:`alem.candidates.ordering.order_host`), each a host of
    its own named ``<file stem>-order<rank>`` with its provenance in the structure's properties.
    """
    found, skipped = [], []
    for raw in paths:
        path = Path(raw)
        start = time.perf_counter()
        try:
            structure = read_host(path, working_ion, allow_disordered=orderings > 0)
            stand_ins = [(path.stem, structure)] if structure.is_ordered else _orderings(structure, path, orderings)
            for label, ordered in stand_ins:
                problems: list[str] = []
                hops = enumerate_hops(ordered, working_ion, label, settings, problems, source=str(path))
                found.append(HostCandidates(path, label, ordered, hops, skipped=problems, seconds=time.perf_counter() - start,
                                            no_percolation=_no_percolation(ordered, working_ion, settings)))
                start = time.perf_counter()
        except HostError as exc:
            skipped.append(SkippedHost(path, str(exc), time.perf_counter() - start))
            continue
    return found, skipped


def _orderings(structure: Structure, path: Path, orderings: int) -> list[tuple[str, Structure]]:
    from alem.candidates.ordering import order_host

    stand_ins = []
    for ordering in order_host(structure, orderings, source=str(path)):
        ordered = ordering.structure.copy()
        ordered.properties = {**ordered.properties, "alem_ordering": ordering.provenance}
        stand_ins.append((f"{path.stem}-order{ordering.rank}", ordered))
    return stand_ins


def _no_percolation(structure: Structure, working_ion: str, settings: EnumerationSettings) -> str:
    """Why no network of the host's hops within the cutoff can percolate, whatever their barriers ("" = one can)."""
    from alem.candidates.network import HopBarrier, host_network, percolation

    try:
        network = host_network(structure, working_ion, settings.max_hop_length_a)
    except HostError as exc:
        return str(exc)
    # every path open at 0 eV: a network that percolates at all percolates now
    every_path = {n: HopBarrier(0.0, "topology") for n in network.path_lengths_a}
    if percolation(network, every_path).barrier_ev is None:
        return (f"no network of its {working_ion} hops up to {network.cutoff_a:.2f} Å reaches a site's periodic image: "
                "not a conductor at this cutoff (a longer --max-hop-length may connect it)")
    return ""


def add_candidates(
    store,
    paths: Sequence[str | Path],
    working_ion: str,
    settings: EnumerationSettings = EnumerationSettings(),
    dataset_hops: Sequence[Hop] | None = None,
    strict: bool = False,
    orderings: int = 0,
) -> AddReport:
    """Enumerate the hosts in ``paths`` and store their new hops as candidates (one transaction).

    Hosts that yield no hop are skipped and listed in the report; with ``strict`` any such host
    raises ``HostError`` (naming every one) and nothing is stored.
    ``dataset_hops``: hops the model was trained on (default: alem's shipped dataset).
    ``orderings``: order partially occupied hosts into this many stand-ins (0: refuse them).
    """
    hosts, skipped_hosts = enumerate_host_files(paths, working_ion, settings, orderings)
    if strict and skipped_hosts:
        raise HostError("; ".join(s.reason for s in skipped_hosts))
    start = time.perf_counter()
    all_hops = [hop for host in hosts for hop in host.hops]
    if dataset_hops is None and all_hops:
        from alem.hops.io import load_training_hops

        dataset_hops = load_training_hops()
    known = known_signatures(dataset_hops or [], all_hops) | _store_signatures(store)
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
    return AddReport(hosts, added, skipped_hosts, time.perf_counter() - start)
