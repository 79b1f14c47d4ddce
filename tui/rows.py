"""The console's rows, columns and figures: plain, frozen data, and nothing else — no engine, no
Textual. This module is what the first paint needs (with the saved view's codec, `tui.view_codec`),
so it imports only the standard library: a launch paints the saved rows before SQLAlchemy, SQLModel
and pydantic are loaded (issue 12). The rows are built from a plan by `tui.model`."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.plan import Plan, PlanLine

ZERO = Decimal("0.00")
IGNORED_PREFIX = "ignored:"  # an Unsynced row of ignored lines next to the same subscription's shown row
IGNORED_WIDTHS = "ignored:"  # ConsoleData.widths: `ignored:<pane>`, the widths of a pane's ignored rows

PANES = ("overview", "customers", "unsynced", "arrears", "prorates", "errors")
PANE_TITLES = {
    "overview": "Overview",
    "customers": "Customers",
    "unsynced": "Unsynced",
    "arrears": "Arrears",
    "prorates": "Prorates",
    "errors": "Errors",
    "products": "Products",
}
CUSTOMER_STATES = {"not_mapped": "Not mapped", "mapping_error": "Mapping error", "mapped": "Mapped"}
PRODUCT_KEY_SEP = "|"  # a Products row's key: vendor product id | sub-product ("" for the product itself)


@dataclass(frozen=True)
class Column:
    """One column of a pane: `key` names the value, `priority` says what goes first when the
    screen is narrow (0: never dropped — money, quantity change, state, who and what; higher
    numbers are dropped first), `min_width` how far a priority-0 column may shrink (cut with
    "…"), `pin`: kept in front when the operator pages to the dropped columns."""

    key: str
    title: str
    priority: int = 0
    min_width: int = 6
    pin: bool = False
    numeric: bool = False  # sorts as a number (money, quantities)


@dataclass(frozen=True)
class Row:
    """One table row: a stable key, the cells (plain strings), a detail text and its state."""

    key: str
    cells: tuple[str, ...]
    detail: str = ""
    ignored: bool = False
    target: str | None = None  # Overview: the pane enter jumps to
    line_keys: tuple[str, ...] = ()  # the plan lines this row stands for
    editable: bool = False  # a proposed `create` line whose effective date can move
    search: str = field(default="", compare=False, repr=False)  # what `/` matches (computed once)
    # Domain facts of the row, never read back from its cells: the vendor company it belongs to
    # (what a per-customer recompute patches by) and, on Customers, the mapping state.
    company_id: str | None = None
    status: str = ""  # Customers: "not_mapped", "mapping_error" or "mapped"

    def __post_init__(self) -> None:
        if not self.search:  # built with the row (in the loading thread), not on a keystroke
            object.__setattr__(self, "search", _search_of(self.key, self.cells))


def _search_of(key: str, cells: tuple[str, ...]) -> str:
    return "\x1f".join((key, *cells)).casefold()


def search_text(row: Row) -> str:
    """What `/` matches in `row`: its key and cells, casefolded. A row decoded from a saved view
    has none (it is not saved: a fifth of the view): rebuilt from the row's fields the first time
    a filter reads it, and kept on the row."""
    text = row.search
    if not text:
        text = _search_of(row.key, row.cells)
        object.__setattr__(row, "search", text)  # a cache of the row's own fields (compare=False)
    return text


@dataclass
class ConsoleData:
    plan: Plan  # None while `complete` is False: a saved view's rows, painted before the plan is restored
    as_of: date
    invoiced_through: date
    rows: dict[str, list[Row]] = field(default_factory=dict)
    ignored_rows: dict[str, list[Row]] = field(default_factory=dict)
    lines: dict[str, PlanLine] = field(default_factory=dict)
    ignored: dict[str, Any] = field(default_factory=dict)  # key -> Ignore
    company_names: dict[str, str] = field(default_factory=dict)
    psa_companies: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    psa_company_names: dict[str, str] = field(default_factory=dict)
    agreement_names: dict[str, str] = field(default_factory=dict)
    psa_lines: dict[str, Any] = field(default_factory=dict)
    product_names: dict[str, str] = field(default_factory=dict)  # subscription id -> product name
    psa_products: list[tuple[str, str]] = field(default_factory=list)  # (id, label), sorted by name
    psa_product_names: dict[str, str] = field(default_factory=dict)
    bindings: dict[tuple[str, str], Any] = field(default_factory=dict)  # (vendor product, sub-product or "")
    psa: str = "PSA"
    configuration_companies: dict[str, str] = field(default_factory=dict)  # billing configuration -> company
    # Where the figures come from (engine.store.plan_cache): the store revision they were computed
    # from, when, and for which (as-of asked for, day). `stale`: a saved state that no longer matches
    # the store — shown with a banner while the fresh one is computed. `complete` False: the rows of
    # a current saved state, its plan (review, dates, restore) still being restored.
    revision: int | None = None
    computed_at: datetime | None = None
    computed_for: tuple[date | None, date] | None = None
    stale: bool = False
    complete: bool = True
    saved: bool = False  # read from, or written to, the store's saved state
    # Warnings acknowledged (engine.actions.acknowledgements, from the audit trail), by finding key:
    # (who, when as an ISO minute, why). Shown in the Errors row and counted on the Overview.
    acknowledged: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # Per pane, the widest cell of each column over its rows (`<pane>`) and over its ignored rows
    # (`ignored:<pane>`): measured with the rows (off the UI loop) and saved with the view, so
    # neither a first paint nor a refresh measures 45,000 rows on the UI loop. After a per-customer
    # patch a column may stay wider than its widest cell (widened by the customers' new rows, never
    # narrowed) until a full build.
    widths: dict[str, list[int]] = field(default_factory=dict)

    def widths_for(self, pane: str, show_ignored: bool) -> list[int] | None:
        """The column widths of `rows_for(pane, show_ignored)`, or None when not measured."""
        widths = self.widths.get(pane)
        if widths is None or not show_ignored:
            return widths
        ignored = self.widths.get(IGNORED_WIDTHS + pane)
        if ignored is None:
            return None
        return widened(widths, ignored)

    def rows_for(self, pane: str, show_ignored: bool) -> list[Row]:
        rows = list(self.rows.get(pane, []))
        if show_ignored:
            rows += self.ignored_rows.get(pane, [])
        return rows

    def company(self, vendor_company_id: str) -> str:
        return self.company_names.get(vendor_company_id, vendor_company_id)


def widened(widths: Sequence[int] | None, more: Sequence[int]) -> list[int]:
    """Each column as wide as the wider of the two."""
    return [max(a, b) for a, b in zip_longest(widths or (), more, fillvalue=0)]


def figures_time(data: ConsoleData) -> str:
    """When the figures shown were computed, in local time ("09:30", or "21 Nov 09:30" another day)."""
    if data.computed_at is None:
        return "earlier"
    at = data.computed_at.astimezone()
    today = datetime.now(UTC).astimezone().date()
    return at.strftime("%H:%M") if at.date() == today else at.strftime("%d %b %H:%M")


def product_key(vendor_product_id: str, sub_product: str | None) -> str:
    return f"{vendor_product_id}{PRODUCT_KEY_SEP}{sub_product or ''}"


def split_product_key(key: str) -> tuple[str, str | None]:
    product_id, _, sub_product = key.rpartition(PRODUCT_KEY_SEP)
    return product_id, sub_product or None


C = Column
NET = C("net", "Net $/mo", 0, 9, numeric=True)
STATE = C("state", "State", 0, 5)
COLUMNS: dict[str, tuple[Column, ...]] = {
    "overview": (
        C("state", "State", 0, 4, pin=True),
        C("item", "Checklist", 0, 16, pin=True),
        C("count", "Count", 0, 12),
        NET,
        C("one_time", "One-time", 0, 9, numeric=True),
        C("margin", "Margin", 2, 8),
    ),
    "customers": (
        C("customer", "Vendor company", 0, 12, pin=True),
        C("psa_company", "PSA company", 2, 10),
        C("status", "Status", 0, 10),
        NET,
        C("one_time", "One-time", 1, 9, numeric=True),
        C("message", "Message", 4, 10),
        C("agreement", "Agreement", 3, 10),
    ),
    "unsynced": (
        C("id", "Id", 3, 8),
        C("customer", "Company", 0, 10, pin=True),
        C("product", "Product", 0, 10, pin=True),
        C("change", "Old → new", 0, 7),
        NET,
        C("one_time", "One-time", 1, 9, numeric=True),
        STATE,
        C("margin", "Margin $", 4, 8, numeric=True),
    ),
    "arrears": (
        C("customer", "Company", 0, 10, pin=True),
        C("product", "Product", 0, 10, pin=True),
        C("sub_product", "Sub-product", 8, 8),
        C("change", "Old → new", 0, 7),
        NET,
        C("final", "Final", 1, 5),
        STATE,
        C("period", "Period", 4, 10),
    ),
    "prorates": (
        C("customer", "Company", 0, 10, pin=True),
        C("product", "Product", 0, 10, pin=True),
        C("kind", "Kind", 1, 7),
        C("change", "Increase", 0, 4),
        C("one_time", "One-time", 0, 9, numeric=True),
        STATE,
        C("effective", "Effective Date", 3, 10),
        C("during", "Effective during", 4, 12),
        C("quantity", "Quantity", 5, 4, numeric=True),
        C("prorate_price", "Prorate price", 6, 8, numeric=True),
        C("unit_price", "Unit price", 7, 8, numeric=True),
        C("prorate_cost", "Prorate cost", 8, 8, numeric=True),
        C("unit_cost", "Unit cost", 9, 8, numeric=True),
        C("synced", "Synced", 9, 6),
        C("formula", "Formula", 10, 10),
    ),
    "errors": (
        C("severity", "Severity", 0, 7, pin=True),
        C("code", "Code", 1, 10),
        C("customer", "Customer", 0, 10, pin=True),
        C("state", "State", 0, 20),  # "ack'd by alice 12-01" whole at 80 columns (ack_state)
        C("subject", "Subject", 6, 10),
        C("message", "Message", 0, 16),
        C("hint", "Clears it", 3, 10),
    ),
    "products": (
        C("product", "Vendor product", 0, 12, pin=True),
        C("sub_product", "Sub-product", 2, 8),
        C("kind", "Kind", 4, 6),
        C("psa_product", "PSA product", 0, 12),
        C("subs", "Subs", 3, 4, numeric=True),
        C("unbound", "Unbound", 1, 4, numeric=True),
        STATE,
    ),
}
SELECT_COLUMN = C("sel", "Sel", 0, 1, pin=True)


def column_index(pane: str, key: str) -> int:
    """Where a column's value sits in the pane's row cells."""
    return next(i for i, c in enumerate(COLUMNS[pane]) if c.key == key)


def cell(row: Row, pane: str, key: str) -> str:
    """A row's value of a column, by the column's key."""
    return row.cells[column_index(pane, key)]


def row_company(row: Row) -> str:
    return row.company_id or ""


def rows_of(panes: dict[str, list[Row]], companies: set[str], *, in_plan_order: bool) -> list[Row]:
    """The line panes' rows of `companies`: found by bisection when the rows are in plan order (the
    shown rows), else by a scan (the ignored rows, few)."""
    found: list[Row] = []
    for pane in ("unsynced", "arrears", "prorates"):
        if pane not in panes:
            continue
        rows = panes[pane]
        if not in_plan_order:
            found += [r for r in rows if r.company_id in companies]
            continue
        for company in companies:
            lo = bisect_left(rows, company, key=row_company)
            found += rows[lo : bisect_right(rows, company, lo=lo, key=row_company)]
    return found


def company_rows(data: ConsoleData, pane: str, companies: frozenset[str], show_ignored: bool) -> list[Row]:
    """The rows of `pane` a per-customer patch of `companies` rebuilt (by bisection in the line
    panes; the small panes whole)."""
    if pane in ("unsynced", "arrears", "prorates"):
        found = rows_of({pane: data.rows.get(pane, [])}, set(companies), in_plan_order=True)
        if show_ignored:
            found += [r for r in data.ignored_rows.get(pane, []) if r.company_id in companies]
        return found
    if pane == "customers":
        return (
            [r for r in data.rows.get(pane, []) if r.key in companies]
            if len(companies) < 50
            else data.rows.get(pane, [])
        )
    return data.rows_for(pane, show_ignored)
