"""A yes/no modal: `y` confirms, `n` and `esc` cancel; the body states the count and the target."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


def cost_continues_warning(findings: Iterable[Any], lines: Iterable[Any]) -> str:
    """Issue 15: what the confirm dialog says when a line of the batch reduces billing on a
    subscription whose vendor cost continues (the plan's `commitment_cost_continues` findings, whose
    subject names the line's key). "" when none does."""
    keys = {line.key for line in lines}
    hits = [f for f in findings if f.code == "commitment_cost_continues" and f.subject.get("key") in keys]
    if not hits:
        return ""
    verb = "line reduces" if len(hits) == 1 else "lines reduce"
    head = f"⚠ {len(hits)} {verb} billing while the vendor cost continues:"
    return "\n".join(
        [head, *(f"• {f.message}" for f in hits[:5])]
        + ([f"… and {len(hits) - 5} more"] if len(hits) > 5 else [])
    )


class ConfirmModal(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="modal-yes"),
        Binding("n,escape", "answer(False)", "No", id="modal-no"),
    ]

    def __init__(self, title: str, body: str, warning: str = "") -> None:
        super().__init__()
        self._title, self._body, self._warning = title, body, warning

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(self._title), classes="modal-title")
            yield Static(Text(self._body))
            if self._warning:
                yield Static(Text(self._warning, style="bold"), id="modal-warning")
            yield Static(Text("y  yes      n / esc  no"), classes="modal-keys")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
