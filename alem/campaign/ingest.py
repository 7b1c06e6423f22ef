"""Finished results as training data: ``Hop`` objects with barriers, and the dataset export.

Only usable results (converged, finite barrier, no failure reason) become hops; failed results
stay in the store for inspection and never reach the dataset. Provenance is
``source="alem:<backend>"`` and ``xc`` taken from the outcome (``details["xc"]`` if the backend
gave it, else the part of ``method`` after ``engine:``, e.g. "vasp:GGA+U CI-NEB" -> "GGA+U"), and
``fidelity`` the result's (``dft:GGA+U``, ``mlip:CHGNet``: see :mod:`alem.hops.fidelity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from alem.hops.fidelity import is_dft, matches
from alem.hops.hop import Hop, Provenance
from alem.hops.io import write_dataset
from alem.store import JobRecord, ResultRecord, Store


def xc_of(result: ResultRecord) -> str | None:
    """Functional (or potential) that produced a result."""
    if result.details.get("xc"):
        return str(result.details["xc"])
    _, _, rest = result.method.partition(":")
    words = (rest or result.method).split()
    return words[0] if words else None


def _ranked(result: ResultRecord) -> tuple[bool, int]:
    return is_dft(result.fidelity), result.id


def _with_attempts(store: Store, result: ResultRecord, job: JobRecord) -> dict:
    """The result's provenance with its attempts filled from the jobs ledger (restarts and their
    core-hours live there, not in the record the NEB wrote), so an exported label says what it cost;
    ``job``: the result's job."""
    return {**result.provenance, "attempts": store.attempt_ledger(result.hop_id, job.stage, result.job_id)}


def result_hops(store: Store, fidelities: Sequence[str] | None = None) -> list[Hop]:
    """Every hop with a usable result of the selected fidelities (selectors as in
    :func:`alem.hops.fidelity.matches`; None: all), carrying its barrier, oldest first.

    One barrier per hop: a DFT result wins over an MLIP one, then the latest result.
    """
    latest: dict[str, ResultRecord] = {}
    for result in store.results(usable=True):
        if fidelities is not None and not matches(result.fidelity, fidelities):
            continue
        if result.hop_id not in latest or _ranked(result) > _ranked(latest[result.hop_id]):
            latest[result.hop_id] = result
    hops = store.load_hops(list(latest))
    out = []
    for hop in hops:
        result = latest[hop.hop_id]
        job = store.job(result.job_id)
        metadata = dict(hop.metadata)
        metadata.update(
            {
                "alem_result_id": result.id,
                "method": result.method,
                "reverse_barrier_ev": result.reverse_barrier_ev,
                "provenance": _with_attempts(store, result, job),
                "image_energies_ev": result.image_energies_ev,
            }
        )
        out.append(
            replace(
                hop,
                barrier_ev=result.barrier_ev,
                provenance=Provenance(source=f"alem:{job.backend}", xc=xc_of(result), fidelity=result.fidelity),
                metadata=metadata,
            )
        )
    return out


def usable_results_since(store: Store, since: float, fidelities: Sequence[str] | None = None) -> int:
    """Usable results (of the selected fidelities; None: all) recorded at or after ``since`` (Unix s),
    e.g. since the current model was made."""
    return sum(
        1
        for r in store.results(usable=True)
        if r.created_at >= since and (fidelities is None or matches(r.fidelity, fidelities))
    )


def unusable_result_hops(store: Store, fidelities: Sequence[str] | None = None) -> list[Hop]:
    """Every hop whose NEB produced only unusable results, once, with its latest one: no barrier
    (``target`` null, never a label), ``usable`` false and the reason, and what the NEB measured
    (forward and effective barrier, image energies) for a person to judge."""
    usable = {r.hop_id for r in store.results(usable=True)}
    latest: dict[str, ResultRecord] = {}
    for result in store.results(usable=False):
        if result.hop_id in usable or (fidelities is not None and not matches(result.fidelity, fidelities)):
            continue
        latest[result.hop_id] = result
    out = []
    for hop in store.load_hops(list(latest)):
        result = latest[hop.hop_id]
        metadata = {**hop.metadata, "usable": False, "unusable_reason": result.failure_reason, "method": result.method,
                    "forward_barrier_ev": result.barrier_ev, "reverse_barrier_ev": result.reverse_barrier_ev,
                    "effective_barrier_ev": result.details.get("effective_barrier_ev"),
                    "image_energies_ev": result.image_energies_ev}
        job = store.job(result.job_id)
        metadata["provenance"] = _with_attempts(store, result, job)
        out.append(replace(hop, barrier_ev=None, metadata=metadata,
                           provenance=Provenance(source=f"alem:{job.backend}", xc=xc_of(result), fidelity=result.fidelity)))
    return out


def export_dataset(
    store: Store, path: str | Path, fidelities: Sequence[str] | None = None, with_unusable: bool = False
) -> tuple[Path, int]:
    """Write every usable result (of the selected fidelities) in the Em dataset layout, with its
    fidelity (trainable with ``read_hops``); ``with_unusable`` adds the hops whose results were all
    unusable, marked so (:func:`unusable_result_hops`). Returns the path and the number of barriers."""
    hops = result_hops(store, fidelities)
    extra = unusable_result_hops(store, fidelities) if with_unusable else []
    return write_dataset(hops + extra, path), len(hops)
