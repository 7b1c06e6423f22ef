"""Material-level answers for the campaign's hosts (``alem hosts``, ``alem show HOST_ID``).

Each host's migration network (:mod:`alem.candidates.network`) gets, per distinct path, the barrier
of its stored hop: the latest usable result whose fidelity ``[model] train_fidelities`` selects
(the labels the model trusts), else the current model's prediction. The spread of the percolation
barrier comes from the campaign's joint posterior rows (:mod:`alem.campaign.host_rows`, the rows
the acquisition uses, kept per model version) with computed hops fixed at their results. Only when
no model can be loaded do independent normal draws from each stored prediction's mean and σ stand
in, and the answer says so.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from alem.candidates.hosts import HostError
from alem.candidates.network import (
    HopBarrier,
    HostNetwork,
    host_network,
    percolation,
    percolation_spread,
    transport_estimate,
)
from alem.candidates.network_record import NetworkRecord, reach_a, records_of
from alem.hops.fidelity import matches

if TYPE_CHECKING:
    from alem.campaign.host_rows import HostRows
    from alem.config import CampaignConfig
    from alem.store import Store
    from alem.store.records import HopRecord, ResultRecord

#: Sample rows drawn from stored predictions when no prediction table is given.
DEFAULT_SAMPLE_ROWS = 64
#: Fixed seed: the same store gives the same table every time it is asked.
SAMPLE_SEED = 0
#: Temperature (K) of the order-of-magnitude transport estimate.
ESTIMATE_TEMPERATURE_K = 300.0
#: Sources whose barrier is a computed label, fixed in every sample row.
FIXED_SOURCES = ("result", "dataset")
#: Supercell limit when paths are re-enumerated only for their signatures (no NEB runs in these cells).
MAX_ATOMS_FOR_SIGNATURES = 1000
#: A stored hop belongs to a path when their lengths agree within this (Å).
PATH_LENGTH_TOLERANCE_A = 0.01


@dataclass(frozen=True)
class PathBarrier:
    """One distinct path of a host: its stored hop (if any) and the barrier the network uses."""

    path_number: int
    hop_length_a: float
    n_copies: int
    hop_id: str | None
    state: str | None
    barrier_ev: float | None
    std_ev: float | None
    #: "result <fidelity>", "model <version>" or "none"
    source: str
    site_energy_change_ev: float | None = None


class StoreReads:
    """The store rows the host answers read, each read with one query when first needed and kept
    for the whole table: read per host (or per hop), they were most of a kept table's time.
    ``host_ids``: the answers are about these hosts only (a review page's few), so their hops,
    networks and predictions are read, not the whole campaign's."""

    def __init__(self, store: Store, host_ids: Collection[int] | None = None) -> None:
        self.store = store
        self.host_ids = None if host_ids is None else sorted(set(host_ids))
        self._predictions: dict[str, Any] | None = None
        self._by_signature: dict[tuple[str, int], HopRecord | None] = {}

    @cached_property
    def hops(self) -> list[HopRecord]:
        return self.store.hops()

    @cached_property
    def _hops_by_host(self) -> dict[int | None, list[HopRecord]]:
        grouped: dict[int | None, list[HopRecord]] = defaultdict(list)
        if self.host_ids is not None:
            for host_id in self.host_ids:
                grouped[host_id] = self.store.hops(host_id=host_id)
            return grouped
        for record in self.hops:
            grouped[record.host_id].append(record)
        return grouped

    def hops_of(self, host_id: int) -> list[HopRecord]:
        """The host's hops, oldest first (as ``store.hops(host_id=...)``)."""
        if self.host_ids is not None and host_id not in self.host_ids:
            return self.store.hops(host_id=host_id)
        return list(self._hops_by_host.get(host_id, []))

    def hop_with_signature(self, signature: str, other_than_host: int) -> HopRecord | None:
        """The newest stored hop of another host with this signature (one indexed store lookup,
        kept: several hosts may ask for the same signature)."""
        key = (signature, other_than_host)
        if key not in self._by_signature:
            self._by_signature[key] = self.store.hop_with_signature(signature, other_than_host)
        return self._by_signature[key]

    @cached_property
    def _usable_results(self) -> dict[str, list[ResultRecord]]:
        grouped: dict[str, list[ResultRecord]] = defaultdict(list)
        for record in self.store.results(usable=True):
            grouped[record.hop_id].append(record)
        return grouped

    def usable_results(self, hop_id: str) -> list[ResultRecord]:
        """The hop's usable results, oldest first (as ``store.results(hop_id, usable=True)``)."""
        return self._usable_results.get(hop_id, [])

    @cached_property
    def network_records(self) -> dict[tuple[int, str], NetworkRecord]:
        """Every host network kept in the store (or the asked hosts'), by (host id, working ion)."""
        return records_of(self.store.host_networks(self.host_ids))

    def keep(self, host_id: int, record: NetworkRecord) -> None:
        """Keep a network built (or signed) here for the next table, and use it in this one."""
        self.store.keep_host_network(host_id, record.working_ion, record.covers_a, record.to_json())
        self.network_records[(host_id, record.working_ion)] = record

    def prediction(self, hop_id: str) -> Any:
        """The current model's prediction of the hop (None: none, or no current model)."""
        if self._predictions is None:
            if self.host_ids is None:
                self._predictions = self.store.predictions()
            else:
                hop_ids = [r.hop_id for host_id in self.host_ids for r in self.hops_of(host_id)]
                self._predictions = self.store.predictions(hop_ids=hop_ids)
        if hop_id not in self._predictions and self.host_ids is not None:  # a hop of another host, lent
            self._predictions.update(self.store.predictions(hop_ids=[hop_id]))
        return self._predictions.get(hop_id)
def _path_number(hop: HopRecord, network: HostNetwork) -> int | None:
    """The distinct path a stored hop was enumerated as (its ``PATH N``), checked by length."""
    found = re.fullmatch(r"PATH (\d+)", str(hop.metadata.get("path_info", "")))
    if found and abs(network.path_lengths_a.get(int(found[1]), -1.0) - hop.hop_length_a) < PATH_LENGTH_TOLERANCE_A:
        return int(found[1])
    same_length = [n for n, length in network.path_lengths_a.items() if abs(length - hop.hop_length_a) < PATH_LENGTH_TOLERANCE_A]
    return same_length[0] if len(same_length) == 1 else None


def network_record(store: Store, host_id: int, hops: list[HopRecord], working_ion: str, reads: StoreReads | None = None) -> NetworkRecord:
    """The host's network as ``candidates add`` kept it in the store (at the enumeration cutoff),
    or, when none is kept for this ion or a stored hop is longer than its cutoff (the host added
    again with a longer ``--max-hop-length``), built here at enumeration's cutoff widened to the
    longest stored hop, and kept. A host pymatgen cannot build is kept with its error."""
    reads = StoreReads(store) if reads is None else reads
    longest_a = max((h.hop_length_a for h in hops), default=0.0)
    record = reads.network_records.get((host_id, working_ion))
    if record is not None and record.covers(longest_a):
        return record
    structure = store.host_structure(host_id)
    try:
        network = host_network(structure, working_ion, at_least_a=longest_a)
        record = NetworkRecord(working_ion, reach_a(network), network, volume_a3=float(structure.volume))
    except HostError as exc:  # kept too: a host pymatgen cannot build is not rebuilt every table
        record = NetworkRecord(working_ion, longest_a, None, str(exc), volume_a3=float(structure.volume))
    reads.keep(host_id, record)
    return record


def _stored_barrier(config: CampaignConfig, reads: StoreReads, hop: HopRecord) -> dict[str, Any]:
    """A stored hop's barrier: its latest train-fidelity result, else its prediction, else none."""
    results = [
        r for r in reads.usable_results(hop.hop_id)
        if r.barrier_ev is not None and matches(r.fidelity, config.model.train_fidelities)
    ]
    if results:
        latest = results[-1]
        change = None if latest.reverse_barrier_ev is None else latest.barrier_ev - latest.reverse_barrier_ev
        return dict(barrier_ev=latest.barrier_ev, std_ev=0.0, source=f"result {latest.fidelity}", site_energy_change_ev=change)
    p = reads.prediction(hop.hop_id)
    if p is not None:
        return dict(barrier_ev=p.mean_ev, std_ev=p.std_ev, source=f"model {p.model_version_id}")
    return dict(barrier_ev=None, std_ev=None, source="none")


def _known_elsewhere(
    reads: StoreReads, config: CampaignConfig, host_id: int, record: NetworkRecord, numbers: list[int]
) -> dict[int, tuple[str | None, dict[str, Any]]]:
    """Stored hop id and barrier of paths that ``candidates add`` did not store under this host
    because an identical hop (same supercell-independent signature) was known: a hop of another
    host in the store, or a literature DFT hop of the shipped training set."""
    if any(n not in record.signatures for n in numbers) and not record.paths_signed:
        record = _signed(reads, host_id, record)
    found: dict[int, tuple[str | None, dict[str, Any]]] = {}
    for number in numbers:
        signature = record.signatures.get(number)
        other = None if signature is None else reads.hop_with_signature(signature, host_id)
        if other is not None:
            found[number] = (other.hop_id, _stored_barrier(config, reads, other))
        elif number in record.dataset_matches:
            hop_id, barrier_ev = record.dataset_matches[number]
            found[number] = (None, dict(barrier_ev=barrier_ev, std_ev=0.0, source=f"dataset {hop_id}"))
    return found


def _signed(reads: StoreReads, host_id: int, record: NetworkRecord) -> NetworkRecord:
    """``record`` with a signature and training-set match for every path: enumeration skipped some
    (their cells too large for a NEB), or the network was built here. Re-enumerating is slow and the
    signatures never change, so the signed record is kept."""
    from alem.candidates import EnumerationSettings, enumerate_hops
    from alem.candidates.signature import hop_signature

    network = record.network
    assert network is not None
    store = reads.store
    structure = store.host_structure(host_id)
    settings = EnumerationSettings(max_hop_length_a=network.cutoff_a, max_atoms=MAX_ATOMS_FOR_SIGNATURES)
    enumerated = {h.metadata["path_info"]: h for h in enumerate_hops(structure, network.working_ion, f"host{host_id}", settings, [])}
    signatures = {n: hop_signature(enumerated[f"PATH {n}"]) for n in network.path_lengths_a if f"PATH {n}" in enumerated}
    signed = record.with_signatures(signatures, _dataset_matches(structure, network.working_ion, signatures))
    reads.keep(host_id, signed)
    return signed


@cache
def _training_hops() -> tuple:
    """The shipped training set, read once per process (every host that needs it reads the same)."""
    from alem.hops.io import load_training_hops

    return tuple(load_training_hops())


def _dataset_matches(structure, working_ion: str, signatures: dict[int, str]) -> dict[int, tuple[str, float]]:
    """Path number -> (dataset hop id, DFT barrier) of the shipped training hops identical to a path."""
    from alem.candidates.signature import hop_signature

    number_of = {signature: number for number, signature in signatures.items()}
    elements = set(structure.composition.chemical_system.split("-"))
    matches: dict[int, tuple[str, float]] = {}
    for hop in _training_hops():
        # only hops of the same chemistry can match: signing every dataset hop would be wasted work
        same_chemistry = set(hop.initial.composition.chemical_system.split("-")) == elements
        if hop.barrier_ev is None or hop.working_ion != working_ion or not same_chemistry:
            continue
        number = number_of.get(hop_signature(hop))
        if number is not None and number not in matches:
            matches[number] = (hop.hop_id, float(hop.barrier_ev))
    return matches


def path_barriers(
    config: CampaignConfig, store: Store, record: NetworkRecord, hops: list[HopRecord], host_id: int,
    reads: StoreReads | None = None,
) -> list[PathBarrier]:
    """Every distinct path of the host's network (``record``, :func:`network_record`) with the
    barrier its stored hop has (result, else prediction); a path stored under another host, or
    known from the training set, takes that barrier. ``reads``: the store rows, read once by a
    caller that analyses every host (None: read here)."""
    reads = StoreReads(store) if reads is None else reads
    network = record.network
    if network is None:
        raise HostError(record.error)
    stored = {}
    for hop in hops:
        number = _path_number(hop, network)
        if number is not None and number not in stored:
            stored[number] = hop
    copies = {n: 0 for n in network.path_lengths_a}
    for edge in network.edges:
        copies[edge.path_number] += 1
    missing = [n for n in network.path_lengths_a if n not in stored]
    elsewhere = _known_elsewhere(reads, config, host_id, record, missing) if missing else {}
    paths = []
    for number, length_a in sorted(network.path_lengths_a.items()):
        hop = stored.get(number)
        if hop is not None:
            hop_id, state, barrier = hop.hop_id, hop.state.value, _stored_barrier(config, reads, hop)
        elif number in elsewhere:
            hop_id, barrier = elsewhere[number]
            state = "known"
        else:
            hop_id, state, barrier = None, None, dict(barrier_ev=None, std_ev=None, source="none")
        paths.append(PathBarrier(number, length_a, copies[number], hop_id, state, **barrier))
    return paths


def _sample_rows(paths: list[PathBarrier], rows: HostRows, n_rows: int) -> tuple[np.ndarray, str]:
    """n_rows x len(paths) barriers (eV) of the predicted paths, and what the rows are. Paths that
    borrow one stored hop take one value per row: it is one hop, not two."""
    keys = [p.hop_id for p in paths]
    if rows.table is not None and all(key in rows.index for key in keys):
        sampled, what = rows.calibrated_ev[:, [rows.index[key] for key in keys]], rows.what
    else:
        unique = list(dict.fromkeys(keys))
        first = {key: next(p for p in paths if p.hop_id == key) for key in unique}
        mean = np.array([first[key].barrier_ev for key in unique])
        std = np.array([first[key].std_ev for key in unique])
        draws = mean[None, :] + std[None, :] * np.random.default_rng(SAMPLE_SEED).standard_normal((n_rows, len(unique)))
        sampled = draws[:, [unique.index(key) for key in keys]]
        what = f"independent normal draws from stored predictions, not joint: {rows.what}"
    # a barrier is never negative; the tails of a wide prediction would otherwise reach below zero
    return np.clip(sampled, 0.0, None), what


@dataclass(frozen=True)
class HostAnalysis:
    """One host's answer (``summary``, JSON-ready) and, when it came from the campaign's joint
    rows, whether each row's network is good (``good_rows``; None: no predicted hop, or not joint)."""

    summary: dict[str, Any]
    good_rows: np.ndarray | None


def host_summary(
    config: CampaignConfig,
    store: Store,
    host_id: int,
    rows: HostRows | None = None,
    n_rows: int = DEFAULT_SAMPLE_ROWS,
) -> dict[str, Any]:
    """One host's network, percolation barrier, dimensionality, limiting hop and their spread,
    JSON-ready; ``rows``: the campaign's posterior rows (None: read or computed here)."""
    return host_analysis(config, store, host_id, rows, n_rows).summary


@dataclass(frozen=True)
class HostPaths:
    """What a host's answer is computed from: its stored hops, its network and each distinct path's barrier."""

    host_id: int
    hops: list[HopRecord]
    working_ion: str
    network_kept: NetworkRecord
    paths: list[PathBarrier]

    @property
    def row_hop_ids(self) -> list[str]:
        """The hops whose joint rows the answer may read: the host's own and those it borrows by signature."""
        own = [h.hop_id for h in self.hops]
        return list(dict.fromkeys([*own, *(p.hop_id for p in self.paths if p.hop_id is not None)]))


def host_paths(config: CampaignConfig, store: Store, host_id: int, reads: StoreReads | None = None) -> HostPaths:
    """The host's network and paths with their barriers (:func:`path_barriers`); HostError when
    its network cannot be built. Reads only this host's rows (and those of hops it borrows)."""
    reads = StoreReads(store, [host_id]) if reads is None else reads
    hops = reads.hops_of(host_id)
    working_ion = hops[0].working_ion if hops else config.campaign.working_ion
    network_kept = network_record(store, host_id, hops, working_ion, reads)
    if network_kept.network is None:
        raise HostError(network_kept.error)
    return HostPaths(host_id, hops, working_ion, network_kept, path_barriers(config, store, network_kept, hops, host_id, reads))


def paths_of_hosts(config: CampaignConfig, store: Store, host_ids: Collection[int]) -> dict[int, HostPaths]:
    """:func:`host_paths` of each of ``host_ids`` (a host whose network cannot be built is left
    out), read with one :class:`StoreReads` of those hosts only."""
    reads = StoreReads(store, host_ids)
    found = {}
    for host_id in dict.fromkeys(host_ids):
        try:
            found[host_id] = host_paths(config, store, host_id, reads)
        except HostError:
            continue
    return found


def host_analysis(
    config: CampaignConfig,
    store: Store,
    host_id: int,
    rows: HostRows | None = None,
    n_rows: int = DEFAULT_SAMPLE_ROWS,
    reads: StoreReads | None = None,
) -> HostAnalysis:
    """:func:`host_summary` with the good/not-good verdict of each joint row kept (``reads``: the
    store rows, read once by a caller that analyses every host; None: this host's read here;
    ``rows``: None reads only the columns of this host's hops)."""
    from alem.campaign.host_rows import host_rows

    found = host_paths(config, store, host_id, reads)
    rows = host_rows(config, store, hop_ids=found.row_hop_ids) if rows is None else rows
    return analysis_of(config, store, found, rows, n_rows)


def analysis_of(config: CampaignConfig, store: Store, found: HostPaths, rows: HostRows, n_rows: int = DEFAULT_SAMPLE_ROWS) -> HostAnalysis:
    """:func:`host_analysis` of a host's paths (:func:`host_paths`) on ``rows`` (which hold its
    :attr:`HostPaths.row_hop_ids`, or fall back to independent draws)."""
    record = store.host(found.host_id)
    paths, working_ion, network_kept = found.paths, found.working_ion, found.network_kept
    network = network_kept.network
    assert network is not None  # host_paths refuses a host without one
    known = {p.path_number: HopBarrier(p.barrier_ev, p.source, p.site_energy_change_ev) for p in paths if p.barrier_ev is not None}
    fixed = {p.path_number: known[p.path_number] for p in paths if p.source.startswith(FIXED_SOURCES)}
    predicted = [p for p in paths if p.source.startswith("model")]
    best = percolation(network, known)
    hop_of = {p.path_number: p.hop_id or f"path {p.path_number} ({p.source})" for p in paths}
    good_ev = config.loop.good_barrier_ev_of(working_ion)
    sampled, rows_are = _sample_rows(predicted, rows, n_rows) if predicted else (None, None)
    spread = percolation_spread(network, fixed, tuple(p.path_number for p in predicted), sampled, good_ev) if predicted else None
    good_rows = None
    if spread is not None and rows_are == rows.what:
        good_rows = np.nan_to_num(spread.row_barriers_ev, nan=np.inf) < good_ev
    summary = {
        "host_id": record.id,
        "formula": record.formula,
        "name": record.name,
        "working_ion": working_ion,
        "cutoff_a": network.cutoff_a,
        "n_sites": len(network.site_classes),
        "hops_total": len(paths),
        "hops_computed": len(fixed),
        "hops_predicted": len(predicted),
        "good_barrier_ev": good_ev,
        "percolation_barrier_ev": best.barrier_ev,
        "dimensionality": best.dimensionality,
        "directions": best.directions,
        "limiting_hop": hop_of[best.limiting_path] if best.limiting_path is not None else None,
        "missing_paths": [hop_of[n] for n in best.missing_paths],
        "site_energies_ev": {str(k): v for k, v in best.site_energies_ev.items()},
        "spread": None if spread is None else {
            "mean_ev": spread.mean_ev,
            "std_ev": spread.std_ev,
            "prob_good": spread.prob_good,
            "limiting_share": {hop_of[n]: share for n, share in spread.limiting_share.items()},
            "no_percolation_share": spread.no_percolation_share,
            "n_rows": spread.n_rows,
            "rows": rows_are,
        },
        "prob_good": _prob_good(best.barrier_ev, spread, good_ev),
        "estimate": _estimate(network_kept, best),
        "paths": [p.__dict__ for p in paths],
    }
    return HostAnalysis(summary, good_rows)


def _estimate(record: NetworkRecord, best) -> dict[str, Any] | None:
    """Order-of-magnitude D and σ at :data:`ESTIMATE_TEMPERATURE_K` from the percolation barrier
    and the limiting hop's length, every working-ion site of the cell a carrier."""
    network = record.network
    if best.barrier_ev is None or network is None or record.volume_a3 is None:
        return None
    volume_cm3 = record.volume_a3 * 1e-24
    estimate = transport_estimate(
        best.barrier_ev, network.path_lengths_a[best.limiting_path], best.dimensionality,
        len(network.site_classes) / volume_cm3, ESTIMATE_TEMPERATURE_K,
    )
    return {
        "temperature_k": estimate.temperature_k,
        "diffusivity_cm2_s": estimate.diffusivity_cm2_s,
        "conductivity_s_cm": estimate.conductivity_s_cm,
        "note": "order of magnitude: D = a² ν exp(-E/kT) / 2d with ν = 1e13 Hz; Nernst-Einstein σ",
    }


def _prob_good(barrier_ev: float | None, spread, good_ev: float) -> float | None:
    """P(percolation barrier < good threshold): from the rows, or 0/1 when every hop is computed."""
    if spread is not None:
        return spread.prob_good
    if barrier_ev is None:
        return None
    return float(barrier_ev < good_ev)


def analyse_hosts(config: CampaignConfig, store: Store, rows: HostRows | None = None,
                  host_ids: Collection[int] | None = None) -> dict[int, HostAnalysis]:
    """:func:`host_analysis` of every host (or of ``host_ids``) on one set of rows, by host id. A
    host whose network pymatgen cannot build is kept with its ``error`` (one bad structure does not
    hide the others)."""
    return analyses_and_signatures(config, store, rows, host_ids)[0]


def analyses_and_signatures(
    config: CampaignConfig, store: Store, rows: HostRows | None = None, host_ids: Collection[int] | None = None,
) -> tuple[dict[int, HostAnalysis], dict[int, set[str]]]:
    """:func:`analyse_hosts` and the signatures of each analysed host's network paths: a new hop
    of one of them may be borrowed by the host's answer (:mod:`alem.campaign.host_answers`)."""
    from alem.campaign.host_rows import host_rows

    rows = host_rows(config, store) if rows is None else rows
    reads = StoreReads(store, host_ids)
    analyses = {}
    wanted = [host.id for host in store.hosts()] if host_ids is None else sorted(set(host_ids))
    for host_id in wanted:
        try:
            analyses[host_id] = host_analysis(config, store, host_id, rows, reads=reads)
        except HostError as exc:
            analyses[host_id] = HostAnalysis(_failed_summary(config, store, host_id, str(exc)), None)
    signatures: dict[int, set[str]] = defaultdict(set)
    for (host_id, _), record in reads.network_records.items():
        if host_id in analyses:
            signatures[host_id].update(record.signatures.values())
    return analyses, dict(signatures)


def _failed_summary(config: CampaignConfig, store: Store, host_id: int, error: str) -> dict[str, Any]:
    """The summary of a host without a network: every answer empty, the reason in ``error``."""
    record = store.host(host_id)
    hops = store.hops(host_id=host_id)
    working_ion = hops[0].working_ion if hops else config.campaign.working_ion
    return {
        "host_id": record.id, "formula": record.formula, "name": record.name, "working_ion": working_ion,
        "cutoff_a": None, "n_sites": None, "hops_total": len(hops), "hops_computed": 0, "hops_predicted": 0,
        "good_barrier_ev": config.loop.good_barrier_ev_of(working_ion), "percolation_barrier_ev": None,
        "dimensionality": 0, "directions": "", "limiting_hop": None, "missing_paths": [], "site_energies_ev": {},
        "spread": None, "prob_good": None, "estimate": None, "paths": [], "error": error,
    }

