"""A virtual table of keyed rows: a Line-API `ScrollView` that renders only the rows on screen.

The table never holds widgets or renderables per row. It reads a `Rows` source — the pane's full
row list, its filter's matches, or a plain list given to `apply` — for the rows in the viewport
only, so a cursor move, a page down or a filter costs the same with 50 rows or 500,000, and every
row is reachable by scrolling, page down, home/end and the mouse (as Toolong's log view does;
Textual's DataTable measures and stores every row it is given).

The cursor belongs to a key: when the rows change (`show`/`apply`), it stays on the same key if
that key is still there, else on the same index. `RowHighlighted` is posted whenever the row
under the cursor changes, `RowSelected` on enter or a click on the cursor row."""

from __future__ import annotations

import csv
from bisect import bisect_left
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Protocol

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from engine.scrub import spreadsheet_text
from tui.rows import Column
from tui.view import cell_width, column_widths, is_number_cell

Cells = tuple[str, ...]
ELLIPSIS = "…"


FLEX = 18  # what a never-dropped text column counts for while columns are dropped


def fit_columns(columns: Sequence[Column], natural: Sequence[int], width: int) -> tuple[list[int], list[int]]:
    """Which columns show in `width` cells, and how wide: (indices, widths).

    Columns are dropped by priority (the highest number first; the rightmost of a tie) until the
    rest fit with the never-dropped (priority 0) columns counted at FLEX cells at most; the room
    left goes back to those columns up to their widest cell; a priority-0 column may then shrink
    to its minimum width (its cells cut with "…"); if even that is too wide, the table scrolls."""
    widths = [max(cell_width(c.title), n) for c, n in zip(columns, natural, strict=False)]
    widths += [cell_width(c.title) for c in columns[len(widths) :]]
    base = [
        w if c.priority else min(w, max(c.min_width, FLEX, cell_width(c.title)))
        for c, w in zip(columns, widths, strict=True)
    ]
    shown = list(range(len(columns)))

    def total(sizes: dict[int, int] | list[int]) -> int:
        return sum(sizes[i] + 2 for i in shown)

    droppable = sorted(
        (i for i, c in enumerate(columns) if c.priority > 0), key=lambda i: (-columns[i].priority, -i)
    )
    for i in droppable:
        if total(base) <= width:
            break
        shown.remove(i)
    sized = {i: base[i] for i in shown}
    room = width - total(sized)
    while room > 0:  # the room left, a cell at a time, to the columns cut the most
        short = [i for i in shown if sized[i] < widths[i]]
        if not short:
            break
        for i in sorted(short, key=lambda i: sized[i] - widths[i]):
            if room <= 0:
                break
            sized[i] += 1
            room -= 1
    while total(sized) > width:
        over = [i for i in shown if sized[i] > columns[i].min_width]
        if not over:
            break
        widest = max(over, key=lambda i: (sized[i] - columns[i].min_width, i))
        sized[widest] = max(columns[widest].min_width, sized[widest] - (total(sized) - width))
    return shown, [sized[i] for i in shown]


@lru_cache(maxsize=64)
def _parse(style: str) -> Style:
    return Style.parse(style) if style else Style()


class Rows(Protocol):
    """What a table shows: read by index, only for the rows on screen."""

    def __len__(self) -> int: ...

    def row(self, index: int) -> tuple[str, Cells, str]:
        """(key, cells, Rich style of the whole row or "")."""
        ...

    def index(self, key: str) -> int | None: ...

    def widths(self) -> Sequence[int]:
        """The widest cell of each column, over every row (not only those on screen)."""
        ...


class ListRows:
    """`Rows` over a list of (key, cells, style), the first of each key kept."""

    def __init__(self, rows: Iterable[tuple[str, Cells, str]]) -> None:
        self._rows: list[tuple[str, Cells, str]] = []
        self._index: dict[str, int] = {}
        for row in rows:
            if row[0] not in self._index:
                self._index[row[0]] = len(self._rows)
                self._rows.append(row)
        self._widths: list[int] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, index: int) -> tuple[str, Cells, str]:
        return self._rows[index]

    def index(self, key: str) -> int | None:
        return self._index.get(key)

    def widths(self) -> Sequence[int]:
        if self._widths is None:
            self._widths = column_widths(zip(*(cells for _, cells, _ in self._rows), strict=False))
        return self._widths


class SubsetRows:
    """`Rows` over some of a list's items kept in the list's order (a filter's matches): the
    index of a key is found by bisection on the full list's positions, never by a scan. The
    positions are asked for only when a key is looked up that `members` holds (built when first
    needed: an action's patch does not index 45,000 keys again)."""

    def __init__(
        self,
        items: Sequence[object],
        position: Callable[[], Mapping[str, int]],
        key: Callable[[object], str],
        render: Callable[[int], tuple[str, Cells, str]],
        widths: Callable[[], Sequence[int]],
        members: Container[str],
    ) -> None:
        self._items, self._position, self._key = items, position, key
        self._render, self._widths, self._members = render, widths, members

    def __len__(self) -> int:
        return len(self._items)

    def row(self, index: int) -> tuple[str, Cells, str]:
        return self._render(index)

    def index(self, key: str) -> int | None:
        if key not in self._members:
            return None
        position, get_key = self._position(), self._key
        target = position.get(key)
        if target is None:
            return None
        i = bisect_left(self._items, target, key=lambda item: position[get_key(item)])
        return i if i < len(self._items) and get_key(self._items[i]) == key else None

    def widths(self) -> Sequence[int]:
        return self._widths()


class KeyedTable(ScrollView, can_focus=True):
    """A keyed, virtual table: `show(rows)` / `apply(rows)`, a row cursor on a key, a header,
    zebra stripes, a style per row, theme colours through component classes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first_row", "First row", show=False),
        Binding("end,ctrl+end", "last_row", "Last row", show=False),
        Binding("left", "page_left", "Columns left", show=False),
        Binding("right", "page_right", "Columns right", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "keyed-table--header",
        "keyed-table--cursor",
        "keyed-table--even-row",
        "keyed-table--odd-row",
    }

    DEFAULT_CSS = """
    KeyedTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .keyed-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .keyed-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .keyed-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .keyed-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .keyed-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .keyed-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .keyed-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    class _RowMessage(Message):
        """A row of this table: its index under the cursor and its key."""

        def __init__(self, table: KeyedTable, cursor_row: int, key: str) -> None:
            super().__init__()
            self.table, self.cursor_row, self.key = table, cursor_row, key

        @property
        def control(self) -> KeyedTable:
            return self.table

    class RowHighlighted(_RowMessage):
        """The row under the cursor changed (a move, or new rows under it)."""

    class RowSelected(_RowMessage):
        """Enter, or a click on the row under the cursor."""

    class ColumnsChanged(Message):
        """The columns on screen changed (a resize, or a page left/right)."""

        def __init__(self, table: KeyedTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> KeyedTable:
            return self.table

    def __init__(self, columns: Sequence[str | Column], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        # A plain title is a column that is never dropped (priority 0), shown whole.
        self.columns: tuple[Column, ...] = tuple(
            c if isinstance(c, Column) else Column(c, c, 0, max(1, cell_width(c))) for c in columns
        )
        self._column_names: Cells = tuple(c.title for c in self.columns)
        self._rows: Rows = ListRows(())
        self._natural: list[int] = [cell_width(name) for name in self._column_names]
        self._shown: list[int] = list(range(len(self.columns)))  # the columns on screen, in order
        self._widths: list[int] = list(self._natural)  # their widths
        self._page = 0  # 0: the columns that fit by priority; 1…: the dropped ones, a screen at a time
        self._fitted_for = -1
        self.cursor_row = 0
        self._highlighted: str | None = None
        self._lines: dict[tuple[object, ...], Strip] = {}
        self._generation = 0
        self._palette: tuple[Style, ...] = ()

    # --- the rows --------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> Rows:
        return self._rows

    @property
    def keys(self) -> list[str]:
        """Every key, in order (a list of every row: for tests and small tables)."""
        row = self._rows.row
        return [row(i)[0] for i in range(len(self._rows))]

    def holds(self, key: str) -> bool:
        """Is this key one of the table's rows (after the pane's filter)?"""
        return self._rows.index(key) is not None

    @property
    def cursor_key(self) -> str | None:
        if 0 <= self.cursor_row < len(self._rows):
            return self._rows.row(self.cursor_row)[0]
        return None

    def get_row(self, key: str) -> list[Text]:
        """The cells of a row as plain Text (markup is never interpreted)."""
        index = self._rows.index(key)
        if index is None:
            raise KeyError(key)
        _, cells, style = self._rows.row(index)
        return [Text(cell, style=style) for cell in cells]

    def write_csv(self, path: Path) -> int:
        """Every row (after the filter) with every column, dropped or not, as CSV: the row count.
        Text cells pass `engine.scrub.spreadsheet_text` (a company named `=HYPERLINK(…)` is not run
        as a formula); money and quantities (a numeric column, or a cell reading as a number:
        `-$72.00`, `+2`) are written as shown."""
        numeric = [c.numeric for c in self.columns]

        def cell(index: int, text: str) -> str:
            if (index < len(numeric) and numeric[index]) or is_number_cell(text):
                return text
            return spreadsheet_text(text)

        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(c.title for c in self.columns)
            for index in range(len(self._rows)):
                _, cells, _ = self._rows.row(index)
                writer.writerow([cell(i, text) for i, text in enumerate(cells)])
        return len(self._rows)

    def set_sort_mark(self, column: int | None, reverse: bool) -> None:
        """The header's arrow on the sort column (▲ ascending, ▼ descending), or none."""
        self._column_names = tuple(
            c.title + (" ▼" if reverse else " ▲") if i == column else c.title
            for i, c in enumerate(self.columns)
        )
        self._generation += 1
        self._lines.clear()

    def apply(self, rows: Iterable[tuple[str, Cells, str]]) -> None:
        """rows: (key, cells, style) — style is a Rich style for the whole row ("" for none)."""
        self.show(ListRows(rows))

    def show(self, rows: Rows) -> None:
        """Show these rows: O(1) here, the rows are read as they come on screen. The cursor stays
        on the same key when that key is still there, else on the same index (clamped)."""
        keep = self.cursor_key
        self._rows = rows
        self._generation += 1
        self._lines.clear()
        widths = [
            max(cell_width(name), w) for name, w in zip(self._column_names, rows.widths(), strict=False)
        ]
        widths += [cell_width(name) for name in self._column_names[len(widths) :]]
        self._natural = widths
        self._fit()
        index = self._near(rows, keep) if keep is not None else None
        row = index if index is not None else max(0, min(self.cursor_row, len(rows) - 1))
        self._resize(Size(self.table_width, len(rows) + 1))
        self.cursor_row = row
        self._scroll_to_cursor()
        self.refresh()
        self._highlight()

    def _near(self, rows: Rows, key: str) -> int | None:
        """Where `key` is in `rows`: looked for first where the cursor was and a row either side
        (an action patched a row at or above it), then by the rows' index."""
        count = len(rows)
        for index in (self.cursor_row, self.cursor_row - 1, self.cursor_row + 1):
            if 0 <= index < count and rows.row(index)[0] == key:
                return index
        return rows.index(key)

    def _resize(self, size: Size) -> None:
        """A new virtual size without a layout pass of the whole screen (which costs more than
        the whole keystroke): only the scrollbars are updated, and a scrollbar that comes or goes
        asks for the layout itself (its reactive does)."""
        if size == self.virtual_size:
            return
        self.set_reactive(Widget.virtual_size, size)
        if self.is_mounted and self.container_size:
            self._scroll_update(size)
        elif not self.is_mounted:
            self.refresh(layout=True)
        # else: not laid out yet (a hidden tab's table): the layout that gives it a size reads it

    @property
    def table_width(self) -> int:
        return sum(self._widths) + 2 * len(self._widths)

    # --- the columns that fit ---------------------------------------------------------------------

    @property
    def fit_width(self) -> int:
        """The cells a row may take: the content width (80 before the first layout)."""
        width = self.scrollable_content_region.width if self.is_mounted else 0
        return width or 80

    def _pages(self, width: int) -> list[tuple[list[int], list[int]]]:
        """Page 0: the columns that fit by priority; then the dropped ones, behind the columns that
        are never dropped, a screen at a time."""
        first = fit_columns(self.columns, self._natural, width)
        pages = [first]
        rest = [i for i in range(len(self.columns)) if i not in first[0]]
        pinned = [i for i, c in enumerate(self.columns) if c.priority == 0 and c.pin]
        while rest:
            room = width - sum(min(self._natural[i], self.columns[i].min_width * 2) + 2 for i in pinned)
            take: list[int] = []
            for i in rest:
                if take and sum(self._natural[j] + 2 for j in [*take, i]) > room:
                    break
                take.append(i)
            rest = rest[len(take) :]
            spec = [replace(self.columns[i], priority=0) for i in [*pinned, *take]]
            _, sized = fit_columns(spec, [self._natural[i] for i in [*pinned, *take]], width)
            pages.append(([*pinned, *take], sized))
        return pages

    def _fit(self) -> None:
        laid_out = bool(self.size.width)  # a hidden tab's table is not: fitted when first painted
        width = self.fit_width if laid_out else 80
        pages = self._pages(width)
        self._page = min(self._page, len(pages) - 1)
        self._shown, self._widths = pages[self._page]
        self._fitted_for = width if laid_out else -1
        self._page_count = len(pages)

    @property
    def page_count(self) -> int:
        return getattr(self, "_page_count", 1)

    @property
    def page(self) -> int:
        return self._page

    @property
    def page_note(self) -> str:
        """For the title: which screen of columns is shown, when there is more than one."""
        if self.page_count <= 1:
            return ""
        return f"columns {self._page + 1}/{self.page_count} ←/→"

    @property
    def shown_columns(self) -> list[Column]:
        return [self.columns[i] for i in self._shown]

    @property
    def hidden_columns(self) -> list[int]:
        """The indices of the columns not on screen (what the detail panel lists)."""
        return [i for i in range(len(self.columns)) if i not in self._shown]

    def _relayout(self) -> None:
        self._lines.clear()
        self._generation += 1
        self._resize(Size(self.table_width, len(self._rows) + 1))
        self.refresh()
        self.post_message(self.ColumnsChanged(self))

    def on_resize(self, event: events.Resize) -> None:
        if self.fit_width != self._fitted_for:
            self._fit()
            self._relayout()

    def action_page_right(self) -> None:
        """The next screen of columns (a whole page, never one character)."""
        if self._page + 1 < self.page_count:
            self._page += 1
        elif self.table_width > self.fit_width:
            self.scroll_to(x=self.scroll_x + self.fit_width, animate=False, force=True)
            return
        else:
            return
        self._fit()
        self.scroll_to(x=0, animate=False, force=True)
        self._relayout()

    def action_page_left(self) -> None:
        if self.scroll_x > 0:
            self.scroll_to(x=max(0, self.scroll_x - self.fit_width), animate=False, force=True)
            return
        if self._page == 0:
            return
        self._page -= 1
        self._fit()
        self._relayout()

    # --- the cursor ---------------------------------------------------------------------------------

    @property
    def page_height(self) -> int:
        """Rows on screen (the content height less the header)."""
        return max(1, self.scrollable_content_region.height - 1)

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        """DataTable's signature; `animate` is ignored (never animated)."""
        count = len(self._rows)
        row = max(0, min(row, count - 1)) if count else 0
        old = self.cursor_row
        self.cursor_row = row
        if scroll:
            self._scroll_to_cursor()
        if old != row:
            self._refresh_row(old)
            self._refresh_row(row)
        self._highlight()

    def _highlight(self) -> None:
        key = self.cursor_key
        if key != self._highlighted:
            self._highlighted = key
            if key is not None:
                self.post_message(self.RowHighlighted(self, self.cursor_row, key))

    def _scroll_to_cursor(self) -> None:
        top, height, row = round(self.scroll_y), self.page_height, self.cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False, force=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, force=True)

    def _refresh_row(self, row: int) -> None:
        y = row - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh_line(row + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_down(self) -> None:
        """One page on: the view moves with the cursor, so the cursor keeps its place on screen."""
        page = self.page_height
        self.scroll_to(y=round(self.scroll_y) + page, animate=False, force=True)
        self.move_cursor(row=self.cursor_row + page)

    def action_page_up(self) -> None:
        page = self.page_height
        self.scroll_to(y=max(0, round(self.scroll_y) - page), animate=False, force=True)
        self.move_cursor(row=self.cursor_row - page)

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=len(self._rows) - 1)

    def action_select_cursor(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(self, self.cursor_row, key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return  # the header or the border
        row = round(self.scroll_y) + offset.y - 1
        if row >= len(self._rows):
            return
        event.stop()
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)

    # --- rendering ----------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def render_lines(self, crop):  # type: ignore[no-untyped-def]
        if self.size.width and self.fit_width != self._fitted_for:
            # the columns were fitted while the table was hidden (another tab) or before a
            # resize reached it: fit them to the width it is painted at
            self._fit()
            self._lines.clear()
            self._generation += 1
            self._resize(Size(self.table_width, len(self._rows) + 1))
            self.post_message(self.ColumnsChanged(self))
        component = self.get_component_rich_style
        cursor = component("keyed-table--cursor")
        self._palette = (
            self.rich_style,
            component("keyed-table--header"),
            component("keyed-table--even-row"),
            component("keyed-table--odd-row"),
            cursor,
            Style.from_color(cursor.color, cursor.bgcolor),
        )
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not self._palette:
            return Strip.blank(width)
        scroll_x, scroll_y = round(self.scroll_x), round(self.scroll_y)
        index = -1 if y == 0 else scroll_y + y - 1  # the header stays on top
        if index >= len(self._rows):
            return Strip.blank(width, self._palette[0])
        cache_key = (index, index == self.cursor_row, scroll_x, width, self._generation, self._palette)
        strip = self._lines.get(cache_key)
        if strip is None:
            strip = self._render_row(index, scroll_x, width)
            if len(self._lines) > 512:
                self._lines.clear()
            self._lines[cache_key] = strip
        return strip

    def _render_row(self, index: int, scroll_x: int, width: int) -> Strip:
        base, header, even, odd, cursor, cursor_colours = self._palette
        shown = self._shown
        if index < 0:
            names = self._column_names
            cells, pad = tuple(names[i] for i in shown), header
            text = header
        else:
            _, every, style = self._rows.row(index)
            cells = tuple(every[i] if i < len(every) else "" for i in shown)
            pad = even if index % 2 == 0 else odd
            if index == self.cursor_row:
                pad = pad + cursor
                text = pad + _parse(style) + cursor_colours
            else:
                text = pad + _parse(style)
        segments: list[Segment] = []
        append = append_text = segments.append
        for cell, w in zip(cells, self._widths, strict=False):
            if cell.isascii():
                if len(cell) > w:
                    cell = cell[: w - 1] + ELLIPSIS if w > 1 else cell[:w]
                fill = w - cell_width(cell)
            else:
                if cell_len(cell) > w:
                    cell = set_cell_size(cell, w - 1) + ELLIPSIS if w > 1 else set_cell_size(cell, w)
                fill = w - cell_len(cell)
            if text is pad:
                append(Segment(" " + cell + " " * (fill + 1), pad))
            else:
                append(Segment(" ", pad))
                append_text(Segment(cell, text))
                append(Segment(" " * (fill + 1), pad))
        extend = max(0, width + scroll_x - self.table_width)
        if extend:
            append(Segment(" " * extend, pad))
        strip = Strip(segments)
        if scroll_x:
            strip = strip.crop(scroll_x, scroll_x + width)
        return strip.adjust_cell_length(width, base).simplify()
