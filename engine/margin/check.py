"""The three-way check of one month: what the distributor invoiced (cost), what the PSA bills
(price), what the plan says should be billed — per customer and per subscription, every cent of
both sides in exactly one class, with a reason an operator can act on.

Rules (ours, in the style of shared/RULES.md; tests/margin/ holds each):

* **The month** M is an invoice month: the distributor's counted invoices dated in M
  (`engine.margin.invoices`: a credited or void invoice is replaced by its re-issue and counts for
  nothing; it is listed, never summed). No counted invoice for M: the month is **not audited**
  (never "clean"); the PSA's total is still shown.
* **PSA billed** = the PSA lines in force in M that a vendor subscription stands behind: a line
  carrying the subscription (its source), else a line on a mapped customer's agreement whose
  product a vendor product is bound to (matched to that customer's subscription of the product).
  A recurring line is in force when it starts on or before M's last day and is not cancelled
  before M's first day, on an agreement not ended before M; on an annual agreement only in the
  month of its start date's anniversary (ASSUMED: an annual agreement invoices once a year). A
  one-time line is billed in the month of its effective date. Amount = quantity × unit price,
  rounded half-up to cents per line. **What the PSA invoiced** replaces that for every customer
  the PSA issued an invoice in M (`psa_invoiced`, engine.margin.psa_invoices; a PSA with
  `Capability.INVOICED_LINES`): each invoice line stands for the PSA line it bills, at the
  invoiced quantity, unit price and amount, and the customer's lines in force are not counted.
  A PSA that cannot say, or a customer it did not invoice in M: the lines in force. Each
  customer says which (`CustomerMargin.psa_billed_from`), the report in `psa_source`. ASSUMED:
  the PSA invoices in the currency the distributor bills that customer in.
* **Should bill** (the plan's figure): the subscription's quantity in force on M's first day ×
  its unit price (the binding's override first), for a monthly subscription active then; $0 when its binding does not bill (do not bill / no
  charge, issue 13), and a PSA line read as not billed bills $0.
* **Classes** (per subscription; recurring items against recurring lines, one-time items —
  prorates, one-time charges, credits — against one-time lines):
  - `ignored` — the operator ignored the subscription (or that prorate): who, when, why.
  - `internal_use` — the operator marked the subscription as the MSP's own use.
  - `not_billed_onward` — the invoice charges it, no PSA line bills it.
  - `billed_without_cost` — a PSA line bills it, the invoice charges nothing: the subscription is
    cancelled or gone at the vendor (or has no charge this month).
  - `quantity_differs` — both sides, other quantities.
  - `price_below_cost` — the PSA's unit price is below the invoice's unit cost.
  - `margin_below_floor` — margin % (shown and compared at one decimal place) below the floor
    setting (default 15 %).
  - `timing` — a prorate or one-off billed in another month on the other side (synced earlier,
    proposed by the plan, or on another month's invoice).
  - `matched` — both sides agree.
  - `partner_charge` — an invoice item of no subscription (service charges, fees, credits).
  - `unexplained` — an invoice's total differs from the sum of its items: the difference.
* **Tie-out**: per currency, the classified cost sums to the counted invoices' total and the
  classified price to the PSA total, to the cent. Currencies are never added together: a
  customer invoiced in another currency than `home_currency` is reported in its own section.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from itertools import compress, repeat
from operator import and_, attrgetter, eq, ge, le, not_
from typing import Literal

from engine.batch import gc_paused
from engine.keys import PlanKey
from engine.margin.invoices import DistributorInvoice, InvoiceItem
from engine.margin.psa_invoices import PsaInvoiceLine, in_force
from engine.money import round_cents
from engine.months import last_of_month, parse_month
from engine.plan import Plan
from engine.scenario import PsaAgreement, PsaLine, Scenario, Subscription, SyncedKey

ZERO = Decimal("0")
Class = Literal[
    "matched",
    "not_billed_onward",
    "billed_without_cost",
    "quantity_differs",
    "price_below_cost",
    "margin_below_floor",
    "timing",
    "ignored",
    "internal_use",
    "partner_charge",
    "unexplained",
]
CLASSES: tuple[Class, ...] = (
    "not_billed_onward",
    "billed_without_cost",
    "quantity_differs",
    "price_below_cost",
    "margin_below_floor",
    "timing",
    "ignored",
    "internal_use",
    "partner_charge",
    "unexplained",
    "matched",
)
CLASS_LABELS: dict[Class, str] = {
    "not_billed_onward": "not billed onward",
    "billed_without_cost": "billed without cost",
    "quantity_differs": "quantity differs",
    "price_below_cost": "price below cost",
    "margin_below_floor": "margin below floor",
    "timing": "timing",
    "ignored": "ignored by the operator",
    "internal_use": "internal use",
    "partner_charge": "partner charge",
    "unexplained": "unexplained",
    "matched": "matched",
}
_SUBSCRIPTION_ID = attrgetter("subscription_id")
_TYPE = attrgetter("type")
_TERM = attrgetter("term")
_EFFECTIVE = attrgetter("effective_date")
_KEY = attrgetter("key")
_ID = attrgetter("id")
_CURRENCY = attrgetter("currency")
_INVOICE_DATE = attrgetter("invoice_date")
_COST = attrgetter("cost")
_PRICE = attrgetter("price")
_SHOULD_BILL = attrgetter("should_bill")
_CLS = attrgetter("cls")
_NOT_A_LEAK = frozenset({"matched", "timing", "ignored", "internal_use"})  # `MarginReport.leaks`
PSA_SOURCE = "lines in force (the PSA's own invoices are not read)"
FROM_INVOICES = "invoices"
FROM_LINES = "lines in force"


@dataclass(frozen=True, slots=True)
class MarginSettings:
    floor_percent: Decimal = Decimal("15")
    home_currency: str = "USD"  # ASSUMED: the PSA bills in it (the scenario holds no PSA currency)


@dataclass(frozen=True, slots=True)
class Mark:
    """An operator's mark on a subscription (`internal_use`): who, when, why."""

    subscription_id: str
    by: str
    on: date
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MarginRow:
    currency: str
    company_id: str  # the vendor company ("" when the invoice names none)
    company_name: str
    subscription_id: str | None
    product: str
    cls: Class
    cost: Decimal
    price: Decimal
    should_bill: Decimal
    vendor_quantity: Decimal | None
    psa_quantity: Decimal | None
    reason: str

    @property
    def margin(self) -> Decimal:
        return self.price - self.cost


@dataclass(frozen=True, slots=True)
class CustomerMargin:
    currency: str
    company_id: str
    company_name: str
    cost: Decimal
    price: Decimal
    should_bill: Decimal
    leaks: int  # rows neither matched nor timing nor marked
    psa_billed_from: str = FROM_LINES  # "invoices": the PSA's invoices of the month; else its lines

    @property
    def margin(self) -> Decimal:
        return self.price - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        return margin_percent(self.price, self.cost)


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    currency: str
    invoice_total: Decimal
    psa_total: Decimal
    cost: Decimal  # classified
    price: Decimal  # classified
    by_class: dict[str, tuple[Decimal, Decimal]]

    @property
    def ties_out(self) -> bool:
        return self.cost == self.invoice_total and self.price == self.psa_total


@dataclass(frozen=True, slots=True)
class MarginReport:
    month: str
    status: Literal["audited", "not_audited"]
    psa_source: str
    invoices: tuple[DistributorInvoice, ...]  # counted
    replaced: tuple[DistributorInvoice, ...]  # credited or void, not summed
    rows: tuple[MarginRow, ...]
    customers: tuple[CustomerMargin, ...]
    totals: tuple[CurrencyTotals, ...]
    settings: MarginSettings = field(default_factory=MarginSettings)

    @property
    def ties_out(self) -> bool:
        return all(t.ties_out for t in self.totals)

    def leaks(self) -> list[MarginRow]:
        return [r for r in self.rows if r.cls not in _NOT_A_LEAK]


def margin_percent(price: Decimal, cost: Decimal) -> Decimal | None:
    """(price − cost) / price as a percent at one decimal place (None when nothing is billed)."""
    if price == 0:
        return None
    return ((price - cost) * 100 / price).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _q(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value}"


def _money(value: Decimal) -> str:
    return f"${value:,.2f}" if value >= 0 else f"-${-value:,.2f}"


@dataclass(slots=True)
class _Side:
    items: list[InvoiceItem] = field(default_factory=list)
    lines: list[PsaLine] = field(default_factory=list)
    company_id: str = ""


class _Index:
    def __init__(self, scenario: Scenario) -> None:
        vendor, psa, mappings = scenario.vendor, scenario.psa, scenario.mappings
        self.subs: dict[str, Subscription] = {s.id: s for s in vendor.subscriptions}
        self.company_names = {c.id: c.name for c in vendor.companies}
        self.product_names = {p.id: p.name for p in vendor.products}
        self.agreements: dict[str, PsaAgreement] = {a.id: a for a in psa.agreements}
        self.vendor_of_psa: dict[str, list[str]] = defaultdict(list)
        self.mapped: set[str] = set()
        for m in mappings.companies:
            self.vendor_of_psa[m.psa_id].append(m.vendor_id)
            self.mapped.add(m.vendor_id)
        self.binding_price: dict[str, Decimal] = {}
        self.bound: dict[str, str] = {}  # vendor product -> PSA product (top level)
        self.vendor_products_of: dict[str, set[str]] = defaultdict(set)
        for b in mappings.products:
            self.vendor_products_of[b.psa_product_id].add(b.vendor_product_id)
            if b.sub_product is None:
                self.bound[b.vendor_product_id] = b.psa_product_id
                if b.unit_price is not None:
                    self.binding_price[b.vendor_product_id] = b.unit_price
        self._subscriptions = vendor.subscriptions
        self._subs_of: dict[tuple[str, str], list[str]] | None = None
        self.ignored = {i.key: i for i in scenario.ignored}
        self.as_of = scenario.as_of
        self.free = {b.vendor_product_id for b in mappings.products if b.free}
        # issue 13: a binding that does not bill (do not bill / no charge) should bill $0
        self.not_billed = {
            b.vendor_product_id
            for b in mappings.products
            if b.sub_product is None and b.bill_option != "billable"
        }
        self.synced_list = scenario.synced
        self.synced: dict[str, SyncedKey] = {}  # set by the check: the prorates its items name
        self.invoiced_amounts: dict[str, Decimal] = {}  # the PSA invoice's amount of an invoiced line
        self.invoiced_company: dict[str, str] = {}  # … and the PSA company it invoiced
        self.amounts: dict[str, Decimal] = {}  # what each PSA line counted bills (`_line_amount`), once

    def subs_of(self, company: str, product: str) -> list[str] | None:
        """The ids of a vendor company's subscriptions of a product: built when a PSA line names
        no subscription first (most carry theirs, so most checks never build it)."""
        if self._subs_of is None:
            self._subs_of = defaultdict(list)
            for s in self._subscriptions:
                self._subs_of[(s.company_id, s.product_id)].append(s.id)
        return self._subs_of.get((company, product))


def _invoiced_lines(
    scenario: Scenario, idx: _Index, psa_invoiced: Iterable[PsaInvoiceLine] | None, month: str
) -> tuple[list[PsaLine], set[str]]:
    """The month's PSA invoice lines as PSA lines (each the line it bills, at the invoiced
    quantity and price; its amount in `idx.invoiced_amounts`), and the PSA companies invoiced."""
    if psa_invoiced is None:
        return [], set()
    first = parse_month(month)
    last = last_of_month(first)
    # by date, not `.month` (a string built per line: ~5·10^5 lines for a year at 50,000), the
    # dates read and compared by C-level iteration
    every = list(psa_invoiced)
    days = list(map(_INVOICE_DATE, every))
    mine = list(compress(every, map(and_, map(le, repeat(first), days), map(ge, repeat(last), days))))
    if not mine:
        return [], set()
    by_id = {line.id: line for line in scenario.psa.lines}
    by_agreement_product: dict[tuple[str, str], list[PsaLine]] = {}
    taken: set[str] = set()
    out: list[PsaLine] = []
    for n, inv in enumerate(mine):
        base = by_id.get(inv.line_id) if inv.line_id is not None else None
        if base is None and inv.agreement_id is not None and inv.product_id is not None:
            if not by_agreement_product:  # built when first needed (ConnectWise names no line)
                for line in scenario.psa.lines:
                    by_agreement_product.setdefault((line.agreement_id, line.product_id), []).append(line)
            # The agreement's line of that product: one in force in M not matched yet first, the
            # one at the invoiced quantity and price first among those, then by id.
            candidates = by_agreement_product.get((inv.agreement_id, inv.product_id), [])
            base = min(
                candidates,
                key=lambda c: (
                    c.id in taken,
                    not in_force(c, idx.agreements.get(c.agreement_id), first, last),
                    (c.quantity, c.unit_price) != (inv.quantity, inv.unit_price),
                    c.id,
                ),
                default=None,
            )
        agreement = idx.agreements.get(base.agreement_id) if base is not None else None
        if (
            base is not None
            and base.id not in taken
            and agreement is not None
            and agreement.company_id == inv.company_id
            and base.quantity == inv.quantity
            and base.unit_price == inv.unit_price
        ):
            # invoiced as the line says (the common case): the line itself stands for it, at the
            # invoice's amount (the caller takes it from here, not from the lines in force)
            taken.add(base.id)
            idx.invoiced_amounts[base.id] = inv.amount
            idx.invoiced_company[base.id] = inv.company_id
            out.append(base)
            continue
        if base is not None:
            taken.add(base.id)
        # unique per invoice line: an invoice may bill one PSA line twice (a correction line)
        line_id = f"{inv.invoice_number}#{n + 1}" + (f"/{base.id}" if base is not None else "")
        if base is not None:
            line = base.model_copy(
                update={"id": line_id, "quantity": inv.quantity, "unit_price": inv.unit_price}
            )
        else:
            line = PsaLine.model_construct(
                id=line_id,
                agreement_id=inv.agreement_id or "",
                product_id=inv.product_id or "",
                kind="recurring",
                quantity=inv.quantity,
                unit_price=inv.unit_price,
                unit_cost=ZERO,
                effective_date=inv.invoice_date,
                cancelled_date=None,
                description=inv.description,
                metered=False,
                source=None,
            )
        idx.invoiced_amounts[line_id] = inv.amount
        idx.invoiced_company[line_id] = inv.company_id
        out.append(line)
    return out, {inv.company_id for inv in mine}


def _line_amount(line: PsaLine, invoiced: Mapping[str, Decimal] | None = None) -> Decimal:
    """What a line bills: the PSA invoice's own amount for an invoiced line; $0 for a line the PSA
    reads as do not bill / no charge (issue 13); else quantity × unit price rounded half-up to
    cents."""
    if invoiced is not None and (amount := invoiced.get(line.id)) is not None:
        return amount
    if line.bill_option not in (None, "billable"):
        return ZERO
    return round_cents(line.quantity * line.unit_price)


def three_way_check(
    scenario: Scenario,
    invoices: Iterable[DistributorInvoice],
    month: str,
    *,
    settings: MarginSettings | None = None,
    marks: Mapping[str, Mark] | None = None,
    plan: Plan | None = None,
    psa_invoiced: Iterable[PsaInvoiceLine] | None = None,
) -> MarginReport:
    """The month's check (module doc). `invoices` may hold other months: they show timing.
    `psa_invoiced`: what the PSA invoiced (any months; None: the PSA cannot say)."""
    with gc_paused():  # ~10^5 small acyclic objects: the collector would rescan them over and over
        return _three_way_check(
            scenario, invoices, month, settings=settings, marks=marks, plan=plan, psa_invoiced=psa_invoiced
        )


def _three_way_check(
    scenario: Scenario,
    invoices: Iterable[DistributorInvoice],
    month: str,
    *,
    settings: MarginSettings | None = None,
    marks: Mapping[str, Mark] | None = None,
    plan: Plan | None = None,
    psa_invoiced: Iterable[PsaInvoiceLine] | None = None,
) -> MarginReport:
    settings = settings or MarginSettings()
    marks = marks or {}
    first = parse_month(month)
    last = last_of_month(first)
    idx = _Index(scenario)
    all_invoices = list(invoices)
    of_month = [inv for inv in all_invoices if inv.month == month]
    counted = tuple(sorted((inv for inv in of_month if inv.counted), key=lambda i: (i.invoice_date, i.id)))
    replaced = tuple(sorted((inv for inv in of_month if not inv.counted), key=lambda i: i.id))
    planned = {line.key for line in plan.lines} if plan is not None else set()
    other_prorates: set[str | None] = set()  # subscriptions with one-time items on another month's invoice
    arrears_elsewhere: set[str | None] = set()  # … with arrears items on another month's invoice
    for inv in all_invoices:
        if inv.month == month or not inv.counted:
            continue
        # ~60k items a month, 11 other months: the fields read into lists and filtered by C-level
        # iteration (map / compress), never item by item in Python; the term compared as spelt
        # (its distinct spellings are few), never lower-cased item by item
        items = inv.items
        sids = list(map(_SUBSCRIPTION_ID, items))
        recurring = list(map(eq, map(_TYPE, items), repeat("subscription")))
        other_prorates.update(compress(sids, map(not_, recurring)))
        terms = list(map(_TERM, items))
        arrears = {t for t in set(terms) if t is not None and t.lower() == "arrears"}
        if arrears:
            arrears_elsewhere.update(compress(sids, map(and_, recurring, map(arrears.__contains__, terms))))
    other_prorates.discard(None)
    arrears_elsewhere.discard(None)

    # The PSA side: lines in force, linked to a subscription (or to none: vendor-backed, unmatched).
    # Customers the PSA invoiced in M: what it invoiced replaces their lines in force.
    billed_lines, invoiced_companies = _invoiced_lines(scenario, idx, psa_invoiced, month)
    sides: dict[str, _Side] = defaultdict(_Side)
    unlinked: list[tuple[str, PsaLine]] = []
    n_scenario = len(scenario.psa.lines)
    for n, line in enumerate([*scenario.psa.lines, *billed_lines]):
        agreement = idx.agreements.get(line.agreement_id)
        if n < n_scenario:  # a line in force, unless the customer's PSA invoice says what it billed
            if agreement is not None and agreement.company_id in invoiced_companies:
                continue
            if not in_force(line, agreement, first, last):
                continue
        sid = line.source.subscription_id if line.source is not None else None
        if sid is None and agreement is not None:
            for vendor_company in idx.vendor_of_psa.get(agreement.company_id, ()):
                for vendor_product in sorted(idx.vendor_products_of.get(line.product_id, ())):
                    found = idx.subs_of(vendor_company, vendor_product)
                    if found:
                        sid = sorted(found)[0]
                        break
                if sid is not None:
                    break
        if sid is not None:
            idx.amounts[line.id] = _line_amount(line, idx.invoiced_amounts)
            sides[sid].lines.append(line)
        elif idx.vendor_products_of.get(line.product_id):
            idx.amounts[line.id] = _line_amount(line, idx.invoiced_amounts)
            company = ""
            psa_company = agreement.company_id if agreement is not None else idx.invoiced_company.get(line.id)
            if psa_company is not None and idx.vendor_of_psa.get(psa_company):
                company = idx.vendor_of_psa[psa_company][0]
            unlinked.append((company, line))

    rows: list[MarginRow] = []
    invoice_totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    psa_totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for inv in counted:
        # An item in another currency than its invoice is reported in its own currency and taken
        # out of the invoice's total (ASSUMED: not seen in Pax8's examples; never added across).
        foreign: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for item in inv.items:
            if item.currency != inv.currency:
                foreign[item.currency] += item.cost_total
        for currency, amount in foreign.items():
            invoice_totals[currency] += amount
        invoice_totals[inv.currency] += inv.total - sum(foreign.values(), ZERO)
        items_total = sum((item.cost_total for item in inv.items if item.currency == inv.currency), ZERO)
        for item in inv.items:
            if item.subscription_id:
                side = sides[item.subscription_id]
                side.items.append(item)
                side.company_id = side.company_id or (item.company_id or "")
            else:
                company = item.company_id or ""
                rows.append(
                    MarginRow(
                        currency=item.currency,
                        company_id=company,
                        company_name=idx.company_names.get(company, company),
                        subscription_id=None,
                        product=item.product_name,
                        cls="partner_charge",
                        cost=item.cost_total,
                        price=ZERO,
                        should_bill=ZERO,
                        vendor_quantity=item.quantity,
                        psa_quantity=None,
                        reason=f"{item.type} on invoice {inv.id}: no subscription, the partner's own charge",
                    )
                )
        if items_total != inv.total - sum(foreign.values(), ZERO):
            rows.append(
                MarginRow(
                    currency=inv.currency,
                    company_id="",
                    company_name="",
                    subscription_id=None,
                    product="",
                    cls="unexplained",
                    cost=inv.total - sum(foreign.values(), ZERO) - items_total,
                    price=ZERO,
                    should_bill=ZERO,
                    vendor_quantity=None,
                    psa_quantity=None,
                    reason=f"invoice {inv.id} totals {_money(inv.total)}, its items {_money(items_total)}",
                )
            )

    audited = bool(counted)
    # the synced prorate keys the month's one-time items name: the 4·10^5 synced keys are
    # filtered by C-level iteration against them (never sliced and compared one by one)
    wanted = {
        PlanKey.prorate(item.subscription_id, item.start_period).format()
        for inv in counted
        for item in inv.items
        if item.type != "subscription" and item.subscription_id and item.start_period is not None
    }
    synced = idx.synced_list
    idx.synced = {k.key: k for k in compress(synced, map(wanted.__contains__, map(_KEY, synced)))}
    # The PSA total, apart from the classification (which must account for every line of it).
    for side in sides.values():
        currency = side.items[0].currency if side.items else settings.home_currency
        lines = side.lines
        if len(lines) == 1:  # the common case: no generator (~5·10^4 sides a check)
            psa_totals[currency] += idx.amounts[lines[0].id]
        else:
            psa_totals[currency] += sum((idx.amounts[line.id] for line in lines), ZERO)
    for _, line in unlinked:
        psa_totals[settings.home_currency] += idx.amounts[line.id]
    # Classified in the vendor's order of subscriptions, not by id: a subscription, its history, its
    # invoice items and PSA lines were read (and so allocated) near each other in that order, and
    # walking them so is ~2× fewer cache misses than jumping by id at 50,000; the rows are then put
    # in subscription-id order by a stable sort (each subscription's rows stay as classified).
    known = [sid for sid in map(_ID, scenario.vendor.subscriptions) if sid in sides]
    strays = [
        sid for sid in sides if sid not in idx.subs
    ]  # items of a subscription the vendor no longer lists
    classified: list[MarginRow] = []
    for sid in known + strays:
        side = sides[sid]
        # One classification per currency: the PSA's lines go with the subscription's first
        # item's currency (its billing currency); items in any other currency stand apart.
        if len(side.items) <= 1 or len({item.currency for item in side.items}) <= 1:
            classified.extend(
                _classify(sid, side, idx, settings, marks, planned, other_prorates, arrears_elsewhere, first)
            )
            continue
        for n, currency in enumerate(dict.fromkeys(item.currency for item in side.items)):
            part = _Side(
                items=[item for item in side.items if item.currency == currency],
                lines=side.lines if n == 0 else [],
                company_id=side.company_id,
            )
            classified.extend(
                _classify(sid, part, idx, settings, marks, planned, other_prorates, arrears_elsewhere, first)
            )
    classified.sort(key=_SUBSCRIPTION_ID)
    rows.extend(classified)
    for company, line in unlinked:
        rows.append(
            MarginRow(
                currency=settings.home_currency,
                company_id=company,
                company_name=idx.company_names.get(company, company),
                subscription_id=None,
                product=line.description or line.product_id,
                cls="billed_without_cost",
                cost=ZERO,
                price=idx.amounts[line.id],
                should_bill=ZERO,
                vendor_quantity=None,
                psa_quantity=line.quantity,
                reason=f"PSA line {line.id} bills a vendor product but no vendor subscription stands behind it",
            )
        )
    if not audited:
        rows = []
    totals = []
    row_currencies = set(map(_CURRENCY, rows))
    for currency in sorted(set(invoice_totals) | set(psa_totals)):
        mine = rows if row_currencies == {currency} else [r for r in rows if r.currency == currency]
        of_class: dict[str, list[MarginRow]] = {}  # in the order the classes first come
        for r in mine:
            of_class.setdefault(r.cls, []).append(r)
        by_class = {
            cls: (sum(map(_COST, of), ZERO), sum(map(_PRICE, of), ZERO)) for cls, of in of_class.items()
        }
        totals.append(
            CurrencyTotals(
                currency=currency,
                invoice_total=invoice_totals.get(currency, ZERO),
                psa_total=psa_totals.get(currency, ZERO),
                cost=sum(map(_COST, mine), ZERO) if audited else ZERO,
                price=sum(map(_PRICE, mine), ZERO) if audited else ZERO,
                by_class=by_class,
            )
        )
    invoiced_vendor = {v for pc in invoiced_companies for v in idx.vendor_of_psa.get(pc, ())}
    if psa_invoiced is None:
        source = PSA_SOURCE
    elif not invoiced_companies:
        source = f"lines in force (the PSA issued no invoice for {month})"
    else:
        source = (
            f"the PSA's invoices of {month} for {len(invoiced_vendor)} customers, "
            "lines in force for any it did not invoice"
        )
    return MarginReport(
        month=month,
        status="audited" if audited else "not_audited",
        psa_source=source,
        invoices=counted,
        replaced=replaced,
        rows=tuple(rows),
        customers=tuple(_customers(rows, invoiced_vendor)),
        totals=tuple(totals),
        settings=settings,
    )


def _customers(rows: Sequence[MarginRow], invoiced: set[str]) -> list[CustomerMargin]:
    acc: dict[tuple[str, str], list[MarginRow]] = defaultdict(list)
    for r in rows:
        acc[(r.currency, r.company_id)].append(r)
    out = []
    for (currency, company), mine in acc.items():
        out.append(
            CustomerMargin(
                currency=currency,
                company_id=company,
                company_name=mine[0].company_name,
                cost=sum(map(_COST, mine), ZERO),
                price=sum(map(_PRICE, mine), ZERO),
                should_bill=sum(map(_SHOULD_BILL, mine), ZERO),
                leaks=len(mine) - sum(map(_NOT_A_LEAK.__contains__, map(_CLS, mine))),
                psa_billed_from=FROM_INVOICES if company in invoiced else FROM_LINES,
            )
        )
    return sorted(out, key=lambda c: (c.currency, c.company_name.lower(), c.company_id))


def _should_bill(
    sub: Subscription | None, idx: _Index, first: date, quantity: Decimal
) -> tuple[Decimal, Decimal]:
    """(quantity, amount) the plan bills for the month: `quantity`, the one in force on the 1st,
    × unit price."""
    if sub is None or sub.billing_term != "monthly" or sub.start_date > first:
        return ZERO, ZERO
    if sub.status == "cancelled" and sub.cancelled_date is not None and sub.cancelled_date < first:
        return ZERO, ZERO
    if sub.product_id in idx.not_billed:
        return quantity, ZERO  # the binding writes its lines not billed (issue 13)
    price = idx.binding_price.get(sub.product_id, sub.unit_price)
    return quantity, round_cents(quantity * price)


def _classify(
    sid: str,
    side: _Side,
    idx: _Index,
    settings: MarginSettings,
    marks: Mapping[str, Mark],
    planned: set[str],
    other_prorates: set[str | None],
    arrears_elsewhere: set[str | None],
    first: date,
) -> list[MarginRow]:
    sub = idx.subs.get(sid)
    company = sub.company_id if sub is not None else side.company_id
    name = idx.company_names.get(company, company)
    product = (
        idx.product_names.get(sub.product_id, sub.product_id)
        if sub is not None
        else (
            side.items[0].product_name if side.items else (side.lines[0].description if side.lines else sid)
        )
    )
    currency = side.items[0].currency if side.items else settings.home_currency
    # `InvoiceItem.one_time` is `type != "subscription"`: spelt out here, ~10^5 items a check; one
    # recurring item and one recurring line is the common case (~9 in 10): no comprehension for it
    items, lines = side.items, side.lines
    rec_items: list[InvoiceItem]
    one_items: list[InvoiceItem]
    rec_lines: list[PsaLine]
    one_lines: list[PsaLine]
    if len(items) == 1 and items[0].type == "subscription":
        rec_items, one_items = items, []
    else:
        rec_items = [i for i in items if i.type == "subscription"]
        one_items = [i for i in items if i.type != "subscription"] if len(rec_items) < len(items) else []
    if len(lines) == 1 and lines[0].kind != "one_time":
        rec_lines, one_lines = lines, []
    else:
        rec_lines = [line for line in lines if line.kind != "one_time"]
        one_lines = [line for line in lines if line.kind == "one_time"] if len(rec_lines) < len(lines) else []
    timeline = _History(sub) if sub is not None else None
    q_first = timeline.at(first) if timeline is not None else ZERO
    should_qty, should_amount = _should_bill(sub, idx, first, q_first)

    # a row of this subscription: (cls, cost, price, should bill, vendor qty, PSA qty, reason)
    row = partial(MarginRow, currency, company, name, sid, product)

    ignore = idx.ignored.get(sid)
    mark = marks.get(sid) if ignore is None else None
    if ignore is not None or mark is not None:
        cost_all = sum((i.cost_total for i in side.items), ZERO)
        price_all = sum((idx.amounts[line.id] for line in side.lines), ZERO)
        if ignore is not None:
            why = f": {ignore.reason}" if ignore.reason else ""
            return [
                row(
                    "ignored",
                    cost_all,
                    price_all,
                    ZERO,
                    None,
                    None,
                    f"ignored by {ignore.by} on {ignore.on}{why}",
                )
            ]
        assert mark is not None
        why = f": {mark.reason}" if mark.reason else ""
        return [
            row(
                "internal_use",
                cost_all,
                price_all,
                ZERO,
                None,
                None,
                f"internal use, marked by {mark.by} on {mark.on}{why}",
            )
        ]

    out: list[MarginRow] = []
    if rec_items or rec_lines:
        # one item and one line is the common case: no generator for it (~5·10^4 a check)
        if len(rec_items) == 1:
            cost, vq = rec_items[0].cost_total, rec_items[0].quantity
        else:
            cost = sum((i.cost_total for i in rec_items), ZERO)
            vq = sum((i.quantity for i in rec_items), ZERO)
        if len(rec_lines) == 1:
            price, pq = idx.amounts[rec_lines[0].id], rec_lines[0].quantity
        else:
            price = sum((idx.amounts[line.id] for line in rec_lines), ZERO)
            pq = sum((line.quantity for line in rec_lines), ZERO)
        if not rec_lines:
            invoice_ids = ", ".join(sorted({i.invoice_id for i in rec_items}))
            why = _why_unbilled(sub, company, idx)
            out.append(
                row(
                    "not_billed_onward",
                    cost,
                    price,
                    should_amount,
                    vq,
                    None,
                    f"invoice {invoice_ids} charges {_q(vq)} × {_money(cost / vq if vq else cost)}; "
                    f"no PSA line bills it ({why})",
                )
            )
        elif not rec_items and sid in arrears_elsewhere and (sub is None or sub.status == "active"):
            out.append(
                row(
                    "timing",
                    cost,
                    price,
                    should_amount,
                    None,
                    pq,
                    "usage billed in arrears: the distributor charges this period on another month's invoice",
                )
            )
        elif not rec_items:
            out.append(
                row("billed_without_cost", cost, price, should_amount, None, pq, _why_no_cost(sub, pq))
            )
        elif vq != pq and (later := _changed_since(timeline, idx, first, pq, q_first)) is not None:
            out.append(
                row(
                    "timing",
                    cost,
                    price,
                    should_amount,
                    vq,
                    pq,
                    f"the distributor invoiced {_q(vq)} (in force on {first}); {later}, which the PSA "
                    "bills from then on (the prorate comes on the next month's invoices)",
                )
            )
        elif vq != pq:
            plan_note = ""
            if sub is not None and should_qty == vq:
                plan_note = f"; the plan bills {_q(should_qty)}"
            out.append(
                row(
                    "quantity_differs",
                    cost,
                    price,
                    should_amount,
                    vq,
                    pq,
                    f"the distributor invoiced {_q(vq)}, the PSA bills {_q(pq)}{plan_note}",
                )
            )
        else:
            unit_cost = cost / vq if vq else ZERO
            unit_price = price / pq if pq else ZERO
            percent = margin_percent(price, cost)
            if unit_price < unit_cost:
                out.append(
                    row(
                        "price_below_cost",
                        cost,
                        price,
                        should_amount,
                        vq,
                        pq,
                        f"the PSA bills {_money(unit_price)} a unit, the distributor charges {_money(unit_cost)}",
                    )
                )
            elif percent is not None and percent < settings.floor_percent:
                out.append(
                    row(
                        "margin_below_floor",
                        cost,
                        price,
                        should_amount,
                        vq,
                        pq,
                        f"margin {percent} % is below the {settings.floor_percent} % floor "
                        f"({_money(unit_price)} against a cost of {_money(unit_cost)})",
                    )
                )
            else:
                out.append(row("matched", cost, price, should_amount, vq, pq, "invoice and PSA agree"))

    matched_one = bool(one_items) and bool(one_lines)
    if matched_one:
        out.append(
            row(
                "matched",
                sum((i.cost_total for i in one_items), ZERO),
                sum((idx.amounts[line.id] for line in one_lines), ZERO),
                ZERO,
                None,
                None,
                "one-time charges on both sides",
            )
        )
    else:
        for item in one_items:
            period = item.start_period.isoformat() if item.start_period else ""
            key = PlanKey.prorate(sid, period).format()
            ignored = idx.ignored.get(key)
            what = f"{item.type} {period}–{item.end_period.isoformat() if item.end_period else ''}"
            if ignored is not None:
                cls: Class = "ignored"
                why = f": {ignored.reason}" if ignored.reason else ""
                reason = f"{what} ignored by {ignored.by} on {ignored.on}{why}"
            elif key in idx.synced:
                cls, reason = (
                    "timing",
                    f"{what}: billed onward in another month (synced {idx.synced[key].synced_on})",
                )
            elif key in planned:
                cls, reason = "timing", f"{what}: the plan bills it with the next sync"
            else:
                cls, reason = (
                    "not_billed_onward",
                    f"{what} on invoice {item.invoice_id}: no PSA line bills it",
                )
            out.append(row(cls, item.cost_total, ZERO, ZERO, item.quantity, None, reason))
        for line in one_lines:
            if sid in other_prorates:
                cls, reason = (
                    "timing",
                    f"PSA one-time line {line.id}: the distributor charged it in another month",
                )
            else:
                cls, reason = (
                    "billed_without_cost",
                    f"PSA one-time line {line.id}: no distributor charge for it",
                )
            out.append(row(cls, ZERO, idx.amounts[line.id], ZERO, None, line.quantity, reason))
    return out


class _History:
    """A subscription's quantity history as the check reads it: the quantity in force at the end of
    a day is what `Timeline(history).at(day)` says (the latest row on or before the day, same-day
    rows in the order given, a cancel is 0). A history ordered by date (the usual case) is bisected
    as it is; any other order is sorted here first (stable, as `Timeline` sorts), never trusted."""

    __slots__ = ("dates", "rows")

    def __init__(self, sub: Subscription) -> None:
        rows = sub.history
        dates = list(map(_EFFECTIVE, rows))
        if dates != sorted(dates):
            rows = sorted(rows, key=_EFFECTIVE)
            dates = list(map(_EFFECTIVE, rows))
        self.rows, self.dates = rows, dates

    def at(self, day: date) -> Decimal:
        n = bisect_right(self.dates, day)
        if not n:
            return ZERO
        row = self.rows[n - 1]
        return ZERO if row.action == "cancel" else row.quantity

    def last_change(self, after: date, until: date) -> date | None:
        """The latest row's date in (`after`, `until`], if any."""
        n = bisect_right(self.dates, until)
        return self.dates[n - 1] if n and self.dates[n - 1] > after else None


def _changed_since(
    timeline: _History | None, idx: _Index, first: date, billed: Decimal, at_first: Decimal
) -> str | None:
    """When the PSA's line holds the quantity the subscription has now (as of `as_of`) and that
    differs from `at_first`, the quantity on the month's first day: what changed (the PSA's lines
    are today's), else None."""
    as_of = idx.as_of
    if timeline is None or as_of <= first:
        return None
    now = timeline.at(as_of)
    if now != billed or now == at_first:
        return None
    last = timeline.last_change(first, as_of) or as_of
    return f"it changed to {_q(billed)} on {last}"


def _why_unbilled(sub: Subscription | None, company: str, idx: _Index) -> str:
    if sub is not None and sub.product_id in idx.free:
        return "its product is bound as free: given away, not billed"
    if company not in idx.mapped:
        return "the customer is not mapped to a PSA company"
    if sub is not None and sub.product_id not in idx.bound:
        return "the product is not bound to a PSA product"
    if sub is not None and sub.billing_term == "annual":
        return "an annual subscription with no line on an annual agreement"
    return "no line on the customer's agreement: sync, or check the agreement"


def _why_no_cost(sub: Subscription | None, quantity: Decimal) -> str:
    if sub is None:
        return f"the subscription is gone from the distributor; the PSA still bills {_q(quantity)}"
    if sub.status == "cancelled":
        on = sub.cancelled_date or sub.end_date
        return f"cancelled at the distributor on {on}; the PSA still bills {_q(quantity)}"
    return f"the distributor charged nothing this month; the PSA bills {_q(quantity)}"


__all__ = [
    "CLASSES",
    "CLASS_LABELS",
    "CurrencyTotals",
    "CustomerMargin",
    "MarginReport",
    "MarginRow",
    "MarginSettings",
    "Mark",
    "margin_percent",
    "three_way_check",
]
