"""Pause points for the SIGKILL test: an `alem loop` subprocess whose replay backend stops, forever,
at one chosen point of the submit/ingest protocol, after writing a marker file that says where.
The test then SIGKILLs the loop exactly in that window.

Windows (``ALEM_TEST_PAUSE_AT``):

* ``before_submit``: the job row is committed (state ``created``), the backend has not seen it;
* ``after_submit``: the backend recorded the submission, the external id is not yet in the store;
* ``in_outcome``: reconcile fetched a finished job's outcome, the result is not yet recorded.

Run as ``python -c "import tests._pause_points as p; p.main()" loop ...`` from the repo root.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

WINDOWS = ("before_submit", "after_submit", "in_outcome")


def _pause(marker: Path, **facts: str) -> None:
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(facts))
    tmp.replace(marker)  # the test never reads half a marker
    time.sleep(3600)  # until the test kills us


def install(window: str, marker: Path) -> None:
    from alem.backends.replay import ReplayBackend

    submit, outcome = ReplayBackend.submit, ReplayBackend.outcome

    def paused_submit(self, hop, job_key):
        if window == "before_submit":
            _pause(marker, job_key=job_key, hop_id=hop.hop_id)
        external_id = submit(self, hop, job_key)
        if window == "after_submit":
            _pause(marker, job_key=job_key, hop_id=hop.hop_id, external_id=external_id)
        return external_id

    def paused_outcome(self, external_id):
        result = outcome(self, external_id)
        if window == "in_outcome":
            _pause(marker, external_id=external_id)
        return result

    ReplayBackend.submit, ReplayBackend.outcome = paused_submit, paused_outcome


def main() -> None:
    window = os.environ.get("ALEM_TEST_PAUSE_AT", "")
    if window:
        assert window in WINDOWS, window
        install(window, Path(os.environ["ALEM_TEST_PAUSE_MARKER"]))
    from alem.cli import app

    sys.argv[0] = "alem"
    app()
