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
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from pymatgen.core import Structure

from alem.candidates.enumerate import EnumerationSettings, enumerate_hops
from alem.candidates.hosts import HostError, read_host
from alem.candidates.signature import hop_signature
from alem.hops.fingerprint import structure_fingerprint
from alem.hops.hop import Hop

SIGNATURE_KEY = "signature"
#: The event that records a stored chunk of hosts (payload: settings key, host fingerprints).
ENUMERATED_EVENT = "hosts_enumerated"
#: Hosts stored per transaction when not strict.
HOSTS_PER_CHUNK = 100


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
    path: Path, working_ion: str, settings: EnumerationSettings, done_before: frozenset[str] = frozenset()
) -> HostCandidates | SkippedHost | Path:
    """One host file's hops, why it gave none, or its path when it is one of ``done_before``
    (structure fingerprints enumerated with these settings by an earlier run)."""
    start = time.perf_counter()
    problems: list[str] = []
    try:
        structure = read_host(path, working_ion)
        if done_before and structure_fingerprint(structure) in done_before:
            return path
        hops = enumerate_hops(structure, working_ion, path.stem, settings, problems, source=str(path))
    except HostError as exc:
        return SkippedHost(path, str(exc), time.perf_counter() - start)
    return HostCandidates(path, path.stem, structure, hops, skipped=problems, seconds=time.perf_counter() - start)


def _enumerated(
    paths: Sequence[Path], working_ion: str, settings: EnumerationSettings, workers: int, done_before: frozenset[str]
) -> Iterator[HostCandidates | SkippedHost | Path]:
    """:func:`_enumerate_host` of every path, in order; in ``workers`` processes when more than one."""
    if workers <= 1 or len(paths) < 2:
        yield from (_enumerate_host(p, working_ion, settings, done_before) for p in paths)
        return
    n = len(paths)
    with ProcessPoolExecutor(max_workers=min(workers, n)) as pool:
        yield from pool.map(_enumerate_host, paths, [working_ion] * n, [settings] * n, [done_before] * n, chunksize=1)


def _split(results: Iterable[HostCandidates | SkippedHost | Path]) -> tuple[list[HostCandidates], list[SkippedHost], list[Path]]:
    found: list[HostCandidates] = []
    skipped: list[SkippedHost] = []
    resumed: list[Path] = []
    for result in results:
        if isinstance(result, HostCandidates):
            found.append(result)
        elif isinstance(result, SkippedHost):
            skipped.append(result)
        else:
            resumed.append(result)
    return found, skipped, resumed


def enumerate_host_files(
    paths: Sequence[str | Path], working_ion: str, settings: EnumerationSettings, workers: int = 1
) -> tuple[list[HostCandidates], list[SkippedHost]]:
    """Read and enumerate every host: those that yield hops, and those skipped with their reason."""
    found, skipped, _ = _split(_enumerated([Path(p) for p in paths], working_ion, settings, workers, frozenset()))
    return found, skipped


def settings_key(working_ion: str, settings: EnumerationSettings) -> str:
    """What decides a host's hops: the working ion and the enumeration settings (SHA-256)."""
    text = json.dumps({"ion": working_ion, **dataclasses.asdict(settings)}, sort_keys=True)
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

    def add_dataset_signatures(self, hops: Sequence[Hop]) -> None:
        wanted = {(h.working_ion, _elements(h)) for h in hops} - self._dataset_pairs
        if not wanted:
            return
        if self.dataset_hops is None:
            from alem.hops.io import load_training_hops

            self.dataset_hops = load_training_hops()
        self.signatures |= known_signatures(self.dataset_hops, hops)
        self._dataset_pairs |= wanted


def _store_hosts(store, hosts: Sequence[HostCandidates], known: _Known, key: str) -> list[str]:
    """Store ``hosts``' new hops and the chunk's event, in one transaction; returns the new hop ids."""
    known.add_dataset_signatures([hop for host in hosts for hop in host.hops])
    added: list[str] = []
    with store.transaction():
        for host in hosts:
            new_hops = []
            for hop in host.hops:
                signature = hop_signature(hop)
                if signature in known.signatures:
                    host.known.append(hop.hop_id)
                    continue
                known.signatures.add(signature)
                hop_id = _unique_id(hop.hop_id, known.taken, signature)
                known.taken.add(hop_id)
                new_hops.append(replace(hop, hop_id=hop_id, metadata={**hop.metadata, SIGNATURE_KEY: signature}))
            host_id = store.add_host(host.structure, source_file=str(host.path), name=host.label)
            added.extend(store.add_hops(new_hops, host_id=host_id, source=str(host.path)))
        if hosts:
            store.log_event(
                ENUMERATED_EVENT, f"{len(hosts)} host(s) enumerated, {len(added)} new candidate hop(s)",
                payload={"settings": key, "hosts": [structure_fingerprint(h.structure) for h in hosts]},
            )
    return added


def add_candidates(
    store,
    paths: Sequence[str | Path],
    working_ion: str,
    settings: EnumerationSettings = EnumerationSettings(),
    dataset_hops: Sequence[Hop] | None = None,
    strict: bool = False,
    workers: int = 1,
) -> AddReport:
    """Enumerate the hosts in ``paths`` and store their new hops as candidates.

    Hosts that yield no hop are skipped and listed in the report; with ``strict`` any such host
    raises ``HostError`` (naming every one) and nothing is stored. Without ``strict`` hosts are
    stored in chunks of :data:`HOSTS_PER_CHUNK` (one transaction each), and hosts an earlier run
    stored with the same settings are not enumerated again (``resumed_hosts``).
    ``dataset_hops``: hops the model was trained on (default: alem's shipped dataset).
    ``workers``: processes that enumerate hosts side by side.
    """
    host_paths = [Path(p) for p in paths]
    key = settings_key(working_ion, settings)
    report = AddReport([], [])
    start = time.perf_counter()
    known = _Known(store, dataset_hops)
    report.overhead_seconds += time.perf_counter() - start
    if strict:  # everything enumerated first: one bad host and nothing is stored
        chunks = [host_paths]
        done_before: frozenset[str] = frozenset()
    else:
        chunks = [host_paths[i : i + HOSTS_PER_CHUNK] for i in range(0, len(host_paths), HOSTS_PER_CHUNK)]
        done_before = enumerated_before(store, key)
    for chunk in chunks:
        hosts, skipped, resumed = _split(_enumerated(chunk, working_ion, settings, workers, done_before))
        if strict and skipped:
            raise HostError("; ".join(s.reason for s in skipped))
        report.hosts += hosts
        report.skipped_hosts += skipped
        report.resumed_hosts += resumed
        start = time.perf_counter()
        report.added += _store_hosts(store, hosts, known, key)
        report.overhead_seconds += time.perf_counter() - start
    return report
