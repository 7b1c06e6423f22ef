"""The ``alem`` command line. Each command group lives in its own module and registers on ``app``."""

from alem.cli.app import app

# Importing the modules registers their commands on ``app``.
from alem.cli import model_cmds  # noqa: E402,F401
from alem.cli import campaign_cmds  # noqa: E402,F401
from alem.cli import loop_cmds  # noqa: E402,F401
from alem.cli import backend_cmds  # noqa: E402,F401

__all__ = ["app"]
