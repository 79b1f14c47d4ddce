"""A stateful simulation of the Pax8 Partner API (the read side trueup uses, and the token endpoint).

Serve it with `httpx.MockTransport(sandbox.handle)` so that `Pax8Connector` runs unchanged:

    sandbox = Pax8Sandbox.from_scenario(scenario)
    connector = Pax8Connector("sandbox", "sandbox", transport=httpx.MockTransport(sandbox.handle))

What it does like the real service (shared/APIS.md §1, specs/pax8): `POST /v1/token` with the JSON
client-credentials body (401 `{error, error_description}` for wrong credentials); every other call
needs `Authorization: Bearer <token>` (the same 401 body otherwise); lists page with `page`/`size`
(size 1..200, default 10) and answer `{content, page: {size, totalElements, totalPages, number}}`;
`/subscriptions/{id}/history` answers `{content}` with no page block, newest snapshot first (as in
the spec's example: clients must not rely on it); errors use the `{type, message, instance, status,
details[]}` envelope (404 for unknown ids and routes, 405 for a wrong method, 400 for bad
parameters). Rate limit: at most `rate_limit` (1000) successful calls in any rolling 60 s, the 1001st
answered 429 in the same envelope, "Too many requests hit the API quickly", with no Retry-After
(none is documented). The figure: devx home page "The current rate limit is 1000 …" (stored text
truncated there), the unit "successful calls per minute" from a third-party skill file, the 429
message from devx's errors page [doc, shared/APIS.md §1.4 — the unit is ASSUMED, not verified].
Faults (`engine.sandbox.faults`) add scripted 429/503 refusals, 500s, lost responses and latency.

Price and cost: the spec reads a subscription's `price` as the customer price and `partnerCost` as
the partner's (`price_field="retail"`, the default); the Pax8 CLI's tracker says `price` is sent as
the partner's buy rate (issue #711). `price_field="partner"` serves that reading: `price` = the unit
cost and no `partnerCost`. Either way `GET /products/{id}/pricing[?companyId=]` answers `{content:
[Pricing]}` (no page block [spec]) with one pricing per billing term of the product's subscriptions
(of that company, when it has some): `partnerBuyRate` = the unit cost, `suggestedRetailPrice` = the
unit price, open quantity range, `Per Unit`; 404 for an unknown product.

Invoices (issue 14): `GET /invoices` (paged; filters `status` (the spec's enum), `invoiceDate`,
`invoiceDateRangeStart`, `invoiceDateRangeEnd`, `dueDate` (all yyyy-MM-dd, else 400), `companyId`;
`sort` one of the spec's fields, optionally `,asc`/`,desc`), `GET /invoices/{id}` and `GET
/invoices/{id}/items` (paged) serve `engine.margin.invoices.DistributorInvoice`s given to
`add_invoice`, in the spec's `Invoice`/`InvoiceItem` shapes [spec]. A sandbox built with
`from_scenario` serves `engine.sandbox.demo.build_demo_invoices(scenario)` (planted leaks only
for the demo MSP), built on the first invoice call. `/invoices/draftItems` is not simulated (404).

How a scenario becomes Pax8 data (the inverse of `engine.connectors.pax8`'s mapping):
* a subscription's history rows become full snapshots: the first has no `updatedDate` and starts on
  its effective date, each later one has `updatedDate` = its effective date (09:00:0n -0700, so that
  same-day changes keep their order); a `cancel` row is a snapshot with status `Cancelled` and
  `endDate` = its effective date. The current record (`GET /subscriptions`) is the last snapshot
  with the subscription's own status, start, end, price and cost.
* usage rows become one usage summary per subscription and usage lines on the row's
  `snapshot_date` (default: day 19 for endpoint_usage, the period's last day otherwise):
  endpoint_usage lines are named `<product name> - <sub-product>` with a product id of their own;
  quota lines carry the quantity; usage_summary lines carry quantity 1, `currentCharges` = charges
  and `partnerTotal` = partner total. A later post for the same day and product replaces the earlier
  one (Pax8 usage is not cumulative).
The connector reads back the same scenario when history ids are `<subscription>-h<n>`, cancelled
subscriptions have `end_date == cancelled_date`, usage rows carry their `snapshot_date` (on day 19
for endpoint_usage) and usage-summary rows have unit price/cost equal to charges/partner total.
Product kinds round-trip from the data when the connector's `today` is in the month after the
endpoint snapshot it probes; `product_kinds()` gives the overrides that make them exact anyway.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, date
from decimal import Decimal
from typing import Any

import httpx

from engine.months import last_of_month, parse_month
from engine.sandbox.faults import Faults
from engine.scenario import (
    Commitment,
    ProductKind,
    Scenario,
    Subscription,
    UsageRow,
    VendorCompany,
    VendorProduct,
)

AUDIENCE = "https://api.pax8.com"
# engine.scenario.Commitment.term -> Pax8's `commitmentTerm.term` [spec example "3-Year"; pricing "1-Year"]
_TERM_NAMES = {
    "monthly": "Monthly",
    "annual": "1-Year",
    "two_year": "2-Year",
    "three_year": "3-Year",
    "trial": "Trial",
}
RATE_LIMIT = 1000  # successful calls per rolling RATE_WINDOW (module doc: source and what is assumed)
RATE_WINDOW = 60.0
MAX_SIZE = 200
DEFAULT_SIZE = 10
_NAMESPACE = uuid.UUID("7b1c8d0e-5a0f-4c55-9a35-3f2b3e6b8a01")
_DECIMAL = re.compile(r'"__dec__(-?[0-9.]+(?:E[+-]?[0-9]+)?)__"')

SUBSCRIPTION_SORTS = {
    f"{field},{direction}"
    for field in ("quantity", "startDate", "endDate", "createdDate", "billingStart", "price")
    for direction in ("asc", "desc")
}
COMPANY_SORTS = {"name", "city", "country", "stateOrProvince", "postalCode"}
PRODUCT_SORTS = {"name", "vendor"}
SUMMARY_SORTS = {"resourceGroup", "currentCharges", "partnerTotal"}
INVOICE_SORT_FIELDS = (
    "invoiceDate",
    "dueDate",
    "status",
    "partnerName",
    "total",
    "balance",
    "carriedBalance",
)
INVOICE_SORTS = set(INVOICE_SORT_FIELDS) | {f"{f},{d}" for f in INVOICE_SORT_FIELDS for d in ("asc", "desc")}
INVOICE_STATUSES = ("Unpaid", "Paid", "Void", "Carried", "Nothing Due", "Credited")  # [spec]
_YMD = re.compile(r"\d{4}-\d{2}-\d{2}")


def _dumps(body: Any) -> bytes:
    """JSON with `Decimal`s written as numbers, digit for digit (never through a float)."""

    def default(value: object) -> object:
        if isinstance(value, Decimal):
            return f"__dec__{value}__"
        if isinstance(value, date):
            return value.isoformat()
        raise TypeError(f"not JSON: {value!r}")

    return _DECIMAL.sub(r"\1", json.dumps(body, default=default)).encode()


def _stamp(day: date, second: int = 0) -> str:
    """A Pax8-style timestamp with an offset without colon: `2020-12-01T09:00:03.000-0700`."""
    second = min(second, 3599)
    return f"{day.isoformat()}T09:{second // 60:02d}:{second % 60:02d}.000-0700"


def _start(day: date) -> str:
    return f"{day.isoformat()}T08:30:00Z"


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, ":".join(parts)))


class Pax8Sandbox:
    """Pax8's partner read API over in-memory state."""

    service = "pax8"

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        client_id: str = "sandbox",
        client_secret: str = "sandbox",
        token_ttl: int = 86400,
        price_field: str = "retail",
        rate_limit: int | None = RATE_LIMIT,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.rate_limit = rate_limit
        self._clock = clock or time.monotonic
        self._served: deque[float] = deque()  # when each successful call of the window was answered
        self.rate_limited = 0  # calls answered 429 by the rate limit (not by faults)
        if price_field not in ("retail", "partner"):
            raise ValueError(f"price_field must be 'retail' or 'partner', not {price_field!r}")
        self.price_field = price_field
        self.amounts: dict[str, tuple[Decimal, Decimal]] = {}  # subscription id -> (unit price, unit cost)
        self.faults = faults or Faults()
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.companies: dict[str, dict[str, Any]] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}  # the current record
        self.history: dict[str, list[dict[str, Any]]] = {}  # snapshots, oldest first
        self.summaries: dict[str, dict[str, Any]] = {}
        self.lines: dict[tuple[str, date], list[dict[str, Any]]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.invoice_items: dict[str, list[dict[str, Any]]] = {}
        self._invoice_source: Callable[[], list[Any]] | None = None
        self.tokens: set[str] = set()
        self.requests: list[httpx.Request] = []
        self._kinds: dict[str, ProductKind] = {}
        self.dependencies: dict[str, dict[str, dict[str, Any]]] = {}  # product -> term -> Commitment rule
        self._token_count = 0
        self._by_company: dict[str, list[str]] | None = None
        self._by_company_size = 0
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., httpx.Response]]] = [
            ("GET", re.compile(r"/companies"), self._list_companies),
            ("GET", re.compile(r"/companies/([^/]+)"), self._get_company),
            ("GET", re.compile(r"/products"), self._list_products),
            ("GET", re.compile(r"/products/([^/]+)"), self._get_product),
            ("GET", re.compile(r"/products/([^/]+)/pricing"), self._get_pricing),
            ("GET", re.compile(r"/products/([^/]+)/dependencies"), self._get_dependencies),
            ("GET", re.compile(r"/subscriptions"), self._list_subscriptions),
            ("GET", re.compile(r"/subscriptions/([^/]+)"), self._get_subscription),
            ("GET", re.compile(r"/subscriptions/([^/]+)/history"), self._get_history),
            ("GET", re.compile(r"/subscriptions/([^/]+)/usage-summaries"), self._list_summaries),
            ("GET", re.compile(r"/usage-summaries/([^/]+)"), self._get_summary),
            ("GET", re.compile(r"/usage-summaries/([^/]+)/usage-lines"), self._list_lines),
            ("GET", re.compile(r"/invoices"), self._list_invoices),
            ("GET", re.compile(r"/invoices/([^/]+)"), self._get_invoice),
            ("GET", re.compile(r"/invoices/([^/]+)/items"), self._list_invoice_items),
        ]

    # --- building state --------------------------------------------------------------------------

    @classmethod
    def from_scenario(
        cls,
        scenario: Scenario,
        faults: Faults | None = None,
        client_id: str = "sandbox",
        client_secret: str = "sandbox",
        price_field: str = "retail",
        rate_limit: int | None = RATE_LIMIT,
        clock: Callable[[], float] | None = None,
    ) -> Pax8Sandbox:
        sandbox = cls(
            faults=faults,
            client_id=client_id,
            client_secret=client_secret,
            price_field=price_field,
            rate_limit=rate_limit,
            clock=clock,
        )
        for company in scenario.vendor.companies:
            sandbox.add_company(company)
        for product in scenario.vendor.products:
            sandbox.add_product(product)
        for subscription in scenario.vendor.subscriptions:
            sandbox.add_subscription(subscription)
        for row in scenario.vendor.usage:
            sandbox.add_usage(row)
        for commitment in scenario.vendor.commitments:
            sandbox.add_commitment(commitment)

        def demo_invoices() -> list[Any]:
            from engine.sandbox.demo import DEMO_CUSTOMERS, build_demo_invoices

            names = {company.name for company in scenario.vendor.companies}
            return build_demo_invoices(scenario, plant=DEMO_CUSTOMERS["prorate_story"] in names)

        sandbox._invoice_source = demo_invoices
        return sandbox

    # --- invoices (issue 14) ---------------------------------------------------------------------

    def add_invoice(self, invoice: Any) -> None:
        """Serve an `engine.margin.invoices.DistributorInvoice` (and its items)."""
        self.invoices[invoice.id] = {
            "id": invoice.id,
            "invoiceDate": invoice.invoice_date.isoformat(),
            "dueDate": (invoice.invoice_date.replace(day=28)).isoformat(),
            "status": invoice.status,
            "balance": Decimal("0") if invoice.status in ("Paid", "Credited", "Void") else invoice.total,
            "carriedBalance": Decimal("0"),
            "total": invoice.total,
            "currencyCode": invoice.currency,
            "partnerName": "Bluewire Technology Partners",
            "externalId": invoice.id[:8],
        }
        self.invoice_items[invoice.id] = [
            {
                "id": item.id,
                "type": item.type,
                "companyId": item.company_id,
                "companyName": self.companies.get(item.company_id or "", {}).get("name"),
                "startPeriod": item.start_period.isoformat() if item.start_period else None,
                "endPeriod": item.end_period.isoformat() if item.end_period else None,
                "quantity": item.quantity,
                "unitOfMeasure": "User",
                "term": item.term,
                "sku": self.products.get(item.product_id or "", {}).get("sku"),
                "description": item.product_name,
                "chargeType": "per",
                "price": item.price,
                "subTotal": item.sub_total,
                "cost": item.cost,
                "costTotal": item.cost_total,
                "billedByPax8": True,
                "total": item.sub_total,
                "productId": item.product_id,
                "productName": item.product_name,
                "billingFee": Decimal("0"),
                "amountDue": item.cost_total,
                "currencyCode": item.currency,
                "salesTax": Decimal("0"),
                "subscriptionId": item.subscription_id,
                "vendorName": "Sandbox Vendor",
            }
            for item in invoice.items
        ]

    def _load_invoices(self) -> None:
        if self._invoice_source is not None:
            source, self._invoice_source = self._invoice_source, None
            for invoice in source():
                if invoice.id not in self.invoices:
                    self.add_invoice(invoice)

    def _list_invoices(self, request: httpx.Request) -> httpx.Response:
        self._load_invoices()
        params = request.url.params
        items = list(self.invoices.values())
        if "status" in params:
            if params["status"] not in INVOICE_STATUSES:
                raise _BadRequest(f"status must be one of {', '.join(INVOICE_STATUSES)}")
            items = [i for i in items if i["status"] == params["status"]]
        days = {
            name: _ymd(params, name)
            for name in ("invoiceDate", "invoiceDateRangeStart", "invoiceDateRangeEnd", "dueDate")
        }
        if days["invoiceDate"]:
            items = [i for i in items if i["invoiceDate"] == days["invoiceDate"]]
        if days["dueDate"]:
            items = [i for i in items if i["dueDate"] == days["dueDate"]]
        if days["invoiceDateRangeStart"]:
            items = [i for i in items if i["invoiceDate"] >= days["invoiceDateRangeStart"]]
        if days["invoiceDateRangeEnd"]:
            items = [i for i in items if i["invoiceDate"] <= days["invoiceDateRangeEnd"]]
        if "companyId" in params:
            wanted = params["companyId"]
            items = [i for i in items if any(x["companyId"] == wanted for x in self.invoice_items[i["id"]])]
        sort = params.get("sort")
        if sort and "," not in sort:
            sort += ",asc"
        items = self._sorted(items, sort, INVOICE_SORTS)
        return self._page(request, items)

    def _get_invoice(self, request: httpx.Request, invoice_id: str) -> httpx.Response:
        self._load_invoices()
        invoice = self.invoices.get(invoice_id)
        return self._json(200, invoice) if invoice else self._not_found(request, "Invoice", invoice_id)

    def _list_invoice_items(self, request: httpx.Request, invoice_id: str) -> httpx.Response:
        self._load_invoices()
        if invoice_id not in self.invoices:
            return self._not_found(request, "Invoice", invoice_id)
        return self._page(request, self.invoice_items[invoice_id])

    def add_company(self, company: VendorCompany) -> None:
        self.companies[company.id] = {
            "id": company.id,
            "name": company.name,
            "address": {
                "street": "1 Main St",
                "city": "Denver",
                "postalCode": "80202",
                "country": "US",
                "stateOrProvince": "Colorado",
            },
            "phone": "555-555-5555",
            "website": "example.com",
            "externalId": company.id,
            "billOnBehalfOfEnabled": False,
            "selfServiceAllowed": False,
            "orderApprovalRequired": False,
            "status": "Active" if company.status == "active" else "Inactive",
            "updatedDate": "2023-08-11T11:33:12.314-0600",
        }

    def add_product(self, product: VendorProduct) -> None:
        body: dict[str, Any] = {
            "id": product.id,
            "name": product.name,
            "vendorName": "Sandbox Vendor",
            "shortDescription": product.name,
            "requiresCommitment": False,
        }
        if product.sku:
            body["sku"] = product.sku
            body["vendorSku"] = product.sku
        self.products[product.id] = body
        self._kinds[product.id] = product.kind

    def product_kinds(self) -> dict[str, ProductKind]:
        """`product_kinds` for `Pax8Connector` that reproduce the scenario's kinds exactly."""
        return dict(self._kinds)

    def add_subscription(self, subscription: Subscription) -> None:
        sub = subscription
        product = self.products.get(sub.product_id, {})
        base: dict[str, Any] = {
            "id": sub.id,
            "companyId": sub.company_id,
            "productId": sub.product_id,
            "vendorSubscriptionId": _uuid("vendor-subscription", sub.id),
            "quantity": Decimal("1"),
            "startDate": _start(sub.start_date),
            "createdDate": _stamp(sub.history[0].effective_date if sub.history else sub.start_date),
            "billingStart": sub.start_date.isoformat(),
            "status": "Active",
            "price": sub.unit_price if self.price_field == "retail" else sub.unit_cost,
            "currencyCode": "USD",
            "productName": product.get("name", sub.product_id),
            "billingTerm": "Annual" if sub.billing_term == "annual" else "Monthly",
        }
        if self.price_field == "retail":
            base["partnerCost"] = sub.unit_cost
        self.amounts[sub.id] = (sub.unit_price, sub.unit_cost)
        snapshots: list[dict[str, Any]] = []
        for n, row in enumerate(sub.history):
            snapshot = dict(snapshots[-1] if snapshots else base)
            snapshot["quantity"] = row.quantity
            if n == 0:
                snapshot["startDate"] = _start(row.effective_date)
            else:
                snapshot["startDate"] = _start(sub.start_date)
                snapshot["updatedDate"] = _stamp(row.effective_date, n)
            if row.action == "cancel":
                snapshot["status"] = "Cancelled"
                snapshot["endDate"] = row.effective_date.isoformat()
            else:
                snapshot["status"] = "Active"
                snapshot.pop("endDate", None)
            snapshots.append(snapshot)
        current = dict(snapshots[-1] if snapshots else base)
        current["startDate"] = _start(sub.start_date)
        current["status"] = "Cancelled" if sub.status == "cancelled" else "Active"
        end = (sub.cancelled_date or sub.end_date) if sub.status == "cancelled" else sub.end_date
        if end is not None:
            current["endDate"] = end.isoformat()
        else:
            current.pop("endDate", None)
        self.subscriptions[sub.id] = current
        self.history[sub.id] = snapshots
        self._by_company = None

    def add_commitment(self, commitment: Commitment) -> None:
        """A subscription's `commitmentTerm {id, term, endDate}` (on its record and every history
        snapshot: a read-only field of the full Subscription [spec]) and its product's rule for that
        term in `GET /products/{id}/dependencies` [spec Commitment]. A seat addition's instant
        becomes the `updatedDate` (the first order's: `createdDate`) of the one snapshot of that UTC
        day, so the connector reads the same instants back."""
        sid = commitment.subscription_id
        current = self.subscriptions.get(sid)
        if current is None:
            raise ValueError(f"no subscription {sid!r} in the sandbox")
        term: dict[str, Any] = {"id": _uuid("commitment", sid), "term": _TERM_NAMES[commitment.term]}
        if commitment.end_date is not None:
            term["endDate"] = f"{commitment.end_date.isoformat()}T00:00:00Z"
        snapshots = self.history.get(sid, [])
        for record in (current, *snapshots):
            record["commitmentTerm"] = dict(term)
        for addition in commitment.seat_additions:
            at = addition.at.astimezone(UTC)
            stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            days = [(snap.get("updatedDate") or snap.get("createdDate") or "")[:10] for snap in snapshots]
            matches = [i for i, day in enumerate(days) if day == at.date().isoformat()]
            if len(matches) != 1:
                continue
            if matches[0] == 0:
                for record in (current, *snapshots):
                    record["createdDate"] = stamp
            else:
                snapshots[matches[0]]["updatedDate"] = stamp
                if matches[0] == len(snapshots) - 1:
                    current["updatedDate"] = stamp
        product_id = current["productId"]
        self.dependencies.setdefault(product_id, {})[commitment.term] = {
            "id": _uuid("commitment-rule", product_id, commitment.term),
            "term": _TERM_NAMES[commitment.term],
            "autoRenew": commitment.auto_renew,
            "renewalWindowDaysBeforeTermEnd": commitment.window_days_before,
            "renewalWindowDaysAfterTermEnd": commitment.window_days_after,
            "allowForQuantityIncrease": True,
            "allowForQuantityDecrease": commitment.allow_decrease,
            "allowForEarlyCancellation": commitment.allow_early_cancellation,
            "cancellationFeeApplied": commitment.cancellation_fee,
            "isTransferable": False,
        }

    def _summary_for(self, subscription_id: str) -> dict[str, Any]:
        summary_id = _uuid("usage-summary", subscription_id)
        if summary_id not in self.summaries:
            sub = self.subscriptions[subscription_id]
            self.summaries[summary_id] = {
                "id": summary_id,
                "companyId": sub["companyId"],
                "subscriptionId": subscription_id,
                "productId": sub["productId"],
                "vendorName": self.products.get(sub["productId"], {}).get("vendorName", "Sandbox Vendor"),
                "currentCharges": Decimal("0"),
                "currencyCode": "USD",
                "partnerTotal": Decimal("0"),
                "isTrial": False,
            }
        return self.summaries[summary_id]

    def add_usage(self, row: UsageRow) -> None:
        """Post one usage row as usage lines (replacing the same day's line for the same product)."""
        sub = self.subscriptions[row.subscription_id]
        product_id = sub["productId"]
        kind = self._kinds.get(product_id, "seat")
        product_name = self.products.get(product_id, {}).get("name", sub.get("productName", product_id))
        summary = self._summary_for(row.subscription_id)
        month = parse_month(row.period)
        day = row.snapshot_date or (
            month.replace(day=19) if kind == "endpoint_usage" else last_of_month(month)
        )
        line_product_id, line_name = product_id, product_name
        if kind == "endpoint_usage" and row.sub_product:
            line_product_id = _uuid("sub-product", product_id, row.sub_product)
            line_name = f"{product_name} - {row.sub_product}"
        if kind == "usage_summary":
            quantity = row.quantity
            charges = row.charges if row.charges is not None else row.unit_price * row.quantity
            partner = row.partner_total if row.partner_total is not None else row.unit_cost * row.quantity
            unit_price = charges
        else:
            quantity = row.quantity
            charges = row.quantity * row.unit_price
            partner = row.quantity * row.unit_cost
            unit_price = row.unit_price
        line = {
            "usageSummaryId": summary["id"],
            "usageDate": day.isoformat(),
            "productName": line_name,
            "productId": line_product_id,
            "unitOfMeasure": "User" if kind == "endpoint_usage" else "Each",
            "quantity": quantity,
            "currentCharges": charges,
            "currentProfit": charges - partner,
            "partnerTotal": partner,
            "unitPrice": unit_price,
            "currencyCode": "USD",
            "isTrial": False,
        }
        lines = self.lines.setdefault((summary["id"], day), [])
        lines[:] = [existing for existing in lines if existing["productId"] != line_product_id]
        lines.append(line)
        latest = max(d for (summary_id, d) in self.lines if summary_id == summary["id"])
        today = self.lines[(summary["id"], latest)]
        summary["currentCharges"] = sum((item["currentCharges"] for item in today), Decimal("0"))
        summary["partnerTotal"] = sum((item["partnerTotal"] for item in today), Decimal("0"))

    # --- mutations -------------------------------------------------------------------------------

    def _append_snapshot(self, subscription_id: str, on: date, **changes: Any) -> dict[str, Any]:
        if subscription_id not in self.subscriptions:
            raise KeyError(f"unknown subscription {subscription_id!r}")
        snapshots = self.history[subscription_id]
        current = self.subscriptions[subscription_id]
        last_change = (current.get("updatedDate") or current.get("createdDate") or "")[:10]
        if last_change and on.isoformat() < last_change:
            raise ValueError(
                f"{subscription_id}: a change on {on} is older than the last one ({last_change})"
            )
        snapshot = dict(current)
        snapshot.update(changes)
        snapshot["updatedDate"] = _stamp(on, len(snapshots) + 1)
        snapshots.append(snapshot)
        self.subscriptions[subscription_id] = dict(snapshot)
        return snapshot

    def change_quantity(self, subscription_id: str, quantity: Decimal | int | str, on: date) -> None:
        """The partner changed the quantity on `on`: a new history snapshot, `updatedDate` bumped."""
        if self.subscriptions.get(subscription_id, {}).get("status") == "Cancelled":
            raise ValueError(f"{subscription_id} is cancelled")
        self._append_snapshot(subscription_id, on, quantity=Decimal(str(quantity)))

    def cancel(self, subscription_id: str, on: date) -> None:
        """The subscription was cancelled effective `on` (status Cancelled, `endDate` = on)."""
        self._append_snapshot(subscription_id, on, status="Cancelled", endDate=on.isoformat())

    def expire_tokens(self) -> None:
        """Every issued token stops working (the next call gets a 401)."""
        self.tokens.clear()

    # --- HTTP ------------------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.faults.serve(request, self._respond)

    def _respond(self, request: httpx.Request) -> httpx.Response:
        if self.rate_limit is not None:
            now = self._clock()
            while self._served and now - self._served[0] >= RATE_WINDOW:
                self._served.popleft()
            if len(self._served) >= self.rate_limit:
                self.rate_limited += 1
                return self._error(request, 429, "TOO_MANY_REQUESTS", "Too many requests hit the API quickly")
        response = self._route(request)
        if self.rate_limit is not None and response.is_success:
            self._served.append(self._clock())
        return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith("/v1/"):
            path = path[3:]
        path = path.rstrip("/") or "/"
        if path == "/token":
            if request.method != "POST":
                return self._error(
                    request, 405, "METHOD_NOT_ALLOWED", f"Request method '{request.method}' is not supported"
                )
            return self._token(request)
        if not self._authorized(request):
            return self._json(401, {"error": "access_denied", "error_description": "Unauthorized"})
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match:
                if request.method != method:
                    return self._error(
                        request,
                        405,
                        "METHOD_NOT_ALLOWED",
                        f"Request method '{request.method}' is not supported by the sandbox",
                    )
                try:
                    return handler(request, *match.groups())
                except _BadRequest as exc:
                    return self._error(request, 400, "BAD_REQUEST", "Invalid request parameters", [str(exc)])
        return self._error(request, 404, "NOT_FOUND", f"No endpoint {request.method} {request.url.path}")

    def _token(self, request: httpx.Request) -> httpx.Response:
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._json(
                400, {"error": "invalid_request", "error_description": "Malformed request body"}
            )
        if body.get("grant_type") != "client_credentials":
            return self._json(
                400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}
            )
        if body.get("audience") != AUDIENCE:
            return self._json(
                403,
                {
                    "error": "access_denied",
                    "error_description": "Service not enabled within domain: " + str(body.get("audience")),
                },
            )
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return self._json(401, {"error": "access_denied", "error_description": "Unauthorized"})
        self._token_count += 1
        token = f"sandbox-token-{self._token_count}-{_uuid('token', str(self._token_count))}"
        self.tokens.add(token)
        return self._json(200, {"access_token": token, "expires_in": self.token_ttl, "token_type": "Bearer"})

    def _authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and token in self.tokens

    # --- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _json(status: int, body: Any) -> httpx.Response:
        return httpx.Response(status, content=_dumps(body), headers={"Content-Type": "application/json"})

    def _error(
        self, request: httpx.Request, status: int, kind: str, message: str, details: list[str] | None = None
    ) -> httpx.Response:
        instance = "/public" + request.url.path
        return self._json(
            status,
            {
                "type": kind,
                "message": message,
                "instance": instance,
                "status": status,
                "details": [
                    {"type": kind, "status": status, "message": d, "instance": instance}
                    for d in details or []
                ],
            },
        )

    def _not_found(self, request: httpx.Request, what: str, ident: str) -> httpx.Response:
        return self._error(request, 404, "NOT_FOUND", f"{what} Not Found: {ident}")

    def _page(self, request: httpx.Request, items: list[dict[str, Any]]) -> httpx.Response:
        params = request.url.params
        page = _int_param(params, "page", 0)
        size = _int_param(params, "size", DEFAULT_SIZE)
        if page < 0:
            raise _BadRequest("page must be greater than or equal to 0")
        if not 1 <= size <= MAX_SIZE:
            raise _BadRequest(f"size must be between 1 and {MAX_SIZE}")
        total = len(items)
        return self._json(
            200,
            {
                "content": items[page * size : (page + 1) * size],
                "page": {
                    "size": size,
                    "totalElements": total,
                    "totalPages": math.ceil(total / size),
                    "number": page,
                },
            },
        )

    @staticmethod
    def _sorted(
        items: list[dict[str, Any]],
        sort: str | None,
        allowed: set[str],
        key: Callable[[dict[str, Any], str], Any] | None = None,
    ) -> list[dict[str, Any]]:
        if not sort:
            return items
        if sort not in allowed:
            raise _BadRequest(f"sort must be one of {', '.join(sorted(allowed))}")
        field, _, direction = sort.partition(",")
        get = key or (lambda item, f: item.get(f))

        def sort_key(item: dict[str, Any]) -> tuple[bool, Any]:
            value = get(item, field)
            return (value is None, value if value is not None else "")

        return sorted(items, key=sort_key, reverse=direction == "desc")

    # --- endpoints -------------------------------------------------------------------------------

    def _list_companies(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        items = list(self.companies.values())
        if "status" in params:
            items = [c for c in items if c.get("status") == params["status"]]
        for field in ("city", "country", "stateOrProvince", "postalCode"):
            if field in params:
                items = [c for c in items if c["address"].get(field) == params[field]]
        items = self._sorted(
            items,
            params.get("sort"),
            COMPANY_SORTS,
            lambda c, f: c.get(f) if f == "name" else c["address"].get(f),
        )
        return self._page(request, items)

    def _get_company(self, request: httpx.Request, company_id: str) -> httpx.Response:
        company = self.companies.get(company_id)
        return self._json(200, company) if company else self._not_found(request, "Company", company_id)

    def _list_products(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        items = list(self.products.values())
        if "search" in params:
            needle = params["search"].lower()
            items = [p for p in items if needle in p["name"].lower()]
        if "vendorName" in params:
            items = [p for p in items if p.get("vendorName") == params["vendorName"]]
        items = self._sorted(
            items,
            params.get("sort"),
            PRODUCT_SORTS,
            lambda p, f: p.get("vendorName") if f == "vendor" else p.get(f),
        )
        return self._page(request, items)

    def _get_product(self, request: httpx.Request, product_id: str) -> httpx.Response:
        product = self.products.get(product_id)
        if not product:
            return self._not_found(request, "Product", product_id)
        return self._json(200, {**product, "description": product.get("shortDescription", "")})

    def _get_dependencies(self, request: httpx.Request, product_id: str) -> httpx.Response:
        """[spec `findProductDependenciesByProductId`] `{commitmentDependencies, productDependencies}`;
        404 "Product not found" for an unknown product."""
        if product_id not in self.products:
            return self._not_found(request, "Product", product_id)
        rules = self.dependencies.get(product_id, {})
        return self._json(
            200, {"commitmentDependencies": [rules[k] for k in sorted(rules)], "productDependencies": []}
        )

    def _get_pricing(self, request: httpx.Request, product_id: str) -> httpx.Response:
        product = self.products.get(product_id)
        if not product:
            return self._not_found(request, "Product", product_id)
        subs = [sub for sub in self.subscriptions.values() if sub["productId"] == product_id]
        company = request.url.params.get("companyId")
        own = [sub for sub in subs if sub["companyId"] == company] if company else []
        chosen: dict[str, dict[str, Any]] = {}
        for sub in sorted(own or subs, key=lambda item: item["id"]):
            chosen.setdefault(sub["billingTerm"], sub)
        content = []
        for term, sub in chosen.items():
            retail, cost = self.amounts[sub["id"]]
            content.append(
                {
                    "productId": product_id,
                    "productName": product["name"],
                    "billingTerm": term,
                    "commitmentTerm": "1-Year" if term == "Annual" else "Monthly",
                    "commitmentTermInMonths": 12 if term == "Annual" else 1,
                    "type": "Flat",
                    "unitOfMeasurement": "User",
                    "rates": [
                        {"partnerBuyRate": cost, "suggestedRetailPrice": retail, "chargeType": "Per Unit"}
                    ],
                }
            )
        return self._json(200, {"content": content})

    def _list_subscriptions(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if "companyId" in params:  # through an index by company, as the real service would
            items = [
                self.subscriptions[i]
                for i in self._company_index().get(params["companyId"], ())
                if i in self.subscriptions
            ]
        else:
            items = list(self.subscriptions.values())
        for field in ("status", "billingTerm", "companyId", "productId"):
            if field in params:
                items = [s for s in items if s.get(field) == params[field]]
        items = self._sorted(items, params.get("sort"), SUBSCRIPTION_SORTS)
        return self._page(request, items)

    def _company_index(self) -> dict[str, list[str]]:
        """Company id -> subscription ids, rebuilt when subscriptions were added or removed (a
        subscription never changes company; the filter below still checks)."""
        if self._by_company is None or self._by_company_size != len(self.subscriptions):
            index: dict[str, list[str]] = {}
            for sid, sub in self.subscriptions.items():
                if (company := sub.get("companyId")) is not None:  # a str lookup never finds None
                    index.setdefault(company, []).append(sid)
            self._by_company, self._by_company_size = index, len(self.subscriptions)
        return self._by_company

    def _get_subscription(self, request: httpx.Request, subscription_id: str) -> httpx.Response:
        sub = self.subscriptions.get(subscription_id)
        return self._json(200, sub) if sub else self._not_found(request, "Subscription", subscription_id)

    def _get_history(self, request: httpx.Request, subscription_id: str) -> httpx.Response:
        if subscription_id not in self.subscriptions:
            return self._not_found(request, "Subscription", subscription_id)
        # Newest first, as in the spec's example.
        return self._json(200, {"content": list(reversed(self.history[subscription_id]))})

    def _list_summaries(self, request: httpx.Request, subscription_id: str) -> httpx.Response:
        if subscription_id not in self.subscriptions:
            return self._not_found(request, "Subscription", subscription_id)
        params = request.url.params
        items = [s for s in self.summaries.values() if s["subscriptionId"] == subscription_id]
        for field in ("resourceGroup", "companyId"):
            if field in params:
                items = [s for s in items if s.get(field) == params[field]]
        items = self._sorted(items, params.get("sort"), SUMMARY_SORTS)
        return self._page(request, items)

    def _get_summary(self, request: httpx.Request, summary_id: str) -> httpx.Response:
        summary = self.summaries.get(summary_id)
        return self._json(200, summary) if summary else self._not_found(request, "Usage Summary", summary_id)

    def _list_lines(self, request: httpx.Request, summary_id: str) -> httpx.Response:
        if summary_id not in self.summaries:
            return self._not_found(request, "Usage Summary", summary_id)
        params = request.url.params
        text = params.get("usageDate")
        if not text:
            raise _BadRequest("usageDate is required")
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError(text)
            day = date.fromisoformat(text)
        except ValueError:
            raise _BadRequest("usageDate must be formatted yyyy-MM-dd") from None
        items = list(self.lines.get((summary_id, day), []))
        if "productId" in params:
            items = [line for line in items if line["productId"] == params["productId"]]
        return self._page(request, items)


class _BadRequest(Exception):
    pass


def _ymd(params: httpx.QueryParams, name: str) -> str | None:
    """A `yyyy-MM-dd` query parameter [spec], or a 400."""
    text: str | None = params.get(name)
    if text is None:
        return None
    try:
        if not _YMD.fullmatch(text):
            raise ValueError(text)
        date.fromisoformat(text)
    except ValueError:
        raise _BadRequest(f"{name} must be formatted yyyy-MM-dd") from None
    return text


def _int_param(params: httpx.QueryParams, name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise _BadRequest(f"{name} must be a number") from None
        if number != int(number):
            raise _BadRequest(f"{name} must be a whole number") from None
        return int(number)


__all__ = ["Pax8Sandbox"]
