"""What every command shares: the consoles, the campaign option, opening a campaign, failing with
one of the documented exit codes, and JSON output.

A command opens what it needs, calls one library function and prints. Errors alem raises on
purpose (:class:`alem.errors.AlemError`) are turned into one ``error: ...`` line and an exit code
by the application itself (:mod:`alem.cli.app`); a command catches one only to add to its message.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from alem.backends.base import Backend
    from alem.config import CampaignConfig
    from alem.errors import AlemError
    from alem.store import Store

console = Console()
err_console = Console(stderr=True)


class ExitCode(enum.IntEnum):
    """The exit codes of every ``alem`` command (see :data:`EXIT_CODES_HELP`)."""

    OK = 0
    #: The command ran and was refused or failed: the store refused a change (illegal transition,
    #: unknown or ambiguous hop id), something was left out (hosts skipped, a backend that could not
    #: cancel, invalid hops left out of a prediction), a review without predictions, a doctor check that found a problem.
    FAILED = 1
    #: The command could not start: a bad option or argument (typer's own usage errors too), an
    #: unreadable input file, an unusable alem.toml, no campaign or store here, a store written by
    #: a newer alem, no loadable model, a backend that cannot be set up or does not answer (a check of
    #: ``alem doctor`` fails, the scheduler's commands fail).
    USAGE = 2
    #: Another ``alem loop`` holds the campaign's lock.
    LOCKED = 3


EXIT_CODES_HELP = "\n".join(
    (
        "Exit codes:",
        "0 done;",
        "1 refused or failed: the store refused a change, an unknown or ambiguous hop id, hosts skipped, "
        "invalid hops left out (the valid ones predicted), "
        "a doctor check found a problem;",
        "2 could not start: bad option or argument, unreadable input file, unusable alem.toml, "
        "no campaign or store here, no loadable model, backend not set up or not answering;",
        "3 another alem loop holds the campaign's lock.",
    )
)


def _loaded_classes(*dotted: str) -> tuple[type, ...]:
    """The named exception classes whose modules are imported already: an error of a class never
    imported cannot have been raised, and importing one here (the backends pull in pymatgen) would
    slow down every error, ``alem loop``'s refusal of a second loop above all."""
    found = []
    for name in dotted:
        module, _, attribute = name.rpartition(".")
        cls = getattr(sys.modules.get(module), attribute, None)
        if cls is not None:
            found.append(cls)
    return tuple(found)


def exit_code_of(error: AlemError) -> ExitCode:
    """The exit code of an error no command handled itself (the table in :class:`ExitCode`)."""
    if isinstance(error, _loaded_classes("alem.loop.lock.LoopLockedError")):
        return ExitCode.LOCKED
    cannot_start = _loaded_classes(
        "alem.config.ConfigError", "alem.store.StoreUnavailableError", "alem.store.SchemaError",
        "alem.doctor.BackendNotReadyError", "alem.backends.base.BackendUnavailableError", "alem.neb.presets.PresetError",
    )
    if isinstance(error, cannot_start):
        return ExitCode.USAGE
    return ExitCode.FAILED


def fail(message: str, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    # a Text, not markup: messages quote config sections like "[model] path"; soft_wrap: a path
    # split over two lines cannot be copied
    err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


CampaignOption = Annotated[
    Path | None,
    typer.Option("--campaign", "-C", help="campaign directory (default: nearest alem.toml, or $ALEM_CAMPAIGN)"),
]
#: ``-c``: the spelling ``alem doctor`` had before every command used ``-C``; kept working, not shown.
OldCampaignOption = Annotated[Path | None, typer.Option("-c", hidden=True)]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document instead of tables")]
WideOption = Annotated[bool, typer.Option("--wide", help="every column, however wide the table gets")]
WhoOption = Annotated[str | None, typer.Option("--who", help="who decides (default: your user name)")]


def load_config(campaign: Path | None) -> CampaignConfig:
    """The campaign's config: ``campaign``, else ``$ALEM_CAMPAIGN``, else the nearest ``alem.toml``
    (:class:`~alem.config.ConfigError` naming the file and key when it is unusable)."""
    from alem.config import CampaignConfig, find_campaign_dir

    return CampaignConfig.load(campaign if campaign is not None else find_campaign_dir())


@contextmanager
def open_campaign(campaign: Path | None) -> Iterator[tuple[CampaignConfig, Store]]:
    """The campaign's config and its (existing) store, closed on exit."""
    from alem.store import Store

    config = load_config(campaign)
    with Store.open(config.store_path, create=False) as store:
        yield config, store


def open_backend(config: CampaignConfig) -> Backend:
    """The campaign's backend, or ``error: backend KIND: ...`` and exit 2 when it cannot be set up."""
    from alem.backends import make_backend

    try:
        return make_backend(config)
    except Exception as exc:  # presets, replay dataset, launchpad, run directory
        from alem.doctor import BackendNotReadyError, require_backend_ready

        try:  # the checks of `alem doctor` say what is wrong in the user's terms
            require_backend_ready(config)
        except BackendNotReadyError as not_ready:
            fail(str(not_ready), ExitCode.USAGE)
        fail(f"backend {config.backend.kind}: {exc}", ExitCode.USAGE)


def print_json(data: Any) -> None:
    """One JSON document on stdout (plain print: rich would wrap long lines and break the JSON)."""
    print(json.dumps(data, indent=2, default=str))
