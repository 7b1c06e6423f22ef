"""Adding hosts' candidate hops to a campaign store, without hops the campaign already knows.

A hop is "known" when its supercell-independent signature (``alem.candidates.signature``) matches
a hop of the training dataset or a hop already in the store. A host that yields no hop
(unreadable, no working ion, no hop that fits the cell-size rule) is skipped with its reason, so
one bad file among a hundred does not stop the rest; ``strict=True`` restores all-or-nothing
(every host is enumerated before anything is written, and a bad file leaves the store untouched).

Otherwise hosts are stored in chunks (:data:`HOSTS_PER_CHUNK`), each chunk one transaction with a
``hosts_enumerated`` event naming its hosts and the enumeration settings: a run killed halfway
keeps the chunks it finished, and the next run with the same settings reads those hosts but does
not enumerate them again. Enumeration runs in ``workers`` processes (one host per task).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from pymatgen.core import Structure

from alem.candidates.enumerate import DistinctPaths, EnumerationSettings, enumerate_hops, find_distinct_paths
from alem.candidates.hosts import HostError, read_host
from alem.candidates.network import HostNetwork
from alem.candidates.network_record import NetworkRecord, path_number, reach_a, signed_paths
from alem.candidates.signature import SIGNATURE_KEY, hop_signature
from alem.candidates.transport import arrived_hop, portable_hop
from alem.hops.fingerprint import structure_fingerprint
from alem.hops.hop import Hop

#: The event that records a stored chunk of hosts (payload: settings key, host fingerprints).
ENUMERATED_EVENT = "hosts_enumerated"
#: Hosts stored per transaction when not strict.
HOSTS_PER_CHUNK = 100
#: The most processes enumerating hosts without ``--workers``.
MAX_DEFAULT_WORKERS = 4


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
    #: fingerprint of the structure read from the file (a disordered host's, for its orderings):
    #: what a resumed run compares
    source_fingerprint: str = ""
    #: the host's migration network at the enumeration cutoff (None: pymatgen could not build it,
    #: ``network_error`` says why); kept in the store with the host for the host answers
    network: HostNetwork | None = None
    network_error: str = ""


@dataclass(frozen=True)
class HostSummary:
    """What a report keeps of a stored host: its table row, not its structures (10^4 hosts'
    supercells would not fit in memory)."""

    path: Path
    label: str
    #: supercell atoms of each enumerated hop, in path order
    hop_sites: tuple[int, ...]
    known: list[str]
    skipped: list[str]
    seconds: float
    no_percolation: str

    @classmethod
    def of(cls, host: HostCandidates) -> HostSummary:
        return cls(host.path, host.label, tuple(h.n_sites for h in host.hops), host.known, host.skipped, host.seconds,
                   host.no_percolation)


@dataclass(frozen=True)
class SkippedHost:
    """A host file that gave no hop, and why (the message names the file)."""

    path: Path
    reason: str
    seconds: float


@dataclass
class AddReport:
    hosts: list[HostSummary]
    added: list[str]
    skipped_hosts: list[SkippedHost] = field(default_factory=list)
    #: loading the training dataset's signatures and writing the store (not per host)
    overhead_seconds: float = 0.0
    #: host files an earlier run already enumerated with these settings (not enumerated again)
    resumed_hosts: list[Path] = field(default_factory=list)

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


def store_signatures(store) -> set[str]:
    return {record.metadata[SIGNATURE_KEY] for record in store.hops() if SIGNATURE_KEY in record.metadata}


def _unique_id(hop_id: str, taken: set[str], signature: str) -> str:
    return hop_id if hop_id not in taken else f"{hop_id}-{signature[:6]}"


def _enumerate_host(
    path: Path, working_ion: str, settings: EnumerationSettings, done_before: frozenset[str] = frozenset(),
    orderings: int = 0,
) -> list[HostCandidates] | SkippedHost | Path:
    """One host file's hops (one entry per ordering of a partially occupied host), why it gave
    none, or its path when it is one of ``done_before`` (structure fingerprints enumerated with
    these settings by an earlier run)."""
    start = time.perf_counter()
    found: list[HostCandidates] = []
    try:
        structure = read_host(path, working_ion, allow_disordered=orderings > 0)
        fingerprint = structure_fingerprint(structure)
        if done_before and fingerprint in done_before:
            return path
        stand_ins = [(path.stem, structure)] if structure.is_ordered else _orderings(structure, path, orderings)
        for label, ordered in stand_ins:
            problems: list[str] = []
            found_paths = find_distinct_paths(ordered, working_ion, settings)
            hops = enumerate_hops(ordered, working_ion, label, settings, problems, source=str(path), distinct_paths=found_paths)
            for hop in hops:  # here, in the worker: the storing process has enough to do
                hop.metadata[SIGNATURE_KEY] = hop_signature(hop)
            network, network_error = _network(ordered, working_ion, settings, found_paths)
            found.append(HostCandidates(path, label, ordered, hops, skipped=problems, seconds=time.perf_counter() - start,
                                        no_percolation=network_error or _no_percolation(network),
                                        source_fingerprint=fingerprint, network=network, network_error=network_error))
            start = time.perf_counter()
    except HostError as exc:
        return SkippedHost(path, str(exc), time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types on odd hosts; one must not sink 10^4 others
        return SkippedHost(path, f"{path}: enumeration failed ({type(exc).__name__}: {exc})", time.perf_counter() - start)
    return found


def _orderings(structure: Structure, path: Path, orderings: int) -> list[tuple[str, Structure]]:
    from alem.candidates.ordering import order_host

    stand_ins = []
    for ordering in order_host(structure, orderings, source=str(path)):
        ordered = ordering.structure.copy()
        ordered.properties = {**ordered.properties, "alem_ordering": ordering.provenance}
        stand_ins.append((f"{path.stem}-order{ordering.rank}", ordered))
    return stand_ins


def _network(
    structure: Structure, working_ion: str, settings: EnumerationSettings, found_paths: DistinctPaths
) -> tuple[HostNetwork | None, str]:
    """The host's migration network at the enumeration cutoff (from the paths enumeration found),
    or why pymatgen could not build it."""
    from alem.candidates.network import host_network

    try:
        return host_network(structure, working_ion, settings.max_hop_length_a, settings.symprec, distinct_paths=found_paths), ""
    except HostError as exc:
        return None, str(exc)


def _no_percolation(network: HostNetwork) -> str:
    """Why no network of the host's hops within the cutoff can percolate, whatever their barriers ("" = one can)."""
    from alem.candidates.network import HopBarrier, percolation

    # every path open at 0 eV: a network that percolates at all percolates now
    every_path = {n: HopBarrier(0.0, "topology") for n in network.path_lengths_a}
    if percolation(network, every_path).barrier_ev is None:
        return (f"no network of its {network.working_ion} hops up to {network.cutoff_a:.2f} Å reaches a site's periodic image: "
                "not a conductor at this cutoff (a longer --max-hop-length may connect it)")
    return ""


def _enumerate_host_to_send(*args) -> list[HostCandidates] | SkippedHost | Path:
    """:func:`_enumerate_host` in a worker, its hops' structures in their portable form (:mod:`alem.candidates.transport`)."""
    result = _enumerate_host(*args)
    if isinstance(result, list):
        return [replace(host, hops=[portable_hop(hop) for hop in host.hops]) for host in result]
    return result


def _arrived(result: list[HostCandidates] | SkippedHost | Path) -> list[HostCandidates] | SkippedHost | Path:
    if isinstance(result, list):
        return [replace(host, hops=[arrived_hop(hop) for hop in host.hops]) for host in result]
    return result


def default_workers() -> int:
    """Processes that enumerate hosts by default: the cores this process may use, at most
    :data:`MAX_DEFAULT_WORKERS` (a login node is shared; ``--workers`` asks for more)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def _enumerated(
    paths: Sequence[Path], working_ion: str, settings: EnumerationSettings, workers: int, done_before: frozenset[str],
    orderings: int = 0,
) -> Iterator[list[HostCandidates] | SkippedHost | Path]:
    """:func:`_enumerate_host` of every path, in order; in ``workers`` processes when more than
    one, one pool for the whole run, so the workers go on with the next hosts while the caller
    stores a chunk. Stopped early (a kill, an error, the caller done), the hosts not started yet
    are cancelled, not enumerated for nothing."""
    if workers <= 1 or len(paths) < 2:
        yield from (_enumerate_host(p, working_ion, settings, done_before, orderings) for p in paths)
        return
    n = len(paths)
    pool = ProcessPoolExecutor(max_workers=min(workers, n))
    try:
        sent = pool.map(_enumerate_host_to_send, paths, [working_ion] * n, [settings] * n, [done_before] * n, [orderings] * n,
                        chunksize=1)
        yield from map(_arrived, sent)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _split(
    results: Iterable[list[HostCandidates] | SkippedHost | Path],
) -> tuple[list[HostCandidates], list[SkippedHost], list[Path]]:
    found: list[HostCandidates] = []
    skipped: list[SkippedHost] = []
    resumed: list[Path] = []
    for result in results:
        if isinstance(result, list):
            found.extend(result)
        elif isinstance(result, SkippedHost):
            skipped.append(result)
        else:
            resumed.append(result)
    return found, skipped, resumed


def enumerate_host_files(
    paths: Sequence[str | Path], working_ion: str, settings: EnumerationSettings, workers: int = 1, orderings: int = 0
) -> tuple[list[HostCandidates], list[SkippedHost]]:
    """Read and enumerate every host: those that yield hops, and those skipped with their reason.

    A partially occupied host is refused, or with ``orderings`` K > 0 replaced by its K
    lowest-Ewald-energy orderings (:func:`alem.candidates.ordering.order_host`), each a host of
    its own named ``<file stem>-order<rank>`` with its provenance in the structure's properties.
    """
    found, skipped, _ = _split(_enumerated([Path(p) for p in paths], working_ion, settings, workers, frozenset(), orderings))
    return found, skipped


def settings_key(working_ion: str, settings: EnumerationSettings, orderings: int = 0) -> str:
    """What decides a host's hops: the working ion, the enumeration settings and the number of
    orderings of a partially occupied host (SHA-256)."""
    decided = {"ion": working_ion, **dataclasses.asdict(settings)}
    if orderings:  # absent when 0, so keys written before orderings existed still match
        decided["orderings"] = orderings
    text = json.dumps(decided, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def enumerated_before(store, key: str) -> frozenset[str]:
    """Fingerprints of the hosts stored by earlier runs with the settings ``key``."""
    return frozenset(
        fingerprint
        for event in store.events(kind=ENUMERATED_EVENT)
        if (event.payload or {}).get("settings") == key
        for fingerprint in (event.payload or {}).get("hosts", [])
    )


class _Known:
    """Signatures and hop ids a chunk must not repeat: the store's (read once), the dataset's
    (loaded on first need), and those stored by earlier chunks of this run."""

    def __init__(self, store, dataset_hops: Sequence[Hop] | None):
        self.dataset_hops = dataset_hops
        self.signatures = store_signatures(store)
        self.taken = {record.hop_id for record in store.hops()}
        self._dataset_pairs: set[tuple[str, frozenset[str]]] = set()
        #: signature -> (hop id, barrier eV) of the first training hop with it (kept with each host's network)
        self.dataset_matches: dict[str, tuple[str, float]] = {}

    def add_dataset_signatures(self, hops: Sequence[Hop]) -> None:
        wanted = {(h.working_ion, _elements(h)) for h in hops} - self._dataset_pairs
        if not wanted:
            return
        if self.dataset_hops is None:
            from alem.hops.io import load_training_hops

            self.dataset_hops = load_training_hops()
        for hop in self.dataset_hops:
            if (hop.working_ion, _elements(hop)) in wanted:
                signature = hop_signature(hop)
                self.signatures.add(signature)
                if hop.barrier_ev is not None:
                    self.dataset_matches.setdefault(signature, (hop.hop_id, float(hop.barrier_ev)))
        self._dataset_pairs |= wanted


def _store_hosts(store, hosts: Sequence[HostCandidates], known: _Known, key: str) -> list[str]:
    """Store ``hosts``' new hops and the chunk's event, in one transaction; returns the new hop ids."""
    known.add_dataset_signatures([hop for host in hosts for hop in host.hops])
    added: list[str] = []
    with store.transaction():
        for host in hosts:
            new_hops = []
            signatures: dict[int, str] = {}
            for hop in host.hops:
                signature = hop.metadata.get(SIGNATURE_KEY) or hop_signature(hop)
                number = path_number(hop.metadata.get("path_info"))
                if number is not None:
                    signatures[number] = signature
                if signature in known.signatures:
                    host.known.append(hop.hop_id)
                    continue
                known.signatures.add(signature)
                hop_id = _unique_id(hop.hop_id, known.taken, signature)
                known.taken.add(hop_id)
                new_hops.append(replace(hop, hop_id=hop_id, metadata={**hop.metadata, SIGNATURE_KEY: signature}))
            host_id = store.add_host(host.structure, source_file=str(host.path), name=host.label)
            added.extend(store.add_hops(new_hops, host_id=host_id, source=str(host.path)))
            record = _network_record(host, signatures, known.dataset_matches)
            store.keep_host_network(host_id, record.working_ion, record.covers_a, record.to_json())
        if hosts:
            store.log_event(
                ENUMERATED_EVENT, f"{len(hosts)} host(s) enumerated, {len(added)} new candidate hop(s)",
                payload={"settings": key, "hosts": sorted({h.source_fingerprint or structure_fingerprint(h.structure) for h in hosts})},
            )
    return added


def _network_record(host: HostCandidates, signatures: dict[int, str], dataset_matches: dict[str, tuple[str, float]]) -> NetworkRecord:
    """What the host answers need of this host: its network, its paths' signatures and their
    training-set matches (the dataset loaded for de-duplication answers those), its volume."""
    network = host.network
    working_ion = network.working_ion if network is not None else (host.hops[0].working_ion if host.hops else "")
    covers_a = reach_a(network) if network is not None else max((h.hop_length_a for h in host.hops), default=0.0)
    matches = {n: dataset_matches[s] for n, s in signatures.items() if s in dataset_matches}
    return NetworkRecord(
        working_ion, covers_a, network, host.network_error, signatures, matches,
        paths_signed=signed_paths(signatures, network), volume_a3=float(host.structure.volume),
    )


def add_candidates(
    store,
    paths: Sequence[str | Path],
    working_ion: str,
    settings: EnumerationSettings = EnumerationSettings(),
    dataset_hops: Sequence[Hop] | None = None,
    strict: bool = False,
    workers: int | None = 1,
    orderings: int = 0,
    on_host: Callable[[str], None] | None = None,
) -> AddReport:
    """Enumerate the hosts in ``paths`` and store their new hops as candidates.

    Hosts that yield no hop are skipped and listed in the report; with ``strict`` any such host
    raises ``HostError`` (naming every one) and nothing is stored. Without ``strict`` hosts are
    stored in chunks of :data:`HOSTS_PER_CHUNK` (one transaction each), and hosts an earlier run
    stored with the same settings are not enumerated again (``resumed_hosts``).
    ``dataset_hops``: hops the model was trained on (default: alem's shipped dataset).
    ``workers``: processes that enumerate hosts side by side (None: :func:`default_workers`);
    chunks are stored by this process as their hosts come back, in the order of ``paths``.
    ``on_host``: called with each host file's name as its enumeration comes back (progress).
    ``orderings``: order partially occupied hosts into this many stand-ins (0: refuse them).
    """
    host_paths = [Path(p) for p in paths]
    key = settings_key(working_ion, settings, orderings)
    report = AddReport([], [])
    start = time.perf_counter()
    known = _Known(store, dataset_hops)
    done_before = frozenset() if strict else enumerated_before(store, key)
    report.overhead_seconds += time.perf_counter() - start
    workers = default_workers() if workers is None else workers
    enumerated = _enumerated(host_paths, working_ion, settings, workers, done_before, orderings)
    results = enumerated if on_host is None else _reported(host_paths, enumerated, on_host)
    try:
        # strict: everything enumerated first, so one bad host and nothing is stored
        for chunk in [list(results)] if strict else _chunked(results, HOSTS_PER_CHUNK):
            hosts, skipped, resumed = _split(chunk)
            if strict and skipped:
                raise HostError("; ".join(s.reason for s in skipped))
            report.skipped_hosts += skipped
            report.resumed_hosts += resumed
            start = time.perf_counter()
            report.added += _store_hosts(store, hosts, known, key)
            report.overhead_seconds += time.perf_counter() - start
            report.hosts += [HostSummary.of(host) for host in hosts]  # the structures go with the chunk
    finally:
        enumerated.close()  # the hosts not started yet are cancelled
    return report


def _chunked(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _reported(paths: Sequence[Path], results: Iterable, on_host: Callable[[str], None]) -> Iterator:
    for path, result in zip(paths, results):
        on_host(path.name)
        yield result
