"""A pane: a filter input (on `/`), a keyed table with a count in its title, and a detail panel.

The pane's rows live in a `RowView` (the model's full list); the table holds only its capped
window. Filtering runs over the model's rows, debounced when the pane is big, and the table
takes the result as a keyed diff, so the cursor and the selection survive refreshes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from tui.model import COLUMNS, PANE_TITLES, Row
from tui.view import CAP, RowView
from tui.widgets.keyed_table import KeyedTable

MARK = "✓"
FILTER_DEBOUNCE = 0.15  # seconds of quiet typing before a big pane filters again


class Pane(Vertical):
    class Filtered(Message):
        """The filter was applied to the table (after the debounce)."""

        def __init__(self, pane: Pane, text: str, matches: int) -> None:
            super().__init__()
            self.pane = pane
            self.text = text
            self.matches = matches

    def __init__(self, name: str, *, cap: int = CAP, debounce: float = FILTER_DEBOUNCE) -> None:
        super().__init__(id=f"pane-{name}", classes="pane")
        self.pane = name
        self.view = RowView(cap)
        self.selected: set[str] = set()
        self.debounce = debounce
        self._filter_timer: Timer | None = None
        self._typed = ""
        self._detail_lines = 0

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter (enter: keep, esc: clear)", id=f"filter-{self.pane}",
                    classes="filter -hidden")
        yield KeyedTable(("Sel", *COLUMNS[self.pane]), id=f"table-{self.pane}")
        yield Static("", id=f"detail-{self.pane}", classes="detail")

    @property
    def table(self) -> KeyedTable:
        return self.query_one(KeyedTable)

    # --- rows ------------------------------------------------------------------------------------

    @property
    def rows(self) -> list[Row]:
        return self.view.rows

    @property
    def by_key(self) -> dict[str, Row]:
        return self.view.by_key

    @property
    def filter_text(self) -> str:
        return self.view.filter_text

    @property
    def filter_pending(self) -> bool:
        """Typed text not yet applied (the debounce is running)."""
        return self._filter_timer is not None

    def set_rows(self, rows: list[Row]) -> None:
        self.view.set_rows(rows)
        if self.selected:
            self.selected &= self.view.by_key.keys()
        self.redraw()

    def visible(self) -> list[Row]:
        """Every row the filter lets through (the whole set, also beyond the table's cap)."""
        return self.view.matches

    def selected_rows(self) -> list[Row]:
        return self.view.in_order(self.selected)

    def keys_in_order(self) -> list[str]:
        return [r.key for r in self.rows]

    def redraw(self) -> None:
        table = self.table
        selected = self.selected
        table.apply((r.key, (MARK if r.key in selected else " ", *r.cells), self._style(r))
                    for r in self.view.window)
        table.border_title = self.view.title(PANE_TITLES[self.pane], len(selected))
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
        text = row.detail if row else "Nothing here."
        detail = self.query_one(".detail", Static)
        lines = text.count("\n") + 1
        # a layout pass costs more than the whole cursor move: only when a scrollbar may come or go
        layout = max(lines, self._detail_lines) > max(detail.size.height, 1)
        self._detail_lines = lines
        detail.update(Text(text), layout=layout)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_detail()

    # --- selection ---------------------------------------------------------------------------------

    def toggle(self, key: str) -> None:
        self.selected ^= {key}
        self.redraw()

    def select_all(self) -> None:
        """Every row the filter lets through, also those beyond the cap (again: none)."""
        keys = {r.key for r in self.visible()}
        self.selected = set() if keys <= self.selected else self.selected | keys
        self.redraw()

    # --- filter -----------------------------------------------------------------------------------

    def open_filter(self) -> None:
        box = self.query_one(Input)
        box.remove_class("-hidden")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._typed = event.value
        self._stop_timer()
        if len(self.rows) <= self.view.cap or not self.debounce:
            self.apply_filter()  # small pane: every keystroke filters at once
        else:
            self._filter_timer = self.set_timer(self.debounce, self.apply_filter)

    def apply_filter(self) -> None:
        self._stop_timer()
        if self._typed != self.view.filter_text:
            self.view.set_filter(self._typed)
            self.redraw()
        self.post_message(self.Filtered(self, self.view.filter_text, len(self.view.matches)))

    def _stop_timer(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._typed = event.value
        self.apply_filter()
        self.close_filter(keep=True)

    def close_filter(self, keep: bool) -> None:
        box = self.query_one(Input)
        if not keep:
            self._stop_timer()
            box.value = ""
            self._typed = ""
            if self.view.filter_text:
                self.view.set_filter("")
                self.redraw()
        if not self.view.filter_text:
            box.add_class("-hidden")
        self.table.focus()
