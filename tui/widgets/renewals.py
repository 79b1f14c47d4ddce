"""The Renewals pane (issue 15): committed subscriptions whose renewal window is open or ahead,
soonest closing first (engine.rules.commitments.renewals), read from the store in a worker thread
(engine.store.commitments.renewal_scenario: a few indexed reads however large the store is).

It is a `Pane` like the others (filter, cursor, detail, copy id), registered under the name
"renewals" with its own columns; the model's PANES (rebuilt on every plan) do not include it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from textual import work

from engine.money import fmt_money, fmt_quantity
from tui.rows import COLUMNS, PANE_TITLES, Column, Row
from tui.widgets.panes import Pane

if TYPE_CHECKING:  # the engine is imported after the first paint
    from engine.rules.commitments import Renewal

RENEWALS = "renewals"
# At 80×24 the window's close, the days left, who, what, the seats and the money stay (issue 13's
# column priorities); the opening date, the term and the state go first (the detail has them).
COLUMNS.setdefault(
    RENEWALS,
    (
        Column("closes", "Closes", 0, 10, pin=True),
        Column("left", "Left", 0, 4, numeric=True),
        Column("state", "State", 3, 8),
        Column("opens", "Opens", 4, 10),
        Column("customer", "Customer", 0, 10, pin=True),
        Column("product", "Product", 0, 10),
        Column("term", "Term", 2, 8),
        Column("seats", "Seats", 0, 5, numeric=True),
        Column("cost", "Cost/month", 0, 10, numeric=True),
    ),
)
PANE_TITLES.setdefault(RENEWALS, "Renewals")


def renewal_rows(found: list[Renewal]) -> list[Row]:
    from engine.scrub import clean_text

    rows = []
    for r in found:
        r = replace(r, company=clean_text(r.company), product=clean_text(r.product))
        paid = "paid up front" if r.billing_term == "annual" else "paid monthly"
        renews = "renews automatically" if r.auto_renew else "does not renew"
        detail = "\n".join(
            [
                f"{r.company} · {r.product} · subscription {r.subscription_id}",
                f"{r.term} term ({paid}) ends {r.window.term_end.isoformat()}; {renews}.",
                f"Renewal window {r.window.opens.isoformat()} – {r.window.closes.isoformat()}: "
                f"{r.days_left} day(s) left to reduce or cancel {fmt_quantity(r.quantity)} seat(s) "
                f"({fmt_money(r.monthly_cost)} a month at the vendor's cost).",
            ]
        )
        rows.append(
            Row(
                key=r.subscription_id,
                cells=(
                    r.window.closes.isoformat(),
                    str(r.days_left),
                    r.state,
                    r.window.opens.isoformat(),
                    r.company,
                    r.product,
                    r.term,
                    fmt_quantity(r.quantity),
                    fmt_money(r.monthly_cost),
                ),
                detail=detail,
            )
        )
    return rows


class RenewalsPane(Pane):
    def __init__(self) -> None:
        super().__init__(RENEWALS)
        self.loaded_for: date | None = None
        self._generation = 0

    def load(self, workspace: Any, today: date) -> None:
        """Read the renewals of `workspace`'s store as of `today`, off the UI thread. Reads are not
        cancelled (a cancelled worker fails whoever waits for it): each runs to the end and only the
        latest one asked for is shown."""
        store = getattr(workspace, "store", None)
        if store is not None:
            self._generation += 1
            self._load(store, today, self._generation)

    @work(thread=True, group="renewals", exit_on_error=False)
    def _load(self, store: Any, today: date, generation: int) -> None:
        from engine.rules.commitments import renewals
        from engine.store.commitments import renewal_scenario

        rows = renewal_rows(renewals(renewal_scenario(store, today), today=today))
        self.app.call_from_thread(self._show, rows, today, generation)

    def _show(self, rows: list[Row], today: date, generation: int) -> None:
        if generation != self._generation:
            return  # a later read was asked for meanwhile
        self.set_rows(rows)
        self.loaded_for = today
        try:
            from textual.widgets import TabbedContent

            tabs = self.screen.query_one(TabbedContent)
            tab, label = tabs.get_tab(f"tab-{RENEWALS}"), f"{PANE_TITLES[RENEWALS]} {len(rows)}"
            if tab.label.plain != label:  # a new label is a layout pass of the whole screen
                tab.label = label
        except Exception:  # noqa: BLE001 - the label is cosmetic; the rows are shown either way
            pass
