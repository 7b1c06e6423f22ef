"""The ``alem`` command line. Each command group lives in its own module and registers on ``app``."""

from alem.cli.app import app

# Importing the modules registers their commands on ``app``.
from alem.cli import model_cmds  # noqa: E402,F401

__all__ = ["app"]
