"""Help: every key, generated from the registry (with the configured keymap applied)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.bindings import REGISTRY, effective_keys, key_label

SCOPES = {"app": "Everywhere", "main": "Panes", "products": "Products", "review": "Review"}


class HelpModal(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help-close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal help"):
            yield Static(Text("trueup — keys (ctrl+p: command palette)"), classes="modal-title")
            yield DataTable(id="help-table", cursor_type="row")
            yield Static(Text("esc  close"), classes="modal-keys")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Where", "Keys", "Action", "What it does")
        keymap = getattr(self.app, "keymap", {})
        for command in REGISTRY:
            table.add_row(
                Text(SCOPES[command.scope]),
                Text(key_label(effective_keys(command, keymap))),
                Text(command.description),
                Text(command.help),
            )
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
