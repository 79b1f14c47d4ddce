"""Edit a date. The `apply` callback runs the engine action in a worker; a refusal (ActionError)
is shown inline and nothing is saved; on success the modal closes with the date."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class EditDateModal(ModalScreen[date | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal-cancel")]

    def __init__(
        self, title: str, current: date | None, apply: Callable[[date], object] | None, note: str = ""
    ) -> None:
        super().__init__()
        self._title, self._current, self._apply, self._note = title, current, apply, note

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(self._title), classes="modal-title")
            if self._note:
                yield Static(Text(self._note))
            yield Input(
                value=self._current.isoformat() if self._current else "",
                placeholder="YYYY-MM-DD",
                id="date-input",
            )
            yield Static("", id="date-error", classes="modal-error")
            yield Static(Text("enter  save      esc  cancel"), classes="modal-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        try:
            value = date.fromisoformat(text)
        except ValueError:
            self.show_error(f"{text or 'Nothing'} is not a date; type YYYY-MM-DD.")
            return
        if self._apply is None:
            self.dismiss(value)
        else:
            self.query_one("#date-error", Static).update(Text("Saving…"))
            self._save(value)

    def show_error(self, message: str) -> None:
        self.query_one("#date-error", Static).update(Text(f"Refused: {message}"))
        self.query_one(Input).focus()

    @work(thread=True, exclusive=True, group="edit-date", exit_on_error=False)
    def _save(self, value: date) -> None:
        from engine.actions import ActionError

        assert self._apply is not None
        try:
            self._apply(value)
        except ActionError as exc:
            self.app.call_from_thread(self.show_error, str(exc))
            return
        except Exception as exc:  # a connector or store failure: shown, never a traceback
            self.app.call_from_thread(self.show_error, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self.dismiss, value)

    def action_cancel(self) -> None:
        self.dismiss(None)
