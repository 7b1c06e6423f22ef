"""Submit approved hops through a backend, exactly once each.

The protocol that makes a crash at any point harmless:

1. commit a job row with a fresh ``job_key`` (state ``created``);
2. ``backend.submit(hop, job_key)``: the backend records the key with the submission;
3. in ONE transaction: external id + job ``submitted`` + hop ``submitted``.

A process killed between 2 and 3 leaves a ``created`` row whose key the backend knows: the next
run asks ``backend.find_by_key`` and completes step 3 instead of submitting again. A row whose key
the backend does not know never reached it and is abandoned (the hop stays approved). Only rows
older than ``stale_after_s`` are resolved, so a submission in flight in another process is left
alone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from alem.backends.base import Backend
from alem.campaign.budget import approved_waiting, job_budget
from alem.config import CampaignConfig
from alem.hops.hop import Hop
from alem.store import JobStatus, Store


@dataclass
class SubmitReport:
    """What one submission round did, as plain sentences and ids."""

    submitted: list[tuple[str, str]] = field(default_factory=list)  # (hop_id, external_id)
    recovered: list[tuple[str, str]] = field(default_factory=list)  # found again through find_by_key
    abandoned: list[str] = field(default_factory=list)  # hop ids whose created job never reached the backend
    waiting: int = 0  # approved hops left for a later round
    limit: str | None = None  # why not all approved hops were submitted
    errors: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        lines = [f"submitted hop {hop} as {ext}" for hop, ext in self.submitted]
        lines += [f"found the earlier submission of hop {hop} ({ext}); recorded it instead of submitting again"
                  for hop, ext in self.recovered]
        lines += [f"a job of hop {hop} never reached the backend; it will be submitted afresh" for hop in self.abandoned]
        if self.limit and self.waiting:
            lines.append(f"{self.waiting} approved hops wait: {self.limit}")
        return lines + self.errors


def resolve_unsubmitted(store: Store, backend: Backend, stale_after_s: float, report: SubmitReport) -> None:
    """Settle ``created`` job rows of this backend older than ``stale_after_s`` (see module doc)."""
    cutoff = store.now() - stale_after_s
    for job in store.jobs(state=JobStatus.CREATED, stage="target"):
        if job.backend != backend.name or job.created_at > cutoff:
            continue
        external_id = backend.find_by_key(job.job_key)
        if external_id:
            store.mark_submitted(job.id, external_id)
            report.recovered.append((job.hop_id, external_id))
        else:
            store.abandon_job(job.id, f"backend {backend.name} has no submission with key {job.job_key}")
            report.abandoned.append(job.hop_id)


def _capacity(store: Store, config: CampaignConfig) -> tuple[int, str]:
    """How many jobs may start now, and the limit that binds."""
    approval = config.approval
    budget = job_budget(store, approval)
    if budget.core_hours_exhausted:
        return 0, (f"{budget.core_hours_today:.1f} core-hours spent in 24 h, at most "
                   f"{budget.max_core_hours_per_day:g} (approval.max_core_hours_per_day)")
    if budget.free_running <= budget.free_today:
        return max(budget.free_running, 0), f"at most {approval.max_running_jobs} jobs in flight (approval.max_running_jobs)"
    return max(budget.free_today, 0), f"at most {approval.max_jobs_per_day} submissions in 24 h (approval.max_jobs_per_day)"


def with_screening_path(store: Store, hop: Hop) -> Hop:
    """``hop`` carrying the converged path of its latest usable screening NEB (if any), so its DFT
    NEB can start from it (:mod:`alem.neb.screening_path`)."""
    from alem.neb.screening_path import SCREENING_PATH_KEY
    from alem.store.fidelity_columns import SCREENING_STAGE

    paths = [r for r in store.results(hop_id=hop.hop_id, usable=True, stage=SCREENING_STAGE) if r.details.get("path_images")]
    if paths:
        latest = paths[-1]
        hop.metadata[SCREENING_PATH_KEY] = {**latest.details["path_images"],
                                            "source": f"screening result {latest.id} ({latest.fidelity})"}
    return hop


def submit_approved(
    store: Store,
    backend: Backend,
    config: CampaignConfig,
    *,
    stale_after_s: float = 60.0,
    only_hops: Collection[str] | None = None,
) -> SubmitReport:
    """Submit approved hops without a live job, oldest approval first, within the approval limits.

    Safe to call any number of times, from a restarted process too: no hop is ever submitted while
    it has a live job. A backend error stops the round (the hop stays approved for the next one).
    """
    report = SubmitReport()
    resolve_unsubmitted(store, backend, stale_after_s, report)
    pending = [h for h in approved_waiting(store) if only_hops is None or h.hop_id in only_hops]
    pending.sort(key=lambda h: h.updated_at)  # oldest approval first
    room, limit = _capacity(store, config)
    for position, record in enumerate(pending):
        if position >= room:
            report.waiting = len(pending) - position
            report.limit = limit
            break
        job = store.begin_submission(record.hop_id, backend.name, getattr(backend, "fidelity", None))
        hop = with_screening_path(store, store.load_hops([record.hop_id])[0])
        try:
            external_id = backend.submit(hop, job.job_key)
        except Exception as exc:  # any backend failure: leave the hop approved, say why
            try:
                found = backend.find_by_key(job.job_key)
            except Exception as lookup_exc:  # the backend cannot say whether it arrived either
                # the created row stays: resolve_unsubmitted settles it once the backend answers
                also = "" if str(lookup_exc) == str(exc) else f"; asking whether it arrived failed too: {lookup_exc}"
                report.errors.append(
                    f"could not submit hop {record.hop_id} to {backend.name}: {exc}{also} "
                    "(whether it arrived is asked again next round)"
                )
                report.waiting = len(pending) - position
                break
            if found:
                store.mark_submitted(job.id, found)
                report.submitted.append((record.hop_id, found))
                continue
            store.abandon_job(job.id, f"submission failed: {type(exc).__name__}: {exc}")
            report.errors.append(f"could not submit hop {record.hop_id} to {backend.name}: {exc}")
            report.waiting = len(pending) - position
            break
        store.mark_submitted(job.id, external_id)
        report.submitted.append((record.hop_id, external_id))
    return report
