"""A pane: a filter input (on `/`), a keyed table with a count in its title, and a detail panel.

The pane's rows live in a `RowView` (the model's full list); the table is virtual and reads the
filter's matches for the rows on screen only, so every row is reachable and a keystroke costs the
same at 50 or 50,000 rows. Filtering runs over the model's rows on every keystroke (debounced only
in a pane of more than FILTER_AT_ONCE rows), and the cursor stays on its key, so the cursor and the
selection survive refreshes."""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Static

from tui.rows import COLUMNS, PANE_TITLES, SELECT_COLUMN, Row, cell
from tui.view import RowView, folded, numeric_cells
from tui.widgets.keyed_table import KeyedTable, SubsetRows

# the column whose TODO / ERROR makes a row bold
_STATE_COLUMN = {"overview": "state", "errors": "severity"}

MARK = "✓"
FILTER_DEBOUNCE = 0.15  # seconds of quiet typing before a huge pane filters again
FILTER_AT_ONCE = 200_000  # rows up to which every keystroke filters at once (50,000: ≈ 5 ms a pass)
_key = attrgetter("key")


class FilterInput(Input):
    """The filter box. Two things differ from Textual's Input, both for the keystroke's latency:

    * the pane filters in the same step as the key changes the value (not one message later), so
      the table's refresh is asked for together with the box's and both land in one frame;
    * Input sets its virtual size on every change, which asks for a layout pass of the whole
      screen (tabs, panes, footer: more than the rest of the keystroke); the size is set here
      first without one and the scrollbars are updated in place."""

    def __init__(self, typed: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._typed = typed

    def _watch_value(self, value: str) -> None:
        size = Size(self.content_width, 1)
        if size != self.virtual_size:
            self.set_reactive(Input.virtual_size, size)
            if self.container_size:
                self._scroll_update(size)
        self._typed(value)
        super()._watch_value(value)  # its own assignment of the same size is a no-op now


class Pane(Vertical):
    class Filtered(Message):
        """The filter was applied to the table (after the debounce)."""

        def __init__(self, pane: Pane, text: str, matches: int) -> None:
            super().__init__()
            self.pane = pane
            self.text = text
            self.matches = matches

    def __init__(self, name: str, *, debounce: float = FILTER_DEBOUNCE) -> None:
        super().__init__(id=f"pane-{name}", classes="pane")
        self.pane = name
        self.view = RowView()
        self.selected: set[str] = set()
        self.debounce = debounce
        self._filter_timer: Timer | None = None
        self._typed = ""
        self._detail_lines = 0

    def compose(self) -> ComposeResult:
        yield FilterInput(
            self.typed,
            placeholder="Filter (enter: keep, esc: clear)",
            id=f"filter-{self.pane}",
            classes="filter -hidden",
        )
        yield KeyedTable((SELECT_COLUMN, *COLUMNS[self.pane]), id=f"table-{self.pane}")
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

    def set_rows(
        self, rows: list[Row], *, changed: list[Row] | None = None, widths: list[int] | None = None
    ) -> None:
        """Show `rows`; `changed`: only these differ from the rows shown (a keyed patch: only they
        are measured again); `widths`: the columns' widths when the model measured them."""
        if changed is not None:
            self.view.patch_rows(rows, changed, widths)
        else:
            self.view.set_rows(rows, widths)
        if self.selected:
            self.selected &= self.view.by_key.keys()
        self.redraw()

    def visible_rows(self) -> list[Row]:
        """Every row the filter lets through."""
        return self.view.matches

    def selected_rows(self) -> list[Row]:
        return self.view.in_order(self.selected)

    def keys_in_order(self) -> list[str]:
        return [r.key for r in self.rows]

    def redraw(self) -> None:
        """The table shows the filter's matches (read for the rows on screen only)."""
        table = self.table
        matches = self.view.matches
        selected, style = self.selected, self._style

        def render(index: int) -> tuple[str, tuple[str, ...], str]:
            r = matches[index]
            return r.key, (MARK if r.key in selected else " ", *r.cells), style(r)

        view = self.view
        table.show(SubsetRows(matches, lambda: view.index, _key, render, lambda: [1, *view.widths()], view))
        table.border_title = self.view.title(PANE_TITLES[self.pane], len(selected))
        table.border_subtitle = table.page_note
        self.update_detail()

    def _style(self, row: Row) -> str:
        if row.ignored:
            return "dim italic"
        state_column = _STATE_COLUMN.get(self.pane)
        state = cell(row, self.pane, state_column) if state_column else ""
        if state in ("TODO", "ERROR"):
            return "bold"
        if self.pane == "errors" and row.key in self._acknowledged():
            return "dim"  # acknowledged: seen and decided, after the open ones
        return ""

    def _acknowledged(self) -> dict[str, object]:
        data = getattr(self.app, "data", None)
        return getattr(data, "acknowledged", None) or {}

    @property
    def current(self) -> Row | None:
        key = self.table.cursor_key
        return self.by_key.get(key) if key is not None else None

    def update_detail(self) -> None:
        row = self.current
        text = row.detail if row else "Nothing here."
        if row is not None:
            text += self.hidden_text(row)
        detail = self.query_one(".detail", Static)
        lines = text.count("\n") + 1
        # a layout pass costs more than the whole cursor move: only when a scrollbar may come or go
        # on a detail on screen (a hidden tab's is laid out when the tab is shown)
        height = detail.size.height
        layout = bool(height) and max(lines, self._detail_lines) > height
        self._detail_lines = lines
        detail.update(Text(text), layout=layout)

    def hidden_text(self, row: Row) -> str:
        """The row's values in the columns the screen has no room for (→ pages to them)."""
        table = self.table
        hidden = table.hidden_columns
        columns = table.columns
        cells = ("", *row.cells)
        parts = [f"{columns[i].title}: {cells[i]}" for i in hidden if i < len(cells) and cells[i]]
        if not parts:
            return ""
        return "\nMore (→ pages): " + " · ".join(parts)

    def on_keyed_table_columns_changed(self, event: KeyedTable.ColumnsChanged) -> None:
        event.stop()
        self.table.border_subtitle = self.table.page_note
        self.update_detail()

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        self.update_detail()

    # --- the customer search (every pane) ---------------------------------------------------------

    def set_customer(
        self, text: str, companies: frozenset[str], of: Callable[[Row], bool] | None = None
    ) -> None:
        """Only the rows of these vendor companies (`text`: what the operator typed), or every row
        (empty `text`). A row without a company (Renewals, a product-level finding) matches by its
        customer cell, or by `of` when the pane knows better (Products: the customers' products);
        Overview's totals are never narrowed."""
        if not text or self.pane == "overview":
            self.view.set_customer(None)
            self.redraw()
            return
        if of is not None:
            self.view.set_customer((text, of))
            self.redraw()
            return
        needle = folded(text)
        column = next(
            (i - 1 for i, c in enumerate(self.table.columns) if c.key == "customer" or c.title == "Customer"),
            None,
        )

        def matches(row: Row) -> bool:
            if row.company_id is not None:
                return row.company_id in companies
            if self.pane == "customers":
                return row.key in companies
            return column is not None and column < len(row.cells) and needle in folded(row.cells[column])

        self.view.set_customer((text, matches))
        self.redraw()

    # --- sort ---------------------------------------------------------------------------------------

    def cycle_sort(self) -> str:
        """s: the next column on screen becomes the sort column (after the last: the pane's own
        order again); the cursor stays on its row. Says what it did."""
        table = self.table
        shown = [i - 1 for i in table._shown if i > 0]  # cell indices (0 in the table is the mark)
        current = self.view.sort[0] if self.view.sort is not None else None
        later = [i for i in shown if current is None or i > current]
        if not later:
            self._sort(None)
            return "Pane's own order again"
        column = table.columns[later[0] + 1]
        numeric = column.numeric or numeric_cells(self.view.source, later[0])
        self._sort((later[0], numeric, False))
        return f"Sorted by {column.title} ▲ (S reverses)"

    def reverse_sort(self) -> str:
        sort = self.view.sort
        if sort is None:
            return "Not sorted: s sorts by a column first, S then reverses it"
        self._sort((sort[0], sort[1], not sort[2]))
        return f"Sorted by {self.table.columns[sort[0] + 1].title} {'▲' if sort[2] else '▼'}"

    def _sort(self, sort: tuple[int, bool, bool] | None) -> None:
        self.view.set_sort(sort)
        self.table.set_sort_mark(None if sort is None else sort[0] + 1, bool(sort and sort[2]))
        self.redraw()

    # --- selection ---------------------------------------------------------------------------------

    def toggle(self, key: str) -> None:
        self.selected ^= {key}
        self.redraw()

    def select_all(self) -> None:
        """Every row the filter lets through (again: none)."""
        keys = {r.key for r in self.visible_rows()}
        self.selected = set() if keys <= self.selected else self.selected | keys
        self.redraw()

    # --- filter -----------------------------------------------------------------------------------

    def open_filter(self) -> None:
        box = self.query_one(Input)
        box.remove_class("-hidden")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()  # already handled by `typed`, in the keystroke's own step

    def typed(self, value: str) -> None:
        """The filter box's value changed (a keystroke, or cleared)."""
        self._typed = value
        self._stop_timer()
        if len(self.rows) <= FILTER_AT_ONCE or not self.debounce:
            self.apply_filter()  # the usual case: every keystroke filters at once
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
