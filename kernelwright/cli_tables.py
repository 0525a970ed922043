"""List tables that fit the terminal: every value whole on one line, one flexible column cut with "…", and in
a narrow terminal shorter headers, then the least needed columns left out, instead of words split across
lines ("proble/m")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table


@dataclass(frozen=True)
class Column:
    header: str
    short: str | None = None  # the header when room is short
    drop: int | None = None  # left out when room is short, the lowest first; None: always shown
    flexible: bool = False  # takes the room left over, cut with "…" when that is less than its values need
    min_width: int = 16  # a flexible column is not cut below this while columns can still be left out


def _chrome(n_columns: int) -> int:
    return 3 * n_columns + 1  # rich's default box: a rule between and around the columns, padding of 1 each side


Layout = tuple[list[int], bool]  # the columns shown (indices), whether with their short headers


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, *,
                 title: str | None = None) -> Table:
    """A table of `rows` (one string per column) no wider than `width`, when its fixed columns allow that."""
    flexible = [i for i, c in enumerate(columns) if c.flexible]
    assert len(flexible) <= 1, "one flexible column takes the room left over"
    values = [max((cell_len(row[i]) for row in rows), default=0) for i in range(len(columns))]

    def header(i: int, short: bool) -> str:
        return (columns[i].short or columns[i].header) if short else columns[i].header

    def fixed_width(layout: Layout) -> int:  # all but the flexible column's content
        shown, short = layout
        return _chrome(len(shown)) + sum(max(cell_len(header(i, short)), values[i]) for i in shown if i not in flexible)

    def fits(layout: Layout, flex_width: int) -> bool:
        shown, short = layout
        flex = sum(max(cell_len(header(i, short)), flex_width) for i in shown if i in flexible)
        return fixed_width(layout) + flex <= width

    whole = max((values[i] for i in flexible), default=0)
    least = min(whole, min((columns[i].min_width for i in flexible), default=0))
    layouts = _layouts(columns)
    layout = next(((shown, short) for shown, short, flex in _tries(layouts, whole, least) if fits((shown, short), flex)),
                  layouts[-1])  # nothing fits: the fewest columns, the flexible one cut below its least
    shown, short = layout
    table = Table(title=title)
    for i in shown:
        if i in flexible:
            table.add_column(header(i, short), no_wrap=True, overflow="ellipsis",
                             max_width=max(width - fixed_width(layout), cell_len(header(i, short))))
        else:
            table.add_column(header(i, short), no_wrap=True)
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def _layouts(columns: Sequence[Column]) -> list[Layout]:
    """From the roomiest: every column with its header, every column short, then the droppable left out in turn."""
    every = list(range(len(columns)))
    droppable = sorted((i for i in every if columns[i].drop is not None), key=lambda i: columns[i].drop or 0)
    return [(every, False), (every, True)] + [([i for i in every if i not in droppable[:k]], True)
                                             for k in range(1, len(droppable) + 1)]


def _tries(layouts: list[Layout], whole: int, least: int) -> list[tuple[list[int], bool, int]]:
    """The layouts with the flexible column's width, in order of preference: a column is left out only when
    the flexible one, cut to its least, still does not fit; full headers only when nothing is cut."""
    (every, _), *narrower = layouts
    out = [(every, False, whole)]
    for shown, _ in narrower:
        out += [(shown, True, whole), (shown, True, least)]
    return out
