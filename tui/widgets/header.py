"""The status header: connection label or SANDBOX banner, as_of, invoiced_through, freshness."""

from __future__ import annotations

from datetime import date, datetime

from rich.text import Text
from textual.widgets import Static


class StatusHeader(Static):
    def show(
        self,
        *,
        label: str,
        sandbox: bool,
        as_of: date | None,
        invoiced_through: date | None,
        freshness: dict[str, datetime | None],
        busy: str = "",
        customer: str = "",
    ) -> None:
        text = Text()
        if sandbox:
            text.append(" SANDBOX ", style="reverse bold")
            rest = label.removeprefix("SANDBOX").strip(" —-:") if label else ""
            text.append(f" {rest} " if rest else " ")
        else:
            text.append(f" {label} ", style="bold")
        text.append(f"│ as of {as_of.isoformat() if as_of else '—'} (o) ")
        text.append(f"│ invoiced through {invoiced_through.isoformat() if invoiced_through else '—'} (I) ")
        if freshness:
            parts = [f"{name} {when:%H:%M}" if when else f"{name} never" for name, when in freshness.items()]
            text.append("│ " + " · ".join(parts) + " ")
        if customer:
            text.append(f"│ customer: {customer} (esc: all) ", style="bold")
        if busy:
            text.append(f"│ {busy}", style="italic")
        self.update(text)
