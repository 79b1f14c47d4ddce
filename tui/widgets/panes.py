"""A pane: a filter input (on `/`), a keyed table with a count in its title, and a detail panel."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from tui.model import COLUMNS, PANE_TITLES, Row
from tui.widgets.keyed_table import KeyedTable

MARK = "✓"


class Pane(Vertical):
    def __init__(self, name: str) -> None:
        super().__init__(id=f"pane-{name}", classes="pane")
        self.pane = name
        self.rows: list[Row] = []
        self.by_key: dict[str, Row] = {}
        self.selected: set[str] = set()
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter (esc: done)", id=f"filter-{self.pane}", classes="filter -hidden")
        yield KeyedTable(("Sel", *COLUMNS[self.pane]), id=f"table-{self.pane}")
        yield Static("", id=f"detail-{self.pane}", classes="detail")

    @property
    def table(self) -> KeyedTable:
        return self.query_one(KeyedTable)

    def set_rows(self, rows: list[Row]) -> None:
        self.rows = rows
        self.by_key = {r.key: r for r in rows}
        self.selected &= set(self.by_key)
        self.redraw()

    def visible(self) -> list[Row]:
        text = self.filter_text.casefold()
        if not text:
            return self.rows
        return [r for r in self.rows if any(text in c.casefold() for c in r.cells) or text in r.key.casefold()]

    def redraw(self) -> None:
        visible = self.visible()
        table = self.table
        table.apply((r.key, (MARK if r.key in self.selected else " ", *r.cells), self._style(r)) for r in visible)
        title = f"{PANE_TITLES[self.pane]} — {len(visible)}"
        if len(visible) != len(self.rows):
            title = f"{PANE_TITLES[self.pane]} — {len(visible)} of {len(self.rows)} (filter: {self.filter_text})"
        if self.selected:
            title += f" · {len(self.selected)} selected"
        table.border_title = title
        self.update_detail()

    def _style(self, row: Row) -> str:
        if row.ignored:
            return "dim italic"
        state = row.cells[0] if self.pane in ("overview", "errors") else ""
        if state in ("TODO", "ERROR"):
            return "bold"
        return ""

    @property
    def current(self) -> Row | None:
        key = self.table.cursor_key
        return self.by_key.get(key) if key is not None else None

    def update_detail(self) -> None:
        row = self.current
        self.query_one(".detail", Static).update(Text(row.detail if row else "Nothing here."))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_detail()

    def keys_in_order(self) -> list[str]:
        return [r.key for r in self.rows]

    def toggle(self, key: str) -> None:
        self.selected ^= {key}
        self.redraw()

    def select_all(self) -> None:
        keys = {r.key for r in self.visible()}
        self.selected = set() if keys <= self.selected else self.selected | keys
        self.redraw()

    def open_filter(self) -> None:
        box = self.query_one(Input)
        box.remove_class("-hidden")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value
        self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_filter(keep=True)

    def close_filter(self, keep: bool) -> None:
        box = self.query_one(Input)
        if not keep:
            box.value = ""
            self.filter_text = ""
            self.redraw()
        if not self.filter_text:
            box.add_class("-hidden")
        self.table.focus()
