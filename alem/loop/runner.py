"""``alem loop``: the campaign's long-running process.

One tick::

    reconcile   store vs backend: results ingested, failures recorded, lost jobs retried
    screen      with [screening] fidelity: cheap NEBs settled, new ones on candidates without
                approval within the stage's own budget (alem.campaign.screening)
    retrain     when >= [model] retrain_after_results new usable results arrived
    score       candidates the current model has not predicted yet (a large pool as a batch job
                with [model] score_on = "backend": alem.campaign.score_job)
    propose     when fewer than [acquisition] min_approved_queue approved hops wait and no
                proposal waits for a decision
    approve     automatically, within the budget, if [approval] auto_approve
    submit      approved hops, within the budget, exactly once each
    stop rule   [loop] stop_when_expected_good_below / stop_after_rounds_below_floor
                (alem.campaign.stop_rule): the loop ends with a plain message
    sleep       [loop] tick_seconds (a stop request cuts it short)

Every step is made of store transactions, so a loop killed at any moment (even with -9) leaves a
consistent store; the next start reconciles and carries on. The current phase and a heartbeat go
to the store's loop status (what ``alem status`` shows), every action to the campaign log file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from alem.errors import AlemError
from alem.loop.heartbeat import Heartbeat
from alem.loop.lock import CampaignLock
from alem.loop.signals import StopRequest
from alem.store import HopState, Store

if TYPE_CHECKING:
    from alem.backends.base import Backend
    from alem.campaign.model_versions import LoadedModel
    from alem.config import CampaignConfig
    from alem.store import JobRecord

#: At start-up the lock guarantees no other loop is mid-submission, so job rows left "created" by
#: a killed loop are settled after only this long (a manual command may still be submitting).
STARTUP_STALE_AFTER_S = 5.0
STALE_AFTER_S = 60.0
#: A loop whose ticks fail this many times in a row stops (and says why) instead of spinning.
MAX_FAILED_TICKS = 5


class LoopFailedError(AlemError, RuntimeError):
    """Ticks failed :data:`MAX_FAILED_TICKS` times in a row; the loop stopped instead of spinning."""


@dataclass
class TickReport:
    tick: int
    ingested: int = 0
    failed: int = 0
    retrained_version: int | None = None
    scored: int = 0
    proposed: list[str] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    screened: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@dataclass
class LoopOptions:
    max_ticks: int | None = None
    tick_seconds: float | None = None
    retrain: bool = True
    #: stop once nothing is left to do (no candidates, nothing proposed, approved or running)
    until_idle: bool = False
    progress: bool = False
    #: re-raise the first error of a tick (tests, demo) instead of logging it and going on
    fail_fast: bool = False
    #: stop after this much wall time (the demo's budget); None = run until stopped
    max_seconds: float | None = None


def campaign_logger(log_path: Path) -> logging.Logger:
    logger = logging.getLogger(f"alem.loop.{log_path}")
    if not logger.handlers:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s pid=%(process)d %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class CampaignLoop:
    """Runs ticks for one campaign. ``say`` receives every human-readable line (the CLI prints it)."""

    def __init__(
        self, config: CampaignConfig, backend: Backend, options: LoopOptions, say: Callable[[str], None] = lambda line: None,
        show_jobs: Callable[[list[JobRecord]], None] | None = None,
    ) -> None:
        """``show_jobs`` gets the live jobs before each sleep and an empty list when the loop ends
        (the CLI shows which NEBs run and for how long)."""
        self.config = config
        self.backend = backend
        self.options = options
        self._say = say
        self._show_jobs = show_jobs
        self.log = campaign_logger(config.resolve(config.campaign.log_file))
        self.stop = StopRequest(on_request=self._on_signal)
        self._pages_checked = False
        self.store: Store | None = None
        self.heartbeat: Heartbeat | None = None
        self.model: LoadedModel | None = None
        self.screening_backend: Backend | None = None
        self.stopped_by_rule: str | None = None

    # ------------------------------------------------------------------ output
    def _on_signal(self, name: str) -> None:
        self.tell(f"{name} received: finishing the current step, then stopping (send it again to stop at once)")

    def tell(self, line: str, level: int = logging.INFO) -> None:
        self.log.log(level, line)
        self._say(line)

    def phase(self, phase: str, message: str = "") -> None:
        assert self.store is not None
        self.store.set_loop_status(phase, message)
        if self.heartbeat is not None:
            self.heartbeat.set(phase, message)

    # ------------------------------------------------------------------- steps
    def _reconcile(self, report: TickReport, stale_after_s: float) -> None:
        from alem.campaign import reconcile

        self.phase("reconciling", f"comparing live jobs with backend {self.backend.name}")
        # SQLite's page check reads the whole store (seconds at 10^5 hops): once per loop process, not every tick
        result = reconcile(self.store, self.backend, self.config, stale_after_s=stale_after_s, resubmit=False,
                           sqlite_pages=not self._pages_checked)
        self._pages_checked = True
        report.ingested, report.failed = result.completed, result.failed
        for line in result.repairs:
            self.tell(line)
        for line in result.problems:
            self.tell(f"store problem: {line}", logging.WARNING)

    def _screen(self, report: TickReport) -> None:
        from alem.campaign.screening import make_screening_backend, screen_candidates, screening_enabled

        if not screening_enabled(self.config):
            return
        if self.screening_backend is None:
            self.screening_backend = make_screening_backend(self.config)
        self.phase("screening", f"cheap NEBs at {self.config.screening.fidelity} on {self.screening_backend.name}")
        result = screen_candidates(self.store, self.screening_backend, self.config, stale_after_s=STALE_AFTER_S)
        report.screened = [hop for hop, _ in result.submitted]
        for line in result.messages:
            self.tell(line)

    def _retrain(self, report: TickReport) -> None:
        from alem.campaign.retrain import new_results_since_current, retrain, retraining_due

        if not self.options.retrain:
            return
        if self.config.model.retrain_on == "backend":
            self._retrain_as_job(report)
            return
        if not retraining_due(self.store, self.config):
            return
        n_new = new_results_since_current(self.store, self.config.model.train_fidelities)
        self.phase("retraining", f"fine-tuning on {n_new} new results")
        self.tell(f"{n_new} new results since model version {self.model.version_id}: re-fine-tuning the ensemble")
        started = time.time()
        self.model = retrain(self.store, self.config, self.model, progress=self.options.progress)
        report.retrained_version = self.model.version_id
        self.tell(f"model version {self.model.version_id} ready ({time.time() - started:.0f} s): {self.model.path}")

    def _retrain_as_job(self, report: TickReport) -> None:
        from alem.campaign.retrain_job import advance_retraining

        step = advance_retraining(self.store, self.config, self.model)
        for line in step.messages:
            self.tell(line)
        if step.new_model is not None:
            self.model = step.new_model
            report.retrained_version = self.model.version_id

    def _score(self, report: TickReport) -> None:
        from alem.campaign.score_job import advance_scoring

        self.phase("scoring", f"predicting candidates with model version {self.model.version_id}")
        step = advance_scoring(self.store, self.config, self.model, progress=self.options.progress)
        for line in step.messages:
            self.tell(line)
        report.scored = step.scored
        if report.scored and not step.messages:
            self.tell(f"scored {report.scored} candidates with model version {self.model.version_id}")

    def _keep_host_answers(self, report: TickReport) -> None:
        """After results, a scoring or a new model version, the kept host answers are brought up
        to date here (:mod:`alem.campaign.host_answers`: the hosts the change touched; every host
        after a new model version), so ``alem hosts``, the report and ``alem show HOST_ID`` read
        them instead of analysing tens of thousands of hosts."""
        from alem.campaign.host_answers import refresh_host_answers

        if not (report.ingested or report.scored or report.retrained_version is not None) or not self.store.hosts():
            return
        self.phase("host answers", "bringing the kept host answers up to date")
        started = time.time()
        refreshed = refresh_host_answers(self.config, self.store, model=self.model)
        if refreshed:
            self.tell(f"host answers refreshed for {refreshed} hosts ({time.time() - started:.0f} s)")

    def _propose(self, report: TickReport) -> None:
        from alem.campaign.propose import proposal_needed, propose

        if not proposal_needed(self.store, self.config.acquisition):
            return
        acquisition = self.config.acquisition
        self.phase("proposing", f"{acquisition.strategy} batch of {acquisition.batch_size}")
        outcome = propose(
            self.store, self.config, self.model, progress=self.options.progress, warn=lambda message: self.tell(message, logging.WARNING)
        )
        report.proposed = [p.hop_id for p in outcome.proposals]
        if outcome.proposals:
            described = ", ".join(
                f"{p.hop_id} (μ {p.mean_ev:.2f} eV, σ {p.std_ev:.2f})" for p in outcome.proposals
            )
            self.tell(f"proposed batch {outcome.batch_id} ({acquisition.strategy}): {described}")
            if not self.config.approval.auto_approve:
                self._draw_pictures()

    def _draw_pictures(self) -> None:
        """The waiting hops' review pictures, drawn now so the person's first `alem review` is fast;
        a picture that cannot be drawn is left to the review page (which says why)."""
        from alem.review.page import draw_waiting_pictures

        try:
            draw_waiting_pictures(self.store, self.config)
        except Exception as exc:  # a picture is no reason to fail the tick that recorded the batch
            self.tell(f"review pictures not drawn ahead ({type(exc).__name__}: {exc}); `alem review` draws them", logging.WARNING)

    def _approve(self, report: TickReport) -> None:
        from alem.campaign.approve import auto_approve

        report.approved = auto_approve(self.store, self.config.approval)
        if report.approved:
            self.tell(f"auto-approved {', '.join(report.approved)}")
        elif not self.config.approval.auto_approve and self.store.hops(state=HopState.PROPOSED):
            self.phase("waiting", "proposals wait for approval (alem proposals / alem approve)")

    def _submit(self, report: TickReport) -> None:
        from alem.campaign import submit_approved

        if not self.store.hops(state=HopState.APPROVED):
            return
        self.phase("submitting", f"submitting approved hops to {self.backend.name}")
        result = submit_approved(self.store, self.backend, self.config, stale_after_s=STALE_AFTER_S)
        report.submitted = [hop for hop, _ in result.submitted + result.recovered]
        for line in result.messages:
            self.tell(line, logging.WARNING if line in result.errors else logging.INFO)

    # -------------------------------------------------------------------- ticks
    def tick(self, number: int, stale_after_s: float) -> TickReport:
        report = TickReport(number)
        steps = (
            lambda: self._reconcile(report, stale_after_s),
            lambda: self._screen(report),
            lambda: self._retrain(report),
            lambda: self._score(report),
            lambda: self._keep_host_answers(report),
            lambda: self._propose(report),
            lambda: self._approve(report),
            lambda: self._submit(report),
        )
        for step in steps:
            if self.stop.requested:
                break
            step()
        return report

    def _stop_rule_fired(self) -> bool:
        from alem.campaign.stop_rule import stop_reason

        self.stopped_by_rule = stop_reason(self.store, self.config.loop, self.config)
        if self.stopped_by_rule:
            self.tell(f"{self.stopped_by_rule}; stopping (jobs in flight keep running)")
        return self.stopped_by_rule is not None

    def idle(self) -> bool:
        """Nothing left to do: no candidate, proposal, approved hop or live job."""
        store = self.store
        busy = (HopState.CANDIDATE, HopState.PROPOSED, HopState.APPROVED, HopState.SUBMITTED)
        return not store.hops(state=list(busy)) and not store.jobs(live=True)

    def run(self, lock: CampaignLock | None = None) -> list[TickReport]:
        """Tick until stopped. ``lock``: the campaign's lock, already held by the caller (who
        releases it); without it the loop takes and releases the lock itself."""
        from alem.campaign.model_versions import load_current_model

        reports: list[TickReport] = []
        own_lock = lock is None
        if own_lock:
            lock = CampaignLock(self.config.state_dir)
            lock.acquire()
        self.store = Store.open(self.config.store_path)
        self.stop.install()
        self.heartbeat = Heartbeat(self.config.store_path).start()
        try:
            self.phase("starting", f"loop started (pid {os.getpid()})")
            self.store.log_event("loop_started", f"alem loop started (pid {os.getpid()})")
            self.tell(f"loop started for campaign {self.config.campaign.name} (pid {os.getpid()}, backend {self.backend.name})")
            self.model = load_current_model(self.store, self.config)
            tick_seconds = self.options.tick_seconds if self.options.tick_seconds is not None else self.config.loop.tick_seconds
            number = failed_in_a_row = 0
            started = time.time()
            while not self.stop.requested:
                number += 1
                stale = STARTUP_STALE_AFTER_S if number == 1 else STALE_AFTER_S
                try:
                    reports.append(self.tick(number, stale))
                    failed_in_a_row = 0
                except Exception as exc:
                    if self.options.fail_fast:
                        raise
                    failed_in_a_row += 1
                    self.log.exception("tick %d failed", number)
                    self.tell(f"tick {number} failed: {type(exc).__name__}: {exc} (details in the log)", logging.ERROR)
                    self.phase("error", f"tick {number} failed: {exc}")
                    if failed_in_a_row >= MAX_FAILED_TICKS:
                        raise LoopFailedError(f"{failed_in_a_row} ticks in a row failed; last: {exc} (details in "
                                              f"{self.config.resolve(self.config.campaign.log_file)})") from exc
                if self._stop_rule_fired():
                    break
                if self.options.max_ticks is not None and number >= self.options.max_ticks:
                    break
                if self.options.until_idle and self.idle():
                    self.tell("nothing left to do: no candidates, proposals, approved hops or running jobs")
                    break
                if self.options.max_seconds is not None and time.time() - started > self.options.max_seconds:
                    self.tell(f"time budget of {self.options.max_seconds:.0f} s used up; jobs in flight keep running")
                    break
                if self.stop.requested:
                    break
                self.phase("sleeping", f"next tick in {tick_seconds:.0f} s")
                if self._show_jobs is not None:
                    self._show_jobs(self.store.jobs(live=True))
                if self.stop.wait(tick_seconds):
                    break
            if self.stop.requested:
                reason = f"stopped by {self.stop.signal_name}"
            else:
                reason = "stopped by the [loop] stop rule" if self.stopped_by_rule else "finished"
            self.phase("stopped", reason)
            self.store.log_event("loop_stopped", f"alem loop {reason} after {number} ticks")
            self.tell(f"loop {reason} after {number} ticks")
            return reports
        except BaseException as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            self.log.error("loop stopped: %s", why, exc_info=not isinstance(exc, KeyboardInterrupt))
            try:
                self.phase("stopped", f"stopped by an error: {why}")
                self.store.log_event("loop_stopped", f"alem loop stopped: {why}")
            except Exception:  # the store itself may be what failed; the log has the story
                pass
            raise
        finally:
            if self._show_jobs is not None:
                self._show_jobs([])
            self.heartbeat.stop()
            self.heartbeat = None
            self.stop.uninstall()
            self.store.close()
            if own_lock:
                lock.release()
