"""The typer application that every command module registers on."""

import typer
from rich.console import Console

app = typer.Typer(
    name="alem",
    help="Active learning of ionic migration barriers: predict, propose, approve, compute, learn.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)
