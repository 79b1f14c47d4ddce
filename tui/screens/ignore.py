"""Ignore with a reason: until restored, or this change only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, RadioButton, RadioSet, Static


@dataclass(frozen=True)
class IgnoreChoice:
    mode: Literal["until_restored", "this_change"]
    reason: str


class IgnoreModal(ModalScreen[IgnoreChoice | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal-cancel")]

    def __init__(self, what: str, allow_this_change: bool = True) -> None:
        super().__init__()
        self._what, self._allow = what, allow_this_change

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(f"Ignore {self._what}"), classes="modal-title")
            with RadioSet(id="ignore-mode"):
                yield RadioButton("Until restored", value=True, id="until_restored")
                yield RadioButton("This change only", id="this_change", disabled=not self._allow)
            yield Input(placeholder="Reason (who asked, why)", id="reason")
            yield Static(Text("enter  ignore      tab  mode      esc  cancel"), classes="modal-keys")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        pressed = self.query_one(RadioSet).pressed_button
        mode = "this_change" if pressed is not None and pressed.id == "this_change" else "until_restored"
        self.dismiss(IgnoreChoice(mode, event.value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)
