"""A stateful Autotask PSA REST sandbox, served through `httpx.MockTransport(sandbox.handle)` so the
real `AutotaskConnector` runs unchanged.

What it simulates (shared/APIS.md §4):
- `GET https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation?user=` (no auth);
  every other call needs the `ApiIntegrationCode`, `UserName` and `Secret` headers, else 401 with
  ASP.NET's body `{"Message": "Authorization has been denied for this request."}` (ASSUMED body).
- `POST /v1.0/{Entity}/query` (and `GET /v1.0/{Entity}/query?search=`): filter ops eq, noteq, gt,
  gte, lt, lte, in, notIn, exist, notExist, beginsWith, endsWith, contains, and `and`/`or` groups;
  string comparisons ignore case (SQL Server collation). `MaxRecords` 1–500; pages carry
  `pageDetails` with an absolute `nextPageUrl` (a GET of the search plus `page`).
  `POST /{Entity}/query/count`, `GET /{Entity}/{id}` -> `{"item": ...}` (null when missing).
- Entities: Companies, Services, Contracts, ContractServices, ContractServiceUnits (query-only,
  derived from the adjustments: one row per billing period, split where units change mid-period),
  ContractServiceAdjustments (create-only: a query answers 405), ContractCharges.
- Writes: `POST` creates answer `{"itemId": N}`; `PATCH /ContractServices` accepts only `id`,
  `unitPrice`/`adjustedPrice` and `invoiceDescription`. Malformed bodies and missing required fields
  answer 400, business-rule violations 500 (Autotask's habit), both `{"errors": ["..."]}`.
- At most 3 requests in flight per entity endpoint; the 4th answers 429 `{"errors": [...]}`.
- `Faults.decide` runs before anything is handled: `refusal()` faults answer without applying,
  `after_apply()` faults apply the request, then answer 500 or lose the response. Queries are
  reads: they are decided as GETs, so `Faults(writes_only=True)` leaves them alone.

Loaded from a scenario, PSA ids must be numeric strings. A recurring line becomes a ContractService
plus adjustments (+quantity on its effective date, −quantity the day after its cancelled date); a
one-time line becomes a ContractCharge. Key-carrying fields are written the way the connector
writes them (`engine.connectors.autotask.key_marker`). Autotask has no place for a line's `metered`
flag or for the source of a line trueup did not write, so those do not survive a round trip.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from engine.connectors.autotask import (
    CHARGE_KEY_LIMIT,
    CHARGE_STATUS,
    CHARGE_TYPE,
    CONTRACT_STATUS_ACTIVE,
    CONTRACT_TYPE_RECURRING_SERVICE,
    MAX_RECORDS,
    PERIOD_MONTHLY,
    PERIOD_MONTHS,
    PERIOD_YEARLY,
    SERVICE_KEY_LIMIT,
    AutotaskConnector,
    charge_notes,
    dumps,
    key_marker,
    whole_units,
)
from engine.connectors.http import loads, parse_date
from engine.months import add_months
from engine.sandbox.faults import Faults
from engine.scenario import Scenario

ZONE_LOOKUP_HOST = "webservices.autotask.net"
DEFAULT_ZONE = "https://webservices5.autotask.net/atservicesrest/"
UNAUTHORIZED = {"Message": "Authorization has been denied for this request."}
ENTITIES = (
    "Companies",
    "Services",
    "Contracts",
    "ContractServices",
    "ContractServiceUnits",
    "ContractServiceAdjustments",
    "ContractCharges",
)
QUERY_ONLY = {"ContractServiceUnits"}
CREATE_ONLY = {"ContractServiceAdjustments"}


class _Reject(Exception):
    def __init__(self, status: int, *errors: str) -> None:
        super().__init__("; ".join(errors))
        self.status = status
        self.errors = list(errors)


def _at(d: date) -> str:
    """How Autotask writes a date: UTC, no zone designator."""
    return f"{d.isoformat()}T00:00:00"


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


def _date(value: object, field: str) -> date:
    try:
        parsed = parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise _Reject(400, f"{field}: not a date: {value!r}")
    return parsed


def _money(value: object, field: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _Reject(400, f"{field}: not a number: {value!r}")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise _Reject(400, f"{field}: not a number: {value!r}") from exc


@dataclass
class _Adjustment:
    id: int
    contract_service_id: int
    effective: date
    change: int


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
    ) -> None:
        self.username = username
        self.secret = secret
        self.integration_code = integration_code
        self.zone_url = zone_url.rstrip("/") + "/"
        self.faults = faults
        self.concurrency = concurrency
        self.page_size = page_size  # the most a page holds, whatever MaxRecords asks (tests page with less)
        self.tables: dict[str, dict[int, dict[str, Any]]] = {
            name: {}
            for name in ENTITIES
            if name not in ("ContractServiceUnits", "ContractServiceAdjustments")
        }
        self.adjustments: dict[int, list[_Adjustment]] = {}  # by contract service id
        self._next_id = 1000
        self.writes = 0  # writes applied (a write answered 500 or lost after applying counts)
        self.in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()
        self.throttled = 0

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, faults: Faults | None = None, **credentials: Any
    ) -> AutotaskSandbox:
        sandbox = cls(faults=faults, **credentials)
        psa = scenario.psa
        for company in psa.companies:
            sandbox.add_company(_numeric(company.id), company.name)
        for product in psa.products:
            sandbox.add_service(_numeric(product.id), product.name, product.unit_price, product.unit_cost)
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
        }

    def add_service(self, service_id: int, name: str, price: Decimal | None, cost: Decimal | None) -> None:
        self.tables["Services"][self._take_id(service_id)] = {
            "id": service_id,
            "name": name,
            "description": None,
            "invoiceDescription": name,
            "unitPrice": price,
            "unitCost": cost,
            "periodType": PERIOD_MONTHLY,
            "isActive": True,
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
            "startDate": _at(start),
            "endDate": _at(end) if end else None,
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
    ) -> None:
        self.tables["ContractServices"][self._take_id(service_line_id)] = {
            "id": service_line_id,
            "contractID": contract_id,
            "serviceID": service_id,
            "unitPrice": price,
            "unitCost": cost,
            "internalCurrencyUnitPrice": price,
            "internalCurrencyAdjustedPrice": price,
            "invoiceDescription": invoice_description,
            "internalDescription": key_marker(key, SERVICE_KEY_LIMIT) if key else None,
            "quoteItemID": None,
        }

    def add_adjustment(self, contract_service_id: int, effective: date, change: int) -> int:
        adjustment = _Adjustment(self._new_id(), contract_service_id, effective, change)
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
        self.tables["ContractCharges"][self._take_id(charge_id)] = {
            "id": charge_id,
            "contractID": contract_id,
            "name": description[:100],
            "description": description,
            "unitQuantity": quantity,
            "unitPrice": price,
            "unitCost": cost,
            "datePurchased": _at(purchased),
            "status": CHARGE_STATUS,
            "chargeType": CHARGE_TYPE,
            "isBillableToCompany": True,
            "isBilled": False,
            "productID": None,
            "contractServiceID": None,
            "internalPurchaseOrderNumber": key_marker(key, CHARGE_KEY_LIMIT) if key else None,
            "notes": charge_notes(key, service_id or "") if key else None,
        }

    # -- what tests look at ----------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def connector(self, *, discover: bool = False, **kwargs: Any) -> AutotaskConnector:
        """A real connector wired to this sandbox (zone discovery through the sandbox if asked)."""
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
        anchor = _date(contract["startDate"], "startDate")
        end = parse_date(contract["endDate"]) or add_months(max(a.effective for a in changes), 12)
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
                        "startDate": _at(seg_start),
                        "endDate": _at(seg_end),
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

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.lower().endswith("/v1.0/zoneinformation"):
            return self._zone(request)
        if not self._authorised(request):
            return httpx.Response(401, json=UNAUTHORIZED, request=request)
        parts = [p for p in path.split("/") if p]
        try:
            at = [p.lower() for p in parts].index("v1.0")
        except ValueError:
            return self._errors(request, 404, f"no such resource: {path}")
        parts = parts[at + 1 :]
        if not parts:
            return self._errors(request, 404, f"no such resource: {path}")
        entity = _canonical(parts[0])
        if entity is None:
            return self._errors(request, 404, f"no such entity: {parts[0]}")
        if self.in_flight[entity] >= self.concurrency:
            self.throttled += 1
            return self._errors(
                request, 429, f"Thread limit of {self.concurrency} concurrent requests reached for {entity}"
            )
        self.in_flight[entity] += 1
        self.peak_in_flight[entity] = max(self.peak_in_flight[entity], self.in_flight[entity])
        try:
            return await self._handle(request, entity, parts[1:])
        finally:
            self.in_flight[entity] -= 1

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

    def _authorised(self, request: httpx.Request) -> bool:
        headers = request.headers
        return (
            headers.get("ApiIntegrationCode") == self.integration_code
            and (headers.get("UserName") or "").lower() == self.username.lower()
            and headers.get("Secret") == self.secret
        )

    async def _handle(self, request: httpx.Request, entity: str, rest: list[str]) -> httpx.Response:
        method = request.method
        is_query = bool(rest) and rest[0].lower() == "query"
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
            if is_query:
                if entity in CREATE_ONLY:
                    raise _Reject(405, f"{entity} cannot be queried")
                search = self._search(request)
                if len(rest) > 1 and rest[1].lower() == "count":
                    response = self._json(request, {"queryCount": len(self._select(entity, search))})
                else:
                    response = self._query(request, entity, search)
            elif method == "GET" and len(rest) == 1:
                if entity in CREATE_ONLY:
                    raise _Reject(405, f"{entity} cannot be queried")
                item = (
                    self._rows(entity).get(_int(rest[0], "id")) if entity != "ContractServiceUnits" else None
                )
                response = self._json(request, {"item": item})
            elif method == "POST" and not rest:
                response = self._json(request, {"itemId": self._create(entity, self._body(request))})
                self.writes += 1
            elif method == "PATCH" and not rest:
                response = self._json(request, {"itemId": self._update(entity, self._body(request))})
                self.writes += 1
            else:
                raise _Reject(405, f"{method} {request.url.path} is not supported")
        except _Reject as exc:
            return self._errors(request, exc.status, *exc.errors)
        if fault is not None and self.faults is not None:
            after = self.faults.after_apply(fault, request)
            if after is not None:
                return after
        return response

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
        filters = _field(search, "filter")
        if not isinstance(filters, list) or not filters:
            raise _Reject(400, "a query needs at least one filter")
        for item in filters:
            _check_filter(item)
        max_records = _field(search, "maxRecords")
        if max_records is not None and not (isinstance(max_records, int) and 1 <= max_records <= MAX_RECORDS):
            raise _Reject(400, f"MaxRecords must be between 1 and {MAX_RECORDS}")
        return search

    def _rows(self, entity: str, filters: Iterable[Mapping[str, Any]] = ()) -> dict[int, dict[str, Any]]:
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

    def _query(self, request: httpx.Request, entity: str, search: dict[str, Any]) -> httpx.Response:
        matched = self._select(entity, search)
        size = min(_field(search, "maxRecords") or MAX_RECORDS, self.page_size)
        page = _int(request.url.params.get("page", "1"), "page")
        start = (page - 1) * size
        items = matched[start : start + size]

        def url(n: int) -> str:
            return f"{self.zone_url}v1.0/{entity}/query?search={quote(dumps(search))}&page={n}"

        return self._json(
            request,
            {
                "items": items,
                "pageDetails": {
                    "count": len(items),
                    "requestCount": size,
                    "prevPageUrl": url(page - 1) if page > 1 else None,
                    "nextPageUrl": url(page + 1) if start + size < len(matched) else None,
                },
            },
        )

    # -- writes ----------------------------------------------------------------------------------

    def _create(self, entity: str, body: dict[str, Any]) -> int:
        if entity in QUERY_ONLY:
            raise _Reject(405, f"{entity} cannot be created")
        if entity == "Companies":
            _require(body, "companyName", "companyType")
            company_id = self._new_id()
            self.tables["Companies"][company_id] = {
                "id": company_id,
                "companyName": str(body["companyName"]),
                "companyType": _int(body["companyType"], "companyType"),
                "isActive": True,
                "phone": body.get("phone"),
                "ownerResourceID": body.get("ownerResourceID"),
            }
            return company_id
        if entity == "ContractServices":
            _require(body, "contractID", "serviceID")
            self._recurring_contract(_int(body["contractID"], "contractID"))
            service = self._service(_int(body["serviceID"], "serviceID"))
            line_id = self._new_id()
            price = _money(_first(body.get("unitPrice"), service["unitPrice"], 0), "unitPrice")
            self.tables["ContractServices"][line_id] = {
                "id": line_id,
                "contractID": _int(body["contractID"], "contractID"),
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
            _require(body, "contractID", "name", "unitQuantity", "datePurchased", "chargeType")
            contract_id = _int(body["contractID"], "contractID")
            if contract_id not in self.tables["Contracts"]:
                raise _Reject(500, f"contractID {contract_id} does not exist")
            charge_id = self._new_id()
            self.tables["ContractCharges"][charge_id] = {
                "id": charge_id,
                "contractID": contract_id,
                "name": str(body["name"]),
                "description": body.get("description"),
                "unitQuantity": _money(body["unitQuantity"], "unitQuantity"),
                "unitPrice": _money(body.get("unitPrice", 0), "unitPrice"),
                "unitCost": _money(body.get("unitCost", 0), "unitCost"),
                "datePurchased": _at(_date(body["datePurchased"], "datePurchased")),
                "status": body.get("status"),
                "chargeType": _int(body["chargeType"], "chargeType"),
                "isBillableToCompany": bool(body.get("isBillableToCompany", True)),
                "isBilled": False,
                "productID": body.get("productID"),
                "contractServiceID": body.get("contractServiceID"),
                "internalPurchaseOrderNumber": body.get("internalPurchaseOrderNumber"),
                "notes": body.get("notes"),
            }
            return charge_id
        raise _Reject(405, f"the sandbox does not create {entity}")

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
        _require(body, "contractID", "effectiveDate", "unitChange")
        contract_id = _int(body["contractID"], "contractID")
        contract = self._recurring_contract(contract_id)
        effective = _date(body["effectiveDate"], "effectiveDate")
        change = _int(body["unitChange"], "unitChange")
        services = self.tables["ContractServices"]
        if body.get("contractServiceID") is not None:
            line_id = _int(body["contractServiceID"], "contractServiceID")
            line = services.get(line_id)
            if line is None or line["contractID"] != contract_id:
                raise _Reject(500, f"contractServiceID {line_id} is not on contract {contract_id}")
            if (
                body.get("serviceID") is not None
                and _int(body["serviceID"], "serviceID") != line["serviceID"]
            ):
                raise _Reject(500, f"serviceID does not match contract service {line_id}")
        else:
            _require(body, "serviceID")
            service = self._service(_int(body["serviceID"], "serviceID"))
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
        if effective < _date(contract["startDate"], "startDate"):
            raise _Reject(500, "effectiveDate is before the contract's start date")
        points = sorted({effective, *(a.effective for a in self.adjustments.get(line_id, ()))})
        for point in points:
            after = self.units(line_id, point) + (change if point >= effective else 0)
            if after < 0:
                raise _Reject(500, f"the adjustment leaves {after} units on {point.isoformat()}")
        if "adjustedUnitPrice" in body and body["adjustedUnitPrice"] is not None:
            line["unitPrice"] = _money(body["adjustedUnitPrice"], "adjustedUnitPrice")
            line["internalCurrencyAdjustedPrice"] = line["unitPrice"]
        if "adjustedUnitCost" in body and body["adjustedUnitCost"] is not None:
            line["unitCost"] = _money(body["adjustedUnitCost"], "adjustedUnitCost")
        return self.add_adjustment(line_id, effective, change)

    def _update(self, entity: str, body: dict[str, Any]) -> int:
        if entity != "ContractServices":
            raise _Reject(405, f"the sandbox does not update {entity}")
        _require(body, "id")
        line_id = _int(body["id"], "id")
        line = self.tables["ContractServices"].get(line_id)
        if line is None:
            raise _Reject(500, f"ContractServices {line_id} does not exist")
        writable = {"id", "unitprice", "adjustedprice", "invoicedescription"}
        read_only = sorted(k for k in body if k.lower() not in writable)
        if read_only:
            raise _Reject(500, *(f"{k} is read-only" for k in read_only))
        for name, value in body.items():
            if name.lower() in ("unitprice", "adjustedprice"):
                line["unitPrice"] = line["internalCurrencyAdjustedPrice"] = _money(value, name)
            elif name.lower() == "invoicedescription":
                line["invoiceDescription"] = value
        return line_id


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


def _require(body: Mapping[str, Any], *fields: str) -> None:
    missing = [f for f in fields if body.get(f) is None]
    if missing:
        raise _Reject(400, *(f"Required field {f!r} is missing" for f in missing))


def _canonical(name: str) -> str | None:
    for entity in ENTITIES:
        if entity.lower() == name.lower():
            return entity
    return None


def _numeric(value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"Autotask ids are numeric: {value!r}")
    return int(value)


__all__ = ["AutotaskSandbox", "DEFAULT_ZONE"]
