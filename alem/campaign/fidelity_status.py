"""What `alem status` and the report say about fidelities, screening and the remaining promise."""

from __future__ import annotations

from typing import Any

from alem.store import Store
from alem.store.fidelity_columns import SCREENING_STAGE


def fidelity_status(config, store: Store) -> dict[str, Any]:
    """Usable results per fidelity, what retraining counts, the screening stage and the promise."""
    from alem.campaign import usable_results_since
    from alem.campaign.fidelity_labels import MISMATCH_EVENT, usable_counts_by_fidelity
    from alem.campaign.promise import promise_summary

    model = store.current_model()
    screening_jobs = store.jobs(stage=SCREENING_STAGE)
    mismatch = [e for e in store.events(kind=MISMATCH_EVENT) if model and e.payload.get("model_version") == model.id]
    return {
        "results_by_fidelity": usable_counts_by_fidelity(store),
        "train_fidelities": list(config.model.train_fidelities),
        "new_for_retraining": usable_results_since(store, model.created_at, config.model.train_fidelities)
        if model
        else None,
        "screening": {
            "fidelity": config.screening.fidelity or None,
            "in_flight": sum(j.state.live for j in screening_jobs),
            "screened": sum(j.state.value == "completed" for j in screening_jobs),
            "failed": sum(j.state.value in ("failed", "lost") for j in screening_jobs),
        },
        "promise": promise_summary(store, config.loop.good_barrier_ev, threshold_ev_by_ion=config.loop.good_barrier_ev_by_ion),
        "warnings": [e.message for e in mismatch[-1:]],
    }


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def fidelity_status_lines(data: dict[str, Any]) -> list[str]:
    """Plain lines for the terminal (``data`` from :func:`fidelity_status`)."""
    counts = ", ".join(f"{n} {fidelity}" for fidelity, n in data["results_by_fidelity"].items()) or "none"
    new = data["new_for_retraining"] if data["new_for_retraining"] is not None else "-"
    trains_on = ", ".join(data["train_fidelities"])
    lines = [f"Usable results by fidelity: {counts}; retraining learns from {trains_on} "
             f"({new} new {trains_on} results since the current model was registered)"]
    screening = data["screening"]
    if screening["fidelity"]:
        lines.append(
            f"Screening at {screening['fidelity']} (no approval needed): {screening['screened']} screened, "
            f"{screening['in_flight']} in flight, {screening['failed']} failed"
        )
    promise = data["promise"]
    if promise["expected_good_now"] is not None:
        trend = " → ".join(_number(r["expected_good"]) for r in promise["trend"]) or "no rounds yet"
        best = " → ".join(_number(r["best_acquisition"]) for r in promise["trend"]) or "-"
        lines.append(
            f"Remaining promise: {promise['expected_good_now']:.2f} expected good hops (E_m < "
            f"{promise['threshold_ev']:g} eV) among {promise['unlabelled_scored']} unlabelled; "
            f"last best acquisition {_number(promise['last_best_acquisition'])}"
        )
        lines.append(f"  trend over rounds: expected good {trend}; best acquisition {best}")
    lines += [f"warning: {w}" for w in data["warnings"]]
    return lines
