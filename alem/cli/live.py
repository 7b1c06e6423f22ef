"""What runs now, while a command waits on NEB jobs: a live line in a terminal, a plain line a
minute in a log file.

``alem loop`` and ``alem demo`` sleep between ticks while the NEBs run, minutes at a time; without
this a person sees nothing and cannot tell a working loop from a hung one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from rich.status import Status

    from alem.store import JobRecord

#: Without a terminal (nohup, a pipe) the line is printed at most this often.
PLAIN_LINE_EVERY_S = 60.0


def duration_text(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 01 min``."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class JobsInFlight:
    """Called by the loop with its live jobs before each sleep (and with none when it stops)."""

    def __init__(self, console: Console, plain_every_s: float = PLAIN_LINE_EVERY_S, clock=time.time) -> None:
        self.console = console
        self.plain_every_s = plain_every_s
        self.clock = clock
        self.jobs: list[JobRecord] = []
        self._status: Status | None = None
        self._last_plain: float | None = None

    def text(self) -> Text:
        """One line: how many NEB jobs, and each one's hop, state and time since submission."""
        now = self.clock()
        each = ", ".join(
            f"{job.hop_id} {'screening ' if job.stage == 'screening' else ''}{job.state.value} "
            f"{duration_text(now - (job.submitted_at or job.created_at))}"
            for job in self.jobs
        )
        return Text(f"{len(self.jobs)} NEB job(s) in flight: {each}")

    def __rich__(self) -> Text:  # rendered again at every refresh of the spinner: the times count up
        return self.text()

    def __call__(self, jobs: Sequence[JobRecord]) -> None:
        self.jobs = list(jobs)
        if self.console.is_terminal:
            if self.jobs and self._status is None:
                self._status = self.console.status(self)
                self._status.start()
            elif not self.jobs and self._status is not None:
                self._status.stop()
                self._status = None
            return
        now = self.clock()
        if self.jobs and (self._last_plain is None or now - self._last_plain >= self.plain_every_s):
            self.console.print(self.text(), highlight=False)
            self._last_plain = now
