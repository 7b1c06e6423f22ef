"""Rich progress bars for long work, silent when not wanted (tests, scripts)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


@contextmanager
def maybe_progress(enabled: bool):
    """A live Progress when enabled, else None."""
    if not enabled:
        yield None
        return
    with make_progress() as progress:
        yield progress


def track(items: Iterable[T], description: str, total: int | None, enabled: bool) -> Iterator[T]:
    if not enabled:
        yield from items
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)
