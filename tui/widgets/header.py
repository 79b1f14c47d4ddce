"""The status header: connection label or SANDBOX banner, the store, the PSA, as_of,
invoiced_through, freshness, the customer search.

It fits its width by priority (issue 13: at 80 columns the date after "invoiced through" was cut):
the freshness goes first, then the key hints, then the labels shorten and the connection's
description gives way to the store's name; the store, the PSA, the as-of date and the
invoiced-through date stay (the store's name cut in its middle as a last resort, the customer
search left to the panes' titles when even its name has no room)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import Static

ELLIPSIS = "…"
STORE_SEP = " · "  # engine.workspace labels: "<connection> · <store>" (engine.store.resolve short())
LEVELS = 7  # 0: everything in full … 6: the shortest labels; then the store and customer are cut


@dataclass(frozen=True)
class HeaderFields:
    label: str
    sandbox: bool
    as_of: date | None
    invoiced_through: date | None
    freshness: dict[str, datetime | None] = field(default_factory=dict)
    busy: str = ""
    customer: str = ""
    psa: str = ""


def _cut_middle(text: str, width: int) -> str:
    """`text` in `width` cells, its middle replaced by "…" (a store's name: both ends tell)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1) // 2 + (width - 1) % 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def _cut_end(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def _render(f: HeaderFields, level: int, room: int | None = None) -> Text:
    """The header at `level` of shortening; `room`: cut the store and the customer to fit it."""
    label = f.label
    if f.sandbox:
        label = label.removeprefix("SANDBOX").strip(" —-:") if label else ""
    connection, _, store = label.rpartition(STORE_SEP)
    shown_label = store if level >= 4 and connection else label
    customer = f.customer.strip()
    customer_text = f"customer: {customer} (esc: all)" if level < 5 else f"cust: {customer}"
    hints = level < 2
    as_of = f"as of {f.as_of.isoformat() if f.as_of else '—'}" + (" (o)" if hints else "")
    through = "invoiced through" if level < 3 else "inv. through"
    invoiced = f"{through} {f.invoiced_through.isoformat() if f.invoiced_through else '—'}" + (
        " (I)" if hints else ""
    )
    psa = f.psa if f.psa and f.psa.casefold() not in shown_label.casefold() else ""

    def build(store_text: str, customer_line: str) -> Text:
        text = Text()
        if f.sandbox:
            text.append(" SANDBOX ", style="reverse bold")
            text.append(f" {store_text} " if store_text else " ")
        else:
            text.append(f" {store_text} ", style="bold")
        if psa:
            text.append(f"│ {psa} ")
        text.append(f"│ {as_of} ")
        text.append(f"│ {invoiced} ")
        if f.freshness and level < 1:
            parts = [
                f"{name} {when:%H:%M}" if when else f"{name} never" for name, when in f.freshness.items()
            ]
            text.append("│ " + " · ".join(parts) + " ")
        if customer:
            text.append(f"│ {customer_line} ", style="bold")
        if f.busy and level < 6:
            text.append(f"│ {f.busy}", style="italic")
        return text

    text = build(shown_label, customer_text)
    if room is None or text.cell_len <= room:
        return text
    over = text.cell_len - room  # the customer gives way first (the panes' titles name it too) …
    if customer:
        cut = cell_len(customer_text) - over
        if cut >= 8:
            return build(shown_label, _cut_end(customer_text, cut))
        customer = ""
        text = build(shown_label, "")
        over = text.cell_len - room
    if over <= 0:
        return text
    # … then the store's name, cut in its middle
    return build(_cut_middle(shown_label, max(8, cell_len(shown_label) - over)), "")


def header_text(f: HeaderFields, width: int) -> Text:
    """The longest form of the header that fits `width` cells."""
    for level in range(LEVELS):
        text = _render(f, level)
        if text.cell_len <= width:
            return text
    return _render(f, LEVELS - 1, room=width)


class StatusHeader(Static):
    _fields: HeaderFields | None = None

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
        psa: str = "",
    ) -> None:
        self._fields = HeaderFields(
            label, sandbox, as_of, invoiced_through, dict(freshness), busy, customer, psa
        )
        self._paint()

    def on_resize(self, event: events.Resize) -> None:
        self._paint()

    def _paint(self) -> None:
        if self._fields is None:
            return
        width = self.size.width or (self.app.size.width if self.is_attached else 0) or 80
        self.update(header_text(self._fields, width), layout=False)  # one line, always (app.tcss)
