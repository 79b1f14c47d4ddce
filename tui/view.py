"""What a pane shows of its rows: the filter runs over the model's full row list (never over the
widget), and the pane's virtual table reads the matches for the rows on screen only. No Textual here.

A pane of 50,000 rows costs one list and two dicts per refresh and its column widths once; a
keystroke costs the same whatever the month brings. The title says how many ("Unsynced — 12,345",
"Unsynced — 3 of 42 (filter: x)"); every row is reachable by scrolling, and `/` narrows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from itertools import compress
from itertools import count as counter
from operator import is_not

from rich.cells import cell_len

from tui.rows import Row, search_text, widened

KEPT = 16  # filter texts whose matches are kept (a word typed and erased)
PATCHED_AT_MOST = 8  # a patch that replaces more than 1/8 of a pane's rows sets them all again
_NOT_A_NUMBER = re.compile(r"[^0-9.\-]")
_NUMBER_CELL = re.compile(r"[+\-\u2212]?\$?[0-9][0-9,]*(\.[0-9]+)?%?")


def folded(text: str) -> str:
    """What the customer search compares: letters and digits only, case-folded
    ("Quarry Hill Foods, L.L.C." -> "quarryhillfoodsllc")."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def is_number_cell(text: str) -> bool:
    """Does a cell read as money or a quantity (`+$1,234.56`, `-3`, `12.5`, `40%`)?"""
    return _NUMBER_CELL.fullmatch(text.strip()) is not None


def numeric_cells(rows: list[Row], column: int) -> bool:
    """Does every filled cell of the column read as money or a quantity (`+$1,234.56`, `12.5`)?"""
    filled = [c for r in rows if column < len(r.cells) and (c := r.cells[column].strip()) and c != "—"]
    return bool(filled) and all(map(is_number_cell, filled))


def number_of(text: str) -> Decimal | None:
    """A money or quantity cell as a number: `+$1,234.56` -> 1234.56, `-$3.00` -> -3, `12.5` -> 12.5;
    `—`, empty or words -> None (sorted after every number)."""
    plain = _NOT_A_NUMBER.sub("", text.replace("\u2212", "-"))
    if not plain or plain in ("-", "."):
        return None
    try:
        return Decimal(plain)
    except InvalidOperation:
        return None


def sort_rows(rows: list[Row], column: int, numeric: bool, reverse: bool) -> list[Row]:
    """The rows by one cell (stable: a tie keeps the pane's order); money and quantities by value,
    text case-insensitively; empty cells (and `—`) last either way."""

    def cell(row: Row) -> str:
        return row.cells[column] if column < len(row.cells) else ""

    if numeric:
        valued = [(number_of(cell(r)), r) for r in rows]
        present = [(v, r) for v, r in valued if v is not None]
        present.sort(key=lambda vr: vr[0], reverse=reverse)
        return [r for _, r in present] + [r for v, r in valued if v is None]
    texts = [(cell(r).strip(), r) for r in rows]
    filled = [(t.casefold(), r) for t, r in texts if t and t != "—"]
    filled.sort(key=lambda tr: tr[0], reverse=reverse)
    return [r for _, r in filled] + [r for t, r in texts if not t or t == "—"]


def count(n: int) -> str:
    """1234 -> '1,234' (the titles and tab labels)."""
    return f"{n:,}"


class RowView:
    """The rows of one pane, their filter and their column widths."""

    def __init__(self) -> None:
        self.rows: list[Row] = []  # what is shown, in order (sorted when `sort` is set)
        self.source: list[Row] = []  # the model's rows, in the pane's own order
        self.by_key: dict[str, Row] = {}
        self._index: dict[str, int] | None = {}  # key -> position in `rows`; None: built when asked
        self.filter_text = ""
        self._kept: dict[str, list[Row]] = {}  # filter text -> its matches (the last KEPT texts)
        self._widths: list[int] | None = None
        self.sort: tuple[int, bool, bool] | None = None  # (cell index, numeric, reversed)
        self.customer: tuple[str, Callable[[Row], bool]] | None = None  # (what was typed, who matches)
        self._of_customer: list[Row] | None = None  # the rows of the customer filter, in order

    # --- rows ---------------------------------------------------------------------------------

    def set_rows(self, rows: list[Row], widths: Sequence[int] | None = None) -> None:
        """The model's rows, in the pane's order, or by the sort column when one is chosen.
        `widths`: their columns' widths when already known (`ConsoleData.widths`, computed with the
        rows off the UI loop), else measured over every row when first asked."""
        self.source = rows
        if self.sort is not None:
            rows = sort_rows(rows, *self.sort)
        self.rows = rows
        self.by_key = {r.key: r for r in rows}
        self._index = None  # built when first asked (a cursor move or an action never asks)
        self._kept = {}
        self._of_customer = None
        self._widths = list(widths) if widths is not None else None

    def __contains__(self, key: object) -> bool:
        return key in self.by_key

    @property
    def index(self) -> dict[str, int]:
        """Each key's position in `rows`."""
        if self._index is None:
            self._index = dict(zip((r.key for r in self.rows), range(len(self.rows)), strict=True))
        return self._index

    def patch_rows(self, rows: list[Row], changed: list[Row], widths: Sequence[int] | None = None) -> None:
        """`rows` replace the rows shown, all but `changed` the same objects (a per-customer
        recompute): the column widths are widened by `changed`, not measured again over every row
        (a column may stay wider than its widest cell until the next full set of rows) unless
        `widths` are given (the core's, `ConsoleData.widths`), and the
        keys are patched where the rows differ, not indexed again (≈ 20 ms at 45,000 rows: every
        row's key is read from memory the action never touched)."""
        if rows is self.source:
            return
        before = self._widths
        came = self._patch_keys(rows) if self.sort is None else None
        if came is None:
            self.set_rows(rows)
        if widths is not None:
            self._widths = list(widths)
        elif before is not None:
            self._widths = widened(before, row_widths(changed if came is None else came))

    def _patch_keys(self, rows: list[Row]) -> list[Row] | None:
        """Take `rows` by patching the keys of the one run of rows that differs from the rows shown
        (found from both ends by identity, in C): the rows that came in, or None, and nothing
        changed, when that run is more than 1/PATCHED_AT_MOST of the pane (set them all again)."""
        old = self.source
        shortest = min(len(old), len(rows))
        start = next(compress(counter(), map(is_not, old, rows)), shortest)
        end = next(compress(counter(), map(is_not, reversed(old), reversed(rows))), shortest)
        end = min(end, shortest - start)  # rows kept at the end, not counted twice
        gone, came = old[start : len(old) - end], rows[start : len(rows) - end]
        if len(gone) + len(came) > max(64, len(rows) // PATCHED_AT_MOST):
            return None
        by_key = self.by_key
        for row in gone:
            by_key.pop(row.key, None)
        for row in came:
            by_key[row.key] = row
        self.source = self.rows = rows
        self._kept = {}
        self._of_customer = None
        if len(by_key) != len(rows):  # a key twice in a pane: as set_rows has it, the last one wins
            self.by_key = {r.key: r for r in rows}
            self._index = None
        elif self._index is not None and len(gone) == len(came):  # the rows after it keep their places
            index = self._index
            for row in gone:
                index.pop(row.key, None)
            for position, row in enumerate(came, start):
                index[row.key] = position
        else:
            self._index = None
        return came

    def widths(self) -> list[int]:
        """The widest cell of each column over every row (filtered or not: columns do not jump
        while the operator types). Computed once per set of rows."""
        if self._widths is None:
            self._widths = row_widths(self.rows)
        return self._widths

    def in_order(self, keys: Iterable[str]) -> list[Row]:
        """The rows of these keys, in the pane's order (keys not in the pane are skipped)."""
        index = self.index
        return [self.by_key[k] for k in sorted((k for k in keys if k in index), key=index.__getitem__)]

    def set_sort(self, sort: tuple[int, bool, bool] | None) -> None:
        """Sort by (cell index, numeric, reversed), or None: the pane's own order again."""
        self.sort = sort
        widths = self._widths
        self.set_rows(self.source)
        self._widths = widths  # the same cells: the widths stay

    # --- filter --------------------------------------------------------------------------------

    def set_customer(self, customer: tuple[str, Callable[[Row], bool]] | None) -> None:
        """Only the rows of matching customers (the search across panes), or every row again."""
        self.customer = customer
        self._of_customer = None
        self._kept = {}

    @property
    def base(self) -> list[Row]:
        """The rows the text filter runs over: every row, or the customer search's rows."""
        if self.customer is None:
            return self.rows
        if self._of_customer is None:
            matches = self.customer[1]
            self._of_customer = [r for r in self.rows if matches(r)]
        return self._of_customer

    def set_filter(self, text: str) -> None:
        self.filter_text = text

    @property
    def matches(self) -> list[Row]:
        """Every row matching the filter, in the pane's order.

        The matches of the last few filter texts are kept: typing narrows from the smallest kept
        set whose text the new one contains, and backspace finds the shorter text's matches
        kept from when it was typed — so neither rescans the whole pane."""
        needle = self.filter_text.casefold().strip()
        if not needle:
            return self.base
        found = self._kept.get(needle)
        if found is not None:
            return found
        source = self.base
        for text, matches in self._kept.items():
            if text in needle and len(matches) < len(source):
                source = matches
        found = [r for r in source if needle in search_text(r)]
        if len(self._kept) >= KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[needle] = found
        return found

    def title(self, name: str, selected: int = 0) -> str:
        """'Unsynced — 12,345', 'Unsynced — 3 of 42 (filter: x)', '… · 2 selected'."""
        total = len(self.rows)
        text = self.filter_text.strip()
        notes = [f"customer: {self.customer[0]}"] if self.customer is not None else []
        notes += [f"filter: {text}"] if text else []
        if notes:
            title = f"{name} — {count(len(self.matches))} of {count(total)} ({', '.join(notes)})"
        else:
            title = f"{name} — {count(total)}"
        if selected:
            title += f" · {count(selected)} selected"
        return title


def cell_width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def column_widths(columns: Iterable[Sequence[str]]) -> list[int]:
    """The widest cell of each column (cell widths, so CJK and emoji count double). One pass per
    column in C for ASCII columns: 50,000 rows × 9 columns in a few milliseconds."""
    widths = []
    for column in columns:
        if not column:
            widths.append(0)
        elif "".join(column).isascii():
            widths.append(max(map(len, column)))
        else:
            widths.append(max(map(cell_width, column)))
    return widths


def row_widths(rows: Iterable[Row]) -> list[int]:
    """The widest cell of each column of these rows."""
    return column_widths(zip(*(r.cells for r in rows), strict=False))
