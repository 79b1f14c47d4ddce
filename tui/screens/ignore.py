"""Ignore with a reason: until restored, or this change only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


@dataclass(frozen=True)
class IgnoreChoice:
    mode: Literal["until_restored", "this_change"]
    reason: str


class IgnoreModal(ModalScreen[IgnoreChoice | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modal-cancel"),
        Binding("tab", "toggle_mode", "Mode", priority=True, id="modal-toggle-mode"),
    ]

    def __init__(self, what: str, allow_this_change: bool = True) -> None:
        super().__init__()
        self._what, self._allow = what, allow_this_change
        self.mode: Literal["until_restored", "this_change"] = "until_restored"

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(f"Ignore {self._what}"), classes="modal-title")
            yield Static(id="ignore-mode")
            yield Input(placeholder="Reason (who asked, why)", id="reason")
            yield Static(Text("enter  ignore      tab  mode      esc  cancel"), classes="modal-keys")

    def on_mount(self) -> None:
        self._show_mode()
        self.query_one("#reason", Input).focus()

    def _show_mode(self) -> None:
        until = "(•)" if self.mode == "until_restored" else "( )"
        change = "(•)" if self.mode == "this_change" else "( )"
        text = f"{until} Until restored    {change} This change only"
        if not self._allow:
            text += "  (lines only)"
        self.query_one("#ignore-mode", Static).update(Text(text))

    def action_toggle_mode(self) -> None:
        if self._allow:
            self.mode = "this_change" if self.mode == "until_restored" else "until_restored"
            self._show_mode()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(IgnoreChoice(self.mode, event.value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)
