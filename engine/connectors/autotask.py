"""Autotask PSA REST (`/atservicesrest/v1.0`), as the engine's `PsaConnector`.

Facts come from shared/APIS.md §4 and §5; everything marked ASSUMED below is not confirmed by a
primary source and must be checked against a real zone (`GET /v1.0/{Entity}/entityInformation/fields`
lists the picklist values and field lengths).

Mapping
- Companies -> `PsaCompany`; Services -> `PsaProduct` (Autotask Services carry no SKU).
- One company's contracts (`company_billing`, the targeted refresh): the same Contracts query plus
  `{"op": "eq", "field": "companyID", "value": N}`, then `lines()` of those contracts.
- Contracts with `contractType` 7 (Recurring Service, the only type that holds services [doc]) and
  `status` 1 (ASSUMED: 1 = Active, 0 = Inactive) -> `PsaAgreement`. `contractPeriodType` (ASSUMED
  picklist 1 Monthly, 2 Quarterly, 3 Semi-Annual, 4 Yearly; the SOAP-era letters m/q/s/y are
  accepted too): Yearly -> "annual", everything else -> "monthly".
- A recurring line = a ContractService (price, cost, descriptions) + its ContractServiceUnits rows
  (units per billing period or sub-period). The line's `quantity` is the units of the latest row
  that has units > 0, i.e. the quantity after every adjustment already scheduled (a change trueup
  wrote effective next month counts as written). `effective_date` = start of the first row with
  units; `cancelled_date` = the day before a trailing run of rows with 0 units.
- A one-time line (prorate, extra months) = a ContractCharge (the one-time contract charge:
  `name`, `description`, `unitQuantity`, `unitPrice`, `unitCost`, `datePurchased`, `status`,
  `isBillableToCompany`, `contractID`, `chargeType` [field names: swagger-generated models]).
  ASSUMED picklists: `status` 1, `chargeType` 1. `name` is the description cut to 100 characters
  (ASSUMED limit), `description` holds it in full.

Writes
- New recurring line: `POST /ContractServices` (contractID, serviceID, unitPrice, unitCost,
  invoiceDescription, internalDescription = the key marker), then `POST /ContractServiceAdjustments`
  (contractID, serviceID, contractServiceID, effectiveDate, unitChange = quantity, adjustedUnitPrice,
  adjustedUnitCost), then the ContractService and its units are read back. The service is created
  first, not auto-created by the adjustment, because the key must be on it: the docs make every
  ContractService field read-only on update except the adjusted price and invoiceDescription, and
  an adjustment carries no description. `create_requests` shows the adjustment with
  `contractServiceID` unset: it is the id the first request returns.
- Quantity change: one ContractServiceAdjustment (contractID, contractServiceID; serviceID left out
  as the contract service names it — ASSUMED accepted) with `unitChange` = quantity −
  previous_quantity (`LineUpdate.previous_quantity` is required: adjustments are create-only and
  cannot be queried), effective `LineUpdate.effective_date` (required). Prices given with it go in
  `adjustedUnitPrice` / `adjustedUnitCost`.
- Cancellation: an adjustment of −previous_quantity effective the day AFTER `cancelled_date` (the
  cancelled date is the last day billed; ContractServiceUnits start at 0 the next day).
- A price-only change: `PATCH /ContractServices {id, unitPrice}` (the docs call the writable field
  `adjustedPrice`, the models `unitPrice`: ASSUMED `unitPrice`). A cost-only change goes in an
  adjustment with `unitChange` 0, since the cost is not writable on the service.
- One-time line: `POST /ContractCharges`.
- Extra-months line (RULES.md §3): a ContractCharge has no months field, so it is one charge with
  `unitQuantity` = gap × months at the full `unitPrice` (billed once as quantity × price), its
  name/description ending `- 1 seat × 2 months (02/2021–03/2021)`
  (`engine.connectors.base.psa_quantity/psa_description`).
- `update_line` always addresses a ContractService: one-time lines are written once, never updated.

The line key (crash-safe sync)
- ContractServices carry `internalDescription` = `trueup:<key>`; ContractCharges have no
  internalDescription, so they carry `internalPurchaseOrderNumber` = `trueup:<key>` (an internal,
  queryable field that is not printed on invoices — ASSUMED) and the full key, plus the service id
  the line bills (charges reference Products, not Services), in `notes`.
  A key too long for the field (ASSUMED limits: 100 for internalDescription, 50 for
  internalPurchaseOrderNumber) is stored as `trueup#<sha256 hex>` cut to the limit; lookups compute
  the same marker, so they still find it.
- `find_line(agreement_id, key)` queries ContractServices, then ContractCharges, of that contract
  for the marker (filter `eq`). A found recurring line whose quantity is 0 means the service was
  created but its units adjustment never landed: finish it with `update_line(quantity=write.quantity,
  previous_quantity=0, effective_date=write.effective_date)`.
- Adjustments cannot be queried, so whether a quantity change or a cancellation was applied is read
  from ContractServiceUnits: `update_applied(update)` compares the units in force on the update's
  effective date (the day after the cancelled date for a cancellation) with the expected quantity
  (0 for a cancellation); `current_units(contract_service_id, on=None)` gives the raw figure. A sync
  that timed out on an adjustment calls `update_applied` before re-sending.

Transport: one `ServiceClient`; zone discovery on first use when `zone_url` is not given; queries
are `POST /{Entity}/query` reads (retried), pages follow `pageDetails.nextPageUrl` with GET
(ASSUMED: the URL embeds the search, as the documented `GET /{Entity}/query?search=` form does);
`RateBudget(concurrent=3)` (thread limit per endpoint). Errors `{"errors": [...]}` become
`ServiceError` details. Dates are read as dates (`2024-01-31T15:04:05.307`, no zone) and sent as ISO
dates. Money goes out as JSON numbers written from `Decimal` (never through a float).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx

from engine.connectors.base import LineUpdate, LineWrite, ServiceError, psa_description, psa_quantity
from engine.connectors.http import (
    RateBudget,
    ServiceClient,
    decimal_or_none,
    parse_date,
    parse_json,
)
from engine.scenario import LineSource, PsaAgreement, PsaCompany, PsaLine, PsaName, PsaProduct

log = logging.getLogger(__name__)

SERVICE = "autotask"
ZONE_LOOKUP_URL = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
MAX_RECORDS = 500  # page size and the most OR conditions per query [doc]
CONCURRENT_REQUESTS = 3  # thread limit per object endpoint per integration [doc ThreadLimiting]

CONTRACT_TYPE_RECURRING_SERVICE = 7  # [doc]
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
CHARGE_STATUS = 1  # ASSUMED
CHARGE_TYPE = 1  # ASSUMED
COMPANY_TYPE_CUSTOMER = 1  # ASSUMED

KEY_PREFIX = "trueup:"
DIGEST_PREFIX = "trueup#"
SERVICE_KEY_LIMIT = 100  # ContractServices.internalDescription, ASSUMED
CHARGE_KEY_LIMIT = 50  # ContractCharges.internalPurchaseOrderNumber, ASSUMED
CHARGE_NAME_LIMIT = 100  # ContractCharges.name, ASSUMED
NOTE_KEY = "trueup-key: "
NOTE_SERVICE = "trueup-service: "


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


def key_from_marker(marker: object) -> str | None:
    """The key written by `key_marker`, when it was stored in full."""
    if isinstance(marker, str) and marker.startswith(KEY_PREFIX):
        return marker[len(KEY_PREFIX) :]
    return None


def charge_notes(key: str, service_id: str) -> str:
    return f"{NOTE_KEY}{key}\n{NOTE_SERVICE}{service_id}"


def _note_value(notes: object, prefix: str) -> str | None:
    if not isinstance(notes, str):
        return None
    for line in notes.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip() or None
    return None


def source_from_key(key: str | None) -> LineSource | None:
    """`<sub>:<kind>[:<arg>]` -> the subscription (and arrears sub-product) the key names."""
    if not key:
        return None
    subscription, _, rest = key.partition(":")
    kind, _, arg = rest.partition(":")
    return LineSource(
        subscription_id=subscription or None,
        sub_product=(arg or None) if kind == "arrears" else None,
        key=key,
    )


def iso(d: date) -> str:
    return d.isoformat()


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


def units_on(rows: Sequence[Mapping[str, Any]], on: date | None) -> int:
    """Units in force on `on` (the latest scheduled units when None) from ContractServiceUnits rows."""
    ordered = sorted(rows, key=lambda r: parse_date(r.get("startDate")) or date.min)
    if not ordered:
        return 0
    if on is None:
        return int(ordered[-1].get("units") or 0)
    current = 0
    for row in ordered:
        start = parse_date(row.get("startDate"))
        if start is not None and start <= on:
            current = int(row.get("units") or 0)
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
    ) -> None:
        self.username = username
        self.owner_resource_id = owner_resource_id
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
            body = parse_json(await self.http.send(request, idempotent=True))
            url = body.get("url") if isinstance(body, Mapping) else None
            if not url:
                raise ServiceError(SERVICE, f"no zone for API user {self.username!r}", sent=False)
            self._set_zone(str(url))
        assert self.zone_url is not None
        return self.zone_url

    def _require_zone(self) -> None:
        if self.zone_url is None:
            raise RuntimeError("Autotask zone unknown: pass zone_url or await connect() first")

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- reading ---------------------------------------------------------------------------------

    async def query(self, entity: str, filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Every item of `entity` matching `filters` (ANDed), following nextPageUrl to the end."""
        await self.connect()
        body = {"MaxRecords": MAX_RECORDS, "Filter": list(filters)}
        page = await self.http.read("POST", f"{entity}/query", content=dumps(body))
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            if not isinstance(page, Mapping):
                raise ServiceError(SERVICE, f"{entity}/query: unexpected answer {page!r}"[:300])
            items.extend(page.get("items") or [])
            next_url = (page.get("pageDetails") or {}).get("nextPageUrl")
            if not next_url:
                return items
            if next_url in seen:
                raise ServiceError(SERVICE, f"{entity}/query: paging loops on {next_url}")
            seen.add(next_url)
            page = await self.http.read("GET", str(next_url))

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

    async def get(self, entity: str, item_id: int | str) -> dict[str, Any] | None:
        await self.connect()
        body = await self.http.read("GET", f"{entity}/{_id(item_id)}")
        item = body.get("item") if isinstance(body, Mapping) else None
        return dict(item) if isinstance(item, Mapping) else None

    async def companies(self) -> list[PsaCompany]:
        rows = await self.query("Companies", [{"op": "eq", "field": "isActive", "value": True}])
        return [PsaCompany(id=str(r["id"]), name=str(r.get("companyName") or "")) for r in rows]

    async def products(self) -> list[PsaProduct]:
        rows = await self.query("Services", [{"op": "eq", "field": "isActive", "value": True}])
        return [
            PsaProduct(
                id=str(r["id"]),
                name=str(r.get("name") or ""),
                sku=None,
                unit_price=decimal_or_none(r.get("unitPrice")),
                unit_cost=decimal_or_none(r.get("unitCost")),
            )
            for r in rows
        ]

    async def agreements(self) -> list[PsaAgreement]:
        rows = await self.query(
            "Contracts",
            [
                {"op": "eq", "field": "contractType", "value": CONTRACT_TYPE_RECURRING_SERVICE},
                {"op": "eq", "field": "status", "value": CONTRACT_STATUS_ACTIVE},
            ],
        )
        return [self._agreement(r) for r in rows]

    async def company_billing(self, company_id: str) -> tuple[list[PsaAgreement], list[PsaLine]]:
        """One company's active recurring-service contracts (the `agreements()` query plus
        `companyID eq N`) and their lines (`lines()` of those contracts)."""
        rows = await self.query(
            "Contracts",
            [
                {"op": "eq", "field": "companyID", "value": _id(company_id)},
                {"op": "eq", "field": "contractType", "value": CONTRACT_TYPE_RECURRING_SERVICE},
                {"op": "eq", "field": "status", "value": CONTRACT_STATUS_ACTIVE},
            ],
        )
        agreements = [self._agreement(r) for r in rows]
        return agreements, await self.lines([a.id for a in agreements])

    @staticmethod
    def _agreement(row: Mapping[str, Any]) -> PsaAgreement:
        period = row.get("contractPeriodType")
        if isinstance(period, str) and period.isdigit():
            period = int(period)
        if isinstance(period, str):
            period = period.lower()
        months = PERIOD_MONTHS.get(period)
        if months is None:
            log.warning("autotask: contract %s has unknown contractPeriodType %r", row.get("id"), period)
        elif months not in (1, 12):
            log.warning(
                "autotask: contract %s bills every %d months; treated as monthly", row.get("id"), months
            )
        start = parse_date(row.get("startDate"))
        if start is None:
            raise ServiceError(SERVICE, f"contract {row.get('id')} has no startDate")
        return PsaAgreement(
            id=str(row["id"]),
            company_id=str(row["companyID"]),
            name=str(row.get("contractName") or ""),
            start_date=start,
            end_date=parse_date(row.get("endDate")),
            billing_period="annual" if months == 12 else "monthly",
        )

    async def lines(self, agreement_ids: Sequence[str] | None = None) -> list[PsaLine]:
        if agreement_ids is None:
            agreement_ids = [a.id for a in await self.agreements()]
        contract_ids = [_id(a) for a in agreement_ids]
        if not contract_ids:
            return []
        services = await self.query_in("ContractServices", "contractID", contract_ids)
        units = await self.query_in("ContractServiceUnits", "contractID", contract_ids) if services else []
        charges = await self.query_in("ContractCharges", "contractID", contract_ids)
        return await self._service_lines(services, units) + [self._charge_line(c) for c in charges]

    async def _service_lines(
        self, services: Sequence[Mapping[str, Any]], units: Sequence[Mapping[str, Any]]
    ) -> list[PsaLine]:
        by_service: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for row in units:
            by_service[str(row.get("contractServiceID"))].append(row)
        starts: dict[str, date] = {}
        bare = {
            str(s["contractID"])
            for s in services
            if not any(int(r.get("units") or 0) > 0 for r in by_service.get(str(s["id"]), ()))
        }
        if bare:  # a service without units yet: its effective date falls back to the contract's start
            for contract in await self.query_in("Contracts", "id", [_id(c) for c in bare]):
                start = parse_date(contract.get("startDate"))
                if start is not None:
                    starts[str(contract["id"])] = start
        return [self._service_line(s, by_service.get(str(s["id"]), []), starts) for s in services]

    @staticmethod
    def _service_line(
        service: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], starts: Mapping[str, date]
    ) -> PsaLine:
        ordered = sorted(rows, key=lambda r: parse_date(r.get("startDate")) or date.min)
        positive = [r for r in ordered if int(r.get("units") or 0) > 0]
        quantity = int(positive[-1]["units"]) if positive else 0
        effective = parse_date(positive[0].get("startDate")) if positive else None
        cancelled: date | None = None
        if positive and ordered[-1] is not positive[-1]:
            trailing = ordered[ordered.index(positive[-1]) + 1]
            zero_start = parse_date(trailing.get("startDate"))
            cancelled = zero_start - timedelta(days=1) if zero_start else None
        contract_id = str(service["contractID"])
        if effective is None:
            effective = starts.get(contract_id) or date(1970, 1, 1)
        key = key_from_marker(service.get("internalDescription"))
        return PsaLine(
            id=str(service["id"]),
            agreement_id=contract_id,
            product_id=str(service["serviceID"]),
            kind="recurring",
            quantity=Decimal(quantity),
            unit_price=decimal_or_none(service.get("unitPrice")) or Decimal("0"),
            unit_cost=decimal_or_none(service.get("unitCost")) or Decimal("0"),
            effective_date=effective,
            cancelled_date=cancelled,
            description=str(service.get("invoiceDescription") or ""),
            source=source_from_key(key),
        )

    @staticmethod
    def _charge_line(charge: Mapping[str, Any]) -> PsaLine:
        notes = charge.get("notes")
        key = _note_value(notes, NOTE_KEY) or key_from_marker(charge.get("internalPurchaseOrderNumber"))
        product = _note_value(notes, NOTE_SERVICE) or charge.get("productID") or charge.get("billingCodeID")
        purchased = parse_date(charge.get("datePurchased"))
        if purchased is None:
            raise ServiceError(SERVICE, f"contract charge {charge.get('id')} has no datePurchased")
        return PsaLine(
            id=str(charge["id"]),
            agreement_id=str(charge["contractID"]),
            product_id=str(product or "0"),
            kind="one_time",
            quantity=decimal_or_none(charge.get("unitQuantity")) or Decimal("0"),
            unit_price=decimal_or_none(charge.get("unitPrice")) or Decimal("0"),
            unit_cost=decimal_or_none(charge.get("unitCost")) or Decimal("0"),
            effective_date=purchased,
            description=str(charge.get("description") or charge.get("name") or ""),
            source=source_from_key(key),
        )

    async def _read_service_line(self, contract_service_id: int | str) -> PsaLine:
        service = await self.get("ContractServices", contract_service_id)
        if service is None:
            raise ServiceError(SERVICE, f"contract service {contract_service_id} not found", status=404)
        return (await self._service_lines([service], await self._units(contract_service_id)))[0]

    async def _units(self, contract_service_id: int | str) -> list[dict[str, Any]]:
        return await self.query(
            "ContractServiceUnits",
            [{"op": "eq", "field": "contractServiceID", "value": _id(contract_service_id)}],
        )

    async def current_units(self, contract_service_id: int | str, on: date | None = None) -> int:
        """Units of the contract service in force on `on` (the latest scheduled units when None)."""
        return units_on(await self._units(contract_service_id), on)

    async def update_applied(self, update: LineUpdate) -> bool:
        """Whether the units adjustment `update` describes is in Autotask (adjustments themselves
        cannot be queried): compares ContractServiceUnits with what the update should have made."""
        if update.cancelled_date is not None:
            return await self.current_units(update.line_id, update.cancelled_date + timedelta(days=1)) == 0
        if update.quantity is not None:
            on = update.effective_date
            return await self.current_units(update.line_id, on) == whole_units(update.quantity)
        line = await self._read_service_line(update.line_id)
        return update.unit_price is None or line.unit_price == update.unit_price

    async def find_line(self, agreement_id: str, key: str) -> PsaLine | None:
        contract_id = _id(agreement_id)
        services = await self.query(
            "ContractServices",
            [
                {"op": "eq", "field": "contractID", "value": contract_id},
                {"op": "eq", "field": "internalDescription", "value": key_marker(key, SERVICE_KEY_LIMIT)},
            ],
        )
        if services:
            if len(services) > 1:
                log.warning(
                    "autotask: %d contract services carry key %s; using the first", len(services), key
                )
            service = min(services, key=lambda s: int(s["id"]))
            return (await self._service_lines([service], await self._units(service["id"])))[0]
        charges = await self.query(
            "ContractCharges",
            [
                {"op": "eq", "field": "contractID", "value": contract_id},
                {
                    "op": "eq",
                    "field": "internalPurchaseOrderNumber",
                    "value": key_marker(key, CHARGE_KEY_LIMIT),
                },
            ],
        )
        if charges:
            return self._charge_line(min(charges, key=lambda c: int(c["id"])))
        return None

    # -- request builders (the dry run and the send path share them) -----------------------------

    def _post(self, entity: str, body: Mapping[str, Any]) -> httpx.Request:
        self._require_zone()
        return self.http.build("POST", entity, content=dumps(body))

    def _patch(self, entity: str, body: Mapping[str, Any]) -> httpx.Request:
        self._require_zone()
        return self.http.build("PATCH", entity, content=dumps(body))

    def _contract_service_request(self, write: LineWrite) -> httpx.Request:
        return self._post(
            "ContractServices",
            {
                "contractID": _id(write.agreement_id),
                "serviceID": _id(write.product_id),
                "unitPrice": write.unit_price,
                "unitCost": write.unit_cost,
                "invoiceDescription": write.description,
                "internalDescription": key_marker(write.key, SERVICE_KEY_LIMIT),
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
        unit_price: Decimal | None,
        unit_cost: Decimal | None,
    ) -> httpx.Request:
        body: dict[str, Any] = {"contractID": contract_id}
        if service_id is not None:
            body["serviceID"] = service_id
        if contract_service_id is not None:
            body["contractServiceID"] = contract_service_id
        body["effectiveDate"] = iso(effective)
        body["unitChange"] = unit_change
        if unit_price is not None:
            body["adjustedUnitPrice"] = unit_price
        if unit_cost is not None:
            body["adjustedUnitCost"] = unit_cost
        return self._post("ContractServiceAdjustments", body)

    def _new_units_request(self, write: LineWrite, contract_service_id: int | None) -> httpx.Request:
        return self._adjustment_request(
            contract_id=_id(write.agreement_id),
            service_id=_id(write.product_id),
            contract_service_id=contract_service_id,
            effective=write.effective_date,
            unit_change=whole_units(write.quantity),
            unit_price=write.unit_price,
            unit_cost=write.unit_cost,
        )

    def _charge_request(self, write: LineWrite) -> httpx.Request:
        return self._post(
            "ContractCharges",
            {
                "contractID": _id(write.agreement_id),
                "name": psa_description(write)[:CHARGE_NAME_LIMIT],
                "description": psa_description(write),
                "unitQuantity": psa_quantity(write),  # extra months: gap × months (module docstring)
                "unitPrice": write.unit_price,
                "unitCost": write.unit_cost,
                "datePurchased": iso(write.effective_date),
                "status": CHARGE_STATUS,
                "chargeType": CHARGE_TYPE,
                "isBillableToCompany": True,
                "internalPurchaseOrderNumber": key_marker(write.key, CHARGE_KEY_LIMIT),
                "notes": charge_notes(write.key, write.product_id),
            },
        )

    def create_requests(self, write: LineWrite) -> list[httpx.Request]:
        """The requests `create_line` sends. For a recurring line the adjustment's
        `contractServiceID` is absent here: it is the id the first request returns."""
        if write.kind == "one_time":
            return [self._charge_request(write)]
        return [self._contract_service_request(write), self._new_units_request(write, None)]

    def update_requests(self, update: LineUpdate) -> list[httpx.Request]:
        """The requests `update_line` sends: one units adjustment (quantity, cancellation, cost),
        or a PATCH of the price alone."""
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
            if change == 0 and update.unit_price is None and update.unit_cost is None:
                return []
        elif update.unit_cost is not None:
            change, effective = 0, update.effective_date
            if effective is None:
                raise ValueError("an Autotask cost change needs LineUpdate.effective_date")
        if change is not None and effective is not None:
            return [
                self._adjustment_request(
                    contract_id=_id(update.agreement_id),
                    service_id=None,
                    contract_service_id=_id(update.line_id),
                    effective=effective,
                    unit_change=change,
                    unit_price=update.unit_price,
                    unit_cost=update.unit_cost,
                )
            ]
        if update.unit_price is not None:
            return [
                self._patch("ContractServices", {"id": _id(update.line_id), "unitPrice": update.unit_price})
            ]
        return []

    @staticmethod
    def _previous(update: LineUpdate) -> Decimal:
        if update.previous_quantity is None:
            raise ValueError(
                "an Autotask units change needs LineUpdate.previous_quantity "
                "(adjustments are deltas and cannot be read back)"
            )
        return update.previous_quantity

    # -- writing ---------------------------------------------------------------------------------

    @staticmethod
    def _item_id(body: object, what: str) -> int:
        if isinstance(body, Mapping) and body.get("itemId") is not None:
            return int(body["itemId"])
        raise ServiceError(SERVICE, f"{what}: no itemId in the answer {body!r}"[:300])

    async def create_line(self, write: LineWrite) -> PsaLine:
        await self.connect()
        if write.kind == "one_time":
            charge_id = self._item_id(
                await self.http.write_request(self._charge_request(write)), "ContractCharges"
            )
            charge = await self.get("ContractCharges", charge_id)
            if charge is None:
                raise ServiceError(SERVICE, f"contract charge {charge_id} not found after create", status=404)
            return self._charge_line(charge)
        service_id = self._item_id(
            await self.http.write_request(self._contract_service_request(write)), "ContractServices"
        )
        await self.http.write_request(self._new_units_request(write, service_id))
        return await self._read_service_line(service_id)

    async def update_line(self, update: LineUpdate) -> PsaLine:
        await self.connect()
        for request in self.update_requests(update):
            await self.http.write_request(request)
        return await self._read_service_line(update.line_id)

    async def create_company(self, name: str) -> PsaCompany:
        await self.connect()
        body: dict[str, Any] = {"companyName": name, "companyType": COMPANY_TYPE_CUSTOMER, "phone": ""}
        if self.owner_resource_id is not None:
            body["ownerResourceID"] = self.owner_resource_id
        company_id = self._item_id(await self.http.write_request(self._post("Companies", body)), "Companies")
        row = await self.get("Companies", company_id)
        return PsaCompany(id=str(company_id), name=str((row or {}).get("companyName") or name))
