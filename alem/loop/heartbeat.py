"""Keeps the loop's heartbeat fresh while one step runs for long (retraining, a slow backend).

``alem status`` calls a loop dead when its heartbeat is old (:func:`alem.campaign.status.loop_alive`);
a background thread re-writes the current phase every ``interval_s`` so a loop busy retraining for
twenty minutes still shows as alive and says what it is doing. The thread has its own store connection (SQLite connections
belong to one thread).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

HEARTBEAT_INTERVAL_S = 20.0


class Heartbeat:
    def __init__(self, store_path: Path, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self.store_path = store_path
        self.interval_s = interval_s
        self._phase = ("starting", "")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alem-heartbeat", daemon=True)

    def set(self, phase: str, message: str) -> None:
        with self._lock:
            self._phase = (phase, message)

    def _run(self) -> None:
        from alem.store import Store, StoreError

        pid = os.getpid()
        with Store.open(self.store_path) as store:
            while not self._stop.wait(self.interval_s):
                with self._lock:
                    phase, message = self._phase
                try:
                    store.set_loop_status(phase, message, pid=pid)
                except StoreError:  # a busy store: the next beat will do
                    continue

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
