"""Pairing a screening potential with the model (``alem calibrate``).

A fidelity-aware add-on (:mod:`alem.inference.fidelity_aware`) learns how one potential's NEB
barriers relate to DFT. To pair a potential the model has no add-on for, its NEB barriers are
computed for DFT-labelled training hops (the shipped literature hops, smallest cells first) with the
campaign's screening preset, through the campaign's screening backend (local worker processes, or
batch jobs on Slurm/PBS), one line per finished hop in a calibration log
(:mod:`alem.hops.calibration_log`). Then the add-on is fitted on those pairs and the model with it
is registered as a new model version.

Resumable: a hop with a line in the log is not run again; a NEB submitted before a kill is found
again by its job key (``calibrate:<fidelity>:<hop id>``) and waited for, never submitted twice.

The hops keep their published cell: their DFT barriers were computed in it, so the potential is
judged on the same cell (the preset's NEB settings are used unchanged; only its supercell
expansion is skipped).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alem.backends.base import Backend, QueueState
from alem.errors import AlemError
from alem.hops.calibration_log import CalibrationLog, row_unusable_reason
from alem.hops.fidelity import CheapBarrier, parse_fidelity
from alem.hops.hop import Hop
from alem.neb.presets import Preset

if TYPE_CHECKING:
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import Store

#: Fewer usable pairs than this and no add-on is fitted (its weights and σ factor would be noise);
#: the add-on's own minimum (:data:`alem.training.fidelity_aware.MIN_PAIRED_HOPS`) is the same.
MIN_CALIBRATION_PAIRS = 20


class CalibrationError(AlemError, ValueError):
    """A calibration that cannot run or cannot be fitted (the message says why and what to do)."""


def calibration_hops(limit: int | None = None, hop_ids: Sequence[str] = (), ion: str | None = None) -> list[Hop]:
    """Training hops to calibrate on: the shipped literature hops (only ``hop_ids`` when given,
    only ``ion``'s when given), smallest cells first, at most ``limit``."""
    from alem.hops import load_training_hops

    hops = load_training_hops()
    if hop_ids:
        by_id = {h.hop_id: h for h in hops}
        unknown = [i for i in hop_ids if i not in by_id]
        if unknown:
            raise CalibrationError(f"not shipped training hops: {', '.join(unknown)}")
        hops = [by_id[i] for i in hop_ids]
    if ion:
        hops = [h for h in hops if h.working_ion == ion]
    hops = sorted(hops, key=lambda h: (h.n_sites, h.hop_id))
    return hops[:limit] if limit is not None else hops


def published_cell_preset(preset: Preset) -> Preset:
    """``preset`` with its NEB settings unchanged, run in the hop's own (published) cell."""
    copy = preset.model_copy(deep=True)
    copy.supercell.min_image_distance_a = 0.0
    return copy


def job_key(fidelity: str, hop_id: str) -> str:
    return f"calibrate:{parse_fidelity(fidelity)}:{hop_id}"


def _row(hop: Hop, fidelity: str, preset: str, external_id: str, seconds: float, outcome) -> dict[str, Any]:
    barrier = outcome.barrier_ev if outcome is not None else None
    reverse = outcome.reverse_barrier_ev if outcome is not None else None
    return {
        "hop_id": hop.hop_id,
        "fidelity": fidelity,
        "preset": preset,
        "n_sites": hop.n_sites,
        "barrier_ev": None if barrier is None or not math.isfinite(barrier) else round(float(barrier), 6),
        "reverse_barrier_ev": None if reverse is None or not math.isfinite(reverse) else round(float(reverse), 6),
        "converged": bool(outcome.converged) if outcome is not None else False,
        "failure_reason": (outcome.unusable_reason if outcome is not None else "the backend lost the job"),
        "seconds": round(seconds, 1),
        "external_id": external_id,
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@dataclass
class CalibrationRun:
    """What one ``run_calibration`` did: lines written now, and the hops it had found done."""

    written: list[dict[str, Any]]
    already_done: int
    stopped_early: bool = False


def run_calibration(
    hops: Sequence[Hop],
    backend: Backend,
    log: CalibrationLog,
    fidelity: str,
    preset: str,
    max_running: int = 1,
    poll_s: float = 5.0,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> CalibrationRun:
    """NEBs of ``hops`` through ``backend`` (running the preset named ``preset``) (at most ``max_running`` at once), one log line per
    finished hop; hops already in ``log`` are skipped. ``keep_going`` returning False stops new
    submissions (NEBs in flight are still waited for and logged)."""
    fidelity = parse_fidelity(fidelity)
    done = log.rows()
    todo = [h for h in hops if h.hop_id not in done]
    in_flight: dict[str, tuple[Hop, str, float]] = {}
    written: list[dict[str, Any]] = []
    stopped = False
    while todo or in_flight:
        while todo and len(in_flight) < max_running:
            if not keep_going():
                stopped, todo = True, []
                break
            hop = todo.pop(0)
            key = job_key(fidelity, hop.hop_id)
            external_id = backend.find_by_key(key) or backend.submit(hop, key)
            in_flight[hop.hop_id] = (hop, external_id, time.time())
        if not in_flight:
            break
        states = backend.poll([ext for _, ext, _ in in_flight.values()])
        finished = [(hop_id, states[ext]) for hop_id, (_, ext, _) in in_flight.items()
                    if states.get(ext) in (QueueState.COMPLETED, QueueState.FAILED, QueueState.LOST)]
        for hop_id, state in finished:
            hop, external_id, started = in_flight.pop(hop_id)
            outcome = None if state == QueueState.LOST else backend.outcome(external_id)
            cost = backend.job_cost(external_id)
            seconds = cost.wall_s if cost is not None else time.time() - started
            row = _row(hop, fidelity, preset, external_id, seconds, outcome)
            log.append(row)
            written.append(row)
            if on_row is not None:
                on_row(row)
        if in_flight and not finished:
            time.sleep(poll_s)
    return CalibrationRun(written, sum(1 for h in hops if h.hop_id in done), stopped)


def screening_fidelity(config: CampaignConfig) -> str:
    """The potential a campaign screens with; refuses a campaign without a screening stage."""
    if not config.screening.fidelity:
        raise CalibrationError(
            f"{config.config_path}: no [screening] fidelity: calibrate pairs the screening potential with the "
            "model, so set [screening] fidelity and [screening.backend] first"
        )
    return parse_fidelity(config.screening.fidelity)


def calibration_backend(config: CampaignConfig) -> tuple[Backend, str]:
    """The campaign's screening backend, running its preset in the hops' published cells, and
    the name of what produces its barriers (the preset; ``replay`` for a replayed dataset)."""
    from alem.campaign.screening import make_screening_backend

    backend = make_screening_backend(config)
    preset = getattr(backend, "preset", None)
    if preset is None:
        if config.screening.backend.kind != "replay":
            raise CalibrationError(f"{config.config_path}: [screening.backend] kind {config.screening.backend.kind!r} "
                                   "cannot run a calibration; use local, slurm or pbs")
        return backend, "replay"
    backend.preset = published_cell_preset(preset)  # type: ignore[attr-defined]
    return backend, preset.name


def unusable_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Unusable lines per reason (the reason's first clause), most first."""
    counts: dict[str, int] = {}
    for row in rows:
        reason = row_unusable_reason(row)
        if reason is not None:
            key = reason.split(":")[0].split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def fit_calibrated_version(
    store: Store, config: CampaignConfig, current: LoadedModel, fidelity: str, pairs: dict[str, CheapBarrier]
) -> tuple[LoadedModel, dict]:
    """A new model version: ``current``'s directory with an add-on of ``fidelity`` fitted on
    ``pairs`` (usable calibration barriers of training hops), registered as the current model.

    Raises:
        CalibrationError: fewer than :data:`MIN_CALIBRATION_PAIRS` usable pairs among the model's
            training hops, or a model without the out-of-fold predictions the add-on is fitted from.
    """
    from alem.campaign.model_versions import LoadedModel, load_ensemble, store_card
    from alem.campaign.retrain import new_version_dir
    from alem.hops import load_training_hops
    from alem.model_dir import OOF_FILENAME
    from alem.training.fidelity_aware import add_fidelity_addon

    hops = load_training_hops()
    trained = {h.hop_id for h in hops}
    usable = {h: b for h, b in pairs.items() if h in trained}
    if len(usable) < MIN_CALIBRATION_PAIRS:
        raise CalibrationError(
            f"only {len(usable)} usable {fidelity} barriers of training hops; an add-on needs at least "
            f"{MIN_CALIBRATION_PAIRS} (run `alem calibrate --limit N` with a larger N, no add-on fitted)"
        )
    if not (current.path / OOF_FILENAME).is_file():
        raise CalibrationError(
            f"{current.path}: model version {current.version_id} has no {OOF_FILENAME} (a loop retraining "
            "runs no cross-validation); calibrate a model trained by `alem train` or the shipped one "
            "([model] path in alem.toml)"
        )
    out_dir = new_version_dir(config)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(current.path, staging)
    section = add_fidelity_addon(staging, hops, usable, fidelity)
    if section is None:  # pragma: no cover (pairs counted above; the model has a stack and OOF)
        shutil.rmtree(staging)
        raise CalibrationError(f"{current.path}: the add-on could not be fitted (no stack in the model)")
    staging.rename(out_dir)
    ensemble = load_ensemble(out_dir)
    version_id = store.add_model_version(out_dir, store_card(ensemble.card), ensemble.card.get("dataset_hash"),
                                         ensemble.card.get("n_training_hops"))
    store.log_event(
        "calibrated",
        f"model version {version_id}: version {current.version_id} with a {fidelity} add-on fitted on "
        f"{section['n_paired_hops']} calibration pairs",
        payload={"path": str(out_dir), "parent": current.version_id, "fidelity": fidelity},
    )
    return LoadedModel(version_id, out_dir, ensemble), section


def describe_row(row: dict[str, Any]) -> str:
    """One line for the progress output."""
    reason = row_unusable_reason(row)
    what = f"{row['barrier_ev']:.3f} eV" if reason is None else f"unusable: {reason}"
    return f"{row['hop_id']} ({row['n_sites']} sites, {row['seconds']:.0f} s): {what}"
