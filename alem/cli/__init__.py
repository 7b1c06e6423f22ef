"""The ``alem`` command line. Each command group lives in its own module and registers on ``app``."""

# Importing the modules registers their commands on ``app``.
from alem.cli import backend_cmds, campaign_cmds, host_cmds, loop_cmds, model_cmds  # noqa: F401
from alem.cli.app import app

__all__ = ["app"]
