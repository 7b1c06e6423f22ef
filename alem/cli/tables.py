"""Terminal tables that fit the terminal: hop ids and formulas are never cut.

A person copies hop ids from these tables into ``alem approve``, so an id shown as ``1b7a…`` is
useless. Columns marked ``whole`` never wrap or truncate; when the table cannot fit the console,
the columns with the lowest ``keep`` rank are dropped one by one (and named under the table) until
it fits. ``wide=True`` keeps every column and lets the table be as wide as it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from alem.store import Store


#: Words of wrapping columns longer than this (paths, job keys) are folded, not kept whole.
FOLD_WORDS_LONGER_THAN = 12


def fmt_number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or an em dash when there is none."""
    return "—" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Column:
    header: str
    #: Higher ranks are kept longer when the table is too wide; ``None`` = never dropped.
    keep: int | None = None
    #: Never wrapped nor truncated (ids, formulas).
    whole: bool = False
    justify: str = "left"


@dataclass
class FittedTable:
    table: Table
    dropped: list[str]
    width: int | None  # console width the table needs when printed wide


def _min_width(column: Column, cells: Sequence[str]) -> int:
    """Narrowest a column may get: whole columns their longest cell, others their longest word
    (headers included, cell words up to :data:`FOLD_WORDS_LONGER_THAN`; longer ones fold)."""
    plain = [Text.from_markup(c).plain for c in cells]
    header = max((cell_len(word) for word in column.header.split()), default=1)
    if column.whole:
        return max([header, *(cell_len(c) for c in plain)])
    words = [cell_len(word) for c in plain for word in c.split()]
    return max(header, min(max(words, default=1), FOLD_WORDS_LONGER_THAN))


def _build(
    title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: Sequence[int], widths: Sequence[int]
) -> Table:
    table = Table(title=title, title_justify="left")
    for k in keep:
        column = columns[k]
        table.add_column(
            column.header, justify=column.justify, no_wrap=column.whole,  # type: ignore[arg-type]
            overflow="ellipsis" if column.whole else "fold", min_width=widths[k],
        )
    for row in rows:
        table.add_row(*(row[k] for k in keep))
    return table


def fit_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wide: bool = False,
) -> FittedTable:
    """A table of ``rows`` that fits ``console``'s width with every ``whole`` column intact."""
    keep = list(range(len(columns)))
    widths = [_min_width(c, [row[k] for row in rows]) for k, c in enumerate(columns)]
    if wide:
        table = _build(title, columns, rows, keep, widths)
        return FittedTable(table, [], Measurement.get(console, console.options.update(width=10**6), table).maximum)
    droppable = sorted((k for k, c in enumerate(columns) if c.keep is not None), key=lambda k: columns[k].keep)  # type: ignore[arg-type,return-value]
    dropped = []
    # rich shrinks even no_wrap columns when the rest cannot absorb the excess: keep the sum of
    # minimum widths (plus one padding each side and the borders) within the console
    while sum(widths[k] + 3 for k in keep) + 1 > console.width and droppable:
        k = droppable.pop(0)
        keep.remove(k)
        dropped.append(columns[k].header)
    return FittedTable(_build(title, columns, rows, keep, widths), dropped, None)


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wide: bool = False,
) -> FittedTable:
    """Print :func:`fit_table`'s table; a note names the columns left out (``--wide`` shows them)."""
    fitted = fit_table(console, columns, rows, title, wide)
    if fitted.width is not None and fitted.width > console.width:
        # --wide: wider than the terminal on purpose (a pager or a wide window shows it whole)
        Console(file=console.file, width=fitted.width, color_system=console.color_system).print(fitted.table)
    else:
        console.print(fitted.table)
    if fitted.dropped:
        console.print(f"[dim]hidden at this width: {', '.join(fitted.dropped)}; --wide shows all[/]", highlight=False)
    return fitted


def hop_formulas(store: Store, hop_ids: Sequence[str]) -> dict[str, str]:
    """Reduced formula of each hop's compound (as recorded with the hop, else from its cell)."""
    from pymatgen.core import Composition

    formulas: dict[str, str] = {}
    missing = []
    for hop_id in dict.fromkeys(h for h in hop_ids if h):
        try:
            record = store.hop(hop_id)
        except KeyError:  # an event of a hop that no longer exists
            continue
        formula = record.metadata.get("formula")
        if formula:
            try:
                formulas[hop_id] = Composition(str(formula)).reduced_formula
            except ValueError:  # a free-text formula: shown as recorded
                formulas[hop_id] = str(formula)
        else:
            missing.append(hop_id)
    for hop in store.load_hops(missing):
        formulas[hop.hop_id] = hop.initial.composition.reduced_formula
    return formulas
