"""The typer application that every command module registers on, and its one error path."""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup

from alem.cli.common import EXIT_CODES_HELP, exit_code_of, fail
from alem.errors import AlemError

__all__ = ["app"]


class AlemGroup(TyperGroup):
    """The ``alem`` command group: an :class:`AlemError` a command did not handle becomes one
    ``error: ...`` line and the exit code of :func:`alem.cli.common.exit_code_of`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AlemError as error:
            fail(str(error), exit_code_of(error))


app = typer.Typer(
    name="alem",
    cls=AlemGroup,
    help="Active learning of ionic migration barriers: predict, propose, approve, compute, learn.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
