"""What a pane shows of its rows: the filter runs over the model's full row list (never over the
widget), and only the first `cap` matches go into the table. No Textual here.

A pane of 50,000 rows costs one list and one dict per refresh; the table holds at most `cap` rows,
so first paint and keystrokes stay bounded whatever the month brings. The title says how many of
how many ("1,000 of 12,345"), and `/` reaches every row, also those beyond the cap."""

from __future__ import annotations

from collections.abc import Iterable

from tui.model import Row

CAP = 1_000  # rows a table holds at most


def count(n: int) -> str:
    """1234 -> '1,234' (the titles and tab labels)."""
    return f"{n:,}"


class RowView:
    """The rows of one pane, their filter and the capped window the table shows."""

    def __init__(self, cap: int = CAP) -> None:
        self.cap = cap
        self.rows: list[Row] = []
        self.by_key: dict[str, Row] = {}
        self.index: dict[str, int] = {}
        self.filter_text = ""
        self._matches: list[Row] | None = None
        self._matches_for = ""

    # --- rows ---------------------------------------------------------------------------------

    def set_rows(self, rows: list[Row]) -> None:
        self.rows = rows
        self.by_key = {r.key: r for r in rows}
        self.index = {r.key: i for i, r in enumerate(rows)}
        self._matches = None
        self._matches_for = ""

    def in_order(self, keys: Iterable[str]) -> list[Row]:
        """The rows of these keys, in the pane's order (keys not in the pane are skipped)."""
        index = self.index
        return [self.by_key[k] for k in sorted((k for k in keys if k in index), key=index.__getitem__)]

    # --- filter --------------------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        self.filter_text = text

    @property
    def matches(self) -> list[Row]:
        """Every row matching the filter, in the pane's order (the whole set, not the window)."""
        needle = self.filter_text.casefold().strip()
        if not needle:
            return self.rows
        previous, previous_for = self._matches, self._matches_for
        if previous is not None and previous_for == needle:
            return previous
        # narrowing (the new text contains the old) only needs to look at the old matches
        source = previous if previous is not None and previous_for and previous_for in needle else self.rows
        self._matches = [r for r in source if needle in r.search]
        self._matches_for = needle
        return self._matches

    # --- what the table holds ----------------------------------------------------------------------

    @property
    def window(self) -> list[Row]:
        matches = self.matches
        return matches if len(matches) <= self.cap else matches[: self.cap]

    def title(self, name: str, selected: int = 0) -> str:
        """'Unsynced — 42', 'Unsynced — 1,000 of 12,345 (/ narrows)', 'Unsynced — 3 of 42 (filter: x)',
        'Unsynced — 1,000 of 4,321 matching, 12,345 in all (filter: x)'."""
        total, matches = len(self.rows), len(self.matches)
        text = self.filter_text.strip()
        if matches > self.cap:
            title = f"{name} — {count(self.cap)} of {count(matches)}"
            title += f" matching, {count(total)} in all (filter: {text})" if text else " (/ narrows)"
        elif text:
            title = f"{name} — {count(matches)} of {count(total)} (filter: {text})"
        else:
            title = f"{name} — {count(total)}"
        if selected:
            title += f" · {count(selected)} selected"
        return title
