"""What the PSA actually invoiced for a month (issue 14 item 2), as the engine reads it.

Each PSA connector maps its own invoice shapes onto `PsaInvoiceLine` (the routes and fields are
cited there): ConnectWise `GET /finance/invoices` and the invoice's product items, HaloPSA
`GET /Invoice?includelines=true` (an `InvoiceDetail` names the recurring line it came from in
`recurring_invoice_line_id`), Autotask `BillingItems` (`contractID`, `serviceID`, `itemDate`). The
store keeps them (`engine.store.tables.PsaInvoiceLineRow`, migration 0007_psa_invoiced), the
three-way check (`engine.margin.check`) uses them for every customer the PSA invoiced that month.

Rules (ours):
* An invoiced line's **month** is the month of its invoice's date.
* It bills a PSA line: the one it names (`line_id`), else the line of its agreement and product
  (the first by id), else none (a line the PSA invoiced that no agreement line stands behind).
* `amount` is what the invoice says (its own rounding); the check sums amounts, never recomputes.
* A PSA that cannot say what it invoiced (engine.psa `Capability.INVOICED_LINES` missing), or a
  customer with no PSA invoice in the month: the lines in force stand for what it billed, and the
  report says so per customer.

`invoice_lines_in_force` is the reference biller: the invoices a PSA issues when it bills exactly
its lines in force (the sandboxes' history, engine.sandbox.demo).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from engine.money import round_cents
from engine.months import add_months, first_of_month, last_of_month, month_key, parse_month
from engine.scenario import PsaAgreement, PsaLine, Scenario


@dataclass(frozen=True, slots=True)
class PsaInvoiceLine:
    """One line of an invoice the PSA issued to a customer."""

    invoice_id: str
    invoice_number: str
    invoice_date: date
    company_id: str  # the PSA company invoiced
    agreement_id: str | None  # agreement / recurring invoice / contract it came from
    line_id: str | None  # the PSA line it bills, when the PSA names it
    product_id: str | None
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    currency: str

    @property
    def month(self) -> str:
        return month_key(self.invoice_date)


def in_force(line: PsaLine, agreement: PsaAgreement | None, first: date, last: date) -> bool:
    """Whether a PSA line bills in the month `first`…`last` (engine.margin.check's rule)."""
    if agreement is not None and (
        agreement.start_date > last or (agreement.end_date is not None and agreement.end_date < first)
    ):
        return False
    if line.kind == "one_time":
        return first <= line.effective_date <= last
    if line.effective_date > last or (line.cancelled_date is not None and line.cancelled_date < first):
        return False
    if agreement is not None and agreement.billing_period == "annual":
        return line.effective_date.month == first.month
    return True


def invoice_lines_in_force(
    scenario: Scenario,
    months: Iterable[str],
    *,
    currency: str = "USD",
    first_number: int = 90001,
) -> list[PsaInvoiceLine]:
    """The invoices a PSA issues billing exactly its lines in force: one per company and month,
    dated the month's first day, numbered from `first_number` in (month, company) order."""
    agreements = {a.id: a for a in scenario.psa.agreements}
    out: list[PsaInvoiceLine] = []
    number = first_number
    for month in sorted(set(months)):
        first = parse_month(month)
        last = last_of_month(first)
        by_company: dict[str, list[PsaLine]] = defaultdict(list)
        for line in scenario.psa.lines:
            agreement = agreements.get(line.agreement_id)
            if agreement is not None and in_force(line, agreement, first, last):
                by_company[agreement.company_id].append(line)
        for company in sorted(by_company, key=lambda c: (len(c), c)):
            invoice_id = str(number)
            for line in sorted(by_company[company], key=lambda x: (x.agreement_id, x.id)):
                out.append(
                    PsaInvoiceLine(
                        invoice_id=invoice_id,
                        invoice_number=f"INV{number}",
                        invoice_date=first,
                        company_id=company,
                        agreement_id=line.agreement_id,
                        line_id=line.id,
                        product_id=line.product_id,
                        description=line.description,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        amount=round_cents(line.quantity * line.unit_price),
                        currency=currency,
                    )
                )
            number += 1
    return out


def past_months(as_of: date, count: int = 12) -> list[str]:
    """The `count` months through `as_of`'s month, oldest first."""
    this = first_of_month(as_of)
    return [month_key(add_months(this, -back)) for back in range(count - 1, -1, -1)]


__all__ = ["PsaInvoiceLine", "in_force", "invoice_lines_in_force", "past_months"]
