"""Terminal tables that fit the terminal: hop ids and formulas are never cut.

A person copies hop ids from these tables into ``alem approve``, so an id shown as ``1b7a…`` is
useless. Columns marked ``whole`` never wrap or truncate; when the table cannot fit the console,
the columns with the lowest ``keep`` rank are dropped one by one (and named under the table) until
it fits. ``wide=True`` keeps every column and lets the table be as wide as it needs.
"""

from __future__ import annotations

import textwrap
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
#: Tables with more rows are printed as plain aligned columns at the same widths: rich lays out
#: about 0.5 ms a row (26,200 hosts: 13 s), plain lines take milliseconds.
PLAIN_ABOVE_ROWS = 1000


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


#: Cells that say "nothing here"; a column of only these is left out of a fitted table.
EMPTY_CELLS = frozenset({"", "—", "-"})


def _plain(cell: str) -> str:
    if "[" not in cell:  # no markup: parsing it would give the cell back (most cells; 10^5-row tables)
        return cell
    return Text.from_markup(cell).plain


def _min_width(column: Column, cells: Sequence[str]) -> int:
    """Narrowest a column may get: whole columns their longest cell, others their longest word
    (cell words up to :data:`FOLD_WORDS_LONGER_THAN`; longer ones fold). Headers wrap at spaces,
    so only their longest word counts."""
    plain = [_plain(c) for c in cells]
    header = max((cell_len(word) for word in column.header.split()), default=1)
    if column.whole:
        return max([header, *(cell_len(c) for c in plain)])
    words = [cell_len(word) for c in plain for word in c.split()]
    return max(header, min(max(words, default=1), FOLD_WORDS_LONGER_THAN))


def _max_width(column: Column, cells: Sequence[str]) -> int:
    """Widest a column would like to be: its longest line, header included."""
    lines = [line for c in cells for line in _plain(c).splitlines()] + [column.header]
    return max(cell_len(line) for line in lines)


def _share_out(minimum: Sequence[int], wanted: Sequence[int], room: int) -> list[int]:
    """Widths from ``minimum`` up to ``wanted``, ``room`` spare cells handed out one at a time to
    the column that still lacks the most (so a long message column does not starve the rest)."""
    widths = list(minimum)
    for _ in range(max(room, 0)):
        lacking = [wanted[i] - widths[i] for i in range(len(widths))]
        i = max(range(len(widths)), key=lambda j: lacking[j], default=None)
        if i is None or lacking[i] <= 0:
            break
        widths[i] += 1
    return widths


def _cell(text: str, column: Column) -> Text:
    cell = Text.from_markup(text)
    if column.whole:  # the cell never wraps; its header still may
        cell.no_wrap, cell.overflow = True, "ellipsis"
    return cell


def _build(
    title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: Sequence[int],
    widths: Sequence[int] | None,
) -> Table:
    """The table of the ``keep`` columns; ``widths`` fixes each one (None: rich decides, --wide)."""
    table = Table(title=title, title_justify="left")
    for n, k in enumerate(keep):
        column = columns[k]
        table.add_column(
            column.header, justify=column.justify, overflow="fold",  # type: ignore[arg-type]
            width=None if widths is None else widths[n], no_wrap=column.whole and widths is None,
        )
    for row in rows:
        table.add_row(*(_cell(row[k], columns[k]) for k in keep))
    return table


def _fitted_widths(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> tuple[list[int], list[int], list[str]]:
    """The columns kept, their widths and the headers of those dropped (:func:`fit_table`)."""
    keep = [k for k in range(len(columns)) if not rows or any(_plain(row[k]).strip() not in EMPTY_CELLS for row in rows)]
    minimum = {k: _min_width(c, [row[k] for row in rows]) for k, c in enumerate(columns)}
    droppable = sorted((k for k in keep if columns[k].keep is not None), key=lambda k: columns[k].keep)  # type: ignore[arg-type,return-value]
    dropped = []

    def room() -> int:  # one cell of padding each side of a column, its left border, the last border
        return console.width - sum(minimum[k] + 3 for k in keep) - 1

    while room() < 0 and droppable:
        k = droppable.pop(0)
        keep.remove(k)
        dropped.append(columns[k].header)
    wanted = [_max_width(columns[k], [row[k] for row in rows]) for k in keep]
    return keep, _share_out([minimum[k] for k in keep], wanted, room()), dropped


def fit_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wide: bool = False,
) -> FittedTable:
    """A table of ``rows`` that fits ``console``'s width with every ``whole`` column intact.

    Columns with nothing in them are left out; then, while the narrowest the table can be is wider
    than the console, the column of lowest ``keep`` is dropped (and named). The widths are fixed
    here, not left to rich: rich shrinks even no-wrap columns (cutting ids) and crops the right
    border when the columns it may not shrink do not fit."""
    if wide:
        table = _build(title, columns, rows, list(range(len(columns))), None)
        return FittedTable(table, [], Measurement.get(console, console.options.update(width=10**6), table).maximum)
    keep, widths, dropped = _fitted_widths(console, columns, rows)
    return FittedTable(_build(title, columns, rows, keep, widths), dropped, None)


def plain_table(title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: Sequence[int],
                widths: Sequence[int]) -> str:
    """The ``keep`` columns as plain aligned text at ``widths`` (two spaces apart, a rule under the
    headers): a cell wider than its column is folded onto more lines; a ``whole`` column's width
    holds its longest cell, so ids stay whole."""
    lines = [] if title is None else [title]
    justify = [columns[k].justify for k in keep]

    def add(cells: list[str]) -> None:
        folded = [[c] if len(c) <= w else textwrap.wrap(c, w, break_on_hyphens=False) or [""] for c, w in zip(cells, widths, strict=True)]
        for n in range(max(len(f) for f in folded)):
            parts = [(f[n] if n < len(f) else "") for f in folded]
            aligned = (p.rjust(w) if j == "right" else p.ljust(w) for p, w, j in zip(parts, widths, justify, strict=True))
            lines.append("  ".join(aligned).rstrip())

    add([columns[k].header for k in keep])
    lines.append("  ".join("─" * w for w in widths))
    for row in rows:
        add([_plain(row[k]) for k in keep])
    return "\n".join(lines)


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wide: bool = False,
) -> None:
    """Print :func:`fit_table`'s table (more than :data:`PLAIN_ABOVE_ROWS` rows: :func:`plain_table`
    at the widths it would have); a note names the columns left out (``--wide`` shows them)."""
    if len(rows) > PLAIN_ABOVE_ROWS and not wide:
        keep, widths, dropped = _fitted_widths(console, columns, rows)
        console.print(plain_table(title, columns, rows, keep, widths), markup=False, highlight=False, soft_wrap=True)
    else:
        fitted = fit_table(console, columns, rows, title, wide)
        dropped = fitted.dropped
        if fitted.width is not None and fitted.width > console.width:
            # --wide: wider than the terminal on purpose (a pager or a wide window shows it whole)
            Console(file=console.file, width=fitted.width, color_system=console.color_system).print(fitted.table)
        else:
            console.print(fitted.table)
    if dropped:
        console.print(f"[dim]hidden at this width: {', '.join(dropped)}; --wide shows all[/]", highlight=False)


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
