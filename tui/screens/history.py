"""h: a subscription's history, as seed 001's History table shows it (date, change, quantity
before → after, who/source, synced?), from engine.history."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from engine.history import HistoryEntry
from engine.money import fmt_quantity

COLUMNS = ("Date", "Change", "Quantity", "Who/source", "Synced?")


def history_cells(entry: HistoryEntry) -> tuple[str, ...]:
    before = "—" if entry.before is None else fmt_quantity(entry.before)
    synced = f"yes, {entry.synced_on.isoformat()}" if entry.synced_on else "no"
    return (
        entry.effective_date.isoformat(),
        entry.change,
        f"{before} → {fmt_quantity(entry.after)}",
        entry.source,
        synced,
    )


class HistoryModal(ModalScreen[None]):
    BINDINGS = [Binding("escape,h,q", "close", "Close", id="history-close")]

    def __init__(self, title: str, entries: list[HistoryEntry]) -> None:
        super().__init__()
        self._title, self._entries = title, entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(self._title), classes="modal-title")
            if self._entries:
                yield DataTable(id="history-table", cursor_type="row")
            else:
                yield Static(Text("No quantity changes stored for this subscription."), id="history-empty")
            yield Static(Text("esc  close"), classes="modal-keys")

    def on_mount(self) -> None:
        if not self._entries:
            return
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for entry in self._entries:
            table.add_row(*(Text(c) for c in history_cells(entry)))
        table.move_cursor(row=len(self._entries) - 1)  # the latest change
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
