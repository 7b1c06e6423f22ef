"""Graceful stop: SIGINT/SIGTERM ask the loop to finish its current step and exit.

A second signal restores the default behaviour (so a second Ctrl-C stops at once; every store
change is a transaction, so even that loses nothing).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class StopRequest:
    def __init__(self, on_request: Callable[[str], None] | None = None) -> None:
        self._event = threading.Event()
        self._on_request = on_request
        self._previous: dict[int, object] = {}
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str) -> None:
        self.signal_name = reason
        self._event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as a stop is requested."""
        return self._event.wait(seconds)

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # a second signal acts at once
        self.request(name)
        if self._on_request:
            self._on_request(name)

    def install(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
