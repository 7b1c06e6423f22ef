"""The ``alem`` command line. Each command group lives in its own module and registers on ``app``."""

# Importing the modules registers their commands on ``app``.
from alem.cli import (  # noqa: F401
    backend_cmds,
    calibrate_cmds,
    campaign_cmds,
    candidate_cmds,
    decision_cmds,
    host_cmds,
    model_cmds,
    page_cmds,
    run_cmds,
)
from alem.cli.app import app

__all__ = ["app"]
