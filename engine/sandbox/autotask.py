"""A stateful Autotask PSA REST sandbox, served through `httpx.MockTransport(sandbox.handle)` so the
real `AutotaskConnector` runs unchanged. It refuses what a real zone refuses, by the entity table
`engine.connectors.autotask_entities.ENTITIES` (routes, required / read-only / create-only
fields, lengths, picklists, each rule with its source) and the rules below.

Routes (shared/APIS.md §4; [swagger] = Autotask's route list, see the entity table)
- `GET https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation?user=` (no auth);
  every other call needs `ApiIntegrationCode`, `UserName` and `Secret`, else 401 with ASP.NET's
  body `{"Message": "Authorization has been denied for this request."}` (ASSUMED body).
- Queries, on the root of a queryable entity: `POST /{Entity}/query` (body), `GET
  /{Entity}/query?search=` (the same JSON), `POST /{Entity}/query/count`, `GET /{Entity}/{id}` ->
  `{"item": ...}` (null when missing). Filter ops eq, noteq, gt, gte, lt, lte, in (≤ 500 values),
  notIn, exist, notExist, beginsWith, endsWith, contains, and `and`/`or` groups; text compares
  ignore case. `MaxRecords` 1–500. Each page has `pageDetails` with an absolute `nextPageUrl`
  (`…/{Entity}/query/next?paging=…&search=…`, served to GET only — ASSUMED shape and verb).
- Writes where a real zone serves them [swagger]: `POST|PATCH /Companies`; `POST|PATCH
  /Contracts/{id}/Services`; `POST /Contracts/{id}/ServiceAdjustments` (and the root `POST
  /ContractServiceAdjustments`); `POST|PATCH /Contracts/{id}/Charges`; `POST /Services` (a new
  service: its billingCodeID must be one the zone has, else 500 — route and wording ASSUMED, the
  required fields [ecit New-AtwsService]; its optional `sku` kept and served back [anteris]). Root `POST /ContractServices`
  or `/ContractCharges`, a PATCH of an adjustment, a query of an adjustment… answer 405; unknown
  routes 404; both with Autotask's error body `{"errors": ["..."]}` (ASSUMED wording).
- `GET /ThresholdInformation` -> {externalRequestThreshold, requestThresholdTimeframe,
  currentTimeframeRequestCount}.
- Creates answer `{"itemId": N}`; a PATCH `{"itemId": id}`. A malformed body, a missing required
  field, an unknown field (ASSUMED refused) or a wrong type answers 400; a read-only field, a
  create-only field in a PATCH, an over-long string, a value outside a picklist or a broken
  business rule answers 500 (Autotask's habit), all `{"errors": [...]}`.
- Business rules: a contract service only on a Recurring Service (type 7) contract [doc]; a charge
  needs a billingCodeID (one the Services use) or a productID [doc]; units never below 0 and no
  adjustment before the contract's start (ASSUMED); an adjustment without a contractServiceID
  finds or creates the contract service of its serviceID [doc].
- Dates: stored as local dates of the database's `zone` (the partner's; default UTC) and returned
  in UTC with `Z`: a local midnight east of UTC reads `…T13:00:00Z` the day before (issue 10).
  Date and date-time fields must be sent as `yyyy-mm-ddThh:mm:ss[.fff][Z|±hh:mm]` [doc
  REST_API_Calls]; a date-only field keeps the date as written [doc REST_API_Calls].
- Limits: at most 3 requests in flight per entity endpoint, the 4th answers 429 (thread limit [doc
  ThreadLimiting]); at most `threshold` requests (10,000 [doc REST_Thresholds_Limits]) per rolling
  `threshold_window` seconds (3600), counted on the sandbox's `clock`; beyond it every request but
  ThresholdInformation answers 429 `{"errors": [...]}` with no Retry-After (ASSUMED: no rate
  headers are documented).
- `Faults.decide` runs before anything is handled: `refusal()` faults answer without applying,
  `after_apply()` faults apply the request, then answer 500 or lose the response. Queries are
  reads: they are decided as GETs, so `Faults(writes_only=True)` leaves them alone.

Loaded from a scenario, PSA ids must be numeric strings. A recurring line becomes a ContractService
plus adjustments (+quantity on its effective date, −quantity the day after its cancelled date); a
one-time line becomes a ContractCharge. Key-carrying fields are written the way the connector
writes them (`service_marker`, `key_marker`); a metered line's internalDescription carries
`[metered]` (the connector's convention). Each Service gets a billing code (its id + 10,000,000).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from engine.connectors.autotask import (
    CHARGE_KEY_LIMIT,
    CONTRACT_STATUS_ACTIVE,
    CONTRACT_TYPE_RECURRING_SERVICE,
    MAX_RECORDS,
    METERED_TAG,
    PERIOD_MONTHLY,
    PERIOD_MONTHS,
    PERIOD_YEARLY,
    AutotaskConnector,
    charge_notes,
    dumps,
    key_marker,
    service_marker,
    to_date,
    whole_units,
)
from engine.connectors.autotask_entities import (
    CHILD_ROUTES,
    ENTITIES,
    HOURLY_REQUEST_THRESHOLD,
    THRESHOLD_ROUTE,
    THRESHOLD_TIMEFRAME_MINUTES,
    EntityRule,
)
from engine.connectors.http import loads
from engine.months import add_months
from engine.sandbox.faults import Faults
from engine.scenario import Scenario

ZONE_LOOKUP_HOST = "webservices.autotask.net"
DEFAULT_ZONE = "https://webservices5.autotask.net/atservicesrest/"
UNAUTHORIZED = {"Message": "Authorization has been denied for this request."}
BILLING_CODE_BASE = 10_000_000
CHARGE_STATUS_NEW = 1  # what a new charge's read-only status reads (ASSUMED value)
ENTITY_NAMES = tuple(ENTITIES)
QUERY_ONLY = {"ContractServiceUnits", "BillingItems"}
CREATE_ONLY = {"ContractServiceAdjustments"}
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:?\d{2})?$")


class _Reject(Exception):
    def __init__(self, status: int, *errors: str) -> None:
        super().__init__("; ".join(errors))
        self.status = status
        self.errors = list(errors)


def _int(value: object, field: str) -> int:
    if isinstance(value, bool) or value is None:
        raise _Reject(400, f"{field}: not an integer: {value!r}")
    try:
        number = Decimal(str(value))
    except ArithmeticError as exc:
        raise _Reject(400, f"{field}: not an integer: {value!r}") from exc
    if number != number.to_integral_value():
        raise _Reject(400, f"{field}: not an integer: {value!r}")
    return int(number)


def _money(value: object, field: str) -> Decimal:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise _Reject(400, f"{field}: not a number: {value!r}")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise _Reject(400, f"{field}: not a number: {value!r}") from exc


def _written_date(value: object, field: str) -> date:
    """A date-only field as sent: `yyyy-mm-ddThh:mm:ss[.ms]` [doc REST_API_Calls], its date kept
    as written (the time is set to midnight) [doc REST_API_Calls]."""
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise _Reject(400, f"{field}: not a date-time (yyyy-mm-ddThh:mm:ss.ms): {value!r}")
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise _Reject(400, f"{field}: not a date-time: {value!r}") from exc


@dataclass
class _Adjustment:
    id: int
    contract_service_id: int
    effective: date
    change: int
    unit_cost: Decimal | None = None


class AutotaskSandbox:
    def __init__(
        self,
        *,
        username: str = "trueup-api@sandbox.example",
        secret: str = "sandbox-secret",
        integration_code: str = "TRUEUP-SANDBOX",
        zone_url: str = DEFAULT_ZONE,
        faults: Faults | None = None,
        concurrency: int = 3,
        page_size: int = MAX_RECORDS,
        zone: tzinfo = UTC,
        threshold: int = HOURLY_REQUEST_THRESHOLD,
        threshold_window: float = THRESHOLD_TIMEFRAME_MINUTES * 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.username = username
        self.secret = secret
        self.integration_code = integration_code
        self.zone_url = zone_url.rstrip("/") + "/"
        self.faults = faults
        self.concurrency = concurrency
        self.page_size = page_size  # the most a page holds, whatever MaxRecords asks (tests page with less)
        self.zone = zone  # the database's local zone: dates are its local dates, sent back in UTC
        self.threshold = threshold
        self.threshold_window = threshold_window
        self.clock = clock
        self.requests: deque[float] = deque()  # start times of the requests in the rolling window
        self.tables: dict[str, dict[int, dict[str, Any]]] = {
            name: {}
            for name in ENTITY_NAMES
            if name not in ("ContractServiceUnits", "ContractServiceAdjustments")
        }
        self.adjustments: dict[int, list[_Adjustment]] = {}  # by contract service id
        # What Autotask invoiced (engine.margin.psa_invoices.PsaInvoiceLine): BillingItems, built on
        # first read.
        self.invoiced_source: Callable[[], list[Any]] = list
        self._billing_loaded = False
        self._next_id = 1000
        self.writes = 0  # writes applied (a write answered 500 or lost after applying counts)
        self.in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()
        self.throttled = 0
        self.refused: list[tuple[str, str, int, list[str]]] = []  # (method, path, status, errors)

    # -- dates -------------------------------------------------------------------------------------

    def _at(self, d: date) -> str:
        """How this database answers a local date: its local midnight, in UTC, with `Z`."""
        moment = datetime(d.year, d.month, d.day, tzinfo=self.zone).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _local(self, value: object) -> date:
        parsed = to_date(value, self.zone)
        assert parsed is not None
        return parsed

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, faults: Faults | None = None, **options: Any
    ) -> AutotaskSandbox:
        sandbox = cls(faults=faults, **options)
        psa = scenario.psa
        for company in psa.companies:
            sandbox.add_company(_numeric(company.id), company.name)
        for product in psa.products:
            sandbox.add_service(
                _numeric(product.id), product.name, product.unit_price, product.unit_cost, sku=product.sku
            )
        for agreement in psa.agreements:
            sandbox.add_contract(
                _numeric(agreement.id),
                _numeric(agreement.company_id),
                agreement.name,
                agreement.start_date,
                agreement.end_date,
                period=PERIOD_YEARLY if agreement.billing_period == "annual" else PERIOD_MONTHLY,
            )
        for line in psa.lines:
            key = line.source.key if line.source else None
            if line.kind == "recurring":
                service_id = _numeric(line.id)
                sandbox.add_contract_service(
                    service_id,
                    _numeric(line.agreement_id),
                    _numeric(line.product_id),
                    line.unit_price,
                    line.unit_cost,
                    invoice_description=line.description,
                    key=key,
                    metered=line.metered,
                )
                units = whole_units(line.quantity)
                if units:
                    sandbox.add_adjustment(service_id, line.effective_date, units)
                    if line.cancelled_date is not None:
                        sandbox.add_adjustment(service_id, line.cancelled_date + timedelta(days=1), -units)
            else:
                sandbox.add_charge(
                    _numeric(line.id),
                    _numeric(line.agreement_id),
                    line.description,
                    line.quantity,
                    line.unit_price,
                    line.unit_cost,
                    line.effective_date,
                    key=key,
                    service_id=line.product_id,
                )

        def invoiced() -> list[Any]:
            from engine.sandbox.demo import sandbox_psa_invoices

            return sandbox_psa_invoices(scenario)

        sandbox.invoiced_source = invoiced
        return sandbox

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _take_id(self, item_id: int) -> int:
        self._next_id = max(self._next_id, item_id)
        return item_id

    def add_company(self, company_id: int, name: str) -> None:
        self.tables["Companies"][self._take_id(company_id)] = {
            "id": company_id,
            "companyName": name,
            "companyType": 1,
            "isActive": True,
            "phone": "",
            "ownerResourceID": None,
        }

    def add_service(
        self,
        service_id: int,
        name: str,
        price: Decimal | None,
        cost: Decimal | None,
        *,
        sku: str | None = None,
    ) -> None:
        self.tables["Services"][self._take_id(service_id)] = {
            "id": service_id,
            "name": name,
            "sku": sku,
            "description": None,
            "invoiceDescription": name,
            "unitPrice": price,
            "unitCost": cost,
            "periodType": PERIOD_MONTHLY,
            "billingCodeID": BILLING_CODE_BASE + service_id,
            "isActive": True,
        }

    def billing_codes(self) -> set[int]:
        return {
            s["billingCodeID"] for s in self.tables["Services"].values() if s.get("billingCodeID") is not None
        }

    def add_contract(
        self,
        contract_id: int,
        company_id: int,
        name: str,
        start: date,
        end: date | None,
        *,
        period: int = PERIOD_MONTHLY,
        status: int = CONTRACT_STATUS_ACTIVE,
        contract_type: int = CONTRACT_TYPE_RECURRING_SERVICE,
    ) -> None:
        self.tables["Contracts"][self._take_id(contract_id)] = {
            "id": contract_id,
            "companyID": company_id,
            "contractName": name,
            "contractType": contract_type,
            "contractPeriodType": period,
            "status": status,
            "startDate": self._at(start),
            "endDate": self._at(end) if end else None,
        }

    def add_contract_service(
        self,
        service_line_id: int,
        contract_id: int,
        service_id: int,
        price: Decimal,
        cost: Decimal,
        *,
        invoice_description: str = "",
        key: str | None = None,
        metered: bool = False,
        internal_description: str | None = None,
    ) -> None:
        if internal_description is None:
            if key:
                internal_description = service_marker(key, metered)
            elif metered:
                internal_description = METERED_TAG
        self.tables["ContractServices"][self._take_id(service_line_id)] = {
            "id": service_line_id,
            "contractID": contract_id,
            "serviceID": service_id,
            "unitPrice": price,
            "unitCost": cost,
            "internalCurrencyUnitPrice": price,
            "internalCurrencyAdjustedPrice": price,
            "invoiceDescription": invoice_description,
            "internalDescription": internal_description,
            "quoteItemID": None,
        }

    def add_adjustment(
        self, contract_service_id: int, effective: date, change: int, unit_cost: Decimal | None = None
    ) -> int:
        adjustment = _Adjustment(self._new_id(), contract_service_id, effective, change, unit_cost)
        self.adjustments.setdefault(contract_service_id, []).append(adjustment)
        return adjustment.id

    def add_charge(
        self,
        charge_id: int,
        contract_id: int,
        description: str,
        quantity: Decimal,
        price: Decimal,
        cost: Decimal,
        purchased: date,
        *,
        key: str | None = None,
        service_id: str | None = None,
    ) -> None:
        billing_code = BILLING_CODE_BASE + int(service_id) if service_id and service_id.isdigit() else None
        self.tables["ContractCharges"][self._take_id(charge_id)] = {
            "id": charge_id,
            "contractID": contract_id,
            "name": description[:100],
            "description": description,
            "unitQuantity": quantity,
            "unitPrice": price,
            "unitCost": cost,
            "datePurchased": self._at(purchased),
            "status": CHARGE_STATUS_NEW,
            "chargeType": 1,
            "isBillableToCompany": True,
            "isBilled": False,
            "billingCodeID": billing_code,
            "productID": None,
            "contractServiceID": None,
            "internalPurchaseOrderNumber": key_marker(key, CHARGE_KEY_LIMIT) if key else None,
            "notes": charge_notes(key, service_id or "") if key else None,
        }

    # -- what tests look at ----------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def connector(self, *, discover: bool = False, **kwargs: Any) -> AutotaskConnector:
        """A real connector wired to this sandbox (zone discovery through the sandbox if asked),
        reading dates in the sandbox's zone unless told otherwise."""
        kwargs.setdefault("zone", self.zone)
        return AutotaskConnector(
            self.username,
            self.secret,
            self.integration_code,
            zone_url=None if discover else self.zone_url,
            transport=self.transport(),
            **kwargs,
        )

    def units_rows(self, contract_service_id: int) -> list[dict[str, Any]]:
        """ContractServiceUnits of one contract service, as the API returns them."""
        service = self.tables["ContractServices"].get(contract_service_id)
        if service is None:
            return []
        contract = self.tables["Contracts"][service["contractID"]]
        changes = sorted(self.adjustments.get(contract_service_id, ()), key=lambda a: a.effective)
        if not changes:
            return []
        months = PERIOD_MONTHS.get(contract["contractPeriodType"], 1)
        anchor = self._local(contract["startDate"])
        end = (self._local(contract["endDate"]) if contract["endDate"] else None) or add_months(
            max(a.effective for a in changes), 12
        )
        first = changes[0].effective
        # the billing period that holds `first`, aligned on the contract's start
        steps = 0
        while add_months(anchor, steps * months) > first:
            steps -= 1
        while add_months(anchor, (steps + 1) * months) <= first:
            steps += 1
        rows: list[dict[str, Any]] = []
        period_start = add_months(anchor, steps * months)
        while period_start <= end:
            period_end = add_months(anchor, (steps + 1) * months) - timedelta(days=1)
            cuts = sorted(
                {period_start, *(a.effective for a in changes if period_start < a.effective <= period_end)}
            )
            for i, seg_start in enumerate(cuts):
                seg_end = cuts[i + 1] - timedelta(days=1) if i + 1 < len(cuts) else period_end
                if seg_end < first:
                    continue
                seg_start = max(seg_start, first)
                units = sum(a.change for a in changes if a.effective <= seg_start)
                rows.append(
                    {
                        "id": contract_service_id * 100000 + len(rows) + 1,
                        "contractID": service["contractID"],
                        "contractServiceID": contract_service_id,
                        "serviceID": service["serviceID"],
                        "startDate": self._at(seg_start),
                        "endDate": self._at(seg_end),
                        "units": units,
                        "price": service["unitPrice"],
                        "cost": service["unitCost"],
                        "internalCurrencyPrice": service["unitPrice"],
                        "approveAndPostDate": None,
                        "vendorCompanyID": None,
                        "organizationalLevelAssociationID": None,
                    }
                )
            steps += 1
            period_start = add_months(anchor, steps * months)
        return rows

    def units(self, contract_service_id: int, on: date | None = None) -> int:
        """Units in force on `on` (after every scheduled adjustment when None)."""
        return sum(
            a.change for a in self.adjustments.get(contract_service_id, ()) if on is None or a.effective <= on
        )

    def lines_for(self, contract_id: int | str) -> list[dict[str, Any]]:
        """The contract's ContractServices (with `units`: the latest scheduled units, and
        `schedule`: the adjustments as (effective date, change)) and ContractCharges."""
        cid = int(contract_id)
        out: list[dict[str, Any]] = []
        for service in self.tables["ContractServices"].values():
            if service["contractID"] == cid:
                schedule = sorted((a.effective, a.change) for a in self.adjustments.get(service["id"], ()))
                out.append(
                    {**service, "kind": "recurring", "units": self.units(service["id"]), "schedule": schedule}
                )
        for charge in self.tables["ContractCharges"].values():
            if charge["contractID"] == cid:
                out.append({**charge, "kind": "one_time"})
        return out

    # -- HTTP --------------------------------------------------------------------------------------

    def _over_threshold(self) -> bool:
        """Count this request in the rolling window; True when the window is already full."""
        now = self.clock()
        while self.requests and now - self.requests[0] >= self.threshold_window:
            self.requests.popleft()
        if len(self.requests) >= self.threshold:
            return True
        self.requests.append(now)
        return False

    async def handle(self, request: httpx.Request) -> httpx.Response:
        response = await self._route(request)
        if response.status_code >= 400 and response.status_code != 401:
            try:
                errors = list(loads(response.content).get("errors") or [])
            except (ValueError, AttributeError):
                errors = []
            self.refused.append((request.method, request.url.path, response.status_code, errors))
        return response

    async def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.lower().endswith("/v1.0/zoneinformation"):
            return self._zone(request)
        if not self._authorised(request):
            return httpx.Response(401, json=UNAUTHORIZED, request=request)
        parts = [p for p in path.split("/") if p]
        try:
            at = [p.lower() for p in parts].index("v1.0")
        except ValueError:
            return self._errors(
                request, 404, f"No HTTP resource was found that matches the request URI {path}"
            )
        parts = parts[at + 1 :]
        if parts and parts[0].lower() == THRESHOLD_ROUTE.lower() and len(parts) == 1:
            if request.method != "GET":
                return self._errors(
                    request, 405, f"The requested resource does not support http method '{request.method}'."
                )
            return self._threshold_info(request)
        if self._over_threshold():
            self.throttled += 1
            return self._errors(
                request,
                429,
                f"The request threshold of {self.threshold} requests per {self.threshold_window / 60:g} minutes "
                "for this database has been exceeded.",
            )
        try:
            entity, parent, rest = self._resolve(parts, path)
        except _Reject as exc:
            return self._errors(request, exc.status, *exc.errors)
        if self.in_flight[entity] >= self.concurrency:
            self.throttled += 1
            return self._errors(
                request, 429, f"Thread limit of {self.concurrency} concurrent requests reached for {entity}"
            )
        self.in_flight[entity] += 1
        self.peak_in_flight[entity] = max(self.peak_in_flight[entity], self.in_flight[entity])
        try:
            return await self._handle(request, entity, parent, rest)
        finally:
            self.in_flight[entity] -= 1

    def _resolve(self, parts: list[str], path: str) -> tuple[str, int | None, list[str]]:
        """(entity, parent contract id for a child route, the rest of the path)."""
        if not parts:
            raise _Reject(404, f"No HTTP resource was found that matches the request URI {path}")
        if (
            len(parts) >= 3
            and parts[0].lower() == "contracts"
            and not parts[1].lower().startswith(("query", "entity"))
        ):
            child = next((v for k, v in CHILD_ROUTES.items() if k.lower() == parts[2].lower()), None)
            if child is None:
                raise _Reject(404, f"No HTTP resource was found that matches the request URI {path}")
            return child, _int(parts[1], "parentId"), parts[3:]
        entity = _canonical(parts[0])
        if entity is None:
            raise _Reject(404, f"No HTTP resource was found that matches the request URI {path}")
        return entity, None, parts[1:]

    def _zone(self, request: httpx.Request) -> httpx.Response:
        user = request.url.params.get("user", "")
        if user.lower() != self.username.lower():
            return self._errors(request, 500, f"Zone information could not be determined for user {user!r}")
        return httpx.Response(
            200,
            json={
                "zoneName": "Sandbox Zone",
                "url": self.zone_url,
                "webUrl": "https://ww5.autotask.net/",
                "ci": 5,
            },
            request=request,
        )

    def _threshold_info(self, request: httpx.Request) -> httpx.Response:
        now = self.clock()
        while self.requests and now - self.requests[0] >= self.threshold_window:
            self.requests.popleft()
        return self._json(
            request,
            {
                "externalRequestThreshold": self.threshold,
                "requestThresholdTimeframe": int(self.threshold_window // 60),
                "currentTimeframeRequestCount": len(self.requests),
            },
        )

    def _authorised(self, request: httpx.Request) -> bool:
        headers = request.headers
        return (
            headers.get("ApiIntegrationCode") == self.integration_code
            and (headers.get("UserName") or "").lower() == self.username.lower()
            and headers.get("Secret") == self.secret
        )

    @staticmethod
    def _not_allowed(request: httpx.Request) -> _Reject:
        return _Reject(405, f"The requested resource does not support http method '{request.method}'.")

    async def _handle(
        self, request: httpx.Request, entity: str, parent: int | None, rest: list[str]
    ) -> httpx.Response:
        rule = ENTITIES[entity]
        is_query = parent is None and bool(rest) and rest[0].lower() == "query"
        fault = None
        if self.faults is not None:
            probe = request if not is_query else httpx.Request("GET", request.url)
            fault = self.faults.decide(probe)
            refused = self.faults.refusal(fault, request)
            if refused is not None:
                return refused
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
        try:
            response = self._dispatch(request, entity, rule, parent, rest, is_query)
        except _Reject as exc:
            return self._errors(request, exc.status, *exc.errors)
        if fault is not None and self.faults is not None:
            after = self.faults.after_apply(fault, request)
            if after is not None:
                return after
        return response

    def _dispatch(
        self,
        request: httpx.Request,
        entity: str,
        rule: EntityRule,
        parent: int | None,
        rest: list[str],
        is_query: bool,
    ) -> httpx.Response:
        method = request.method
        if is_query:
            if not rule.query:
                raise self._not_allowed(request)
            tail = [p.lower() for p in rest[1:]]
            if tail == ["count"]:
                if method != "POST" and method != "GET":
                    raise self._not_allowed(request)
                return self._json(request, {"queryCount": len(self._select(entity, self._search(request)))})
            if tail == ["next"]:
                if method != "GET":
                    raise self._not_allowed(request)
                return self._next_page(request, entity)
            if tail:
                raise _Reject(
                    404, f"No HTTP resource was found that matches the request URI {request.url.path}"
                )
            if method not in ("GET", "POST"):
                raise self._not_allowed(request)
            return self._query(request, entity, self._search(request), 1)
        if parent is None and len(rest) == 1:
            if rest[0].lower().startswith("entityinformation"):
                raise _Reject(404, f"the sandbox does not serve {request.url.path}")
            if method != "GET" or not rule.query:
                raise self._not_allowed(request)
            item = self._rows(entity).get(_int(rest[0], "id")) if entity != "ContractServiceUnits" else None
            return self._json(request, {"item": item})
        if rest:
            raise _Reject(404, f"No HTTP resource was found that matches the request URI {request.url.path}")
        route = (
            f"Contracts/{{parentId}}/{request.url.path.rstrip('/').rsplit('/', 1)[-1]}" if parent else entity
        )
        if method == "POST":
            served = rule.create is not None and (
                route.lower() == rule.create.lower()
                or (entity == "ContractServiceAdjustments" and parent is None)  # [swagger] root POST too
            )
            if not served:
                raise self._not_allowed(request)
            item_id = self._create(entity, self._body(request), parent)
            self.writes += 1
            return self._json(request, {"itemId": item_id})
        if method == "PATCH":
            if rule.update is None or route.lower() != rule.update.lower():
                raise self._not_allowed(request)
            item_id = self._update(entity, self._body(request), parent)
            self.writes += 1
            return self._json(request, {"itemId": item_id})
        raise self._not_allowed(request)

    # -- responses -------------------------------------------------------------------------------

    @staticmethod
    def _json(request: httpx.Request, body: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(
            status,
            content=dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            request=request,
        )

    def _errors(self, request: httpx.Request, status: int, *errors: str) -> httpx.Response:
        return self._json(request, {"errors": list(errors)}, status)

    @staticmethod
    def _body(request: httpx.Request) -> dict[str, Any]:
        try:
            body = loads(request.content) if request.content else None
        except ValueError as exc:
            raise _Reject(400, f"the request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _Reject(400, "the request body must be a JSON object")
        return body

    # -- queries ---------------------------------------------------------------------------------

    def _search(self, request: httpx.Request) -> dict[str, Any]:
        if request.method == "GET":
            text = request.url.params.get("search")
            if not text:
                raise _Reject(400, "search is required")
            try:
                search = loads(text)
            except ValueError as exc:
                raise _Reject(400, f"search is not JSON: {exc}") from exc
        else:
            search = self._body(request)
        if not isinstance(search, dict):
            raise _Reject(400, "the query must be a JSON object")
        unknown = sorted(k for k in search if k.lower() not in ("filter", "maxrecords", "includefields"))
        if unknown:
            raise _Reject(400, *(f"unknown query property {k!r}" for k in unknown))
        filters = _field(search, "filter")
        if not isinstance(filters, list) or not filters:
            raise _Reject(400, "a query needs at least one filter")
        for item in filters:
            _check_filter(item)
        max_records = _field(search, "maxRecords")
        if max_records is not None and not (
            isinstance(max_records, int)
            and not isinstance(max_records, bool)
            and 1 <= max_records <= MAX_RECORDS
        ):
            raise _Reject(400, f"MaxRecords must be between 1 and {MAX_RECORDS}")
        return search

    def billing_items(self) -> dict[int, dict[str, Any]]:
        """The posted billing items of what this Autotask invoiced (`invoiced_source`), built on
        first read: one per invoiced line, its contract service named for a service period
        (engine.connectors.autotask_entities "BillingItems"); dates as this database answers."""
        table = self.tables["BillingItems"]
        if not self._billing_loaded:
            self._billing_loaded = True
            for n, line in enumerate(self.invoiced_source(), start=1):
                line_id = _numeric(line.line_id) if line.line_id else None
                service_line = line_id if line_id in self.tables["ContractServices"] else None
                table[n] = {
                    "id": n,
                    "itemName": line.description[:255],
                    "description": line.description,
                    "quantity": line.quantity,
                    "rate": line.unit_price,
                    "extendedPrice": line.amount,
                    "totalAmount": line.amount,
                    "itemDate": self._at(line.invoice_date),
                    "postedDate": self._at(line.invoice_date),
                    "invoiceID": _numeric(line.invoice_id),
                    "companyID": _numeric(line.company_id),
                    "contractID": _numeric(line.agreement_id) if line.agreement_id else None,
                    "contractServiceID": service_line,
                    "serviceID": _numeric(line.product_id) if line.product_id else None,
                }
        return table

    def _rows(self, entity: str, filters: Iterable[Mapping[str, Any]] = ()) -> dict[int, dict[str, Any]]:
        if entity == "BillingItems":
            return self.billing_items()
        if entity != "ContractServiceUnits":
            return self.tables[entity]
        # derived rows: build only those of the contract services the top-level filters can match
        services = [
            s
            for s in self.tables["ContractServices"].values()
            if all(
                _matches(
                    {
                        "contractServiceID": s["id"],
                        "contractID": s["contractID"],
                        "serviceID": s["serviceID"],
                    },
                    f,
                )
                for f in filters
                if _narrows(f)
            )
        ]
        rows: dict[int, dict[str, Any]] = {}
        for service in sorted(services, key=lambda s: s["id"]):
            for row in self.units_rows(service["id"]):
                rows[row["id"]] = row
        return rows

    def _select(self, entity: str, search: Mapping[str, Any]) -> list[dict[str, Any]]:
        filters = _field(search, "filter")
        rows = [row for _, row in sorted(self._rows(entity, filters).items())]
        return [row for row in rows if all(_matches(row, f) for f in filters)]

    def _page_url(self, entity: str, search: Mapping[str, Any], page: int, size: int) -> str:
        paging = dumps({"pageSize": size, "page": page})
        return f"{self.zone_url}v1.0/{entity}/query/next?paging={quote(paging)}&search={quote(dumps(search))}"

    def _next_page(self, request: httpx.Request, entity: str) -> httpx.Response:
        try:
            paging = loads(request.url.params.get("paging") or "")
        except ValueError as exc:
            raise _Reject(400, f"paging is not JSON: {exc}") from exc
        if not isinstance(paging, dict) or not isinstance(paging.get("page"), int):
            raise _Reject(400, "paging is malformed")
        return self._query(request, entity, self._search(request), paging["page"])

    def _query(
        self, request: httpx.Request, entity: str, search: dict[str, Any], page: int
    ) -> httpx.Response:
        matched = self._select(entity, search)
        size = min(_field(search, "maxRecords") or MAX_RECORDS, self.page_size)
        start = (page - 1) * size
        items = matched[start : start + size]
        return self._json(
            request,
            {
                "items": items,
                "pageDetails": {
                    "count": len(items),
                    "requestCount": size,
                    "prevPageUrl": self._page_url(entity, search, page - 1, size) if page > 1 else None,
                    "nextPageUrl": self._page_url(entity, search, page + 1, size)
                    if start + size < len(matched)
                    else None,
                },
            },
        )

    # -- writes ----------------------------------------------------------------------------------

    @staticmethod
    def _check(rule: EntityRule, body: Mapping[str, Any], *, update: bool) -> dict[str, Any]:
        """`body` by the entity table: unknown fields and wrong types (400), read-only or
        create-only-on-update fields, over-long strings, picklists (500), required fields on a
        create (400). Returns the body with the table's field names."""
        bad_request: list[str] = []
        refused: list[str] = []
        out: dict[str, Any] = {}
        for name, value in body.items():
            found = rule.field(name)
            if found is None:
                bad_request.append(f"{rule.name}: unknown field {name!r}")
                continue
            key, field_rule = found
            if field_rule.read_only:
                refused.append(f"{rule.name}.{key} is read-only")
                continue
            if update and field_rule.create_only:
                refused.append(f"{rule.name}.{key} is read-only on update")
                continue
            out[key] = value
            if value is None:
                continue
            kind = field_rule.type
            ok = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "decimal": isinstance(value, int | Decimal) and not isinstance(value, bool),
                "str": isinstance(value, str),
                "bool": isinstance(value, bool),
                "date": isinstance(value, str) and bool(_DATE_TIME.match(value)),
                "datetime": isinstance(value, str) and bool(_DATE_TIME.match(value)),
            }[kind]
            if not ok:
                bad_request.append(f"{rule.name}.{key}: not a valid {kind}: {value!r}")
                continue
            if field_rule.max_length is not None and len(value) > field_rule.max_length:
                refused.append(
                    f"{rule.name}.{key}: at most {field_rule.max_length} characters ({len(value)} given)"
                )
            if field_rule.picklist is not None and value not in field_rule.picklist:
                refused.append(f"{rule.name}.{key}: {value!r} is not a valid picklist value")
        if not update:
            for key, field_rule in rule.fields.items():
                if (
                    field_rule.required
                    and out.get(key) is None
                    and not any(e.startswith(f"{rule.name}.{key}") for e in bad_request + refused)
                ):
                    bad_request.append(f"Required field {rule.name}.{key} is missing")
        if bad_request:
            raise _Reject(400, *bad_request)
        if refused:
            raise _Reject(500, *refused)
        return out

    def _with_parent(self, body: dict[str, Any], parent: int | None) -> dict[str, Any]:
        if parent is None:
            return body
        given = next((v for k, v in body.items() if k.lower() == "contractid"), None)
        if given is None:
            return {**body, "contractID": parent}
        if not isinstance(given, int) or isinstance(given, bool) or given != parent:
            raise _Reject(500, f"contractID {given!r} does not match the parent contract {parent}")
        return body

    def _create(self, entity: str, body: dict[str, Any], parent: int | None) -> int:
        rule = ENTITIES[entity]
        body = self._check(rule, self._with_parent(body, parent), update=False)
        if entity == "Companies":
            company_id = self._new_id()
            self.tables["Companies"][company_id] = {
                "id": company_id,
                "companyName": body["companyName"],
                "companyType": body.get("companyType"),
                "isActive": True if body.get("isActive") is None else body["isActive"],
                "phone": body["phone"],
                "ownerResourceID": body["ownerResourceID"],
            }
            return company_id
        if entity == "Services":
            # A service bills through an existing billing (allocation) code [ecit New-AtwsService:
            # AllocationCodeID Mandatory]; an unknown one is refused as the charges' is (wording ASSUMED).
            if body["billingCodeID"] not in self.billing_codes():
                raise _Reject(500, f"billingCodeID {body['billingCodeID']} does not exist")
            service_id = self._new_id()
            self.tables["Services"][service_id] = {
                "id": service_id,
                "name": body["name"],
                "sku": body.get("sku"),
                "description": body.get("description"),
                "invoiceDescription": body.get("invoiceDescription"),
                "unitPrice": _money(body["unitPrice"], "unitPrice"),
                "unitCost": None if body.get("unitCost") is None else _money(body["unitCost"], "unitCost"),
                "periodType": body["periodType"],
                "billingCodeID": body["billingCodeID"],
                "isActive": True if body.get("isActive") is None else body["isActive"],
            }
            return service_id
        if entity == "ContractServices":
            contract_id = body["contractID"]
            self._recurring_contract(contract_id)
            service = self._service(body["serviceID"])
            line_id = self._new_id()
            price = _money(_first(body.get("unitPrice"), service["unitPrice"], 0), "unitPrice")
            self.tables["ContractServices"][line_id] = {
                "id": line_id,
                "contractID": contract_id,
                "serviceID": service["id"],
                "unitPrice": price,
                "unitCost": _money(_first(body.get("unitCost"), service["unitCost"], 0), "unitCost"),
                "internalCurrencyUnitPrice": price,
                "internalCurrencyAdjustedPrice": price,
                "invoiceDescription": body.get("invoiceDescription") or service["invoiceDescription"],
                "internalDescription": body.get("internalDescription"),
                "quoteItemID": body.get("quoteItemID"),
            }
            return line_id
        if entity == "ContractServiceAdjustments":
            return self._adjust(body)
        if entity == "ContractCharges":
            contract_id = body["contractID"]
            if contract_id not in self.tables["Contracts"]:
                raise _Reject(500, f"contractID {contract_id} does not exist")
            if body.get("billingCodeID") is None and body.get("productID") is None:
                raise _Reject(500, "ContractCharge must have either a productID or billingCodeID.")
            if body.get("billingCodeID") is not None and body["billingCodeID"] not in self.billing_codes():
                raise _Reject(500, f"billingCodeID {body['billingCodeID']} does not exist")
            charge_id = self._new_id()
            self.tables["ContractCharges"][charge_id] = {
                "id": charge_id,
                "contractID": contract_id,
                "name": body["name"],
                "description": body.get("description"),
                "unitQuantity": _money(body["unitQuantity"], "unitQuantity"),
                "unitPrice": _money(_first(body.get("unitPrice"), 0), "unitPrice"),
                "unitCost": _money(_first(body.get("unitCost"), 0), "unitCost"),
                "datePurchased": self._at(_written_date(body["datePurchased"], "datePurchased")),
                "status": CHARGE_STATUS_NEW,
                "chargeType": body["chargeType"],
                "isBillableToCompany": True
                if body.get("isBillableToCompany") is None
                else body["isBillableToCompany"],
                "isBilled": False,
                "billingCodeID": body.get("billingCodeID"),
                "productID": body.get("productID"),
                "contractServiceID": body.get("contractServiceID"),
                "internalPurchaseOrderNumber": body.get("internalPurchaseOrderNumber"),
                "purchaseOrderNumber": body.get("purchaseOrderNumber"),
                "notes": body.get("notes"),
            }
            return charge_id
        raise _Reject(405, f"{entity} cannot be created")

    def _recurring_contract(self, contract_id: int) -> dict[str, Any]:
        contract = self.tables["Contracts"].get(contract_id)
        if contract is None:
            raise _Reject(500, f"contractID {contract_id} does not exist")
        if contract["contractType"] != CONTRACT_TYPE_RECURRING_SERVICE:
            raise _Reject(500, f"contract {contract_id} is not a Recurring Service contract")
        return contract

    def _service(self, service_id: int) -> dict[str, Any]:
        service = self.tables["Services"].get(service_id)
        if service is None:
            raise _Reject(500, f"serviceID {service_id} does not exist")
        return service

    def _adjust(self, body: dict[str, Any]) -> int:
        if body.get("contractID") is None:
            raise _Reject(400, "Required field ContractServiceAdjustments.contractID is missing")
        contract_id = body["contractID"]
        contract = self._recurring_contract(contract_id)
        effective = _written_date(body["effectiveDate"], "effectiveDate")
        change = body["unitChange"]
        services = self.tables["ContractServices"]
        if body.get("contractServiceID") is not None:
            line_id = body["contractServiceID"]
            line = services.get(line_id)
            if line is None or line["contractID"] != contract_id:
                raise _Reject(500, f"contractServiceID {line_id} is not on contract {contract_id}")
            if body.get("serviceID") is not None and body["serviceID"] != line["serviceID"]:
                raise _Reject(500, f"serviceID does not match contract service {line_id}")
        else:
            if body.get("serviceID") is None:
                raise _Reject(400, "Required field ContractServiceAdjustments.serviceID is missing")
            service = self._service(body["serviceID"])
            existing = sorted(
                i
                for i, s in services.items()
                if s["contractID"] == contract_id and s["serviceID"] == service["id"]
            )
            if existing:
                line_id = existing[-1]
            else:  # the API creates the missing ContractService [doc]
                line_id = self._new_id()
                self.add_contract_service(
                    line_id,
                    contract_id,
                    service["id"],
                    _first(service["unitPrice"], Decimal(0)),
                    _first(service["unitCost"], Decimal(0)),
                    invoice_description=service["invoiceDescription"],
                )
            line = services[line_id]
        if effective < self._local(contract["startDate"]):
            raise _Reject(500, "effectiveDate is before the contract's start date")
        points = sorted({effective, *(a.effective for a in self.adjustments.get(line_id, ()))})
        for point in points:
            after = self.units(line_id, point) + (change if point >= effective else 0)
            if after < 0:
                raise _Reject(500, f"the adjustment leaves {after} units on {point.isoformat()}")
        if body.get("adjustedUnitPrice") is not None:
            line["unitPrice"] = _money(body["adjustedUnitPrice"], "adjustedUnitPrice")
            line["internalCurrencyAdjustedPrice"] = line["unitPrice"]
        cost = body.get("adjustedUnitCost")
        if cost is not None:
            line["unitCost"] = _money(cost, "adjustedUnitCost")
        return self.add_adjustment(
            line_id, effective, change, _money(cost, "adjustedUnitCost") if cost is not None else None
        )

    def _update(self, entity: str, body: dict[str, Any], parent: int | None) -> int:
        rule = ENTITIES[entity]
        item_key = next((k for k in body if k.lower() == "id"), None)
        if item_key is None:
            raise _Reject(400, f"Required field {entity}.id is missing")
        item_id = _int(body[item_key], "id")
        table = self.tables[entity]
        row = table.get(item_id)
        if row is None or (parent is not None and row.get("contractID") != parent):
            raise _Reject(
                500, f"{entity} {item_id} does not exist" + (f" on contract {parent}" if parent else "")
            )
        if entity == "ContractCharges" and row.get("isBilled"):
            raise _Reject(500, f"ContractCharges {item_id} is billed and cannot be updated")
        changes = self._check(rule, {k: v for k, v in body.items() if k != item_key}, update=True)
        for key, value in changes.items():
            kind = rule.fields[key].type
            if kind == "decimal" and value is not None:
                value = _money(value, key)
            elif kind == "date" and value is not None:
                value = self._at(_written_date(value, key))
            row[key] = value
            if entity == "ContractServices" and key == "unitPrice":
                # `unitPrice` is the adjusted price [doc ContractServicesEntity: only adjustedPrice and
                # invoiceDescription are writable on update]; its internal-currency copies are computed
                # (read-only in the entity table) and follow it — one currency in the sandbox.
                row["internalCurrencyAdjustedPrice"] = row["internalCurrencyUnitPrice"] = value
        return item_id


# --- filters ---------------------------------------------------------------------------------------

_OPS = {
    "eq",
    "noteq",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "notin",
    "exist",
    "notexist",
    "beginswith",
    "endswith",
    "contains",
    "and",
    "or",
}


def _field(mapping: Mapping[str, Any], name: str) -> Any:
    for key, value in mapping.items():
        if key.lower() == name.lower():
            return value
    return None


def _check_filter(item: object) -> None:
    if not isinstance(item, dict):
        raise _Reject(400, f"a filter must be an object: {item!r}")
    op = str(_field(item, "op") or "").lower()
    if op not in _OPS:
        raise _Reject(400, f"unknown filter op {_field(item, 'op')!r}")
    if op in ("and", "or"):
        items = _field(item, "items")
        if not isinstance(items, list) or not items:
            raise _Reject(400, f"an {op} group needs items")
        for child in items:
            _check_filter(child)
        return
    if not _field(item, "field"):
        raise _Reject(400, f"filter {item!r} has no field")
    if op in ("in", "notin"):
        values = _field(item, "value")
        if not isinstance(values, list):
            raise _Reject(400, f"{op} needs a list value")
        if len(values) > MAX_RECORDS:
            raise _Reject(400, f"{op} accepts at most {MAX_RECORDS} values")


def _normal(value: object) -> object:
    """Comparable form: numbers as Decimal, text lower-cased (SQL Server collation), ISO dates
    padded to a full date-time so `2024-01-31` and `2024-01-31T00:00:00` compare equal."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        text = value.lower()
        if len(text) == 10 and text[4:5] == "-" and text[7:8] == "-":
            return text + "t00:00:00"
        return text
    return value


def _coerce(a: object, b: object) -> tuple[object, object]:
    a, b = _normal(a), _normal(b)
    try:
        if isinstance(a, Decimal) and isinstance(b, str):
            b = Decimal(b)
        elif isinstance(b, Decimal) and isinstance(a, str):
            a = Decimal(a)
    except ArithmeticError:
        pass
    return a, b


def _equal(left: object, right: object) -> bool:
    a, b = _coerce(left, right)
    return a == b


def _compare(left: object, right: object) -> int | None:
    a: Any
    b: Any
    a, b = _coerce(left, right)
    try:
        return int(a > b) - int(a < b)
    except TypeError:
        return None


def _matches(row: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    op = str(_field(item, "op")).lower()
    if op == "and":
        return all(_matches(row, child) for child in _field(item, "items"))
    if op == "or":
        return any(_matches(row, child) for child in _field(item, "items"))
    value = _field(row, str(_field(item, "field")))
    target = _field(item, "value")
    if op == "exist":
        return value is not None and value != ""
    if op == "notexist":
        return value is None or value == ""
    if op in ("in", "notin"):
        found = any(_equal(value, v) for v in _as_list(target))
        return found if op == "in" else not found
    if op in ("beginswith", "endswith", "contains"):
        if value is None:
            return False
        text, part = str(value).lower(), str(target).lower()
        return {"beginswith": text.startswith, "endswith": text.endswith, "contains": lambda p: p in text}[
            op
        ](part)
    if op == "eq":
        return _equal(value, target)
    if op == "noteq":
        return not _equal(value, target)
    if value is None:
        return False
    order = _compare(value, target)
    if order is None:
        return False
    return {"gt": order > 0, "gte": order >= 0, "lt": order < 0, "lte": order <= 0}[op]


def _narrows(item: Mapping[str, Any]) -> bool:
    """A top-level eq/in filter on a contract-service attribute (safe to apply before building rows)."""
    op = str(_field(item, "op")).lower()
    field = str(_field(item, "field") or "").lower()
    return op in ("eq", "in") and field in ("contractserviceid", "contractid", "serviceid")


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _as_list(value: object) -> Iterable[object]:
    return value if isinstance(value, list) else [value]


def _canonical(name: str) -> str | None:
    for entity in ENTITY_NAMES:
        if entity.lower() == name.lower():
            return entity
    return None


def _numeric(value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"Autotask ids are numeric: {value!r}")
    return int(value)


__all__ = ["AutotaskSandbox", "DEFAULT_ZONE"]
