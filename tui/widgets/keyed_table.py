"""A DataTable whose rows are keyed by stable domain ids and updated by diff, never cleared."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets._data_table import Row as DataTableRow
from textual.widgets.data_table import CellKey, RowKey


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


class KeyedTable(DataTable[Text]):
    """`apply(rows)`: drop vanished keys, `update_cell` changed values, add new keys, order once.
    The cursor stays on the same key when that key survives.

    Every cell is one line of plain text, so column widths come from the strings' cell widths
    (DataTable measures each new cell as a Rich renderable on idle: about 0.3 s for 1,000 rows,
    which would freeze every filter keystroke)."""

    def __init__(self, columns: Sequence[str], **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._column_names = tuple(columns)
        self._values: dict[str, tuple[str, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for index, name in enumerate(self._column_names):
            self.add_column(Text(name), key=f"c{index}")

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    def holds(self, key: str) -> bool:
        """Is this key one of the table's rows (the window, not the whole pane)?"""
        return key in self._values

    @property
    def cursor_key(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:
            return None
        return row_key.value

    def apply(self, rows: Iterable[tuple[str, tuple[str, ...], str]]) -> None:
        """rows: (key, cells, style) — style is a Rich style for the whole row ("" for none).
        Linear in the rows given: vanished keys go in one pass, the order is rebuilt at most once."""
        keep = self.cursor_key
        keep_index = self.cursor_row
        new: dict[str, tuple[tuple[str, ...], str]] = {}
        order: list[str] = []
        for key, cells, style in rows:
            if key in new:
                continue
            new[key] = (cells, style)
            order.append(key)
        with self.app.batch_update():
            vanished = [key for key in self._values if key not in new]
            if vanished:
                self._remove_rows(vanished)
            added = [key for key in order if key not in self._values]
            if len(added) > 8:
                self._add_rows([(key, *new[key]) for key in added])
            for key in order:
                cells, style = new[key]
                signature = (*cells, style)
                old = self._values.get(key)
                if old is None:
                    self.add_row(*(Text(c, style=style) for c in cells), key=key)
                elif old != signature:
                    for index, cell in enumerate(cells):
                        if old[-1] != style or index >= len(old) - 1 or old[index] != cell:
                            self.update_cell(key, f"c{index}", Text(cell, style=style))
                self._values[key] = signature
            before = set(self._order)
            actual = [k for k in self._order if k in new] + [k for k in order if k not in before]
            if actual != order:
                self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
                self._update_count += 1
                self.refresh()
            self._order = order
            self._require_update_dimensions = True
            self.check_idle()
            if keep is not None and keep in new:
                self.move_cursor(row=order.index(keep), animate=False, scroll=False)
            elif self.row_count:
                self.move_cursor(row=max(0, min(keep_index, self.row_count - 1)), animate=False, scroll=False)

    def _add_rows(self, rows: list[tuple[str, tuple[str, ...], str]]) -> None:
        """`add_row` for many rows at once: the same bookkeeping without a reactive cursor update
        and an idle check per row (a filter swaps in up to a whole window at a time)."""
        column_keys = [column.key for column in self.ordered_columns]
        index = self.row_count
        was_empty = index == 0
        for key, cells, style in rows:
            row_key = RowKey(key)
            self._row_locations[row_key] = index
            self._data[row_key] = dict(zip(column_keys, (Text(c, style=style) for c in cells), strict=False))
            self.rows[row_key] = DataTableRow(row_key, 1, None, False)
            self._new_rows.add(row_key)
            self._values[key] = (*cells, style)
            index += 1
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and self.row_count and self.columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self._update_count += 1
        self.check_idle()

    def _remove_rows(self, keys: list[str]) -> None:
        """`remove_row` for many keys at once. DataTable.remove_row renumbers every remaining row
        per call (quadratic when a filter swaps out a whole window); this renumbers once."""
        if len(keys) <= 8:
            for key in keys:
                self.remove_row(key)
                del self._values[key]
            return
        gone = set(keys)
        for key in keys:
            row_key = RowKey(key)
            for column_key in self._data.get(row_key, {}):
                self._updated_cells.discard(CellKey(row_key, column_key))
            self.rows.pop(row_key, None)
            self._data.pop(row_key, None)
            self._new_rows.discard(row_key)
            del self._values[key]
        remaining = [k for k in self._order if k not in gone]
        self._order = remaining
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(remaining)})
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        self.refresh(layout=True)
        self.check_idle()

    # --- sizing (replaces DataTable's per-cell Rich measuring) ----------------------------------------

    def _measure_columns(self) -> None:
        columns = self.ordered_columns
        widths = [_width(name) for name in self._column_names]
        if self._values:
            for index, cells in enumerate(zip(*self._values.values(), strict=False)):
                if index >= len(widths):
                    break
                widths[index] = max(widths[index], max(map(_width, cells)))
        changed = False
        for column, width in zip(columns, widths, strict=False):
            if column.content_width != width:
                column.content_width = width
                changed = True
        if changed:  # the render caches are keyed by the update count, not the widths
            self._update_count += 1
            self.refresh()

    def _update_column_widths(self, updated_cells: object) -> None:
        self._require_update_dimensions = True

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        self._measure_columns()
        data_cells_width = sum(column.get_render_width(self) for column in self.columns.values())
        header_height = self.header_height if self.show_header else 0
        self.virtual_size = Size(data_cells_width + self._row_label_column_width,
                                 self._total_row_height + header_height)
