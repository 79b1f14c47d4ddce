"""A yes/no modal: `y` confirms, `n` and `esc` cancel; the body states the count and the target."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmModal(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="modal-yes"),
        Binding("n,escape", "answer(False)", "No", id="modal-no"),
    ]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self._title, self._body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(self._title), classes="modal-title")
            yield Static(Text(self._body))
            yield Static(Text("y  yes      n / esc  no"), classes="modal-keys")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
