"""Material-level answers for the campaign's hosts (``alem hosts``, ``alem show HOST_ID``).

Each host's migration network (:mod:`alem.candidates.network`) gets, per distinct path, the barrier
of its stored hop: the latest usable result whose fidelity ``[model] train_fidelities`` selects
(the labels the model trusts), else the current model's prediction. The spread of the percolation
barrier comes from sample rows of the predicted hops (computed hops stay at their results): the
rows of a :class:`~alem.acquisition.PredictionTable` when one is given (the rows the acquisition
uses), else independent normal draws from each stored prediction's mean and σ. Neither is yet a
joint posterior draw across hops (issue #22 makes the acquisition's rows joint; then these follow).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from alem.candidates.network import (
    HopBarrier,
    HostNetwork,
    host_network,
    percolation,
    percolation_spread,
)
from alem.hops.fidelity import matches

if TYPE_CHECKING:
    from alem.acquisition import PredictionTable
    from alem.config import CampaignConfig
    from alem.store import Store
    from alem.store.records import HopRecord

#: Sample rows drawn from stored predictions when no prediction table is given.
DEFAULT_SAMPLE_ROWS = 64
#: Fixed seed: the same store gives the same table every time it is asked.
SAMPLE_SEED = 0
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


def _path_number(hop: HopRecord, network: HostNetwork) -> int | None:
    """The distinct path a stored hop was enumerated as (its ``PATH N``), checked by length."""
    found = re.fullmatch(r"PATH (\d+)", str(hop.metadata.get("path_info", "")))
    if found and abs(network.path_lengths_a.get(int(found[1]), -1.0) - hop.hop_length_a) < PATH_LENGTH_TOLERANCE_A:
        return int(found[1])
    same_length = [n for n, length in network.path_lengths_a.items() if abs(length - hop.hop_length_a) < PATH_LENGTH_TOLERANCE_A]
    return same_length[0] if len(same_length) == 1 else None


def _network_of(store: Store, host_id: int, hops: list[HopRecord], working_ion: str) -> HostNetwork:
    """The host's network at the enumeration cutoff, widened to the longest stored hop (a
    ``--max-hop-length`` enumeration) so every stored hop is on it."""
    structure = store.host_structure(host_id)
    network = host_network(structure, working_ion)
    longest_a = max((h.hop_length_a for h in hops), default=0.0)
    if longest_a > network.cutoff_a + PATH_LENGTH_TOLERANCE_A:
        network = host_network(structure, working_ion, longest_a + PATH_LENGTH_TOLERANCE_A)
    return network


def path_barriers(config: CampaignConfig, store: Store, network: HostNetwork, hops: list[HopRecord]) -> list[PathBarrier]:
    """Every distinct path of ``network`` with the barrier its stored hop has (result, else prediction)."""
    model = store.current_model()
    predictions = store.predictions(hop_ids=[h.hop_id for h in hops]) if model is not None else {}
    stored = {}
    for hop in hops:
        number = _path_number(hop, network)
        if number is not None and number not in stored:
            stored[number] = hop
    copies = {n: 0 for n in network.path_lengths_a}
    for edge in network.edges:
        copies[edge.path_number] += 1
    paths = []
    for number, length_a in sorted(network.path_lengths_a.items()):
        hop = stored.get(number)
        barrier = dict(barrier_ev=None, std_ev=None, source="none")
        if hop is not None:
            results = [
                r for r in store.results(hop.hop_id, usable=True)
                if r.barrier_ev is not None and matches(r.fidelity, config.model.train_fidelities)
            ]
            if results:
                latest = results[-1]
                change = None if latest.reverse_barrier_ev is None else latest.barrier_ev - latest.reverse_barrier_ev
                barrier = dict(barrier_ev=latest.barrier_ev, std_ev=0.0, source=f"result {latest.fidelity}",
                               site_energy_change_ev=change)
            elif hop.hop_id in predictions:
                p = predictions[hop.hop_id]
                barrier = dict(barrier_ev=p.mean_ev, std_ev=p.std_ev, source=f"model {p.model_version_id}")
        paths.append(PathBarrier(
            number, length_a, copies[number], hop.hop_id if hop else None, hop.state.value if hop else None, **barrier
        ))
    return paths


def _sample_rows(paths: list[PathBarrier], table: PredictionTable | None, n_rows: int) -> np.ndarray:
    """n_rows x len(paths) barriers (eV) of the predicted paths."""
    if table is not None:
        index = table.index_of()
        if all(p.hop_id in index for p in paths):
            members = table.calibrated_members()
            return members[:, [index[p.hop_id] for p in paths]]
    mean = np.array([p.barrier_ev for p in paths])
    std = np.array([p.std_ev for p in paths])
    draws = np.random.default_rng(SAMPLE_SEED).standard_normal((n_rows, len(paths)))
    return mean[None, :] + std[None, :] * draws


def host_summary(
    config: CampaignConfig,
    store: Store,
    host_id: int,
    table: PredictionTable | None = None,
    n_rows: int = DEFAULT_SAMPLE_ROWS,
) -> dict[str, Any]:
    """One host's network, percolation barrier, dimensionality, limiting hop and their spread, JSON-ready."""
    record = store.host(host_id)
    hops = store.hops(host_id=host_id)
    working_ion = hops[0].working_ion if hops else config.campaign.working_ion
    network = _network_of(store, host_id, hops, working_ion)
    paths = path_barriers(config, store, network, hops)
    known = {p.path_number: HopBarrier(p.barrier_ev, p.source, p.site_energy_change_ev) for p in paths if p.barrier_ev is not None}
    fixed = {p.path_number: known[p.path_number] for p in paths if p.source.startswith("result")}
    predicted = [p for p in paths if p.source.startswith("model")]
    best = percolation(network, known)
    hop_of = {p.path_number: p.hop_id or f"path {p.path_number}" for p in paths}
    good_ev = config.loop.good_barrier_ev
    spread = percolation_spread(
        network, fixed, tuple(p.path_number for p in predicted), _sample_rows(predicted, table, n_rows), good_ev
    ) if predicted else None
    return {
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
            "rows": "prediction table" if table is not None else "independent normal draws from stored predictions",
        },
        "prob_good": _prob_good(best.barrier_ev, spread, good_ev),
        "paths": [p.__dict__ for p in paths],
    }


def _prob_good(barrier_ev: float | None, spread, good_ev: float) -> float | None:
    """P(percolation barrier < good threshold): from the rows, or 0/1 when every hop is computed."""
    if spread is not None:
        return spread.prob_good
    if barrier_ev is None:
        return None
    return float(barrier_ev < good_ev)


def host_table(config: CampaignConfig, store: Store, table: PredictionTable | None = None) -> list[dict[str, Any]]:
    """:func:`host_summary` of every host of the campaign, in host id order."""
    return [host_summary(config, store, host.id, table) for host in store.hosts()]

