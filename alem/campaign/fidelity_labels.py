"""The campaign's labels by fidelity: counts, cheap barriers for the fidelity-aware model, and the
(MLIP, DFT) pairs it learns the correction from.

A cheap barrier of a hop is its latest usable result of an MLIP fidelity (``mlip:<potential>``),
wrapped as :class:`alem.hops.fidelity.CheapBarrier`. The model only gets barriers of the one
potential it was trained with (``Ensemble.cheap_fidelity``): another potential's barriers are
never mixed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import TYPE_CHECKING

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
    """The potential the model's fidelity-aware part was trained with (None: it has none)."""
    return ensemble.cheap_fidelity


def training_cheap_barriers(store: Store, cheap_fidelity: str, training_ids: Collection[str]) -> dict[str, CheapBarrier]:
    """Paired cheap labels of the training hops: the shipped MACE-MP pairs (when the model uses
    MACE-MP) and the campaign's own MLIP barriers of ``cheap_fidelity``."""
    wanted = set(training_ids)
    pairs: dict[str, CheapBarrier] = {}
    if parse_fidelity(cheap_fidelity).lower() == SHIPPED_CHEAP_FIDELITY.lower():
        from alem.hops.io import load_shipped_cheap_barriers

        pairs.update({h: b for h, b in load_shipped_cheap_barriers().items() if h in wanted})
    pairs.update({h: b for h, b in cheap_barriers_of(store, cheap_fidelity).items() if h in wanted})
    return pairs


MISMATCH_EVENT = "cheap_fidelity_mismatch"


def campaign_cheap_barriers(
    store: Store, config: CampaignConfig, ensemble: Ensemble, version_id: int
) -> tuple[dict[str, CheapBarrier], str | None]:
    """The campaign's cheap barriers for the model's ``predict`` (its MLIP results of the model's
    own potential), and a warning the first time (per model version) that potential differs from
    ``[screening] fidelity``.

    Empty when the model has no fidelity-aware part, or when its potential differs from the
    screening stage's (never fed then: a model trained on MACE-MP pairs must not read CHGNet barriers).
    """
    model_fidelity = model_cheap_fidelity(ensemble)
    if model_fidelity is None:
        return {}, None
    screening = config.screening.fidelity
    if screening and parse_fidelity(model_fidelity).lower() != parse_fidelity(screening).lower():
        already = any(e.payload.get("model_version") == version_id for e in store.events(kind=MISMATCH_EVENT))
        if already:
            return {}, None
        message = (
            f"model version {version_id} learned its correction from {model_fidelity} barriers but the screening "
            f"stage runs {screening}: its cheap barriers are not fed to the model (train a model on "
            f"{screening} pairs, or screen with {model_fidelity})"
        )
        store.log_event(MISMATCH_EVENT, message, payload={"model_version": version_id})
        return {}, message
    return cheap_barriers_of(store, model_fidelity), None


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
