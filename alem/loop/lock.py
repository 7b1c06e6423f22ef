"""One loop per campaign: an exclusive OS file lock on ``<state>/loop.lock``.

``fcntl.flock`` locks die with their process, so a loop killed with -9 never leaves a stale lock
behind; the file's content (pid, host, start time) is only there to tell the next one who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from alem.errors import AlemError

LOCK_FILENAME = "loop.lock"


class LoopLockedError(AlemError, RuntimeError):
    """Another loop holds the campaign's lock; the message names its pid."""


class CampaignLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILENAME
        self._handle = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            holder = self.holder()
            since = holder.get("started")
            when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
            raise LoopLockedError(
                f"another alem loop is already running this campaign (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}{when}); stop it first (kill -TERM {holder.get('pid', 'PID')}) "
                f"or let it be. Lock file: {self.path}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> CampaignLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
