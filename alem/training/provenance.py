"""Facts every model card records: data hash, git commit, time."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> str | None:
    """The commit of the source checkout alem runs from; None for a wheel (whose site-packages may
    sit inside some other git repository)."""
    from alem import source_checkout

    checkout = source_checkout()
    if checkout is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
