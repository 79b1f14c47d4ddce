"""The distributor's invoices as the engine reads them (Pax8 `Invoice` / `InvoiceItem` [spec]).

Only the fields the three-way check uses; the connector (`engine.connectors.pax8`) maps the wire
shapes onto these, the store keeps them (`engine.store.tables.DistributorInvoiceRow`).

* An invoice's **month** is the month of its `invoiceDate`. Pax8 generates the month's invoice on
  the 5th [doc APIS.md §1.6, draftItems: "final invoice generated on the 5th may differ"]: it bills
  the month's seats in advance, the previous month's prorates and the previous month's usage in
  arrears (items carry their own `startPeriod`/`endPeriod`).
* **Final**: an invoice whose status is `Paid`, `Void` or `Credited` no longer changes; `Unpaid`,
  `Carried` and `Nothing Due` may still be credited and re-issued, so a refresh reads their months
  again. ASSUMED: Pax8 does not edit a paid invoice in place (a correction is a credit plus a new
  invoice), as the credited-and-re-issued invoice of the demo shows.
* **Counted**: a `Credited` or `Void` invoice is replaced (by its re-issue) and counts for nothing;
  every other invoice of the month counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

FINAL_STATUSES = frozenset({"paid", "void", "credited"})
REPLACED_STATUSES = frozenset({"void", "credited"})
ITEM_TYPES = frozenset(
    {
        "rebate",
        "prorate",
        "subscription",
        "payment-credit",
        "one-time",
        "service-charge",
        "service-credit",
        "invoice-credit",
    }
)  # [spec InvoiceItem.type]


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    """One line of a distributor invoice: `costTotal` is what the partner pays for it."""

    id: str
    invoice_id: str
    type: str
    company_id: str | None
    subscription_id: str | None
    product_id: str | None
    product_name: str
    start_period: date | None
    end_period: date | None
    quantity: Decimal
    price: Decimal  # the customer unit price [spec "The customer unit price"]
    cost: Decimal  # the partner unit cost [spec "The partner unit cost"]
    cost_total: Decimal
    sub_total: Decimal
    currency: str
    term: str | None = None

    @property
    def one_time(self) -> bool:
        """A prorate or another one-off charge, as opposed to the month's recurring charge."""
        return self.type != "subscription"

    @property
    def arrears(self) -> bool:
        return (self.term or "").lower() == "arrears"


@dataclass(frozen=True, slots=True)
class DistributorInvoice:
    id: str
    invoice_date: date
    status: str
    total: Decimal
    currency: str
    items: tuple[InvoiceItem, ...] = field(default=())

    @property
    def month(self) -> str:
        return f"{self.invoice_date.year:04d}-{self.invoice_date.month:02d}"

    @property
    def final(self) -> bool:
        return self.status.lower() in FINAL_STATUSES

    @property
    def counted(self) -> bool:
        return self.status.lower() not in REPLACED_STATUSES


__all__ = ["DistributorInvoice", "FINAL_STATUSES", "ITEM_TYPES", "InvoiceItem"]
