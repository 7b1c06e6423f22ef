"""The campaign's labels by fidelity: counts, cheap barriers for the fidelity-aware model, and the
(MLIP, DFT) pairs it learns the correction from.

A cheap barrier of a hop is its latest usable result of an MLIP fidelity (``mlip:<potential>``),
wrapped as :class:`alem.hops.fidelity.CheapBarrier`. The model only gets barriers of the
potentials it has an add-on for (``Ensemble.cheap_fidelities``, one add-on per potential): another
potential's barriers are never mixed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import TYPE_CHECKING

from alem.hops.calibration_log import CalibrationLog, load_shipped_calibration_pairs, log_name
from alem.hops.fidelity import (
    SHIPPED_CHEAP_FIDELITY,
    CheapBarrier,
    is_mlip,
    parse_fidelity,
)
from alem.store import Store

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.ensemble import Ensemble


def usable_counts_by_fidelity(store: Store) -> dict[str, int]:
    """Usable results per fidelity (``"unknown"`` for rows without one), most first."""
    counts = Counter(r.fidelity or "unknown" for r in store.results(usable=True))
    return dict(counts.most_common())


def cheap_barriers_of(store: Store, fidelity: str | None = None) -> dict[str, CheapBarrier]:
    """Latest usable MLIP barrier per hop (only ``fidelity`` if given)."""
    wanted = parse_fidelity(fidelity).lower() if fidelity else None
    out: dict[str, CheapBarrier] = {}
    for result in store.results(usable=True):
        if not is_mlip(result.fidelity) or result.barrier_ev is None:
            continue
        if wanted is not None and parse_fidelity(result.fidelity).lower() != wanted:
            continue
        out[result.hop_id] = CheapBarrier(parse_fidelity(result.fidelity), float(result.barrier_ev))
    return out


def model_cheap_fidelity(ensemble: Ensemble) -> str | None:
    """The potential of the model's first fidelity-aware add-on (None: it has none)."""
    return ensemble.cheap_fidelity


def cheap_barriers_by_hop(store: Store, fidelities: Collection[str]) -> dict[str, tuple[CheapBarrier, ...]]:
    """Per hop, its latest usable barrier of each potential in ``fidelities`` (in that order)."""
    per_fidelity = [cheap_barriers_of(store, fidelity) for fidelity in fidelities]
    hop_ids = {hop_id for barriers in per_fidelity for hop_id in barriers}
    return {hop_id: tuple(b[hop_id] for b in per_fidelity if hop_id in b) for hop_id in hop_ids}


def training_cheap_barriers(
    store: Store, cheap_fidelities: str | Collection[str], training_ids: Collection[str], config: CampaignConfig | None = None,
) -> dict[str, tuple[CheapBarrier, ...]]:
    """Paired cheap labels of the training hops, per hop one per potential of ``cheap_fidelities``:
    the MACE-MP pairs shipped with alem, the calibration pairs (shipped, and the campaign's own
    ``alem calibrate`` log) and the campaign's own MLIP barriers of those potentials (screened hops
    that got a DFT label later); a campaign's barrier wins over a calibration one of the same hop."""
    fidelities = [cheap_fidelities] if isinstance(cheap_fidelities, str) else list(cheap_fidelities)
    wanted = set(training_ids)
    pairs: dict[str, list[CheapBarrier]] = {}
    for fidelity in fidelities:
        found: dict[str, CheapBarrier] = {}
        if parse_fidelity(fidelity).lower() == SHIPPED_CHEAP_FIDELITY.lower():
            from alem.hops.io import load_shipped_cheap_barriers

            found.update(load_shipped_cheap_barriers())
        found.update(calibration_pairs(config, fidelity))
        found.update(cheap_barriers_of(store, fidelity))
        for hop_id, barrier in found.items():
            if hop_id in wanted:
                pairs.setdefault(hop_id, []).append(barrier)
    return {hop_id: tuple(barriers) for hop_id, barriers in pairs.items()}


#: Where a campaign keeps its calibration logs (relative to the campaign directory).
CALIBRATION_DIR = "calibration"


def calibration_log_for(config: CampaignConfig, fidelity: str) -> CalibrationLog:
    """The campaign's log of ``fidelity`` (``<campaign>/calibration/<potential>.jsonl``)."""
    return CalibrationLog(config.resolve(CALIBRATION_DIR) / log_name(fidelity))


def calibration_pairs(config: CampaignConfig | None, fidelity: str) -> dict[str, CheapBarrier]:
    """Usable barriers of ``fidelity`` of training hops: the ones shipped with alem, then the
    campaign's own calibration log (its lines win)."""
    pairs = load_shipped_calibration_pairs(fidelity)
    if config is not None:
        pairs.update(calibration_log_for(config, fidelity).pairs(fidelity))
    return pairs


MISMATCH_EVENT = "cheap_fidelity_mismatch"


def pairing_advice(screening: str) -> str:
    """How to give the model an add-on of the screening potential."""
    return (f"pair it: `alem calibrate` computes {screening} NEB barriers of training hops with the screening "
            "preset and registers a model version with its add-on")


def campaign_cheap_barriers(
    store: Store, config: CampaignConfig, ensemble: Ensemble, version_id: int
) -> tuple[dict[str, tuple[CheapBarrier, ...]], str | None]:
    """The campaign's cheap barriers for the model's ``predict``: per hop, its MLIP results of each
    potential the model has an add-on for (the prediction uses the first add-on with a usable
    barrier); and a warning the first time (per model version) that the screening potential has
    no add-on in the model. Barriers of a potential without an add-on are never fed (a model
    trained on MACE-MP pairs must not read CHGNet barriers): those hops keep the structure-only
    prediction."""
    fidelities = ensemble.cheap_fidelities
    screening = config.screening.fidelity
    message = None
    if screening and parse_fidelity(screening).lower() not in {f.lower() for f in fidelities}:
        already = any(e.payload.get("model_version") == version_id for e in store.events(kind=MISMATCH_EVENT))
        if not already:
            learned = f"learned its corrections from {', '.join(fidelities)} barriers" if fidelities else "has no fidelity-aware add-on"
            message = (
                f"model version {version_id} {learned} but the screening stage runs {screening}: its screening "
                f"barriers are not fed to the model (structure-only predictions); {pairing_advice(screening)}"
            )
            store.log_event(MISMATCH_EVENT, message, payload={"model_version": version_id})
    return cheap_barriers_by_hop(store, fidelities) if fidelities else {}, message


def backend_fidelity(config: CampaignConfig) -> str:
    """Fidelity of the barriers ``config``'s ``[backend]`` produces, from its preset; ``dft:GGA``
    when it varies per result (replay of a literature dataset) or cannot be read."""
    backend = config.backend
    if backend.kind == "replay":
        return SHIPPED_CHEAP_FIDELITY if backend.replay.barrier == "mace" else "dft:GGA"
    section = getattr(backend, backend.kind.replace("-", "_"))
    try:
        from alem.neb.presets import load_preset

        return load_preset(section.preset, config.campaign_dir).fidelity
    except (ValueError, OSError):  # a broken preset is reported by `alem doctor`; costs fall back to DFT
        return "dft:GGA"
