"""Pax8 Partner API (`https://api.pax8.com/v1`): a thin typed async client, and its mapping to the
engine's vendor types (`engine.scenario`). Field names follow shared/specs/pax8/*.openapi.json.

Authentication: OAuth2 client credentials, `POST /v1/token` with a JSON body; the token is cached
until shortly before `expires_in` runs out, and a 401 from a call refreshes it once and retries.

How the engine's types are derived (nothing here is a Pax8 field, so it is documented):

* **Subscription history.** `GET /subscriptions/{id}/history` returns full snapshots of the
  subscription with no change type. They are ordered by `updatedDate` (the original snapshot has
  none: its `createdDate` is used), then `createdDate`, then response order as the last tie-break;
  consecutive snapshots are diffed: the first is `initial` (effective its `startDate`), a move to
  status `Cancelled` is `cancel` (effective the snapshot's `endDate`, else its `updatedDate`),
  a higher/lower `quantity` is `increase`/`decrease` (effective the `updatedDate`, as written),
  a move back from `Cancelled` is a new `initial`; snapshots that change neither (price, status
  Pending→Active…) produce no row. Row ids are `<subscription id>-h<n>` (n from 1), since Pax8
  snapshots carry no id of their own. `quantity` is the snapshot's quantity as is.
* **Product kind** (`seat` / `endpoint_usage` / `usage_summary` / `quota`), in this order:
  1. `product_kinds[sku]` or `product_kinds[product id]` given to the constructor;
  2. a SKU starting `pw-` or `pg-` (per-workload / per-gigabyte editions) is `quota`;
  3. the product's most recently updated subscription has no usage summary: `seat`;
  4. otherwise the usage lines of that summary are probed on day 19 of the month before today
     (then on that month's last day): lines naming another product than the subscription's
     own (`productId` differs) are endpoint counts, so the product is `endpoint_usage` and its
     `sub_products` are those lines' names; otherwise it is `usage_summary`.
  Quota products whose SKU has no such prefix need `product_kinds`.
* **Sub-product names** come from the usage line's `productName`, with the parent product's
  name and a following ` - ` removed ("Proofpoint Essentials - Business" -> "Business").
* **Usage of month M** (`usage()`):
  - `endpoint_usage`: the lines of day 19 of M (RULES §5), one row per sub-product: quantity =
    the line quantity (summed over the subscription's summaries), unit price = `unitPrice`,
    unit cost = `partnerTotal / quantity`, `snapshot_date` = the 19th. No line that day: no row.
  - `quota`: the latest day of M that has usage lines (Pax8 usage is not cumulative: the latest
    post carries the period's figures); days are probed newest first: the last day alone, then the
    rest of its week, then a week at a time: quantity = the lines' quantity, unit price/cost as above,
    `snapshot_date` = that day.
  - `usage_summary`: the same latest day of M: quantity 1, `charges` = sum of `currentCharges`,
    `partner_total` = sum of `partnerTotal` (unit price/cost = the same), `snapshot_date` = that
    day. The summaries' own `currentCharges` cover only "the current month" and carry no period,
    so the figures of a given month are read from its usage lines.
  - `seat`: no usage rows (and no calls).
* **Incremental refresh.** Pax8 has no `updatedSince` filter and `GET /subscriptions` cannot sort
  by `updatedDate` (its sort enum is quantity, startDate, endDate, createdDate, billingStart,
  price). `subscriptions(changed_since=…)` therefore still lists every subscription (200 a page,
  cheap) but fetches history only for, and returns only, those whose `updatedDate` (else
  `createdDate`) is later than `changed_since` (a naive datetime is taken as UTC).
* **One customer.** `subscriptions(company_id=…)` lists `GET /subscriptions?companyId=…` (the
  spec's filter; one page for a normal customer) and returns every subscription of that company.
  Given `known` (the store's copies, with history), a listed subscription that is not newer than
  `changed_since` and whose current record agrees with the known one (status, dates, term, prices,
  company, product, and `quantity` equal to the known history's last quantity) is returned as the
  known one, without a history call; the others are read in full. `company(id)` is
  `GET /companies/{id}` (None on a 404).
* **Products** are the ones the partner's subscriptions use (`GET /products/{id}` each; a product
  Pax8 no longer lists is named from the subscription's `productName`), not the whole catalogue;
  `catalogue()` pages through `GET /products` when that is wanted. `products()` pages every
  subscription to find them; `products(product_ids)` describes just those, using what the
  subscription listings already read this session remember per product (the probe subscription
  for the kind, a fallback name) — a product no listing has shown is looked up with
  `GET /subscriptions?productId=…` — so a refresh does not page every subscription twice.
* **Price and cost** (issue 10). The spec says a subscription's `price` is "The price for the
  customer" and `partnerCost` "The price for the Partner" [spec Subscription]; the Pax8 CLI's own
  tracker says that, as sent, `price` is the partner's buy rate [issues pax8labs/pax8-cli#711,
  "@pax8/core treats subscription.price as the partner's buy rate … On the wire that's correct"], and
  other integrations treat the subscription's figure as the distributor's cost to mark up [doc
  docs.goascent.app/integrations/pax8]. The independent sources are `GET /products/{id}/pricing
  ?companyId=` (`partnerBuyRate` "The partner cost", `suggestedRetailPrice` "The suggested
  customer cost" per billing term, commitment term and quantity range [spec Rate, Pricing]) and
  invoice items (`price` "The customer unit price", `cost` "The partner unit cost" [spec
  InvoiceItem]; invoiced after the month, so not used for the current price). `price_reading`:
  - `"retail"` (the spec): unit price = `price`, unit cost = `partnerCost`, else (omitted) the
    company's `partnerBuyRate` for the subscription's term and quantity;
  - `"partner"` (#711): unit cost = `price`; unit price = the company's `suggestedRetailPrice` for
    the term and quantity (none: the cost, with a warning — bind a price);
  - `"auto"` (default): once a session, one subscription per product (the probe: active first,
    latest change) is compared with its company's pricing: `price` equal to the buy rate and not to
    the suggested retail price is a vote for "partner", the reverse for "retail". Only "partner"
    votes: "partner"; otherwise "retail" (the spec). Mixed votes, no match at all, and a
    `partnerCost` that differs from the pricing's buy rate are warnings (`take_warnings()`, shown by
    the refresh). A product binding's own unit price/cost still wins over either (RULES, binding).
  Cost of the check: one pricing call per product; "partner" (or an omitted `partnerCost`) adds
  one per (product, company). ASSUMED: the company-specific pricing is what Pax8 bills (the spec
  says only "company-specific pricing").
* **Invoices** (issue 14). `invoices(start, end)` lists `GET /invoices?invoiceDateRangeStart=
  &invoiceDateRangeEnd=` (yyyy-MM-dd [spec]) and reads each one's `GET /invoices/{id}/items`
  (paged like every list [spec `Page`]). An item's `costTotal` is what the partner pays ("The
  partner total cost of the services" [spec InvoiceItem]; the item's `total` is the customer's); when omitted, `quantity × cost` rounded half-up to
  cents. An item's currency is its `currencyCode`, else its invoice's; an invoice with neither is
  refused (currencies are never guessed). The invoice's `status` is in the spec's examples, not
  its schema: an invoice without one is read as `Unpaid` (not final, so read again next time).
  An invoice's `total` is "The total amount due" [spec Invoice]; omitted: the sum of its items'
  `costTotal`.
* Billing terms: `Monthly` -> monthly; `Annual`, `2-Year`, `3-Year` -> annual; others -> monthly.
  Status `Cancelled` -> cancelled (its `endDate` is both `end_date` and `cancelled_date`); every
  other status is active. Company status `Active` -> active, `Inactive`/`Deleted` -> inactive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from engine.connectors.base import ServiceError
from engine.connectors.http import (
    MAX_LISTING_BYTES,
    MAX_LISTING_PAGES,
    ListingCap,
    RateBudget,
    ServiceClient,
    decimal_or_none,
    parse_date,
    parse_datetime,
    parse_json,
)
from engine.margin.invoices import DistributorInvoice, InvoiceItem
from engine.months import last_of_month, parse_month
from engine.scenario import (
    Commitment,
    CommitmentTermName,
    HistoryRow,
    ProductKind,
    SeatAddition,
    Subscription,
    UsageRow,
    VendorCompany,
    VendorProduct,
)

log = logging.getLogger(__name__)

SERVICE = "pax8"
BASE_URL = "https://api.pax8.com/v1"
AUDIENCE = "https://api.pax8.com"
PAGE_SIZE = 200  # the spec's maximum
ENDPOINT_SNAPSHOT_DAY = 19  # RULES §5: the billable endpoint count of a month is day 19's
TOKEN_MARGIN = 300.0  # refresh this many seconds before expiry (at most a tenth of the lifetime)
CONCURRENCY = 8  # requests in flight at once (the rate budget still applies)
QUOTA_SKU_PREFIXES = ("pw-", "pg-")
PriceReading = Literal["auto", "retail", "partner"]
PRICE_READINGS: tuple[PriceReading, ...] = ("auto", "retail", "partner")

T = TypeVar("T")


# --- tolerant field types ------------------------------------------------------------------------


def _to_datetime(value: object) -> datetime | None:
    """A Pax8 timestamp: `2021-01-01T08:30:00Z`, `2020-12-01T13:20:13.153-0700`, or date-only."""
    try:
        return parse_datetime(value)
    except ValueError:
        day = parse_date(value)
        return datetime(day.year, day.month, day.day) if day else None  # noqa: DTZ001 - as written


def _to_date(value: object) -> date | None:
    return parse_date(value)


Money = Annotated[Decimal | None, BeforeValidator(decimal_or_none)]
Day = Annotated[date | None, BeforeValidator(_to_date)]
Timestamp = Annotated[datetime | None, BeforeValidator(_to_datetime)]


class Pax8Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# --- envelopes: every response is checked before anything of it is used (issue 11) ------------------


class Pax8PageInfo(Pax8Model):
    """The spec's `Page` schema: `size` 1..200, `totalElements`, `totalPages`, `number` (0-based)."""

    size: int = Field(ge=1, le=200)
    total_elements: int = Field(alias="totalElements", ge=0)
    total_pages: int = Field(alias="totalPages", ge=0)
    number: int = Field(ge=0)


class Pax8PageBody(Pax8Model):
    """A paged list: `{content: [...], page: Page}` [spec, every list endpoint]."""

    content: list[dict[str, Any]]
    page: Pax8PageInfo


class Pax8ListBody(Pax8Model):
    """An unpaged list: `{content: [...]}` (history, pricing: no `page` block) [spec]."""

    content: list[dict[str, Any]]


def _error_in_body(body: Mapping[str, Any]) -> bool:
    """A body in Pax8's error envelope (`{type, message, instance, status, details}` [spec `Error`])
    or the token endpoint's `{error, error_description}`, whatever the HTTP status said."""
    if "content" in body or "id" in body:
        return False
    return ("message" in body and ("status" in body or "type" in body)) or "error_description" in body


def checked_body(body: Any, what: str) -> Mapping[str, Any]:
    """The JSON object of a 200 answer, or a `ServiceError` naming the call: an empty 200, a 200
    that is not a JSON object, and a 200 carrying an error body are failures, never "no data"."""
    if body is None:
        raise ServiceError(SERVICE, f"{what}: answered 200 with an empty body", status=200)
    if not isinstance(body, Mapping):
        raise ServiceError(
            SERVICE, f"{what}: answered 200 with a JSON {type(body).__name__}, not an object", status=200
        )
    if _error_in_body(body):
        message = body.get("message") or body.get("error_description") or body.get("type") or "an error"
        details = [
            str(d["message"])
            for d in body.get("details") or []
            if isinstance(d, Mapping) and d.get("message")
        ]
        raise ServiceError(
            SERVICE, f"{what}: answered 200 with an error body: {message}", status=200, details=details
        )
    return body


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], item: Any, what: str) -> M:
    """`item` as `model`, or a `ServiceError` naming the call and the first bad field."""
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the body"
        raise ServiceError(
            SERVICE,
            f"{what}: not a valid {model.__name__.removeprefix('Pax8')} ({where}: {first.get('msg')})",
            status=200,
        ) from None


class Pax8Company(Pax8Model):
    id: str
    name: str | None = None
    status: str | None = None
    external_id: str | None = Field(None, alias="externalId")
    updated_date: Timestamp = Field(None, alias="updatedDate")


class Pax8Product(Pax8Model):
    id: str
    name: str | None = None
    vendor_name: str | None = Field(None, alias="vendorName")
    sku: str | None = None
    vendor_sku: str | None = Field(None, alias="vendorSku")
    short_description: str | None = Field(None, alias="shortDescription")
    requires_commitment: bool | None = Field(None, alias="requiresCommitment")


class Pax8Subscription(Pax8Model):
    id: str
    parent_subscription_id: str | None = Field(None, alias="parentSubscriptionId")
    company_id: str | None = Field(None, alias="companyId")
    product_id: str | None = Field(None, alias="productId")
    vendor_subscription_id: str | None = Field(None, alias="vendorSubscriptionId")
    quantity: Money = None
    start_date: Timestamp = Field(None, alias="startDate")
    end_date: Timestamp = Field(None, alias="endDate")
    created_date: Timestamp = Field(None, alias="createdDate")
    updated_date: Timestamp = Field(None, alias="updatedDate")
    billing_start: Day = Field(None, alias="billingStart")
    status: str | None = None
    price: Money = None
    partner_cost: Money = Field(None, alias="partnerCost")
    currency_code: str | None = Field(None, alias="currencyCode")
    product_name: str | None = Field(None, alias="productName")
    billing_term: str | None = Field(None, alias="billingTerm")
    commitment_term: Pax8Commitment | None = Field(None, alias="commitmentTerm")

    @property
    def cancelled(self) -> bool:
        return (self.status or "").lower() == "cancelled"

    @property
    def changed_at(self) -> datetime | None:
        """When this record last changed: `updatedDate`, else `createdDate`."""
        return self.updated_date or self.created_date


class Pax8Commitment(Pax8Model):
    """[spec `SubscriptionCommitment`] a subscription's `commitmentTerm`: `id`, `term`, `endDate`."""

    id: str | None = None
    term: str | None = None
    end_date: Timestamp = Field(None, alias="endDate")


class Pax8CommitmentRule(Pax8Model):
    """[spec `Commitment`, `GET /products/{productId}/dependencies` → `commitmentDependencies[]`]."""

    id: str | None = None
    term: str | None = None
    auto_renew: bool | None = Field(None, alias="autoRenew")
    window_days_before: Money = Field(None, alias="renewalWindowDaysBeforeTermEnd")
    window_days_after: Money = Field(None, alias="renewalWindowDaysAfterTermEnd")
    allow_increase: bool | None = Field(None, alias="allowForQuantityIncrease")
    allow_decrease: bool | None = Field(None, alias="allowForQuantityDecrease")
    allow_early_cancellation: bool | None = Field(None, alias="allowForEarlyCancellation")
    cancellation_fee: bool | None = Field(None, alias="cancellationFeeApplied")


class Pax8Dependencies(Pax8Model):
    """[spec `Dependencies`] `{commitmentDependencies, productDependencies}`."""

    commitment_dependencies: list[Pax8CommitmentRule] = Field(
        default_factory=list, alias="commitmentDependencies"
    )


class Pax8Rate(Pax8Model):
    """[spec `Rate`] `partnerBuyRate` "The partner cost", `suggestedRetailPrice` "The suggested
    customer cost", quantity range (`startQuantityRange` default 0, `endQuantityRange` null = open)."""

    partner_buy_rate: Money = Field(None, alias="partnerBuyRate")
    suggested_retail_price: Money = Field(None, alias="suggestedRetailPrice")
    start_quantity_range: Money = Field(None, alias="startQuantityRange")
    end_quantity_range: Money = Field(None, alias="endQuantityRange")
    charge_type: str | None = Field(None, alias="chargeType")

    def covers(self, quantity: Decimal) -> bool:
        start = self.start_quantity_range if self.start_quantity_range is not None else Decimal("0")
        return start <= quantity and (self.end_quantity_range is None or quantity <= self.end_quantity_range)


class Pax8Pricing(Pax8Model):
    """[spec `Pricing`, `GET /products/{productId}/pricing?companyId=`]: rates per billing term."""

    product_id: str | None = Field(None, alias="productId")
    billing_term: str | None = Field(None, alias="billingTerm")
    commitment_term: str | None = Field(None, alias="commitmentTerm")
    type: str | None = None
    rates: list[Pax8Rate] = Field(default_factory=list)


class Pax8UsageSummary(Pax8Model):
    id: str
    company_id: str | None = Field(None, alias="companyId")
    subscription_id: str | None = Field(None, alias="subscriptionId")  # in the examples, not the schema
    product_id: str | None = Field(None, alias="productId")
    resource_group: str | None = Field(None, alias="resourceGroup")
    vendor_name: str | None = Field(None, alias="vendorName")
    current_charges: Money = Field(None, alias="currentCharges")
    partner_total: Money = Field(None, alias="partnerTotal")
    currency_code: str | None = Field(None, alias="currencyCode")
    is_trial: bool | None = Field(None, alias="isTrial")


class Pax8UsageLine(Pax8Model):
    usage_summary_id: str | None = Field(None, alias="usageSummaryId")
    usage_date: Day = Field(None, alias="usageDate")
    product_name: str | None = Field(None, alias="productName")
    product_id: str | None = Field(None, alias="productId")
    unit_of_measure: str | None = Field(None, alias="unitOfMeasure")
    quantity: Money = None
    current_charges: Money = Field(None, alias="currentCharges")
    current_profit: Money = Field(None, alias="currentProfit")
    partner_total: Money = Field(None, alias="partnerTotal")
    unit_price: Money = Field(None, alias="unitPrice")
    currency_code: str | None = Field(None, alias="currencyCode")
    is_trial: bool | None = Field(None, alias="isTrial")


class Pax8Invoice(Pax8Model):
    """[spec `Invoice`] (+ `status`, in the examples)."""

    id: str
    invoice_date: Day = Field(None, alias="invoiceDate")
    due_date: Day = Field(None, alias="dueDate")
    status: str | None = None
    total: Money = None
    balance: Money = None
    currency_code: str | None = Field(None, alias="currencyCode")
    partner_name: str | None = Field(None, alias="partnerName")
    company_id: str | None = Field(None, alias="companyId")


class Pax8InvoiceItem(Pax8Model):
    """[spec `InvoiceItem`]: `price` the customer unit price, `cost` the partner unit cost. The
    spec's own example item carries no `id`: an item without one is named `<invoice id>:<n>`."""

    id: str | None = None
    type: str | None = None
    company_id: str | None = Field(None, alias="companyId")
    company_name: str | None = Field(None, alias="companyName")
    start_period: Day = Field(None, alias="startPeriod")
    end_period: Day = Field(None, alias="endPeriod")
    quantity: Money = None
    term: str | None = None
    sku: str | None = None
    description: str | None = None
    price: Money = None
    sub_total: Money = Field(None, alias="subTotal")
    cost: Money = None
    cost_total: Money = Field(None, alias="costTotal")
    total: Money = None
    product_id: str | None = Field(None, alias="productId")
    product_name: str | None = Field(None, alias="productName")
    currency_code: str | None = Field(None, alias="currencyCode")
    subscription_id: str | None = Field(None, alias="subscriptionId")


def to_invoice(invoice: Pax8Invoice, items: Sequence[Pax8InvoiceItem]) -> DistributorInvoice:
    """The engine's invoice (module doc, "Invoices")."""
    if invoice.invoice_date is None:
        raise ServiceError(SERVICE, f"invoice {invoice.id} has no invoiceDate", status=200)
    zero = Decimal("0")
    mapped: list[InvoiceItem] = []
    for n, item in enumerate(items):
        item_id = item.id or f"{invoice.id}:{n}"
        currency = item.currency_code or invoice.currency_code
        if not currency:
            raise ServiceError(
                SERVICE,
                f"invoice {invoice.id} item {item_id}: no currencyCode on the item or the invoice",
                status=200,
            )
        quantity = item.quantity if item.quantity is not None else zero
        cost = item.cost if item.cost is not None else zero
        price = item.price if item.price is not None else zero
        mapped.append(
            InvoiceItem(
                id=item_id,
                invoice_id=invoice.id,
                type=(item.type or "subscription").lower(),
                company_id=item.company_id,
                subscription_id=item.subscription_id,
                product_id=item.product_id,
                product_name=item.product_name or item.description or item.sku or "",
                start_period=item.start_period,
                end_period=item.end_period,
                quantity=quantity,
                price=price,
                cost=cost,
                cost_total=item.cost_total
                if item.cost_total is not None
                else (quantity * cost).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
                sub_total=item.sub_total
                if item.sub_total is not None
                else (quantity * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
                currency=currency,
                term=item.term,
            )
        )
    currency = invoice.currency_code or (mapped[0].currency if mapped else None)
    if not currency:
        raise ServiceError(SERVICE, f"invoice {invoice.id}: no currencyCode", status=200)
    total = invoice.total
    if total is None:
        total = sum((i.cost_total for i in mapped), zero)
    return DistributorInvoice(
        id=invoice.id,
        invoice_date=invoice.invoice_date,
        status=invoice.status or "Unpaid",
        total=total,
        currency=currency,
        items=tuple(mapped),
    )


# --- errors --------------------------------------------------------------------------------------


def pax8_error(response: httpx.Response) -> tuple[str, list[str]]:
    """Pax8's error envelope `{type, message, instance, status, details[{message…}]}`, or the token
    endpoint's `{error, error_description}`."""
    try:
        body = parse_json(response)
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        if "error_description" in body or ("error" in body and "message" not in body):
            description = body.get("error_description") or body.get("error") or "token request refused"
            error = body.get("error")
            return str(description), [str(error)] if error and error != description else []
        details = [
            str(item["message"])
            for item in body.get("details") or []
            if isinstance(item, Mapping) and item.get("message")
        ]
        message = body.get("message") or body.get("type")
        if message:
            return str(message), details
    text = response.text.strip()
    return (text[:500] or response.reason_phrase or "request failed"), []


# --- mapping helpers -----------------------------------------------------------------------------

_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def _instant(value: datetime | None) -> datetime:
    """An aware instant for ordering (a naive timestamp is taken as UTC)."""
    if value is None:
        return _EPOCH
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _day(value: datetime | None) -> date | None:
    """The calendar date as written (never shifted to another zone)."""
    return value.date() if value else None


def _tidy(value: Decimal) -> Decimal:
    """A derived unit amount: at most 4 places, at least 2 (2.4400 -> 2.44, 2.4375 stays)."""
    value = value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    for places in ("0.01", "0.001"):
        short = value.quantize(Decimal(places))
        if short == value:
            return short
    return value


def _unit(total: Decimal | None, quantity: Decimal) -> Decimal:
    if total is None or quantity == 0:
        return Decimal("0")
    return _tidy(total / quantity)


def _json_of(response: httpx.Response, path: str) -> Any:
    try:
        return parse_json(response)
    except (ValueError, RecursionError):
        raise ServiceError(
            SERVICE,
            f"GET {path}: answered 200 with a body that is not JSON ({response.text[:80]!r})",
            status=200,
        ) from None


def snapshot_order(snapshots: Sequence[Pax8Subscription]) -> list[Pax8Subscription]:
    """Oldest first: by `updatedDate` (else `createdDate`), then `createdDate`, then as received."""
    indexed = list(enumerate(snapshots))
    indexed.sort(key=lambda pair: (_instant(pair[1].changed_at), _instant(pair[1].created_date), pair[0]))
    return [snapshot for _, snapshot in indexed]


def history_rows(subscription_id: str, snapshots: Sequence[Pax8Subscription]) -> list[HistoryRow]:
    """Diff consecutive history snapshots into initial/increase/decrease/cancel rows."""
    rows: list[tuple[str, Decimal, date]] = []
    previous: Pax8Subscription | None = None
    for snapshot in snapshot_order(snapshots):
        quantity = snapshot.quantity if snapshot.quantity is not None else Decimal("0")
        changed_on = _day(snapshot.updated_date) or _day(snapshot.created_date)
        if previous is None:
            started = _day(snapshot.start_date) or snapshot.billing_start or _day(snapshot.created_date)
            if started is None:
                started = changed_on
            if started is not None:
                rows.append(("initial", quantity, started))
            if snapshot.cancelled:
                cancelled_on = _day(snapshot.end_date) or changed_on or started
                if cancelled_on is not None:
                    rows.append(("cancel", quantity, cancelled_on))
        else:
            previous_quantity = previous.quantity if previous.quantity is not None else Decimal("0")
            if snapshot.cancelled and not previous.cancelled:
                cancelled_on = _day(snapshot.end_date) or changed_on
                if cancelled_on is not None:
                    rows.append(("cancel", quantity, cancelled_on))
            elif previous.cancelled and not snapshot.cancelled:
                if changed_on is not None:
                    rows.append(("initial", quantity, changed_on))
            elif not snapshot.cancelled and quantity != previous_quantity and changed_on is not None:
                rows.append(
                    ("increase" if quantity > previous_quantity else "decrease", quantity, changed_on)
                )
        previous = snapshot
    return [
        HistoryRow(id=f"{subscription_id}-h{n}", action=action, quantity=quantity, effective_date=on)  # type: ignore[arg-type]  # the actions built above are the HistoryRow action literals
        for n, (action, quantity, on) in enumerate(rows, start=1)
    ]


# --- commitment terms (issue 15; the rules are engine.rules.commitments) ------------------------

# `commitmentTerm.term` [spec SubscriptionCommitment, example "3-Year"] and pricing's
# `commitmentTerm` ("1-Year", "Monthly" [spec Pricing]) name the term; both spellings are taken.
COMMITMENT_TERMS: dict[str, CommitmentTermName] = {
    "monthly": "monthly",
    "1-month": "monthly",
    "annual": "annual",
    "1-year": "annual",
    "2-year": "two_year",
    "3-year": "three_year",
    "trial": "trial",
}
# When a product's dependencies give no rule for the term: Microsoft new commerce's — no decrease or
# early cancellation after the 168 hours, auto-renew, 7 days after the renewal
# [doc learn.microsoft.com/partner-center/developer/cancel-an-azure-marketplace-subscription].
# ASSUMED for Pax8 products other than Microsoft's.
_DEFAULT_RULE = Pax8CommitmentRule.model_validate(
    {
        "autoRenew": True,
        "renewalWindowDaysBeforeTermEnd": 0,
        "renewalWindowDaysAfterTermEnd": 7,
        "allowForQuantityDecrease": False,
        "allowForEarlyCancellation": False,
        "cancellationFeeApplied": False,
    }
)


def commitment_term_name(term: str | None) -> CommitmentTermName | None:
    return COMMITMENT_TERMS.get((term or "").strip().lower())


def seat_additions(snapshots: Sequence[Pax8Subscription]) -> list[SeatAddition]:
    """Each rise of `quantity` between consecutive history snapshots (the first snapshot's quantity
    included), at the snapshot's `updatedDate` (the first: `createdDate`) as a UTC instant; a naive
    timestamp is taken as UTC (ASSUMED: the spec's examples carry an offset)."""
    out: list[SeatAddition] = []
    previous = Decimal("0")
    for snapshot in snapshot_order(snapshots):
        quantity = snapshot.quantity if snapshot.quantity is not None else Decimal("0")
        if snapshot.cancelled:
            previous = Decimal("0")
            continue
        at = snapshot.changed_at if out or previous else (snapshot.created_date or snapshot.changed_at)
        if quantity > previous and at is not None:
            out.append(SeatAddition(at=_instant(at).astimezone(UTC), quantity=quantity - previous))
        previous = quantity
    return out


def _window_days(value: Decimal | None, default: int) -> int:
    if value is None or value < 0 or value != value.to_integral_value():
        return default
    return min(int(value), 3650)


def to_commitment(
    current: Pax8Subscription,
    snapshots: Sequence[Pax8Subscription],
    rules: Sequence[Pax8CommitmentRule],
) -> Commitment | None:
    """The engine's commitment of a subscription: its `commitmentTerm` and the product's rule for
    that term (matched by term name; none: `_DEFAULT_RULE`). None without a known term."""
    if current.commitment_term is None:
        return None
    term = commitment_term_name(current.commitment_term.term)
    if term is None:
        log.warning(
            "pax8: subscription %s has an unknown commitment term %r; not used",
            current.id,
            current.commitment_term.term,
        )
        return None
    rule = next((r for r in rules if commitment_term_name(r.term) == term), _DEFAULT_RULE)
    default = _DEFAULT_RULE
    return Commitment(
        subscription_id=current.id,
        term=term,
        end_date=_day(current.commitment_term.end_date),
        auto_renew=rule.auto_renew if rule.auto_renew is not None else bool(default.auto_renew),
        window_days_before=_window_days(rule.window_days_before, 0),
        window_days_after=_window_days(rule.window_days_after, 7),
        allow_decrease=bool(rule.allow_decrease),
        allow_early_cancellation=bool(rule.allow_early_cancellation),
        cancellation_fee=bool(rule.cancellation_fee),
        seat_additions=seat_additions(snapshots or [current]),
    )


def billing_term(term: str | None) -> str:
    return "annual" if (term or "").strip().lower() in ("annual", "2-year", "3-year") else "monthly"


def to_company(company: Pax8Company) -> VendorCompany:
    active = (company.status or "Active").lower() == "active"
    return VendorCompany(
        id=company.id, name=company.name or company.id, status="active" if active else "inactive"
    )


def to_subscription(
    current: Pax8Subscription, history: Sequence[HistoryRow], amounts: tuple[Decimal, Decimal] | None = None
) -> Subscription | None:
    """The engine's subscription. `amounts` = (unit price, unit cost) as the connector settled them
    (module doc, "Price and cost"); without them the spec's reading: `price`, `partnerCost`."""
    start = _day(current.start_date) or current.billing_start or _day(current.created_date)
    if start is None and history:
        start = history[0].effective_date
    if start is None or not current.company_id or not current.product_id:
        log.warning("pax8: subscription %s has no start date, company or product; skipped", current.id)
        return None
    end = _day(current.end_date)
    cancelled_date = None
    if current.cancelled:
        cancels = [row.effective_date for row in history if row.action == "cancel"]
        cancelled_date = end or (cancels[-1] if cancels else None) or _day(current.updated_date)
    return Subscription(
        id=current.id,
        company_id=current.company_id,
        product_id=current.product_id,
        billing_term=billing_term(current.billing_term),  # type: ignore[arg-type]  # billing_term() returns only 'annual' or 'monthly'
        start_date=start,
        end_date=end,
        unit_price=amounts[0] if amounts else (current.price if current.price is not None else Decimal("0")),
        unit_cost=amounts[1]
        if amounts
        else (current.partner_cost if current.partner_cost is not None else Decimal("0")),
        status="cancelled" if current.cancelled else "active",
        cancelled_date=cancelled_date,
        history=list(history),
    )


def sub_product_name(line_name: str | None, parent_name: str | None) -> str | None:
    """`Proofpoint Essentials - Business` under `Proofpoint Essentials` -> `Business`."""
    if not line_name:
        return None
    name = line_name.strip()
    if parent_name:
        prefix = parent_name.strip()
        for separator in (" - ", " – ", ": ", " "):
            if name.lower().startswith((prefix + separator).lower()) and len(name) > len(prefix + separator):
                return name[len(prefix + separator) :].strip()
    return name


def pricing_rates(pricings: Sequence[Pax8Pricing], sub: Pax8Subscription) -> list[Pax8Rate]:
    """The rates that apply to `sub`: its billing term's pricing (its commitment term's, when the
    subscription names one and the pricing has it), the rates whose quantity range covers its quantity."""
    term = (sub.billing_term or "").strip().lower()
    found = [p for p in pricings if (p.billing_term or "").strip().lower() == term]
    commitment = (sub.commitment_term.term or "").strip().lower() if sub.commitment_term else ""
    if commitment:
        narrowed = [p for p in found if (p.commitment_term or "").strip().lower() == commitment]
        found = narrowed or found
    quantity = sub.quantity if sub.quantity is not None else Decimal("0")
    return [rate for p in found for rate in p.rates if rate.covers(quantity)]


def price_evidence(price: Decimal | None, rates: Sequence[Pax8Rate]) -> str | None:
    """ "partner" when `price` is a buy rate and no suggested retail price, "retail" the reverse, else None."""
    if price is None:
        return None
    buy = any(r.partner_buy_rate == price for r in rates)
    retail = any(r.suggested_retail_price == price for r in rates)
    if buy and not retail:
        return "partner"
    if retail and not buy:
        return "retail"
    return None


def _probe_rank(sub: Pax8Subscription) -> tuple[bool, datetime]:
    """Which subscription of a product to probe for its kind: active first, then the latest change."""
    return (not sub.cancelled, _instant(sub.changed_at))


def _agrees(
    current: Pax8Subscription, known: Subscription, amounts: tuple[Decimal, Decimal] | None = None
) -> bool:
    """The listed record says nothing the known subscription (with its history) does not: same
    company, product, term, dates, prices and status, and the quantity of its last history row
    (every history row carries the quantity of the snapshot it comes from)."""
    mapped = to_subscription(current, known.history, amounts)
    if mapped is None or mapped != known:
        return False
    if not known.history:  # Pax8 gave no snapshots: nothing to compare the quantity with
        return True
    quantity = current.quantity if current.quantity is not None else Decimal("0")
    return known.history[-1].quantity == quantity


# --- the connector -------------------------------------------------------------------------------


class Pax8Connector:
    """The Pax8 Partner API as a `VendorConnector`."""

    name = "pax8"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        product_kinds: Mapping[str, ProductKind] | None = None,
        clock: Callable[[], float] | None = None,
        today: Callable[[], date] | None = None,
        max_pages: int = MAX_LISTING_PAGES,
        max_bytes: int = MAX_LISTING_BYTES,
        price_reading: PriceReading = "auto",
    ) -> None:
        if price_reading not in PRICE_READINGS:
            raise ValueError(
                f"price_reading must be one of {', '.join(PRICE_READINGS)}, not {price_reading!r}"
            )
        self.price_reading: PriceReading = price_reading
        self._reading: PriceReading | None = None  # "auto", once settled this session
        self._pricing: dict[tuple[str, str | None], list[Pax8Pricing] | None] = {}
        self._warnings: dict[str, None] = {}
        self.client_id = client_id
        self.client_secret = client_secret
        self.product_kinds: dict[str, ProductKind] = dict(product_kinds or {})
        self.client = ServiceClient(
            SERVICE,
            base_url,
            transport=transport,
            headers={"Accept": "application/json"},
            budget=RateBudget(1000, 60),
            error_parser=pax8_error,
            sleep=sleep,
        )
        self._clock = clock or time.monotonic
        self._today = today or (lambda: datetime.now(UTC).date())
        self._token: str | None = None
        self._token_expires_at = 0.0
        # The lock and the gate belong to the event loop that uses them; a connector used from two
        # loops in turn (one `asyncio.run` per CLI command on one workspace) gets new ones per loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token_lock = asyncio.Lock()
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self.max_pages = max_pages  # caps of one listing (engine.connectors.http.ListingCap)
        self.max_bytes = max_bytes
        self._kinds: dict[str, ProductKind] = {}
        self._product_names: dict[str, str] = {}
        # Per product, from the subscription listings read so far: the subscription to probe for the
        # kind (active first, then the most recently changed) and a name to fall back on.
        self._probes: dict[str, Pax8Subscription] = {}
        self._listed_names: dict[str, str] = {}
        # Issue 15: the records and history read this session of subscriptions with a commitment
        # term (for `commitments()`), and each product's commitment rules.
        self._committed: dict[str, tuple[Pax8Subscription, list[Pax8Subscription]]] = {}
        self._rules: dict[str, list[Pax8CommitmentRule]] = {}

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._token_lock = asyncio.Lock()
            self._gate = asyncio.Semaphore(CONCURRENCY)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Pax8Connector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- auth ------------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The cached bearer token, requested again shortly before it expires."""
        self._bind_loop()
        async with self._token_lock:
            if self._token and self._clock() < self._token_expires_at:
                return self._token
            body = await self.client.read(
                "POST",
                "/token",
                json={
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "audience": AUDIENCE,
                    "grant_type": "client_credentials",
                },
            )
            token = body.get("access_token") if isinstance(body, Mapping) else None
            if not token:
                raise ServiceError(SERVICE, "the token response carries no access_token", status=200)
            lifetime = float(body.get("expires_in") or 86400)
            self._token = str(token)
            self._token_expires_at = self._clock() + lifetime - min(TOKEN_MARGIN, lifetime / 10)
            return self._token

    async def _forget_token(self, token: str) -> None:
        async with self._token_lock:
            if self._token == token:
                self._token = None
                self._token_expires_at = 0.0

    async def _response(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """GET with the bearer token; on a 401 the token is refreshed once and the call retried."""
        token = await self.access_token()
        try:
            return await self.client.read_response(
                "GET", path, params=dict(params or {}), headers={"Authorization": f"Bearer {token}"}
            )
        except ServiceError as exc:
            if exc.status != 401:
                raise
        await self._forget_token(token)
        token = await self.access_token()
        return await self.client.read_response(
            "GET", path, params=dict(params or {}), headers={"Authorization": f"Bearer {token}"}
        )

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """The JSON object a GET answers (`checked_body`: an empty or error 200 is a ServiceError)."""
        response = await self._response(path, params)
        return checked_body(_json_of(response, path), f"GET {path}")

    async def pages(self, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every element of a paged list: `page` from 0 while `page < totalPages`, 200 a page [spec
        `Page`]. Each page must be a `Page` envelope answering the page asked for; a page that comes
        back empty before `totalPages`, or a listing past `max_pages` pages / `max_bytes` bytes, is a
        `ServiceError` (nothing of the listing is used)."""
        what = f"GET {path}"
        cap = ListingCap(SERVICE, what, max_pages=self.max_pages, max_bytes=self.max_bytes)
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            response = await self._response(path, {**(params or {}), "page": page, "size": PAGE_SIZE})
            cap.count(len(response.content))
            body = validated(Pax8PageBody, checked_body(_json_of(response, path), what), what)
            info = body.page
            if info.number != page:
                raise ServiceError(
                    SERVICE, f"{what}: asked for page {page}, answered page {info.number}", status=200
                )
            out.extend(body.content)
            page += 1
            if page >= info.total_pages:
                return out
            if not body.content:
                raise ServiceError(
                    SERVICE,
                    f"{what}: page {page - 1} of {info.total_pages} came back empty "
                    f"({len(out)} of {info.total_elements} items read)",
                    status=200,
                )

    async def _gather(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        """Await them all, at most CONCURRENCY at a time (a coroutine starts when it gets a slot)."""

        self._bind_loop()

        async def run(call: Awaitable[T]) -> T:
            try:
                async with self._gate:
                    return await call
            finally:
                if asyncio.iscoroutine(call):
                    call.close()  # another call failed before this one started: no "never awaited"

        return list(await asyncio.gather(*(run(call) for call in calls)))

    # --- raw resources ---------------------------------------------------------------------------

    async def _listed(self, model: type[M], path: str, params: Mapping[str, Any] | None = None) -> list[M]:
        items = await self.pages(path, params)
        return [validated(model, item, f"GET {path} item {n}") for n, item in enumerate(items)]

    async def raw_companies(self) -> list[Pax8Company]:
        return await self._listed(Pax8Company, "/companies")

    async def raw_product(self, product_id: str) -> Pax8Product | None:
        try:
            return validated(
                Pax8Product, await self.get(f"/products/{product_id}"), f"GET /products/{product_id}"
            )
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    async def catalogue(self) -> list[Pax8Product]:
        """The whole product catalogue (`GET /products`, every page)."""
        return await self._listed(Pax8Product, "/products")

    async def raw_subscriptions(self, **filters: str) -> list[Pax8Subscription]:
        """`GET /subscriptions` (filters: status, billingTerm, companyId, productId)."""
        subs = await self._listed(Pax8Subscription, "/subscriptions", filters)
        self._note_products(subs)
        return subs

    def _note_products(self, subs: Iterable[Pax8Subscription]) -> None:
        probes, names = self._probes, self._listed_names
        for sub in subs:
            pid = sub.product_id
            if not pid:
                continue
            if sub.product_name and pid not in names:
                names[pid] = sub.product_name
            best = probes.get(pid)
            if best is None or best.id == sub.id or _probe_rank(sub) > _probe_rank(best):
                probes[pid] = sub

    async def raw_company(self, company_id: str) -> Pax8Company | None:
        """`GET /companies/{companyId}`; None when Pax8 answers 404."""
        try:
            return validated(
                Pax8Company, await self.get(f"/companies/{company_id}"), f"GET /companies/{company_id}"
            )
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    async def raw_history(self, subscription_id: str) -> list[Pax8Subscription]:
        """`GET /subscriptions/{id}/history`: `{content}` with no page block [spec]."""
        path = f"/subscriptions/{subscription_id}/history"
        body = validated(Pax8ListBody, await self.get(path), f"GET {path}")
        return [
            validated(Pax8Subscription, item, f"GET {path} item {n}") for n, item in enumerate(body.content)
        ]

    async def raw_usage_summaries(self, subscription_id: str) -> list[Pax8UsageSummary]:
        return await self._listed(Pax8UsageSummary, f"/subscriptions/{subscription_id}/usage-summaries")

    async def raw_usage_lines(self, usage_summary_id: str, usage_date: date) -> list[Pax8UsageLine]:
        return await self._listed(
            Pax8UsageLine,
            f"/usage-summaries/{usage_summary_id}/usage-lines",
            {"usageDate": usage_date.isoformat()},
        )

    async def raw_invoices(self, **filters: str) -> list[Pax8Invoice]:
        """`GET /invoices` (filters: status, invoiceDate, invoiceDateRangeStart/End, companyId…)."""
        return await self._listed(Pax8Invoice, "/invoices", filters)

    async def raw_invoice_items(self, invoice_id: str) -> list[Pax8InvoiceItem]:
        return await self._listed(Pax8InvoiceItem, f"/invoices/{invoice_id}/items")

    async def invoices(self, start: date, end: date) -> list[DistributorInvoice]:
        """The invoices dated `start`..`end` with their items (module doc, "Invoices")."""
        listed = await self.raw_invoices(
            invoiceDateRangeStart=start.isoformat(), invoiceDateRangeEnd=end.isoformat()
        )
        items = await self._gather([self.raw_invoice_items(invoice.id) for invoice in listed])
        return [to_invoice(invoice, found) for invoice, found in zip(listed, items, strict=True)]

    # --- VendorConnector -------------------------------------------------------------------------

    async def companies(self) -> list[VendorCompany]:
        return [to_company(company) for company in await self.raw_companies()]

    async def company(self, company_id: str) -> VendorCompany | None:
        """One company (`GET /companies/{id}`), None when Pax8 does not know it."""
        found = await self.raw_company(company_id)
        return to_company(found) if found is not None else None

    async def products(self, product_ids: Iterable[str] | None = None) -> list[VendorProduct]:
        """The products the partner's subscriptions use (every subscription is paged to find them),
        or just `product_ids`, with their derived kind (module doc)."""
        if product_ids is None:
            ids = list(dict.fromkeys(s.product_id for s in await self.raw_subscriptions() if s.product_id))
        else:
            ids = list(dict.fromkeys(product_ids))
            unseen = [pid for pid in ids if pid not in self._probes]
            if unseen:  # no listing has shown them: one filtered listing each
                await self._gather([self.raw_subscriptions(productId=pid) for pid in unseen])
        details = await self._gather([self.raw_product(pid) for pid in ids])

        async def describe(pid: str, product: Pax8Product | None) -> VendorProduct:
            name = (product.name if product else None) or self._listed_names.get(pid) or pid
            self._product_names[pid] = name
            sku = product.sku if product else None
            kind, sub_products = await self._derive_kind(pid, sku, name, self._probes.get(pid))
            self._kinds[pid] = kind
            return VendorProduct(
                id=pid,
                sku=sku,
                name=name,
                kind=kind,
                sub_products=sub_products,
                edition=None,
                service=None,
                storage_location=None,
                parent_product_id=None,
            )

        products = await self._gather([describe(pid, p) for pid, p in zip(ids, details, strict=True)])
        return sorted(products, key=lambda p: (p.name.lower(), p.id))

    async def subscriptions(
        self,
        *,
        changed_since: datetime | None = None,
        company_id: str | None = None,
        known: Mapping[str, Subscription] | None = None,
    ) -> list[Subscription]:
        """Every subscription (of `company_id` when given), with its history. `changed_since`
        without `known`: only those changed since then. With `known`: every listed subscription,
        the unchanged ones as known (module doc, "One customer")."""
        current = await self.raw_subscriptions(**({"companyId": company_id} if company_id else {}))
        since = _instant(changed_since) if changed_since is not None else None
        reading = await self.settle_price_reading(current)
        if known is None and since is not None:
            current = [sub for sub in current if sub.changed_at is None or _instant(sub.changed_at) > since]
        amounts = dict(
            zip(
                (sub.id for sub in current),
                await self._gather([self._amounts(sub, reading) for sub in current]),
                strict=True,
            )
        )
        reuse: dict[str, Subscription] = {}
        if known is not None:
            for sub in current:
                old = known.get(sub.id)
                if (
                    old is not None
                    and since is not None
                    and _agrees(sub, old, amounts[sub.id])
                    and (sub.changed_at is not None and _instant(sub.changed_at) <= since)
                ):
                    reuse[sub.id] = old

        async def one(sub: Pax8Subscription) -> Subscription | None:
            if sub.id in reuse:
                return reuse[sub.id]
            try:
                snapshots = await self.raw_history(sub.id)
            except ServiceError as exc:
                if exc.status != 404:
                    raise
                snapshots = [sub]
            if sub.commitment_term is not None:
                self._committed[sub.id] = (sub, snapshots)
            return to_subscription(sub, history_rows(sub.id, snapshots), amounts[sub.id])

        results = await self._gather([one(sub) for sub in current])
        return [result for result in results if result is not None]

    async def raw_dependencies(self, product_id: str) -> list[Pax8CommitmentRule]:
        """`GET /products/{productId}/dependencies` → `commitmentDependencies` [spec]; none on a 404
        ("Product not found")."""
        if product_id not in self._rules:
            path = f"/products/{product_id}/dependencies"
            try:
                body = validated(Pax8Dependencies, await self.get(path), f"GET {path}")
                self._rules[product_id] = list(body.commitment_dependencies)
            except ServiceError as exc:
                if exc.status != 404:
                    raise
                self._rules[product_id] = []
        return self._rules[product_id]

    async def commitments(self, subscription_ids: Iterable[str]) -> list[Commitment]:
        """The commitments of these subscriptions, from what `subscriptions()` read this session
        (their `commitmentTerm` and history) and one dependencies call per product. A subscription
        without a commitment term, or not read in full this session, has none here."""
        wanted = [self._committed[sid] for sid in dict.fromkeys(subscription_ids) if sid in self._committed]
        products = sorted({sub.product_id for sub, _ in wanted if sub.product_id})
        await self._gather([self.raw_dependencies(pid) for pid in products])
        out = []
        for sub, snapshots in wanted:
            found = to_commitment(sub, snapshots, self._rules.get(sub.product_id or "", []))
            if found is not None:
                out.append(found)
        return out

    async def usage(self, subscriptions: Sequence[Subscription], *, period: str) -> list[UsageRow]:
        """Usage rows of month `period` for the given subscriptions (seat ones have none)."""
        missing = [sub.product_id for sub in subscriptions if sub.product_id not in self._kinds]
        if missing:
            await self.products(missing)  # learns those products' kind and name
        month = parse_month(period)

        async def one(sub: Subscription) -> list[UsageRow]:
            kind = self._kinds.get(sub.product_id) or self._kind_override(sub.product_id, None) or "seat"
            if kind == "seat":
                return []
            summaries = await self.raw_usage_summaries(sub.id)
            if not summaries:
                return []
            if kind == "endpoint_usage":
                return await self._endpoint_rows(sub, summaries, month, period)
            return await self._latest_rows(sub, summaries, month, period, kind)

        per_sub = await self._gather([one(sub) for sub in subscriptions])
        return [row for rows in per_sub for row in rows]

    # --- price and cost (module doc, "Price and cost") ---------------------------------------------

    def take_warnings(self) -> list[str]:
        """What this connector noted since the last call (price reading, disagreeing sources)."""
        out, self._warnings = list(self._warnings), {}
        return out

    def _warn(self, message: str) -> None:
        log.warning("pax8: %s", message)
        self._warnings[message] = None

    async def raw_pricing(self, product_id: str, company_id: str | None = None) -> list[Pax8Pricing] | None:
        """`GET /products/{id}/pricing[?companyId=]`: `{content: [Pricing]}` [spec]; None on a 404
        (cached for the session)."""
        key = (product_id, company_id)
        if key in self._pricing:
            return self._pricing[key]
        path = f"/products/{product_id}/pricing"
        try:
            body = validated(
                Pax8ListBody,
                await self.get(path, {"companyId": company_id} if company_id else None),
                f"GET {path}",
            )
            found: list[Pax8Pricing] | None = [
                validated(Pax8Pricing, item, f"GET {path} item {n}") for n, item in enumerate(body.content)
            ]
        except ServiceError as exc:
            if exc.status != 404:
                raise
            found = None
        self._pricing[key] = found
        return found

    async def _rates(self, sub: Pax8Subscription) -> list[Pax8Rate]:
        if not sub.product_id:
            return []
        return pricing_rates(await self.raw_pricing(sub.product_id, sub.company_id) or [], sub)

    async def settle_price_reading(self, subs: Sequence[Pax8Subscription]) -> PriceReading:
        """The reading of `price` ("retail" or "partner"): as configured, or (auto) from the probes."""
        if self.price_reading != "auto":
            return self.price_reading
        if self._reading is not None:
            return self._reading
        probes: dict[str, Pax8Subscription] = {}
        for sub in subs:
            if (
                sub.product_id
                and sub.price is not None
                and (sub.product_id not in probes or _probe_rank(sub) > _probe_rank(probes[sub.product_id]))
            ):
                probes[sub.product_id] = sub
        if not probes:
            return "retail"  # nothing to judge by (yet): the spec's reading, not remembered
        rates = await self._gather([self._rates(probe) for probe in probes.values()])
        votes = {"retail": 0, "partner": 0}
        for probe, found in zip(probes.values(), rates, strict=True):
            vote = price_evidence(probe.price, found)
            if vote:
                votes[vote] += 1
            buys = {r.partner_buy_rate for r in found if r.partner_buy_rate is not None}
            if (
                vote == "retail"
                and probe.partner_cost is not None
                and buys
                and probe.partner_cost not in buys
            ):
                self._warn(
                    f"subscription {probe.id}: partnerCost {probe.partner_cost} differs from the "
                    f"partner buy rate {', '.join(str(b) for b in sorted(buys))} /pricing gives for its company"
                )
        checked = sum(1 for found in rates if found)
        if votes["partner"] and not votes["retail"]:
            self._reading = "partner"
            self._warn(
                f"Pax8 sends a subscription's price at the partner's buy rate ({votes['partner']} of "
                f"{len(probes)} products checked against /pricing): retail prices are taken from the "
                "suggested retail price (a product binding's own price still wins)"
            )
        else:
            self._reading = "retail"
            if votes["partner"]:
                self._warn(
                    f"Pax8's subscription price matched the partner buy rate for {votes['partner']} and the "
                    f"suggested retail price for {votes['retail']} of {len(probes)} products: read as the "
                    "customer price (the spec); check TRUEUP_PAX8_PRICE_READING"
                )
            elif checked and not votes["retail"]:
                self._warn(
                    f"Pax8's subscription price matched neither the partner buy rate nor the suggested "
                    f"retail price of /pricing for any of {checked} products: read as the customer price "
                    "(the spec); set TRUEUP_PAX8_PRICE_READING=partner if Pax8 sends the buy rate"
                )
        return self._reading

    async def _amounts(self, sub: Pax8Subscription, reading: PriceReading) -> tuple[Decimal, Decimal]:
        """(unit price, unit cost) of a subscription under `reading`."""
        zero = Decimal("0")
        price, cost = sub.price, sub.partner_cost
        if reading == "retail":
            if cost is None and price is not None:  # partnerCost omitted: the company's buy rate
                cost = next(
                    (r.partner_buy_rate for r in await self._rates(sub) if r.partner_buy_rate is not None),
                    None,
                )
            return (price if price is not None else zero, cost if cost is not None else zero)
        unit_cost = price if price is not None else (cost if cost is not None else zero)
        if cost is not None and price is not None and cost != price:
            self._warn(
                f"subscription {sub.id}: price {price} (read as the partner's buy rate) differs from "
                f"partnerCost {cost}"
            )
        retail = next(
            (
                r.suggested_retail_price
                for r in await self._rates(sub)
                if r.suggested_retail_price is not None
            ),
            None,
        )
        if retail is None:
            self._warn(
                f"subscription {sub.id}: no suggested retail price in /pricing for its company and term; "
                "billed at the partner's cost until its product binding sets a price"
            )
            retail = unit_cost
        return retail, unit_cost

    def remember_products(self, products: Iterable[VendorProduct]) -> None:
        """Tell `usage()` the kind and name of products already known (from the store), so that it
        need not list products again. `products()` does the same for what it returns."""
        for product in products:
            self._kinds[product.id] = product.kind
            self._product_names[product.id] = product.name

    # --- kinds and usage -------------------------------------------------------------------------

    def _kind_override(self, product_id: str, sku: str | None) -> ProductKind | None:
        if sku and sku in self.product_kinds:
            return self.product_kinds[sku]
        return self.product_kinds.get(product_id)

    async def _derive_kind(
        self, product_id: str, sku: str | None, name: str, probe: Pax8Subscription | None
    ) -> tuple[ProductKind, list[str]]:
        override = self._kind_override(product_id, sku)
        if override is None and sku and sku.lower().startswith(QUOTA_SKU_PREFIXES):
            override = "quota"
        if override in ("seat", "quota", "usage_summary"):
            return override, []
        if probe is None:  # no subscription uses it any more
            return override or "seat", []
        # Probe the most recently changed subscription (active ones first).
        summaries = await self.raw_usage_summaries(probe.id)
        if not summaries:
            return override or "seat", []
        month = self._today().replace(day=1) - timedelta(days=1)
        for probe_day in (month.replace(day=ENDPOINT_SNAPSHOT_DAY), last_of_month(month)):
            lines = [line for s in summaries for line in await self.raw_usage_lines(s.id, probe_day)]
            if not lines:
                continue
            others = [line for line in lines if line.product_id and line.product_id != product_id]
            if others:
                names: list[str] = []
                for line in others:
                    sub_name = sub_product_name(line.product_name, name)
                    if sub_name and sub_name not in names:
                        names.append(sub_name)
                return "endpoint_usage", names
            return override or "usage_summary", []
        if override is None:
            log.info(
                "pax8: product %s has usage summaries but no recent usage lines: usage_summary", product_id
            )
        return override or "usage_summary", []

    async def _lines_on(self, summaries: Sequence[Pax8UsageSummary], day: date) -> list[Pax8UsageLine]:
        per_summary = await asyncio.gather(*(self.raw_usage_lines(s.id, day) for s in summaries))
        return [line for lines in per_summary for line in lines]

    async def _endpoint_rows(
        self, sub: Subscription, summaries: Sequence[Pax8UsageSummary], month: date, period: str
    ) -> list[UsageRow]:
        day = month.replace(day=ENDPOINT_SNAPSHOT_DAY)
        lines = await self._lines_on(summaries, day)
        parent = self._product_names.get(sub.product_id)
        grouped: dict[str | None, list[Pax8UsageLine]] = {}
        for line in lines:
            own = line.product_id == sub.product_id
            key = None if own else sub_product_name(line.product_name, parent)
            grouped.setdefault(key, []).append(line)
        return [
            self._usage_row(sub, period, day, group, sub_product) for sub_product, group in grouped.items()
        ]

    async def _latest_rows(
        self, sub: Subscription, summaries: Sequence[Pax8UsageSummary], month: date, period: str, kind: str
    ) -> list[UsageRow]:
        last = min(last_of_month(month), self._today())
        days = [last - timedelta(days=n) for n in range((last - month).days + 1)] if last >= month else []
        # Newest first: the latest day alone (usage is posted daily, so it usually has lines), then
        # the rest of that week, then a week at a time.
        batches = [days[:1], days[1:7]] + [days[start : start + 7] for start in range(7, len(days), 7)]
        for week in (batch for batch in batches if batch):
            found = await asyncio.gather(*(self._lines_on(summaries, day) for day in week))
            for day, lines in zip(week, found, strict=True):
                if not lines:
                    continue
                if kind == "usage_summary":
                    charges = sum((line.current_charges or Decimal("0") for line in lines), Decimal("0"))
                    partner = sum((line.partner_total or Decimal("0") for line in lines), Decimal("0"))
                    return [
                        UsageRow(
                            subscription_id=sub.id,
                            period=period,
                            quantity=Decimal("1"),
                            unit_price=charges,
                            unit_cost=partner,
                            snapshot_date=day,
                            charges=charges,
                            partner_total=partner,
                        )
                    ]
                return [self._usage_row(sub, period, day, lines)]
        return []

    @staticmethod
    def _usage_row(
        sub: Subscription,
        period: str,
        day: date,
        lines: Sequence[Pax8UsageLine],
        sub_product: str | None = None,
    ) -> UsageRow:
        """The usage row of a day's lines for one (sub-)product: quantity, unit price, unit cost."""
        quantity = sum((line.quantity or Decimal("0") for line in lines), Decimal("0"))
        price = next((line.unit_price for line in lines if line.unit_price is not None), None)
        if price is None:
            charges = sum((line.current_charges or Decimal("0") for line in lines), Decimal("0"))
            price = _unit(charges, quantity)
        partner = sum((line.partner_total or Decimal("0") for line in lines), Decimal("0"))
        return UsageRow(
            subscription_id=sub.id,
            sub_product=sub_product,
            period=period,
            quantity=quantity,
            unit_price=price,
            unit_cost=_unit(partner, quantity),
            snapshot_date=day,
            charges=None,
            partner_total=None,
        )
