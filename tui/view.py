"""What a pane shows of its rows: the filter runs over the model's full row list (never over the
widget), and the pane's virtual table reads the matches for the rows on screen only. No Textual here.

A pane of 50,000 rows costs one list and two dicts per refresh and its column widths once; a
keystroke costs the same whatever the month brings. The title says how many ("Unsynced — 12,345",
"Unsynced — 3 of 42 (filter: x)"); every row is reachable by scrolling, and `/` narrows."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import zip_longest

from rich.cells import cell_len

from tui.model import Row

KEPT = 16  # filter texts whose matches are kept (a word typed and erased)


def count(n: int) -> str:
    """1234 -> '1,234' (the titles and tab labels)."""
    return f"{n:,}"


class RowView:
    """The rows of one pane, their filter and their column widths."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.by_key: dict[str, Row] = {}
        self.index: dict[str, int] = {}
        self.filter_text = ""
        self._kept: dict[str, list[Row]] = {}  # filter text -> its matches (the last KEPT texts)
        self._widths: list[int] | None = None

    # --- rows ---------------------------------------------------------------------------------

    def set_rows(self, rows: list[Row]) -> None:
        self.rows = rows
        keys = [r.key for r in rows]
        self.by_key = dict(zip(keys, rows, strict=True))
        self.index = dict(zip(keys, range(len(keys)), strict=True))  # built in C, no Python loop
        self._kept = {}
        self._widths = None

    def patch_rows(self, rows: list[Row], changed: list[Row]) -> None:
        """`rows` replace the rows shown, all but `changed` the same objects (a per-customer
        recompute): the column widths are widened by `changed`, not measured again over every row
        (a column may stay wider than its widest cell until the next full set of rows)."""
        if rows is self.rows:
            return
        widths = self._widths
        self.set_rows(rows)
        if widths is not None:
            fresh = _column_widths(changed)
            self._widths = [max(a, b) for a, b in zip_longest(widths, fresh, fillvalue=0)]

    def widths(self) -> list[int]:
        """The widest cell of each column over every row (filtered or not: columns do not jump
        while the operator types). Computed once per set of rows."""
        if self._widths is None:
            self._widths = _column_widths(self.rows)
        return self._widths

    def in_order(self, keys: Iterable[str]) -> list[Row]:
        """The rows of these keys, in the pane's order (keys not in the pane are skipped)."""
        index = self.index
        return [self.by_key[k] for k in sorted((k for k in keys if k in index), key=index.__getitem__)]

    # --- filter --------------------------------------------------------------------------------

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
            return self.rows
        found = self._kept.get(needle)
        if found is not None:
            return found
        source = self.rows
        for text, matches in self._kept.items():
            if text in needle and len(matches) < len(source):
                source = matches
        found = [r for r in source if needle in r.search]
        if len(self._kept) >= KEPT:
            del self._kept[next(iter(self._kept))]
        self._kept[needle] = found
        return found

    def title(self, name: str, selected: int = 0) -> str:
        """'Unsynced — 12,345', 'Unsynced — 3 of 42 (filter: x)', '… · 2 selected'."""
        total = len(self.rows)
        text = self.filter_text.strip()
        if text:
            title = f"{name} — {count(len(self.matches))} of {count(total)} (filter: {text})"
        else:
            title = f"{name} — {count(total)}"
        if selected:
            title += f" · {count(selected)} selected"
        return title


def _column_widths(rows: list[Row]) -> list[int]:
    columns = zip(*(r.cells for r in rows), strict=False)
    return [
        max(map(_width, column), default=0)
        if not "".join(column).isascii()
        else max(map(len, column), default=0)
        for column in columns
    ]


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)
