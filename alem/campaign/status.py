"""A campaign's state at a glance (``alem status``): hops per state, jobs in flight, results, the
current model and its cross-validated error, and whether the loop is alive; and everything known
about one hop (``alem show``)."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from alem.campaign.ingest import usable_results_since
from alem.campaign.model_versions import cv_mae_ev

if TYPE_CHECKING:
    from alem.config import CampaignConfig
    from alem.store import LoopStatus, Store

#: A heartbeat older than this many ticks (plus a minute) means the loop is gone.
MISSED_TICKS = 3


def loop_alive(status: LoopStatus | None, tick_seconds: float, now: float | None = None) -> bool:
    """A loop is alive when its heartbeat is recent and, on this host, its process exists."""
    now = time.time() if now is None else now
    if status is None or now - status.heartbeat > MISSED_TICKS * tick_seconds + 60:
        return False
    if status.hostname == socket.gethostname() and status.pid:
        try:
            os.kill(status.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def campaign_status(config: CampaignConfig, store: Store) -> dict[str, Any]:
    """Everything ``alem status`` shows, as one JSON-ready dict (``alem status --json`` prints it)."""
    from alem.campaign.budget import core_hour_ledger
    from alem.campaign.fidelity_status import fidelity_status

    model = store.current_model()
    loop = store.loop_status()
    live = store.jobs(live=True)
    results = store.results()
    return {
        "campaign": config.campaign.name,
        "directory": str(config.campaign_dir),
        "working_ion": config.campaign.working_ion,
        "backend": config.backend.kind,
        "store": str(store.path),
        "schema_version": store.schema_version,
        "hops": store.hop_counts(),
        "running_jobs": [j.as_dict() for j in live],
        "results": {
            "usable": sum(r.usable for r in results),
            "failed": sum(not r.usable for r in results),
            "new_since_current_model": usable_results_since(store, model.created_at) if model else None,
        },
        "model": None
        if model is None
        else {
            "id": model.id,
            "path": model.path,
            "created_at": model.created_at,
            "n_training_hops": model.n_training_hops,
            "dataset_hash": model.dataset_hash,
            "cv_mae_ev": cv_mae_ev(model.card),
            "training_fidelities": model.card.get("training_fidelities"),
        },
        "loop": None if loop is None else {**loop.as_dict(), "alive": loop_alive(loop, config.loop.tick_seconds)},
        "problems": store.integrity_check(sqlite_pages=False),  # SQLite's page check reads the whole file: `alem reconcile` runs it
        "fidelity": fidelity_status(config, store),
        "retraining": retraining_status(store),
        "scoring": scoring_status(store),
        "core_hours": core_hour_ledger(store, config.approval),
    }


def retraining_status(store: Store) -> dict[str, Any]:
    """The live retraining job ([model] retrain_on = "backend") and the latest one, as dicts."""
    live = store.live_retrain_job()
    last = store.retrain_jobs(limit=1)
    return {"live": live.as_dict() if live else None, "last": last[0].as_dict() if last else None}


def retraining_status_line(retraining: dict[str, Any]) -> str | None:
    """One line for `alem status` about retraining jobs; None when there is nothing to say."""
    return _batch_job_line("Retraining", "retraining job", retraining, "; the loop uses the current model meanwhile")


def scoring_status(store: Store) -> dict[str, Any]:
    """The live scoring job ([model] score_on = "backend") and the latest one, as dicts."""
    live = store.live_score_job()
    last = store.score_jobs(limit=1)
    return {"live": dataclasses.asdict(live) if live else None, "last": dataclasses.asdict(last[0]) if last else None}


def scoring_status_line(scoring: dict[str, Any]) -> str | None:
    """One line for `alem status` about scoring jobs; None when there is nothing to say."""
    job = scoring["live"]
    what = "" if job is None else f", {job['n_hops']} candidates, model version {job['model_version_id']}"
    return _batch_job_line("Scoring", "scoring job", scoring, "", what)


def _batch_job_line(title: str, noun: str, jobs: dict[str, Any], meanwhile: str, what: str = "") -> str | None:
    job = jobs["live"]
    if job is not None:
        where = f"as {job['external_id']}" if job["external_id"] else "(not submitted yet)"
        return (f"{title}: {noun} {job['id']} (attempt {job['attempt']}{what}) {job['state']} on {job['runner']} {where}, "
                f"run directory {job['run_dir']}{meanwhile}")
    last = jobs["last"]
    if last is not None and last["state"] != "completed":
        return f"{title}: the last {noun} {last['id']} (attempt {last['attempt']}) {last['state']}: {last['error']}"
    return None


def hop_status(store: Store, hop_id: str) -> dict[str, Any]:
    """Everything the store knows about one hop, as one JSON-ready dict (``alem show --json``):
    the hop and its host, every model version's prediction, proposals, decisions, jobs, results,
    events. :class:`~alem.store.UnknownHopError` for a hop the store does not have."""
    record = store.hop(hop_id)
    return {
        "hop": record.as_dict(),
        "host": store.host(record.host_id).as_dict() if record.host_id is not None else None,
        "predictions": [
            p.as_dict() for m in store.model_versions() for p in store.predictions(m.id, hop_ids=[hop_id]).values()
        ],
        "proposals": [p.as_dict() for p in store.proposals(hop_id=hop_id)],
        "decisions": [d.as_dict() for d in store.decisions(hop_id)],
        "jobs": [j.as_dict() for j in store.jobs(hop_id=hop_id)],
        "results": [r.as_dict() for r in store.results(hop_id=hop_id)],
        "events": [e.as_dict() for e in store.events(hop_id=hop_id)],
    }
