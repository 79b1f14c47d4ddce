"""The Margin pane (issue 14): the three-way check of a month (engine.margin.three_way_check) per
customer — distributor cost, PSA billed, what the plan says should be billed, margin $ and %, and
the classified differences with their reasons. Each customer says where PSA billed came from: the
PSA's invoices of the month (read by `trueup margin`, engine.margin.psa_invoices) or, where the PSA
cannot say or issued none, its lines in force. Enter on a customer opens its subscriptions' rows
under it (enter again closes them); the bottom rows are the totals per currency, which tie out
(classified cost = the distributor's invoices, classified price = the PSA total). A month with no
counted invoice says NOT AUDITED, never clean. `[` / `]` move to the month before / after.

The month defaults to the latest invoiced month (as `trueup margin` does). The check reads the
store and runs in a thread worker, only while the pane is shown (or when it is opened after the
figures changed): it never blocks a key. Registered under the name "margin" with its own columns;
the model's PANES (rebuilt on every plan) do not include it."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.binding import Binding, BindingType

from engine.money import fmt_money, fmt_quantity
from engine.months import add_months, parse_month
from tui.rows import COLUMNS, PANE_TITLES, Column, Row
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.panes import Pane

if TYPE_CHECKING:  # the engine is imported after the first paint
    from engine.margin import MarginReport, MarginRow

MARGIN = "margin"
C = Column
# Money never drops at 80×24 (priority 0); the product, margin % and reason go first.
COLUMNS.setdefault(
    MARGIN,
    (
        C("customer", "Customer", 0, 10, pin=True),
        C("product", "Product", 4, 10),
        C("class", "Difference", 0, 8),
        C("cost", "Cost", 0, 9, numeric=True),
        C("billed", "Billed", 0, 9, numeric=True),
        C("planned", "Planned", 0, 9, numeric=True),
        C("margin", "Margin $", 0, 9, numeric=True),
        C("percent", "Margin %", 2, 6, numeric=True),
        C("reason", "Reason", 3, 12),
    ),
)
PANE_TITLES.setdefault(MARGIN, "Margin")
CUSTOMER = "customer:"
SUBSCRIPTION = "sub:"
TOTAL = "total:"


_SOURCE = {
    "invoices": "the PSA's invoices of the month",
    "lines in force": "the lines in force (the PSA's invoices do not say, or it issued none this month)",
}


def _percent(price: Decimal, cost: Decimal) -> str:
    from engine.margin import margin_percent

    p = margin_percent(price, cost)
    return f"{p} %" if p is not None else "—"


def _is_leak(row: MarginRow) -> bool:
    return row.cls not in ("matched", "timing", "ignored", "internal_use")


def _customer_key(currency: str, company_id: str, name: str) -> str:
    return f"{CUSTOMER}{currency}:{company_id or name}"


def customer_rows(report: MarginReport) -> tuple[list[Row], dict[str, list[Row]]]:
    """The customers' rows and totals, and each customer's subscription rows (by customer key)."""
    from engine.margin import CLASS_LABELS
    from engine.scrub import clean_text

    subs: dict[str, list[Row]] = defaultdict(list)
    for i, r in enumerate(report.rows):
        key = _customer_key(r.currency, r.company_id, r.company_name)
        name, product = clean_text(r.company_name), clean_text(r.product)
        quantities = ""
        if r.vendor_quantity is not None or r.psa_quantity is not None:
            vq = fmt_quantity(r.vendor_quantity) if r.vendor_quantity is not None else "—"
            pq = fmt_quantity(r.psa_quantity) if r.psa_quantity is not None else "—"
            quantities = f"\nSeats: {vq} on the invoice, {pq} on the PSA."
        subs[key].append(
            Row(
                key=f"{SUBSCRIPTION}{i}",
                cells=(
                    f"  {name}",
                    product,
                    CLASS_LABELS[r.cls],
                    fmt_money(r.cost),
                    fmt_money(r.price),
                    fmt_money(r.should_bill),
                    fmt_money(r.margin),
                    _percent(r.price, r.cost),
                    clean_text(r.reason),
                ),
                detail=(
                    f"{name} · {product}"
                    + (f" · subscription {r.subscription_id}" if r.subscription_id else "")
                    + f"\n{CLASS_LABELS[r.cls]} ({r.currency}): {clean_text(r.reason)}{quantities}"
                ),
                company_id=r.company_id or None,
            )
        )
    rows: list[Row] = []
    for c in report.customers:
        key = _customer_key(c.currency, c.company_id, c.company_name)
        mine = [r for r in report.rows if _customer_key(r.currency, r.company_id, r.company_name) == key]
        counts: dict[str, int] = defaultdict(int)
        for r in mine:
            if _is_leak(r):
                counts[CLASS_LABELS[r.cls]] += 1
        summary = "; ".join(f"{label} ×{n}" if n > 1 else label for label, n in counts.items())
        name = clean_text(c.company_name)
        rows.append(
            Row(
                key=key,
                cells=(
                    name,
                    f"{len(mine)} item(s) · PSA billed from {c.psa_billed_from}",
                    f"{c.leaks} to act on" if c.leaks else "no leak",
                    fmt_money(c.cost),
                    fmt_money(c.price),
                    fmt_money(c.should_bill),
                    fmt_money(c.margin),
                    _percent(c.price, c.cost),
                    summary,
                ),
                detail=(
                    f"{name} ({c.currency}) in {report.month}: cost {fmt_money(c.cost)}, billed "
                    f"{fmt_money(c.price)}, the plan bills {fmt_money(c.should_bill)}, margin "
                    f"{fmt_money(c.margin)} ({_percent(c.price, c.cost)})."
                    + f"\nPSA billed: from {_SOURCE.get(c.psa_billed_from, c.psa_billed_from)}."
                    + (f"\nTo act on: {summary}." if summary else "")
                    + "\nPress enter for its subscriptions; [ and ] change the month."
                ),
                company_id=c.company_id or None,
            )
        )
    rows.extend(total_rows(report))
    return rows, dict(subs)


def total_rows(report: MarginReport) -> list[Row]:
    """The bottom line per currency: classified sums, and whether they tie out to the invoices."""
    out = []
    for t in report.totals:
        planned = sum((r.should_bill for r in report.rows if r.currency == t.currency), Decimal(0))
        if report.status == "not_audited":
            cells = (
                f"Total {t.currency}",
                "",
                "NOT AUDITED",
                "—",
                fmt_money(t.psa_total),
                "—",
                "—",
                "—",
                f"no distributor invoice for {report.month}",
            )
            detail = (
                f"NOT AUDITED: the distributor has no invoice for {report.month}; nothing is known to be "
                f"clean. The PSA bills {fmt_money(t.psa_total)} ({t.currency})."
            )
        else:
            tie = "ties out" if t.ties_out else "DOES NOT TIE OUT"
            cells = (
                f"Total {t.currency}",
                "",
                tie,
                fmt_money(t.cost),
                fmt_money(t.price),
                fmt_money(planned),
                fmt_money(t.price - t.cost),
                _percent(t.price, t.cost),
                f"invoices {fmt_money(t.invoice_total)}, PSA {fmt_money(t.psa_total)}",
            )
            detail = (
                f"{t.currency} {report.month}: distributor invoices {fmt_money(t.invoice_total)} = "
                f"classified cost {fmt_money(t.cost)}; PSA {fmt_money(t.psa_total)} = classified price "
                f"{fmt_money(t.price)}: {tie}.\nPSA billed from {report.psa_source}."
            )
        out.append(Row(key=f"{TOTAL}{t.currency}", cells=cells, detail=detail))
    return out


class MarginPane(Pane):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "month(-1)", "Month before", show=False),
        Binding("right_square_bracket", "month(1)", "Month after", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(MARGIN)
        self.report: MarginReport | None = None
        self.month: str | None = None  # None: the latest invoiced month
        self.expanded: set[str] = set()
        self._customers: list[Row] = []
        self._subs: dict[str, list[Row]] = {}
        self._generation = 0
        self._source: tuple[Any, Any] | None = None  # (workspace, data) of the figures shown
        self._dirty = False

    # --- loading -------------------------------------------------------------------------------

    def figures_changed(self, workspace: Any, data: Any) -> None:
        """New figures: check again now if the pane is shown, else when it is opened."""
        self._source = (workspace, data)
        self._dirty = True
        if self.tab_shown:
            self.load()

    def opened(self) -> None:
        if self._dirty:
            self.load()

    @property
    def tab_shown(self) -> bool:
        try:
            from textual.widgets import TabbedContent

            return self.screen.query_one(TabbedContent).active == f"tab-{MARGIN}"
        except Exception:  # noqa: BLE001 - not mounted yet
            return False

    def load(self) -> None:
        if self._source is None:
            return
        workspace, data = self._source
        store = getattr(workspace, "store", None)
        if store is None or data is None or not data.complete:  # the check needs the plan: stays due
            return
        self._dirty = False
        self._generation += 1
        self.table.border_subtitle = "checking…"
        psa_name = str(getattr(getattr(workspace, "psa", None), "name", ""))
        self._check(store, data.plan, data.as_of, self.month, self._generation, psa_name)

    @work(thread=True, group="margin", exit_on_error=False)
    def _check(
        self, store: Any, plan: Any, as_of: date, month: str | None, generation: int, psa_name: str
    ) -> None:
        from engine.margin import three_way_check
        from engine.margin.store import load_invoices, marks, psa_invoiced_for_check

        try:
            invoices = load_invoices(store)
            if month is None:
                counted = sorted({inv.month for inv in invoices if inv.counted})
                month = counted[-1] if counted else f"{as_of.year:04d}-{as_of.month:02d}"
            scenario = store.snapshot(as_of)
            report = three_way_check(
                scenario,
                invoices,
                month,
                marks=marks(store),
                plan=plan,
                psa_invoiced=psa_invoiced_for_check(store, psa_name or scenario.settings.psa),
            )
            rows, subs = customer_rows(report)
        except Exception as exc:  # noqa: BLE001 - one sentence to the operator, never a traceback
            self.app.call_from_thread(self._failed, f"{type(exc).__name__}: {exc}", generation)
            return
        self.app.call_from_thread(self._show, report, rows, subs, generation)

    def _failed(self, message: str, generation: int) -> None:
        if generation == self._generation:
            self.table.border_subtitle = "check failed"
            self.app.notify(f"The margin check failed: {message}", severity="error", timeout=10)

    def _show(
        self, report: MarginReport, rows: list[Row], subs: dict[str, list[Row]], generation: int
    ) -> None:
        if generation != self._generation:
            return  # a later check was asked for meanwhile
        self.report = report
        self.month = report.month
        self._customers, self._subs = rows, subs
        self.expanded &= subs.keys()
        self._render_rows()
        label = f"{PANE_TITLES[MARGIN]} {report.month}"
        if report.status == "not_audited":
            label += " not audited"
        try:
            from textual.widgets import TabbedContent

            self.screen.query_one(TabbedContent).get_tab(f"tab-{MARGIN}").label = label
        except Exception:  # noqa: BLE001 - the label is cosmetic; the rows are shown either way
            pass

    def _render_rows(self) -> None:
        rows: list[Row] = []
        for row in self._customers:
            rows.append(row)
            if row.key in self.expanded:
                rows.extend(self._subs.get(row.key, []))
        self.set_rows(rows)
        if self.report is not None:
            self.table.border_subtitle = f"{self.report.month} · [ ] month · enter: subscriptions"

    # --- keys ----------------------------------------------------------------------------------

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        event.stop()
        key = event.key
        if key.startswith(SUBSCRIPTION):  # enter on a subscription closes its customer
            key = next((k for k, subs in self._subs.items() if any(r.key == key for r in subs)), key)
        if key in self._subs:
            self.expanded ^= {key}
            self._render_rows()
            index = self.table.rows.index(key)
            if index is not None:
                self.table.move_cursor(row=index)

    def action_month(self, step: int) -> None:
        if self.month is None:
            return
        self.month = f"{add_months(parse_month(self.month), step):%Y-%m}"
        self.load()
