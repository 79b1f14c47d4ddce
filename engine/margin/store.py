"""The distributor's invoices and the margin marks in the store (tables `distributor_invoice`,
`distributor_invoice_item`, `margin_mark`; migration 0005_distributor_invoices), what the PSA
invoiced (`psa_invoice_line`, 0007_psa_invoiced), and the refreshes that pull the months not yet
final.

Refresh (ours): the months to read are every month from the earliest of
* a month whose stored invoice is not final (`Unpaid`, `Carried`, `Nothing Due`: it may still be
  credited and re-issued, engine.margin.invoices),
* the month after the latest stored month (a new invoice),
* with nothing stored, `HISTORY_MONTHS` (12) months back,
through today's month. The invoices of those months replace what the store holds for them (an
invoice the distributor no longer lists for a month it was read for is dropped): one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Protocol, runtime_checkable

from sqlalchemy import delete
from sqlmodel import col, select

from engine.margin.check import Mark
from engine.margin.invoices import FINAL_STATUSES, DistributorInvoice, InvoiceItem
from engine.margin.psa_invoices import PsaInvoiceLine
from engine.months import add_months, first_of_month, last_of_month, month_key, parse_month
from engine.psa import PSAS, Capability
from engine.store import Store
from engine.store.tables import (
    DistributorInvoiceItemRow,
    DistributorInvoiceRow,
    MarginMarkRow,
    PsaInvoiceLineRow,
)

HISTORY_MONTHS = 12


class InvoiceSource(Protocol):
    async def invoices(self, start: date, end: date) -> list[DistributorInvoice]: ...


def save_invoices(store: Store, invoices: Sequence[DistributorInvoice], months: Iterable[str]) -> None:
    """Replace the stored invoices of `months` with `invoices` (which must all fall in them)."""
    months = set(months)
    stray = sorted({inv.month for inv in invoices} - months)
    if stray:
        raise ValueError(f"invoices of {', '.join(stray)} outside the months read")
    now = datetime.now(UTC)
    with store.session() as s:
        old = list(
            s.exec(select(DistributorInvoiceRow.id).where(col(DistributorInvoiceRow.month).in_(months)))
        )
        for chunk in (old[i : i + 500] for i in range(0, len(old), 500)):
            s.exec(
                delete(DistributorInvoiceItemRow).where(col(DistributorInvoiceItemRow.invoice_id).in_(chunk))
            )
            s.exec(delete(DistributorInvoiceRow).where(col(DistributorInvoiceRow.id).in_(chunk)))
        invoice_rows = [
            {
                "id": inv.id,
                "month": inv.month,
                "invoice_date": inv.invoice_date,
                "status": inv.status,
                "total": inv.total,
                "currency": inv.currency,
                "read_at": now,
            }
            for inv in invoices
        ]
        item_rows = [
            {
                "id": item.id,
                "invoice_id": inv.id,
                "seq": n,
                "type": item.type,
                "term": item.term,
                "company_id": item.company_id,
                "subscription_id": item.subscription_id,
                "product_id": item.product_id,
                "product_name": item.product_name,
                "start_period": item.start_period,
                "end_period": item.end_period,
                "quantity": item.quantity,
                "price": item.price,
                "cost": item.cost,
                "cost_total": item.cost_total,
                "sub_total": item.sub_total,
                "currency": item.currency,
            }
            for inv in invoices
            for n, item in enumerate(inv.items)
        ]
        if invoice_rows:
            s.bulk_insert_mappings(DistributorInvoiceRow, invoice_rows)
        if item_rows:
            s.bulk_insert_mappings(DistributorInvoiceItemRow, item_rows)
        s.commit()


def load_invoices(store: Store, months: Iterable[str] | None = None) -> list[DistributorInvoice]:
    """The stored invoices (of `months`), with their items in the order read."""
    with store.session() as s:
        query = select(DistributorInvoiceRow)
        if months is not None:
            query = query.where(col(DistributorInvoiceRow.month).in_(set(months)))
        heads = list(
            s.exec(query.order_by(col(DistributorInvoiceRow.invoice_date), col(DistributorInvoiceRow.id)))
        )
        items: dict[str, list[InvoiceItem]] = {h.id: [] for h in heads}
        ids = list(items)
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            rows = s.exec(
                select(DistributorInvoiceItemRow)
                .where(col(DistributorInvoiceItemRow.invoice_id).in_(chunk))
                .order_by(col(DistributorInvoiceItemRow.invoice_id), col(DistributorInvoiceItemRow.seq))
            )
            for r in rows:
                items[r.invoice_id].append(
                    InvoiceItem(
                        id=r.id,
                        invoice_id=r.invoice_id,
                        type=r.type,
                        company_id=r.company_id,
                        subscription_id=r.subscription_id,
                        product_id=r.product_id,
                        product_name=r.product_name,
                        start_period=r.start_period,
                        end_period=r.end_period,
                        quantity=r.quantity,
                        price=r.price,
                        cost=r.cost,
                        cost_total=r.cost_total,
                        sub_total=r.sub_total,
                        currency=r.currency,
                        term=r.term,
                    )
                )
    return [
        DistributorInvoice(
            id=h.id,
            invoice_date=h.invoice_date,
            status=h.status,
            total=h.total,
            currency=h.currency,
            items=tuple(items[h.id]),
        )
        for h in heads
    ]


def months_to_refresh(store: Store, today: date) -> list[str]:
    """The months a refresh reads (module doc), oldest first."""
    this_month = first_of_month(today)
    with store.session() as s:
        rows = list(s.exec(select(DistributorInvoiceRow.month, DistributorInvoiceRow.status)))
    if not rows:
        start = add_months(this_month, -(HISTORY_MONTHS - 1))
    else:
        open_months = [parse_month(m) for m, status in rows if status.lower() not in FINAL_STATUSES]
        latest = max(parse_month(m) for m, _ in rows)
        start = min([*open_months, add_months(latest, 1)])
    months = []
    month = min(start, this_month)
    while month <= this_month:
        months.append(month_key(month))
        month = add_months(month, 1)
    return months


async def refresh_invoices(store: Store, source: InvoiceSource, today: date) -> list[str]:
    """Read the months not yet final from the distributor and store them; the months read."""
    months = months_to_refresh(store, today)
    start, end = parse_month(months[0]), last_of_month(parse_month(months[-1]))
    invoices = await source.invoices(start, end)
    save_invoices(store, [inv for inv in invoices if inv.month in set(months)], months)
    return months


# --- what the PSA invoiced (table `psa_invoice_line`, migration 0007_psa_invoiced) --------------
#
# Refresh (ours): a PSA invoice can still be edited or added to (a late invoice run, a credit and
# re-issue) until its month is over and the next one was read; ASSUMED, as no PSA marks a month
# final through its API. So the months read are, with nothing stored for the PSA, `HISTORY_MONTHS`
# back; else from the latest stored month (read again) through today's month. What the PSA lists
# for those months replaces what the store holds for them, one transaction.


@runtime_checkable
class PsaInvoicedSource(Protocol):
    async def invoiced_lines(self, start: date, end: date) -> list[PsaInvoiceLine]: ...


def save_psa_invoiced(store: Store, psa: str, lines: Sequence[PsaInvoiceLine], months: Iterable[str]) -> None:
    """Replace the stored invoice lines of `psa` in `months` with `lines` (all in those months)."""
    months = set(months)
    stray = sorted({line.month for line in lines} - months)
    if stray:
        raise ValueError(f"PSA invoice lines of {', '.join(stray)} outside the months read")
    now = datetime.now(UTC)
    seq: dict[str, int] = {}
    rows = []
    for line in lines:
        n = seq[line.invoice_id] = seq.get(line.invoice_id, -1) + 1
        rows.append(
            {
                "psa": psa,
                "invoice_id": line.invoice_id,
                "seq": n,
                "month": line.month,
                "invoice_number": line.invoice_number,
                "invoice_date": line.invoice_date,
                "company_id": line.company_id,
                "agreement_id": line.agreement_id,
                "line_id": line.line_id,
                "product_id": line.product_id,
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.amount,
                "currency": line.currency,
                "read_at": now,
            }
        )
    with store.session() as s:
        s.exec(
            delete(PsaInvoiceLineRow).where(
                col(PsaInvoiceLineRow.psa) == psa, col(PsaInvoiceLineRow.month).in_(months)
            )
        )
        if rows:
            s.bulk_insert_mappings(PsaInvoiceLineRow, rows)
        s.commit()


def load_psa_invoiced(store: Store, psa: str, months: Iterable[str] | None = None) -> list[PsaInvoiceLine]:
    """The stored invoice lines of `psa` (of `months`), by invoice date, invoice, line order."""
    with store.session() as s:
        query = select(PsaInvoiceLineRow).where(PsaInvoiceLineRow.psa == psa)
        if months is not None:
            query = query.where(col(PsaInvoiceLineRow.month).in_(set(months)))
        rows = s.exec(
            query.order_by(
                col(PsaInvoiceLineRow.invoice_date),
                col(PsaInvoiceLineRow.invoice_id),
                col(PsaInvoiceLineRow.seq),
            )
        )
        return [
            PsaInvoiceLine(
                invoice_id=r.invoice_id,
                invoice_number=r.invoice_number,
                invoice_date=r.invoice_date,
                company_id=r.company_id,
                agreement_id=r.agreement_id,
                line_id=r.line_id,
                product_id=r.product_id,
                description=r.description,
                quantity=r.quantity,
                unit_price=r.unit_price,
                amount=r.amount,
                currency=r.currency,
            )
            for r in rows
        ]


def psa_months_to_refresh(store: Store, psa: str, today: date) -> list[str]:
    """The months a refresh of what `psa` invoiced reads (section comment), oldest first."""
    this_month = first_of_month(today)
    with store.session() as s:
        stored = list(s.exec(select(PsaInvoiceLineRow.month).where(PsaInvoiceLineRow.psa == psa).distinct()))
    start = max(parse_month(m) for m in stored) if stored else add_months(this_month, -(HISTORY_MONTHS - 1))
    months = []
    month = min(start, this_month)
    while month <= this_month:
        months.append(month_key(month))
        month = add_months(month, 1)
    return months


async def refresh_psa_invoiced(store: Store, psa: str, source: PsaInvoicedSource, today: date) -> list[str]:
    """Read what `psa` invoiced in the months not yet final and store it; the months read."""
    months = psa_months_to_refresh(store, psa, today)
    start, end = parse_month(months[0]), last_of_month(parse_month(months[-1]))
    lines = await source.invoiced_lines(start, end)
    save_psa_invoiced(store, psa, [line for line in lines if line.month in set(months)], months)
    return months


def psa_invoiced_for_check(store: Store, psa: str) -> list[PsaInvoiceLine] | None:
    """What the three-way check is given as the PSA's invoices: the stored lines of a PSA that can
    say what it invoiced (engine.psa `Capability.INVOICED_LINES`), None for one that cannot (the
    check then uses the lines in force and says so)."""
    spec = PSAS.get(psa)  # type: ignore[call-overload]  # any text: a name that is no PSA cannot say
    if spec is None or not spec.can(Capability.INVOICED_LINES):
        return None
    return load_psa_invoiced(store, psa)


async def refresh_psa_invoiced_if_able(store: Store, psa: object, today: date) -> list[str] | None:
    """`refresh_psa_invoiced` for a connector whose PSA can say what it invoiced; None otherwise."""
    name = str(getattr(psa, "name", ""))
    spec = PSAS.get(name)  # type: ignore[call-overload]  # any text: a name that is no PSA cannot say
    if spec is None or not spec.can(Capability.INVOICED_LINES) or not isinstance(psa, PsaInvoicedSource):
        return None
    return await refresh_psa_invoiced(store, name, psa, today)


# --- marks ---------------------------------------------------------------------------------------


def marks(store: Store) -> dict[str, Mark]:
    with store.session() as s:
        return {
            r.subscription_id: Mark(r.subscription_id, r.by, r.on, r.reason)
            for r in s.exec(select(MarginMarkRow).where(MarginMarkRow.mark == "internal_use"))
        }


def set_mark(store: Store, mark: Mark | None, subscription_id: str) -> None:
    """Mark a subscription as internal use (None: clear the mark)."""
    with store.session() as s:
        row = s.get(MarginMarkRow, subscription_id)
        if mark is None:
            if row is not None:
                s.delete(row)
        else:
            row = row or MarginMarkRow(subscription_id=subscription_id, by=mark.by, on=mark.on)
            row.by, row.on, row.reason, row.mark = mark.by, mark.on, mark.reason, "internal_use"
            s.add(row)
        s.commit()


__all__ = [
    "HISTORY_MONTHS",
    "PsaInvoicedSource",
    "load_invoices",
    "load_psa_invoiced",
    "marks",
    "months_to_refresh",
    "psa_invoiced_for_check",
    "psa_months_to_refresh",
    "refresh_invoices",
    "refresh_psa_invoiced",
    "refresh_psa_invoiced_if_able",
    "save_invoices",
    "save_psa_invoiced",
    "set_mark",
]
