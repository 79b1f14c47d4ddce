"""Autotask PSA REST (`/atservicesrest/v1.0`), as the engine's `PsaConnector`.

Facts come from shared/APIS.md §4 and the entity table `engine.connectors.autotask_entities`
(routes, required / read-only fields, lengths, each with its source). Everything marked ASSUMED is
not confirmed by a primary source and must be checked against a real zone
(`GET /v1.0/{Entity}/entityInformation/fields` lists picklists and lengths).

Reading
- Companies -> `PsaCompany`; Services -> `PsaProduct`, the SKU from the Service's own `sku` field
  (REST-era, [anteris]: not in APIS.md §4.7's older model list; the SOAP Service had none), their
  required `billingCodeID` [anteris] remembered for charges, below.
- Contracts with `contractType` 7 (Recurring Service, the only type that holds services [doc]) and
  `status` 1 (ASSUMED 1 = Active) -> `PsaAgreement`; `contractPeriodType` (ASSUMED 1 Monthly,
  2 Quarterly, 3 Semi-Annual, 4 Yearly; SOAP-era m/q/s/y accepted): Yearly -> "annual", else monthly.
  `company_billing` is the same query plus `companyID eq N`.
- A recurring line = a ContractService (price, cost, descriptions) + its ContractServiceUnits rows.
  `quantity` = units of the latest row with units > 0 (a change trueup scheduled for next month
  counts as written); `effective_date` = start of the first row with units; `cancelled_date` = the
  day before a trailing run of rows with 0 units.
- A one-time line = a ContractCharge (`unitQuantity`, `unitPrice`, `unitCost`, `datePurchased`).
- Metered lines (quota pay-as-you-go / overage, RULES.md §6): Autotask has no metered flag on a
  ContractService, and the flag cannot live on the Service because a prepaid line and its
  overage line bill the same Service (seed 004). It lives in the contract service's
  `internalDescription` (internal, never printed on an invoice [doc: the invoice prints
  invoiceDescription]): the line is metered when that text contains `[metered]` (any case,
  anywhere), e.g. "[metered] backup overage" typed by the partner. Lines trueup writes as metered
  carry `[metered] trueup:<key>`. This is trueup's convention, not Autotask's.
- Dates: the REST API returns every date-time in UTC [doc REST_API_Calls "Timestamp format"];
  a local midnight east of UTC comes back as `…T13:00:00Z` the day before (issue 10). A value is
  turned into a date in the partner's zone (`zone`, RULES.md §11, default UTC); a value at exactly
  midnight UTC is a date-only field (saved "as the date value, time set to midnight", [doc
  REST_API_Calls]) and keeps its date. A value without a zone designator is UTC [APIS §4.6].
- Every response is validated before it is used (pydantic models of the envelopes
  `{"items": [...], "pageDetails": {...}}`, `{"item": ...}`, `{"itemId": N}`, `{"queryCount": N}`
  and of the rows read): a 200 with `{"errors": [...]}`, an empty or garbled body, or a row
  without the fields trueup needs is a `ServiceError` naming the entity — never "no rows".
- Paging: `POST /{Entity}/query` with `MaxRecords` 500; each page's `pageDetails.nextPageUrl`
  (absolute) is followed with GET (ASSUMED: the documented `GET …/query?search=` form; the URL
  carries the search) until null, only on the zone's own host (credentials never leave it
  [client tphakala/go-autotask client.go]). A query stops with a `ServiceError` after
  `max_pages` pages or `max_bytes` bytes (a paging loop is also caught when a URL repeats).

Writes (routes [swagger] [anteris]; child entities are created under their parent)
- New recurring line: `POST Contracts/{contractID}/Services` {contractID, serviceID, unitPrice,
  unitCost, invoiceDescription, internalDescription = the key marker}, then
  `POST Contracts/{contractID}/ServiceAdjustments` {contractID, contractServiceID, serviceID,
  effectiveDate, unitChange = quantity}; then the service and its units are read back. The
  service is created first (not left to the adjustment, which would create it [doc]) so the key is
  on it. `create_requests` shows the adjustment without `contractServiceID`: it is the id the
  first request returns.
- Quantity change: one adjustment {contractID, contractServiceID, effectiveDate
  (`LineUpdate.effective_date`, required), unitChange = quantity − previous_quantity
  (`LineUpdate.previous_quantity` is required: adjustments are create-only deltas [doc])}.
- Cancellation: an adjustment of −previous_quantity effective the day AFTER `cancelled_date`.
- Price: `PATCH Contracts/{contractID}/Services` {id, unitPrice} — on update only the adjusted
  price and invoiceDescription are writable [doc]; the REST models have no `adjustedPrice`, their
  adjusted (customer-currency) price is `unitPrice` and the internalCurrency* copies are computed
  (sources in the entity table's ContractServices rule). The price read back is that same
  `unitPrice`, the one ContractServiceUnits bill at. Sent after the units adjustment when both change.
- Cost: `unitCost` is read-only on update [doc], so a cost goes in the units adjustment's
  `adjustedUnitCost` (an adjustment of 0 units when only the cost changes; ASSUMED that Autotask
  applies it to the service from the effective date).
- One-time line (prorate, extra months, arrears, usage summary, backup): `POST
  Contracts/{contractID}/Charges` {contractID, name (≤ 100), description, chargeType 1 (ASSUMED
  Operational), datePurchased, unitQuantity, unitPrice, unitCost, billingCodeID,
  isBillableToCompany, internalPurchaseOrderNumber = the key marker, notes}. A charge needs a
  billingCodeID or a productID [doc]; trueup's lines name a Service, so the charge takes the
  Service's own `billingCodeID` (read with `GET Services/{id}` when `products()` has not read it;
  ASSUMED a zone accepts a Recurring Contract Service billing code on a charge).
  `status` is read-only and never sent.
- Extra months (RULES.md §3, seed 001): one charge whose `unitQuantity` = the seat gap × the
  number of months, at the full monthly unit price, so Autotask invoices gap × price × months
  once (a charge has no "months" field); its name and description end `- 1 seat × 2 months
  (02/2021–03/2021)`. `engine.connectors.base.psa_quantity` / `psa_description` are the one place
  this is computed, for every PSA.
- Dates are sent as `yyyy-mm-ddT00:00:00.00`, the documented format; date-only fields
  (effectiveDate, datePurchased) keep the date as written [doc REST_API_Calls].
- `update_line` always addresses a ContractService: one-time lines are written once.

The line key (crash-safe sync)
- ContractServices: `internalDescription` = `trueup:<key>` ([ecit] 100 characters; writable on
  create, read-only on update through the API [doc]). A key too long for it is stored as
  `trueup#<sha256 hex>` cut to the limit; lookups compute the same marker.
- ContractCharges have no internalDescription: `internalPurchaseOrderNumber` = the marker ([ecit]
  50 characters, internal, writable on create and update) and `notes` (2000) = `trueup-key: <key>`
  + `trueup-service: <service id>` (the Service the charge bills; charges name billing codes).
- `find_line(agreement_id, key, expect)` queries the contract's ContractServices by marker (either
  form, metered or not), then its ContractCharges. An operator may edit these fields by hand in the
  UI (ASSUMED possible); then the key is gone, `lines()` reports the line without a source, and
  `find_line` falls back, for a line this connector tried to create in this process or the one
  `expect` describes (the executor passes the journaled line, so after a crash too), to a second
  independent match before anything is re-sent: a charge of that contract whose notes carry the
  key; a contract service of that contract and Service whose invoiceDescription is the line's
  description and whose units start on its effective date (or that has no units yet) and that
  carries no other trueup key. Two candidates are an error, never a guess.
- A found recurring line whose quantity is 0 was created without its units adjustment: the caller
  finishes it with `update_line(quantity=…, previous_quantity=0, effective_date=…)`.
- Adjustments cannot be queried: `update_applied(update)` reads ContractServiceUnits on the
  update's effective date (0 the day after a cancelled date) and, for a price, the service.

Rate limits: `RateBudget(concurrent=3)` (thread limit per endpoint [doc ThreadLimiting]); the
shared http layer retries 429s for about 8 s. Autotask allows 10,000 requests per rolling hour per
database, shared by every integration [doc REST_Thresholds_Limits]; a 429 that outlasts the shared
retries is waited out here: `Retry-After` when sent, else `GET ThresholdInformation` decides (the
hourly budget used up: wait `threshold_step` seconds and try again; not used up: a short pause),
for at most `max_throttle_wait` seconds in all, then a `ServiceError` that says the budget is used up.
Errors `{"errors": [...]}` become `ServiceError` details. Money goes out as JSON numbers written from
`Decimal` (never through a float).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from engine.connectors.autotask_entities import ENTITIES, THRESHOLD_ROUTE, max_length
from engine.connectors.base import (
    LineUpdate,
    LineWrite,
    ProductSpec,
    ServiceError,
    psa_description,
    psa_quantity,
    refuse_bill_options,
)
from engine.connectors.http import (
    RateBudget,
    ServiceClient,
    loads,
    parse_datetime,
    parse_json,
)
from engine.keys import line_source
from engine.margin.psa_invoices import PsaInvoiceLine
from engine.money import round_cents
from engine.scenario import PsaAgreement, PsaCompany, PsaLine, PsaName, PsaProduct

log = logging.getLogger(__name__)

SERVICE = "autotask"
ZONE_LOOKUP_URL = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
MAX_RECORDS = 500  # page size and the most OR conditions per query [doc]
CONCURRENT_REQUESTS = 3  # thread limit per object endpoint per integration [doc ThreadLimiting]
MAX_PAGES = 5_000  # one query's pages (2.5 million rows) before it is stopped as runaway paging
MAX_BYTES = 512 * 1024 * 1024  # one query's answer bytes before it is stopped
MAX_THROTTLE_WAIT = 900.0  # seconds of 429s waited out per request before giving up
THRESHOLD_STEP = 60.0  # wait between tries while the hourly budget is used up

CONTRACT_TYPE_RECURRING_SERVICE = 7  # [doc ContractServicesEntity]
CONTRACT_STATUS_ACTIVE = 1  # ASSUMED
PERIOD_MONTHLY, PERIOD_QUARTERLY, PERIOD_SEMI_ANNUAL, PERIOD_YEARLY = 1, 2, 3, 4  # ASSUMED picklist
PERIOD_MONTHS: dict[object, int] = {
    PERIOD_MONTHLY: 1,
    PERIOD_QUARTERLY: 3,
    PERIOD_SEMI_ANNUAL: 6,
    PERIOD_YEARLY: 12,
    "m": 1,
    "q": 3,
    "s": 6,
    "y": 12,
}
CHARGE_TYPE = 1  # ASSUMED picklist value (Operational)
COMPANY_TYPE_CUSTOMER = 1  # ASSUMED

KEY_PREFIX = "trueup:"
DIGEST_PREFIX = "trueup#"
METERED_TAG = "[metered]"
SERVICE_KEY_LIMIT = max_length("ContractServices", "internalDescription")  # 100 [ecit]
CHARGE_KEY_LIMIT = max_length("ContractCharges", "internalPurchaseOrderNumber")  # 50 [ecit]
CHARGE_NAME_LIMIT = max_length("ContractCharges", "name")  # 100 [ecit]
CHARGE_DESCRIPTION_LIMIT = max_length("ContractCharges", "description")  # 2000 [ecit]
INVOICE_DESCRIPTION_LIMIT = max_length("ContractServices", "invoiceDescription")  # 1000 [ecit]
NOTE_KEY = "trueup-key: "
NOTE_SERVICE = "trueup-service: "

_M = TypeVar("_M", bound=BaseModel)


# --- wire helpers (shared with the sandbox) -------------------------------------------------------


def dumps(value: Any) -> str:
    """JSON with `Decimal` written as a number exactly as it is (json.dumps would need a float)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a JSON number: {value}")
        return format(value, "f")
    if isinstance(value, int | str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def key_marker(key: str, limit: int) -> str:
    """What a key-carrying field holds for `key`: `trueup:<key>`, or a stable digest if too long."""
    plain = KEY_PREFIX + key
    if len(plain) <= limit:
        return plain
    digest = hashlib.sha256(key.encode()).hexdigest()
    return DIGEST_PREFIX + digest[: max(8, limit - len(DIGEST_PREFIX))]


def service_marker(key: str, metered: bool = False) -> str:
    """A ContractService's internalDescription for `key` (tagged `[metered]` for a metered line)."""
    if not metered:
        return key_marker(key, SERVICE_KEY_LIMIT)
    tag = METERED_TAG + " "
    return tag + key_marker(key, SERVICE_KEY_LIMIT - len(tag))


def is_metered(internal_description: object) -> bool:
    return isinstance(internal_description, str) and METERED_TAG in internal_description.lower()


def _strip_tag(marker: str) -> str:
    if marker.lower().startswith(METERED_TAG):
        return marker[len(METERED_TAG) :].lstrip()
    return marker


def key_from_marker(marker: object) -> str | None:
    """The key written by `key_marker`/`service_marker`, when it was stored in full."""
    if not isinstance(marker, str):
        return None
    marker = _strip_tag(marker)
    if marker.startswith(KEY_PREFIX):
        return marker[len(KEY_PREFIX) :]
    return None


def _is_trueup_marker(marker: object) -> bool:
    return isinstance(marker, str) and _strip_tag(marker).startswith((KEY_PREFIX, DIGEST_PREFIX))


def charge_notes(key: str, service_id: str) -> str:
    return f"{NOTE_KEY}{key}\n{NOTE_SERVICE}{service_id}"


def _note_value(notes: object, prefix: str) -> str | None:
    if not isinstance(notes, str):
        return None
    for line in notes.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip() or None
    return None


# A charge's `unitQuantity` (extra months: gap × months) — computed in one place for every PSA.
charge_quantity = psa_quantity


def at_midnight(d: date) -> str:
    """How a date goes to Autotask: `yyyy-mm-ddThh:mm:ss.ms` [doc REST_API_Calls], at midnight;
    date-only fields keep the date as written [doc REST_API_Calls]."""
    return f"{d.isoformat()}T00:00:00.00"


iso = at_midnight  # the name the dry-run callers used


def to_date(value: object, zone: tzinfo = UTC) -> date | None:
    """An Autotask date-time as a date in the partner's `zone` (see the module docstring)."""
    if value is None or value == "":
        return None
    moment: datetime | None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value
    else:
        text = str(value).strip()
        if len(text) == 10:
            return date.fromisoformat(text)
        try:
            moment = parse_datetime(text)
        except ValueError as exc:
            raise ValueError(f"not a date-time: {value!r}") from exc
        assert moment is not None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # Autotask's date-times are UTC [doc REST_API_Calls]
    utc = moment.astimezone(UTC)
    if utc.time() == time(0, 0):
        return utc.date()  # a date-only field: its date as written [doc REST_API_Calls]
    return utc.astimezone(zone).date()


def whole_units(quantity: Decimal) -> int:
    """Autotask units are integers [APIS §5.3]."""
    if quantity != quantity.to_integral_value():
        raise ValueError(f"Autotask contract service units must be whole: {quantity}")
    return int(quantity)


def _id(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise ValueError(f"Autotask ids are numeric: {value!r}") from exc


def autotask_error(response: httpx.Response) -> tuple[str, list[str]]:
    """`{"errors": ["...", ...]}` (Autotask), or an ASP.NET `{"Message": ...}`, or the text."""
    try:
        body = parse_json(response)
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            details = [str(e) for e in errors]
            return details[0], details
        for name in ("Message", "message"):
            if isinstance(body.get(name), str):
                return body[name], []
    text = response.text.strip()
    return (text[:500] or response.reason_phrase or "request failed"), []


# --- what Autotask answers (validated before use) -------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PageDetails(_Model):
    count: int
    requestCount: int | None = None  # noqa: N815 - Autotask's names
    prevPageUrl: str | None = None  # noqa: N815
    nextPageUrl: str | None = None  # noqa: N815


class QueryPage(_Model):
    items: list[dict[str, Any]]
    pageDetails: PageDetails  # noqa: N815


class ItemAnswer(_Model):
    item: dict[str, Any] | None  # present, null when there is no such id


class ItemIdAnswer(_Model):
    itemId: int  # noqa: N815


class ZoneAnswer(_Model):
    url: str


class ThresholdAnswer(_Model):
    """ThresholdStatusResultModel [models; client tphakala/go-autotask middleware/threshold.go]."""

    externalRequestThreshold: int  # noqa: N815
    requestThresholdTimeframe: int  # noqa: N815 - minutes
    currentTimeframeRequestCount: int  # noqa: N815


class CompanyRow(_Model):
    id: int
    companyName: str | None = None  # noqa: N815


class ServiceRow(_Model):
    id: int
    name: str | None = None
    unitPrice: Decimal | None = None  # noqa: N815
    unitCost: Decimal | None = None  # noqa: N815
    billingCodeID: int | None = None  # noqa: N815
    sku: str | None = None


class ContractRow(_Model):
    id: int
    companyID: int  # noqa: N815
    contractName: str | None = None  # noqa: N815
    contractPeriodType: int | str | None = None  # noqa: N815
    startDate: str  # noqa: N815
    endDate: str | None = None  # noqa: N815


class ContractServiceRow(_Model):
    id: int
    contractID: int  # noqa: N815
    serviceID: int  # noqa: N815
    unitPrice: Decimal | None = None  # noqa: N815
    unitCost: Decimal | None = None  # noqa: N815
    invoiceDescription: str | None = None  # noqa: N815
    internalDescription: str | None = None  # noqa: N815


class UnitsRow(_Model):
    id: int
    contractServiceID: int  # noqa: N815
    startDate: str  # noqa: N815
    endDate: str | None = None  # noqa: N815
    units: int


class BillingItemRow(_Model):
    """A posted billing item (engine.connectors.autotask_entities "BillingItems")."""

    id: int
    companyID: int  # noqa: N815
    invoiceID: int | None = None  # noqa: N815
    itemDate: str  # noqa: N815
    contractID: int | None = None  # noqa: N815
    contractServiceID: int | None = None  # noqa: N815
    serviceID: int | None = None  # noqa: N815
    itemName: str | None = None  # noqa: N815
    description: str | None = None
    quantity: Decimal | None = None
    rate: Decimal | None = None
    extendedPrice: Decimal | None = None  # noqa: N815


class ChargeRow(_Model):
    id: int
    contractID: int  # noqa: N815
    name: str | None = None
    description: str | None = None
    unitQuantity: Decimal | None = None  # noqa: N815
    unitPrice: Decimal | None = None  # noqa: N815
    unitCost: Decimal | None = None  # noqa: N815
    datePurchased: str  # noqa: N815
    internalPurchaseOrderNumber: str | None = None  # noqa: N815
    notes: str | None = None
    productID: int | None = None  # noqa: N815
    billingCodeID: int | None = None  # noqa: N815


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


def validated(model: type[_M], body: object, what: str) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ServiceError(SERVICE, f"{what}: unexpected answer ({_problem(exc)})", sent=True) from exc


def rows(model: type[_M], items: Iterable[Mapping[str, Any]], entity: str) -> list[_M]:
    out: list[_M] = []
    for n, item in enumerate(items):
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            ident = item.get("id") if isinstance(item, Mapping) else None
            raise ServiceError(
                SERVICE, f"{entity}: row {n + 1} (id {ident!r}) is not what Autotask sends ({_problem(exc)})"
            ) from exc
    return out


def units_on(unit_rows: Sequence[UnitsRow], on: date | None, zone: tzinfo = UTC) -> int:
    """Units in force on `on` (the latest scheduled units when None) from ContractServiceUnits rows."""
    ordered = sorted(unit_rows, key=lambda r: to_date(r.startDate, zone) or date.min)
    if not ordered:
        return 0
    if on is None:
        return ordered[-1].units
    current = 0
    for row in ordered:
        start = to_date(row.startDate, zone)
        if start is not None and start <= on:
            current = row.units
    return current


# --- the connector ---------------------------------------------------------------------------------


class AutotaskConnector:
    name: PsaName = "autotask"

    def __init__(
        self,
        username: str,
        secret: str,
        integration_code: str,
        *,
        zone_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        owner_resource_id: int | None = None,
        service_billing_code_id: int | None = None,
        zone: tzinfo = UTC,
        max_pages: int = MAX_PAGES,
        max_bytes: int = MAX_BYTES,
        max_throttle_wait: float = MAX_THROTTLE_WAIT,
        threshold_step: float = THRESHOLD_STEP,
    ) -> None:
        self.username = username
        self.owner_resource_id = owner_resource_id
        # the billing (allocation) code a service trueup creates bills through (create_product)
        self.service_billing_code_id = service_billing_code_id
        self.zone = zone  # the partner's time zone (RULES.md §11)
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self.max_throttle_wait = max_throttle_wait
        self.threshold_step = threshold_step
        self._sleep = sleep or asyncio.sleep
        self.http = ServiceClient(
            SERVICE,
            "",
            transport=transport,
            headers={
                "ApiIntegrationCode": integration_code,
                "UserName": username,
                "Secret": secret,
                "Content-Type": "application/json",
            },
            budget=RateBudget(concurrent=CONCURRENT_REQUESTS),
            error_parser=autotask_error,
            sleep=sleep,
        )
        self.zone_url: str | None = None
        self._billing_codes: dict[int, int] = {}  # Service id -> its billingCodeID
        self._intents: dict[tuple[int, str], LineWrite] = {}  # (contract, key) -> a create tried here
        if zone_url:
            self._set_zone(zone_url)

    # -- zone ------------------------------------------------------------------------------------

    def _set_zone(self, url: str) -> None:
        base = url.rstrip("/")
        if not base.lower().endswith("/v1.0"):
            base += "/v1.0"
        self.zone_url = base + "/"
        self.http.http.base_url = httpx.URL(self.zone_url)

    async def connect(self) -> str:
        """Look up the zone of the API user (once) and return its `/v1.0/` base URL."""
        if self.zone_url is None:
            request = self.http.build("GET", ZONE_LOOKUP_URL, params={"user": self.username})
            del request.headers["Secret"]  # the lookup needs no secret: don't send it
            response = await self._send(request, idempotent=True)
            answer = validated(ZoneAnswer, self._json(response, "zoneInformation"), "zoneInformation")
            if not answer.url:
                raise ServiceError(SERVICE, f"no zone for API user {self.username!r}", sent=False)
            self._set_zone(answer.url)
        assert self.zone_url is not None
        return self.zone_url

    def _require_zone(self) -> None:
        if self.zone_url is None:
            raise RuntimeError("Autotask zone unknown: pass zone_url or await connect() first")

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- transport: throttling, envelopes ----------------------------------------------------------

    async def _send(self, request: httpx.Request, *, idempotent: bool) -> httpx.Response:
        """`ServiceClient.send`, plus waiting out a 429 that outlasts its retries, as the service
        says: Retry-After when given, else the hourly threshold (ThresholdInformation)."""
        waited = 0.0
        while True:
            try:
                return await self.http.send(request, idempotent=idempotent)
            except ServiceError as exc:
                if exc.status != 429:
                    raise
                delay, why = await self._throttle_delay(exc)
                if waited + delay > self.max_throttle_wait:
                    raise ServiceError(
                        SERVICE,
                        f"{why}; gave up after waiting {waited:.0f} s (at most {self.max_throttle_wait:.0f} s)"
                        " — try again later",
                        status=429,
                        details=exc.details,
                        sent=False,
                    ) from exc
                log.warning(
                    "autotask: %s; waiting %.0f s before %s %s", why, delay, request.method, request.url.path
                )
                await self._sleep(delay)
                waited += delay

    async def _throttle_delay(self, exc: ServiceError) -> tuple[float, str]:
        if exc.retry_after is not None:
            wait = exc.retry_after if exc.retry_after > 0 else 1.0
            return wait, f"Autotask asks to wait {exc.retry_after:g} s ({exc.message})"
        threshold = await self.threshold()
        if threshold is None:
            return self.threshold_step, f"Autotask keeps refusing requests (HTTP 429: {exc.message})"
        used, limit = threshold.currentTimeframeRequestCount, threshold.externalRequestThreshold
        if used >= limit:
            return self.threshold_step, (
                f"Autotask's request budget is used up: {used:,} of {limit:,} requests in the last "
                f"{threshold.requestThresholdTimeframe} minutes (shared by every integration of this database)"
            )
        return min(
            self.threshold_step, 5.0
        ), f"Autotask throttled a request ({exc.message}; {used:,} of {limit:,} used)"

    async def threshold(self) -> ThresholdAnswer | None:
        """`GET ThresholdInformation` (the hourly budget), or None when it cannot be read."""
        try:
            await self.connect()
            response = await self.http.send(self.http.build("GET", THRESHOLD_ROUTE), idempotent=True)
            return validated(ThresholdAnswer, self._json(response, THRESHOLD_ROUTE), THRESHOLD_ROUTE)
        except ServiceError as exc:
            log.info("autotask: ThresholdInformation unavailable: %s", exc)
            return None

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        """The parsed body of a successful answer; an empty or garbled body, or a 200 carrying
        Autotask's `{"errors": [...]}`, is a `ServiceError` (never read as "nothing")."""
        if not response.content.strip():
            raise ServiceError(SERVICE, f"{what}: empty answer (HTTP {response.status_code})")
        try:
            body = loads(response.content)
        except (ValueError, RecursionError) as exc:
            raise ServiceError(
                SERVICE, f"{what}: the answer is not JSON (HTTP {response.status_code})"
            ) from exc
        if isinstance(body, Mapping):
            errors = body.get("errors")
            if isinstance(errors, list) and errors:
                details = [str(e) for e in errors]
                raise ServiceError(SERVICE, details[0], status=response.status_code, details=details)
        return body

    async def _read(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[Any, int]:
        response = await self._send(self.http.build(method, url, **kwargs), idempotent=True)
        return self._json(response, what), len(response.content)

    async def _write(self, request: httpx.Request, what: str) -> int:
        response = await self._send(request, idempotent=False)
        return validated(ItemIdAnswer, self._json(response, what), what).itemId

    # -- reading ---------------------------------------------------------------------------------

    def _same_zone(self, url: str) -> bool:
        assert self.zone_url is not None
        a, b = httpx.URL(url), httpx.URL(self.zone_url)
        return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)

    async def query(self, entity: str, filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Every item of `entity` matching `filters` (ANDed), following nextPageUrl to the end."""
        await self.connect()
        what = f"{entity}/query"
        body, size = await self._read(
            "POST", what, what, content=dumps({"MaxRecords": MAX_RECORDS, "Filter": list(filters)})
        )
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        pages = 0
        while True:
            page = validated(QueryPage, body, what)
            pages += 1
            items.extend(page.items)
            next_url = page.pageDetails.nextPageUrl
            if not next_url:
                return items
            if pages >= self.max_pages:
                raise ServiceError(
                    SERVICE,
                    f"{what}: stopped after {pages:,} pages ({len(items):,} rows) — "
                    "the service keeps answering with a next page",
                )
            if size >= self.max_bytes:
                raise ServiceError(
                    SERVICE,
                    f"{what}: stopped after {size:,} bytes ({len(items):,} rows) — "
                    f"more than the {self.max_bytes:,} a query may read",
                )
            if next_url in seen:
                raise ServiceError(SERVICE, f"{what}: paging loops on {next_url}")
            if not self._same_zone(next_url):
                raise ServiceError(
                    SERVICE, f"{what}: nextPageUrl leaves the zone ({httpx.URL(next_url).host}); not followed"
                )
            seen.add(next_url)
            body, more = await self._read("GET", next_url, what)
            size += more

    async def query_in(
        self, entity: str, field: str, values: Iterable[int], extra: Sequence[Mapping[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        """Items whose `field` is one of `values`, in chunks of at most 500 values per query."""
        ordered = sorted(set(values))
        out: list[dict[str, Any]] = []
        for start in range(0, len(ordered), MAX_RECORDS):
            chunk = ordered[start : start + MAX_RECORDS]
            out.extend(await self.query(entity, [{"op": "in", "field": field, "value": chunk}, *extra]))
        return out

    async def invoiced_lines(self, start: date, end: date, currency: str = "USD") -> list[PsaInvoiceLine]:
        """What Autotask invoiced from `start` through `end`: the posted `BillingItems` of contracts
        that an invoice took (`invoiceID exist`, `contractID exist`) dated (`itemDate`) in the range,
        one query paged by nextPageUrl (APIS.md §4.3). The range is widened by a day each side in the
        filter and applied exactly here, on the partner's local dates (Autotask's date-times are UTC,
        APIS.md §4.6). A service period's item names its contract service (`contractServiceID`, the
        line's id); `extendedPrice` is the amount before tax [ecit ExtendedPrice]. ASSUMED: the
        invoice's number is its id (the Invoices entity is not read) and its date the item's
        `itemDate` (the period billed); amounts in `currency` (the items carry none)."""
        found = await self.query(
            "BillingItems",
            [
                {"op": "gte", "field": "itemDate", "value": at_midnight(start - timedelta(days=1))},
                {"op": "lt", "field": "itemDate", "value": at_midnight(end + timedelta(days=2))},
                {"op": "exist", "field": "invoiceID"},
                {"op": "exist", "field": "contractID"},
            ],
        )
        out: list[PsaInvoiceLine] = []
        for row in rows(BillingItemRow, found, "BillingItems"):
            on = self._day(row.itemDate, f"billing item {row.id} itemDate")
            if on is None or not start <= on <= end or row.invoiceID is None:
                continue
            quantity = row.quantity if row.quantity is not None else Decimal("0")
            price = row.rate if row.rate is not None else Decimal("0")
            out.append(
                PsaInvoiceLine(
                    invoice_id=str(row.invoiceID),
                    invoice_number=str(row.invoiceID),
                    invoice_date=on,
                    company_id=str(row.companyID),
                    agreement_id=str(row.contractID) if row.contractID is not None else None,
                    line_id=str(row.contractServiceID) if row.contractServiceID is not None else None,
                    product_id=str(row.serviceID) if row.serviceID is not None else None,
                    description=row.description or row.itemName or "",
                    quantity=quantity,
                    unit_price=price,
                    amount=(
                        row.extendedPrice if row.extendedPrice is not None else round_cents(quantity * price)
                    ),
                    currency=currency,
                )
            )
        return out

    async def get(self, entity: str, item_id: int | str) -> dict[str, Any] | None:
        await self.connect()
        what = f"{entity}/{_id(item_id)}"
        body, _ = await self._read("GET", what, what)
        return validated(ItemAnswer, body, what).item

    async def companies(self) -> list[PsaCompany]:
        found = rows(
            CompanyRow,
            await self.query("Companies", [{"op": "eq", "field": "isActive", "value": True}]),
            "Companies",
        )
        return [PsaCompany(id=str(r.id), name=r.companyName or "") for r in found]

    async def products(self) -> list[PsaProduct]:
        found = rows(
            ServiceRow,
            await self.query("Services", [{"op": "eq", "field": "isActive", "value": True}]),
            "Services",
        )
        for r in found:
            if r.billingCodeID is not None:
                self._billing_codes[r.id] = r.billingCodeID
        return [
            PsaProduct(
                id=str(r.id),
                name=r.name or "",
                sku=(r.sku or "").strip() or None,
                unit_price=r.unitPrice,
                unit_cost=r.unitCost,
            )
            for r in found
        ]

    async def agreements(self) -> list[PsaAgreement]:
        found = await self.query(
            "Contracts",
            [
                {"op": "eq", "field": "contractType", "value": CONTRACT_TYPE_RECURRING_SERVICE},
                {"op": "eq", "field": "status", "value": CONTRACT_STATUS_ACTIVE},
            ],
        )
        return [self._agreement(r) for r in rows(ContractRow, found, "Contracts")]

    async def company_billing(self, company_id: str) -> tuple[list[PsaAgreement], list[PsaLine]]:
        """One company's active recurring-service contracts (the `agreements()` query plus
        `companyID eq N`) and their lines (`lines()` of those contracts)."""
        found = await self.query(
            "Contracts",
            [
                {"op": "eq", "field": "companyID", "value": _id(company_id)},
                {"op": "eq", "field": "contractType", "value": CONTRACT_TYPE_RECURRING_SERVICE},
                {"op": "eq", "field": "status", "value": CONTRACT_STATUS_ACTIVE},
            ],
        )
        agreements = [self._agreement(r) for r in rows(ContractRow, found, "Contracts")]
        return agreements, await self.lines([a.id for a in agreements])

    def _day(self, value: object, what: str) -> date | None:
        try:
            return to_date(value, self.zone)
        except ValueError as exc:
            raise ServiceError(SERVICE, f"{what}: not a date-time: {value!r}") from exc

    def _agreement(self, row: ContractRow) -> PsaAgreement:
        period: object = row.contractPeriodType
        if isinstance(period, str) and period.isdigit():
            period = int(period)
        if isinstance(period, str):
            period = period.lower()
        months = PERIOD_MONTHS.get(period)
        if months is None:
            log.warning("autotask: contract %s has unknown contractPeriodType %r", row.id, period)
        elif months not in (1, 12):
            log.warning("autotask: contract %s bills every %d months; treated as monthly", row.id, months)
        start = self._day(row.startDate, f"contract {row.id} startDate")
        if start is None:
            raise ServiceError(SERVICE, f"contract {row.id} has no startDate")
        return PsaAgreement(
            id=str(row.id),
            company_id=str(row.companyID),
            name=row.contractName or "",
            start_date=start,
            end_date=self._day(row.endDate, f"contract {row.id} endDate"),
            billing_period="annual" if months == 12 else "monthly",
        )

    async def lines(self, agreement_ids: Sequence[str] | None = None) -> list[PsaLine]:
        if agreement_ids is None:
            agreement_ids = [a.id for a in await self.agreements()]
        contract_ids = [_id(a) for a in agreement_ids]
        if not contract_ids:
            return []
        services = rows(
            ContractServiceRow,
            await self.query_in("ContractServices", "contractID", contract_ids),
            "ContractServices",
        )
        units = (
            rows(
                UnitsRow,
                await self.query_in("ContractServiceUnits", "contractID", contract_ids),
                "ContractServiceUnits",
            )
            if services
            else []
        )
        charges = rows(
            ChargeRow, await self.query_in("ContractCharges", "contractID", contract_ids), "ContractCharges"
        )
        return await self._service_lines(services, units) + [self._charge_line(c) for c in charges]

    async def _service_lines(
        self, services: Sequence[ContractServiceRow], units: Sequence[UnitsRow]
    ) -> list[PsaLine]:
        by_service: dict[int, list[UnitsRow]] = defaultdict(list)
        for row in units:
            by_service[row.contractServiceID].append(row)
        starts: dict[int, date] = {}
        bare = {s.contractID for s in services if not any(r.units > 0 for r in by_service.get(s.id, ()))}
        if bare:  # a service without units yet: its effective date falls back to the contract's start
            for contract in rows(ContractRow, await self.query_in("Contracts", "id", bare), "Contracts"):
                start = self._day(contract.startDate, f"contract {contract.id} startDate")
                if start is not None:
                    starts[contract.id] = start
        return [self._service_line(s, by_service.get(s.id, []), starts) for s in services]

    def _service_line(
        self, service: ContractServiceRow, unit_rows: Sequence[UnitsRow], starts: Mapping[int, date]
    ) -> PsaLine:
        dated = sorted(
            (
                (self._day(r.startDate, f"contract service {service.id} units startDate") or date.min, r)
                for r in unit_rows
            ),
            key=lambda pair: pair[0],
        )
        positive = [(d, r) for d, r in dated if r.units > 0]
        quantity = positive[-1][1].units if positive else 0
        effective = positive[0][0] if positive else None
        cancelled: date | None = None
        if positive and dated[-1][1] is not positive[-1][1]:
            index = next(i for i, (_, r) in enumerate(dated) if r is positive[-1][1])
            cancelled = dated[index + 1][0] - timedelta(days=1)
        if effective is None:
            effective = starts.get(service.contractID) or date(1970, 1, 1)
        key = key_from_marker(service.internalDescription)
        return PsaLine(
            id=str(service.id),
            agreement_id=str(service.contractID),
            product_id=str(service.serviceID),
            kind="recurring",
            quantity=Decimal(quantity),
            unit_price=service.unitPrice if service.unitPrice is not None else Decimal("0"),
            unit_cost=service.unitCost if service.unitCost is not None else Decimal("0"),
            effective_date=effective,
            cancelled_date=cancelled,
            description=service.invoiceDescription or "",
            metered=is_metered(service.internalDescription),
            source=line_source(key or None),
        )

    def _charge_line(self, charge: ChargeRow) -> PsaLine:
        key = _note_value(charge.notes, NOTE_KEY) or key_from_marker(charge.internalPurchaseOrderNumber)
        product = _note_value(charge.notes, NOTE_SERVICE) or charge.productID or charge.billingCodeID
        purchased = self._day(charge.datePurchased, f"contract charge {charge.id} datePurchased")
        if purchased is None:
            raise ServiceError(SERVICE, f"contract charge {charge.id} has no datePurchased")
        return PsaLine(
            id=str(charge.id),
            agreement_id=str(charge.contractID),
            product_id=str(product or "0"),
            kind="one_time",
            quantity=charge.unitQuantity if charge.unitQuantity is not None else Decimal("0"),
            unit_price=charge.unitPrice if charge.unitPrice is not None else Decimal("0"),
            unit_cost=charge.unitCost if charge.unitCost is not None else Decimal("0"),
            effective_date=purchased,
            description=charge.description or charge.name or "",
            source=line_source(key or None),
        )

    async def _read_service_line(self, contract_service_id: int | str) -> PsaLine:
        item = await self.get("ContractServices", contract_service_id)
        if item is None:
            raise ServiceError(SERVICE, f"contract service {contract_service_id} not found", status=404)
        (service,) = rows(ContractServiceRow, [item], "ContractServices")
        return (await self._service_lines([service], await self._units(contract_service_id)))[0]

    async def _units(self, contract_service_id: int | str) -> list[UnitsRow]:
        found = await self.query(
            "ContractServiceUnits",
            [{"op": "eq", "field": "contractServiceID", "value": _id(contract_service_id)}],
        )
        return rows(UnitsRow, found, "ContractServiceUnits")

    async def current_units(self, contract_service_id: int | str, on: date | None = None) -> int:
        """Units of the contract service in force on `on` (the latest scheduled units when None)."""
        return units_on(await self._units(contract_service_id), on, self.zone)

    async def update_applied(self, update: LineUpdate) -> bool:
        """Whether the units adjustment `update` describes is in Autotask (adjustments themselves
        cannot be queried): compares ContractServiceUnits with what the update should have made."""
        if update.cancelled_date is not None:
            return await self.current_units(update.line_id, update.cancelled_date + timedelta(days=1)) == 0
        if update.quantity is not None:
            on = update.effective_date
            if await self.current_units(update.line_id, on) != whole_units(update.quantity):
                return False
            if update.unit_price is None:
                return True
        line = await self._read_service_line(update.line_id)
        return update.unit_price is None or line.unit_price == update.unit_price

    async def find_line(self, agreement_id: str, key: str, expect: LineWrite | None = None) -> PsaLine | None:
        contract_id = _id(agreement_id)
        markers = sorted({service_marker(key), service_marker(key, metered=True)})
        services = rows(
            ContractServiceRow,
            await self.query(
                "ContractServices",
                [
                    {"op": "eq", "field": "contractID", "value": contract_id},
                    {"op": "in", "field": "internalDescription", "value": markers},
                ],
            ),
            "ContractServices",
        )
        if services:
            if len(services) > 1:
                log.warning(
                    "autotask: %d contract services carry key %s; using the first", len(services), key
                )
            service = min(services, key=lambda s: s.id)
            return (await self._service_lines([service], await self._units(service.id)))[0]
        charges = rows(
            ChargeRow,
            await self.query(
                "ContractCharges",
                [
                    {"op": "eq", "field": "contractID", "value": contract_id},
                    {
                        "op": "eq",
                        "field": "internalPurchaseOrderNumber",
                        "value": key_marker(key, CHARGE_KEY_LIMIT),
                    },
                ],
            ),
            "ContractCharges",
        )
        if charges:
            return self._charge_line(min(charges, key=lambda c: c.id))
        intent = expect or self._intents.get((contract_id, key))
        if intent is not None:
            return await self._second_match(contract_id, intent)
        return None

    async def _second_match(self, contract_id: int, write: LineWrite) -> PsaLine | None:
        """The line a create of `write` (tried by this connector) may have left, found without its
        key field (edited by hand): see the module docstring. Two candidates raise, never guess."""
        if write.kind == "one_time":
            charges = rows(
                ChargeRow,
                await self.query(
                    "ContractCharges", [{"op": "eq", "field": "contractID", "value": contract_id}]
                ),
                "ContractCharges",
            )
            found = [c for c in charges if _note_value(c.notes, NOTE_KEY) == write.key]
            if len(found) > 1:
                raise ServiceError(
                    SERVICE,
                    f"{len(found)} contract charges of contract {contract_id} name key "
                    f"{write.key} in their notes; resolve by hand",
                    sent=False,
                )
            if found:
                log.warning(
                    "autotask: charge %s matched key %s by its notes (its PO number was edited)",
                    found[0].id,
                    write.key,
                )
                return self._charge_line(found[0])
            return None
        services = rows(
            ContractServiceRow,
            await self.query(
                "ContractServices",
                [
                    {"op": "eq", "field": "contractID", "value": contract_id},
                    {"op": "eq", "field": "serviceID", "value": _id(write.product_id)},
                ],
            ),
            "ContractServices",
        )
        candidates = [
            s
            for s in services
            if not _is_trueup_marker(s.internalDescription)
            and (s.invoiceDescription or "") == write.description
        ]
        if not candidates:
            return None
        lines = await self._service_lines(
            candidates, [u for s in candidates for u in await self._units(s.id)]
        )
        found_lines = [
            line for line in lines if line.quantity == 0 or line.effective_date == write.effective_date
        ]
        if len(found_lines) > 1:
            raise ServiceError(
                SERVICE,
                f"{len(found_lines)} contract services of contract {contract_id} match "
                f"{write.key} (service, date, description) without a key; resolve by hand",
                sent=False,
            )
        if found_lines:
            log.warning(
                "autotask: contract service %s matched key %s by contract, service, date and "
                "description (its internal description was edited)",
                found_lines[0].id,
                write.key,
            )
            return found_lines[0]
        return None

    # -- request builders (the dry run and the send path share them) -----------------------------

    def _child(self, method: str, contract_id: int, child: str, body: Mapping[str, Any]) -> httpx.Request:
        self._require_zone()
        return self.http.build(method, f"Contracts/{contract_id}/{child}", content=dumps(body))

    def _contract_service_request(self, write: LineWrite) -> httpx.Request:
        contract_id = _id(write.agreement_id)
        return self._child(
            "POST",
            contract_id,
            "Services",
            {
                "contractID": contract_id,
                "serviceID": _id(write.product_id),
                "unitPrice": write.unit_price,
                "unitCost": write.unit_cost,
                "invoiceDescription": write.description[:INVOICE_DESCRIPTION_LIMIT],
                "internalDescription": service_marker(write.key, write.metered),
            },
        )

    def _adjustment_request(
        self,
        *,
        contract_id: int,
        service_id: int | None,
        contract_service_id: int | None,
        effective: date,
        unit_change: int,
        unit_cost: Decimal | None = None,
    ) -> httpx.Request:
        body: dict[str, Any] = {"contractID": contract_id}
        if contract_service_id is not None:
            body["contractServiceID"] = contract_service_id
        if service_id is not None:
            body["serviceID"] = service_id
        body["effectiveDate"] = at_midnight(effective)
        body["unitChange"] = unit_change
        if unit_cost is not None:
            body["adjustedUnitCost"] = unit_cost
        return self._child("POST", contract_id, "ServiceAdjustments", body)

    def _price_request(self, contract_id: int, contract_service_id: int, price: Decimal) -> httpx.Request:
        return self._child("PATCH", contract_id, "Services", {"id": contract_service_id, "unitPrice": price})

    def _new_units_request(self, write: LineWrite, contract_service_id: int | None) -> httpx.Request:
        return self._adjustment_request(
            contract_id=_id(write.agreement_id),
            service_id=_id(write.product_id),
            contract_service_id=contract_service_id,
            effective=write.effective_date,
            unit_change=whole_units(write.quantity),
        )

    def _charge_request(self, write: LineWrite) -> httpx.Request:
        contract_id = _id(write.agreement_id)
        body: dict[str, Any] = {
            "contractID": contract_id,
            "name": psa_description(write)[:CHARGE_NAME_LIMIT],
            "description": psa_description(write)[:CHARGE_DESCRIPTION_LIMIT],
            "chargeType": CHARGE_TYPE,
            "datePurchased": at_midnight(write.effective_date),
            "unitQuantity": psa_quantity(write),  # extra months: gap × months (module docstring)
            "unitPrice": write.unit_price,
            "unitCost": write.unit_cost,
        }
        billing_code = self._billing_codes.get(_id(write.product_id))
        if billing_code is not None:
            body["billingCodeID"] = billing_code
        body["isBillableToCompany"] = True
        body["internalPurchaseOrderNumber"] = key_marker(write.key, CHARGE_KEY_LIMIT)
        body["notes"] = charge_notes(write.key, write.product_id)
        return self._child("POST", contract_id, "Charges", body)

    def create_requests(self, write: LineWrite) -> list[httpx.Request]:
        """The requests `create_line` sends. For a recurring line the adjustment's
        `contractServiceID` is absent here: it is the id the first request returns. A charge's
        `billingCodeID` is the Service's; absent here until the Service has been read."""
        # APIS.md §4.7: ContractServices / Charges carry no per-line taxable flag or bill option
        refuse_bill_options(SERVICE, "autotask", write.key, write.taxable, write.bill_option)
        if write.kind == "one_time":
            return [self._charge_request(write)]
        return [self._contract_service_request(write), self._new_units_request(write, None)]

    def update_requests(self, update: LineUpdate) -> list[httpx.Request]:
        """The requests `update_line` sends: one units adjustment (quantity, cancellation, cost)
        and/or a PATCH of the price."""
        refuse_bill_options(SERVICE, "autotask", update.key, update.taxable, update.bill_option)
        contract_id, line_id = _id(update.agreement_id), _id(update.line_id)
        change: int | None = None
        effective: date | None = None
        if update.cancelled_date is not None:
            change = -whole_units(self._previous(update))
            effective = update.cancelled_date + timedelta(days=1)
        elif update.quantity is not None:
            change = whole_units(update.quantity) - whole_units(self._previous(update))
            effective = update.effective_date
            if effective is None:
                raise ValueError("an Autotask quantity change needs LineUpdate.effective_date")
            if change == 0 and update.unit_cost is None:
                change = None
        elif update.unit_cost is not None:
            change, effective = 0, update.effective_date
            if effective is None:
                raise ValueError("an Autotask cost change needs LineUpdate.effective_date")
        requests: list[httpx.Request] = []
        if change is not None and effective is not None:
            requests.append(
                self._adjustment_request(
                    contract_id=contract_id,
                    service_id=None,
                    contract_service_id=line_id,
                    effective=effective,
                    unit_change=change,
                    unit_cost=update.unit_cost if update.cancelled_date is None else None,
                )
            )
        if update.unit_price is not None and update.cancelled_date is None:
            requests.append(self._price_request(contract_id, line_id, update.unit_price))
        return requests

    @staticmethod
    def _previous(update: LineUpdate) -> Decimal:
        if update.previous_quantity is None:
            raise ValueError(
                "an Autotask units change needs LineUpdate.previous_quantity "
                "(adjustments are deltas and cannot be read back)"
            )
        return update.previous_quantity

    # -- writing ---------------------------------------------------------------------------------

    async def _billing_code(self, service_id: int) -> int:
        """The Service's billingCodeID (a charge needs one [doc ContractChargesEntity])."""
        if service_id not in self._billing_codes:
            item = await self.get("Services", service_id)
            if item is None:
                raise ServiceError(SERVICE, f"service {service_id} not found", status=404, sent=False)
            (service,) = rows(ServiceRow, [item], "Services")
            if service.billingCodeID is None:
                raise ServiceError(
                    SERVICE,
                    f"service {service_id} has no billingCodeID: a contract charge needs one",
                    sent=False,
                )
            self._billing_codes[service_id] = service.billingCodeID
        return self._billing_codes[service_id]

    async def create_line(self, write: LineWrite) -> PsaLine:
        await self.connect()
        refuse_bill_options(SERVICE, "autotask", write.key, write.taxable, write.bill_option)
        self._intents[(_id(write.agreement_id), write.key)] = write
        if write.kind == "one_time":
            await self._billing_code(_id(write.product_id))
            charge_id = await self._write(self._charge_request(write), "Contracts/Charges")
            item = await self.get("ContractCharges", charge_id)
            if item is None:
                raise ServiceError(SERVICE, f"contract charge {charge_id} not found after create", status=404)
            return self._charge_line(rows(ChargeRow, [item], "ContractCharges")[0])
        service_id = await self._write(self._contract_service_request(write), "Contracts/Services")
        await self._write(self._new_units_request(write, service_id), "Contracts/ServiceAdjustments")
        return await self._read_service_line(service_id)

    async def update_line(self, update: LineUpdate) -> PsaLine:
        await self.connect()
        for request in self.update_requests(update):
            await self._write(request, request.url.path.rsplit("/", 2)[-1])
        return await self._read_service_line(update.line_id)

    async def create_company(self, name: str) -> PsaCompany:
        """`POST Companies` {companyName, companyType, phone, ownerResourceID}: phone and
        ownerResourceID are required [anteris]; the owner must be configured."""
        if self.owner_resource_id is None:
            raise ServiceError(
                SERVICE,
                "creating an Autotask company needs an owner resource id (ownerResourceID is required)",
                sent=False,
            )
        await self.connect()
        body: dict[str, Any] = {
            "companyName": name[: max_length("Companies", "companyName")],
            "companyType": COMPANY_TYPE_CUSTOMER,
            "phone": "",
            "ownerResourceID": self.owner_resource_id,
        }
        self._require_zone()
        company_id = await self._write(self.http.build("POST", "Companies", content=dumps(body)), "Companies")
        row = await self.get("Companies", company_id)
        return PsaCompany(id=str(company_id), name=str((row or {}).get("companyName") or name))

    def service_body(self, spec: ProductSpec) -> dict[str, Any]:
        """The Services create body for a product (seed 004's wizard). Required: name (150),
        unitPrice, periodType, billingCodeID [ecit New-AtwsService; anteris]. The SKU goes into the
        Service's own `sku` [anteris] (what `products()` reads back, so the bind picker finds it by
        SKU); one longer than the field is refused, never cut (a cut SKU would match nothing).
        Monthly is periodType 1 (ASSUMED)."""
        if self.service_billing_code_id is None:
            raise ServiceError(
                SERVICE,
                "creating an Autotask service needs a billing code id (billingCodeID is required)",
                sent=False,
            )
        if not spec.recurring:
            raise ServiceError(
                SERVICE, "an Autotask service is recurring; create a one-time product in Autotask", sent=False
            )
        if spec.category:
            raise ServiceError(
                SERVICE, "trueup does not set an Autotask service's category; leave it empty", sent=False
            )
        if spec.taxable:
            raise ServiceError(
                SERVICE,
                "trueup does not set an Autotask service's tax category; leave taxable off",
                sent=False,
            )
        body: dict[str, Any] = {
            "name": spec.name[: max_length("Services", "name")],
            "unitPrice": spec.unit_price,
            "unitCost": spec.unit_cost,
            "periodType": PERIOD_MONTHLY,
            "billingCodeID": self.service_billing_code_id,
            "isActive": True,
        }
        if spec.sku:
            sku, most = spec.sku.strip(), max_length("Services", "sku")
            if len(sku) > most:
                raise ServiceError(
                    SERVICE,
                    f"the SKU {sku[:20]}… is {len(sku)} characters; an Autotask service's sku holds {most}",
                    sent=False,
                )
            body["sku"] = sku
        return body

    async def create_product(self, spec: ProductSpec) -> PsaProduct:
        """`POST Services` with `service_body`, then `GET Services/{id}` (the answer is only the
        new id)."""
        body = self.service_body(spec)
        await self.connect()
        self._require_zone()
        service_id = await self._write(self.http.build("POST", "Services", content=dumps(body)), "Services")
        self._billing_codes[service_id] = int(body["billingCodeID"])
        item = await self.get("Services", service_id)
        if item is None:
            raise ServiceError(SERVICE, f"service {service_id} not found after create", status=404)
        (row,) = rows(ServiceRow, [item], "Services")
        return PsaProduct(
            id=str(row.id),
            name=row.name or spec.name,
            sku=(row.sku or "").strip() or None,
            unit_price=row.unitPrice,
            unit_cost=row.unitCost,
        )


__all__ = ["ENTITIES", "AutotaskConnector", "charge_quantity"]
