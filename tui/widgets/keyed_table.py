"""A DataTable whose rows are keyed by stable domain ids and updated by diff, never cleared."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class KeyedTable(DataTable[Text]):
    """`apply(rows)`: drop vanished keys, `update_cell` changed values, add new keys, order once.
    The cursor stays on the same key when that key survives."""

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
        """rows: (key, cells, style) — style is a Rich style for the whole row ("" for none)."""
        keep = self.cursor_key
        new: dict[str, tuple[tuple[str, ...], str]] = {}
        order: list[str] = []
        for key, cells, style in rows:
            if key in new:
                continue
            new[key] = (cells, style)
            order.append(key)
        with self.app.batch_update():
            for key in list(self._values):
                if key not in new:
                    self.remove_row(key)
                    del self._values[key]
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
            actual = [k for k in self._order if k in new] + [k for k in order if k not in self._order]
            if actual != order:
                self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
                self._update_count += 1
                self.refresh()
            self._order = order
            if keep is not None and keep in new:
                self.move_cursor(row=order.index(keep), animate=False, scroll=False)
            elif self.row_count:
                self.move_cursor(row=min(self.cursor_row, self.row_count - 1), animate=False, scroll=False)
