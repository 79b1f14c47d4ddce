"""A stateful ConnectWise Manage for the sandbox and the tests, served through
`httpx.MockTransport(sandbox.handle)` so `ConnectWiseConnector` runs unchanged.

It speaks what the connector uses (shared/APIS.md §2): `GET /login/companyinfo/{companyId}`, and under
`/{codebase}/apis/3.0`: `/company/companies` (GET, POST), `/procurement/catalog`, `/finance/agreements`
(+ `/{id}`), `/finance/agreements/{id}/additions` (GET, POST) and `/additions/{id}` (GET, PATCH).
Lists take `conditions` (`field = value` joined by `and`; strings in double quotes, `null`,
`true/false`, numbers, `[dates]`; slash paths such as `company/id`), `page` and `pageSize` (default 25,
at most 1000) and answer with an RFC 5988 `Link` header (`first`/`prev`/`next`/`last`).
Every request needs the Basic credentials and the `clientId` header. Writes are validated and
answered with ConnectWise's error shape `{"code", "message", "errors": [{"code", "message",
"resource", "field"}]}`; the 401/403 bodies follow the same shape (their exact wording is not
published).

As strict as ConnectWise (each rule cites its source beside the code): unknown routes 404 and
unsupported methods 405 in ConnectWise's error shape; an addition needs `product` and
`billCustomer` [spec Addition.required]; `serialNumber` ≤ 50 and `invoiceDescription` ≤ 6000
characters [spec "Max length"]; computed fields (`extPrice`, `margin`, `_info`, …) and fields the
schema does not name are refused; date-times are `yyyy-MM-ddTHH:mm:ssZ`; `page` ≥ 1 and
`pageSize` 1–1000 (more is served as 1000) [doc PSA-Pagination]. The sandbox computes what
ConnectWise invoices: `extPrice` = (quantity − lessIncluded) × unitPrice for a Billable addition (0
for DoNotBill/NoCharge), and a prorate of the first partial month (`proratePrice`,
`extendedProratePrice`) unless the addition says `prorateCurrentPeriodFlag: false` — see
`invoiced()`. The metered line carries a ticked `Metered` Checkbox custom field (the connector's
docstring). `rate_limit=(requests, seconds)` turns on a rolling window answered with 429 and a
numeric `Retry-After` [doc PSA-API-Requests]; ConnectWise publishes no figure, so it is off unless
a test sets it.

Before handling a request the sandbox asks `Faults.decide`: a refusal (429/503) returns without
doing anything; a 500-after-apply or a lost response (raised as `httpx.ReadTimeout`) happens after
the write was applied.
"""

from __future__ import annotations

import base64
import calendar
import copy
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import httpx

from engine.connectors.connectwise import (
    BILL_CUSTOMER,
    INVOICE_DESCRIPTION_MAX,
    METERED_CAPTION,
    SERIAL_MAX,
    SHORT_DESCRIPTION_MAX,
    KeyCodec,
    cw_datetime,
    json_bytes,
)
from engine.connectors.http import loads
from engine.sandbox.faults import Faults
from engine.scenario import Scenario

API = "apis/3.0"
MAX_PAGE_SIZE = 1000  # [doc PSA-Pagination] "pageSize … hard max 1000"
METERED_FIELD_ID = 7  # the id of the sandbox's "Metered" addition custom field
# [spec Addition] properties; those ConnectWise computes are refused on a write (ASSUMED: the spec
# does not mark readOnly; they are the extended/computed values and the record's metadata).
ADDITION_FIELDS = frozenset(
    {
        "id",
        "product",
        "quantity",
        "lessIncluded",
        "unitPrice",
        "unitCost",
        "billCustomer",
        "effectiveDate",
        "cancelledDate",
        "taxableFlag",
        "serialNumber",
        "invoiceDescription",
        "purchaseItemFlag",
        "specialOrderFlag",
        "agreementId",
        "description",
        "billedQuantity",
        "uom",
        "extPrice",
        "extCost",
        "sequenceNumber",
        "margin",
        "prorateCost",
        "proratePrice",
        "extendedProrateCost",
        "extendedProratePrice",
        "prorateCurrentPeriodFlag",
        "opportunity",
        "agreementStatus",
        "invoiceGrouping",
        "_info",
        "customFields",
    }
)
COMPUTED = frozenset(
    {
        "billedQuantity",
        "extPrice",
        "extCost",
        "margin",
        "prorateCost",
        "proratePrice",
        "extendedProrateCost",
        "extendedProratePrice",
        "agreementStatus",
        "_info",
    }
)
ROUTES = (  # what this sandbox serves under /{codebase}/apis/3.0; anything else is a 404
    r"/company/companies",
    r"/procurement/catalog",
    r"/procurement/subcategories",
    r"/procurement/types",
    r"/finance/agreements",
    r"/finance/agreements/\d+",
    r"/finance/agreements/\d+/additions",
    r"/finance/agreements/\d+/additions/\d+",
    r"/finance/invoices",
    r"/finance/invoices/\d+",
    r"/procurement/products",
    r"/procurement/products/\d+",
)
_CW_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")  # [APIS §2.9] yyyy-MM-ddTHH:mm:ssZ


def _num_id(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"ConnectWise sandbox: {what} id {value!r} is not numeric") from None


def _error(
    status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return httpx.Response(status, content=json_bytes(body), headers={"Content-Type": "application/json"})


def _invalid(resource: str, field: str, code: str, message: str) -> httpx.Response:
    return _error(
        400,
        "InvalidObject",
        f"{resource} object is invalid",
        [{"code": code, "message": message, "resource": resource, "field": field}],
    )


def too_many_requests(_: httpx.Request, retry_after: float) -> httpx.Response:
    """ConnectWise's 429: "will include a Retry-After header with a numeric value that indicates the
    number of seconds to wait" [doc PSA-API-Requests]; the body's wording is ASSUMED."""
    response = _error(429, "TooManyRequests", "Request volume exceeds capacity limits. Retry later.")
    response.headers["Retry-After"] = f"{retry_after:g}"
    return response


def _without_nulls(value: Any) -> Any:
    """ConnectWise leaves a field without a value out of its answers (its schema types `endDate`,
    `cancelledDate`, `serialNumber` … as non-null strings [spec])."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json_bytes(_without_nulls(body)),
        headers={"Content-Type": "application/json", **dict(headers or {})},
    )


# --- conditions ------------------------------------------------------------------------------------

_CONDITION = re.compile(
    r"\s*(?P<field>[A-Za-z_][\w/]*)\s*(?P<op>!=|<=|>=|=|<|>)\s*"
    r'(?P<value>"(?:[^"\\]|\\.)*"|\[[^\]]*\]|null|true|false|-?\d+(?:\.\d+)?)\s*',
    re.IGNORECASE,
)


def _value(token: str) -> Any:
    low = token.lower()
    if low == "null":
        return None
    if low in ("true", "false"):
        return low == "true"
    if token.startswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token.startswith("["):
        return token[1:-1].strip()
    return Decimal(token)


# `field in (v1, v2, …)`: ConnectWise's list operator [doc Developer Guide, conditions: "in"].
_IN = re.compile(r"\s*(?P<field>[A-Za-z_][\w/]*)\s+in\s*\((?P<values>[^()]*)\)\s*", re.IGNORECASE)
_IN_VALUE = re.compile(r'\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)\s*')


def parse_conditions(text: str) -> list[tuple[str, str, Any]]:
    """`a = "x" and b != null and c in (1, 2)` → [(a, =, x), (b, !=, None), (c, in, [1, 2])];
    raises ValueError on anything else."""
    parts = re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if text.strip() else []
    result: list[tuple[str, str, Any]] = []
    for part in parts:
        listed = _IN.fullmatch(part)
        if listed:
            tokens = listed["values"].split(",")
            values = [_IN_VALUE.fullmatch(t) for t in tokens]
            if not tokens or not all(values):
                raise ValueError(part)
            result.append((listed["field"], "in", [_value(v[1]) for v in values if v]))
            continue
        match = _CONDITION.fullmatch(part)
        if not match:
            raise ValueError(part)
        result.append((match["field"], match["op"], _value(match["value"])))
    return result


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("/"):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "in":
        return any(_compare(actual, "=", value) for value in expected)
    if expected is None or actual is None:
        same = actual is None and expected is None
        return same if op == "=" else (not same if op == "!=" else False)
    if isinstance(expected, bool):
        actual_b = bool(actual)
        return actual_b == expected if op == "=" else actual_b != expected
    if isinstance(expected, Decimal):
        try:
            a: Any = Decimal(str(actual))
        except InvalidOperation:
            return False
        b: Any = expected
    else:
        a, b = str(actual).lower(), str(expected).lower()  # ConnectWise compares text without case
    return bool({"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def matches(record: Mapping[str, Any], conditions: list[tuple[str, str, Any]]) -> bool:
    return all(_compare(_lookup(record, f), op, v) for f, op, v in conditions)


# --- the service -------------------------------------------------------------------------------------


class ConnectWiseSandbox:
    """ConnectWise Manage in memory. `handle` is the MockTransport handler."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        site: str = "api-na.myconnectwise.net",
        company_id: str = "trueup",
        public_key: str = "sandbox-public",
        private_key: str = "sandbox-private",
        client_id: str = "00000000-0000-4000-8000-000000000000",
        codebase: str = "v4_6_release",
        rate_limit: tuple[int, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.faults = faults or Faults()
        self.rate_limit = rate_limit
        self._clock = clock
        self._starts: deque[float] = deque()
        self.site = site
        self.company_id = company_id
        self.public_key = public_key
        self.private_key = private_key
        self.client_id = client_id
        self.codebase = codebase.strip("/")
        self.companies: dict[int, dict[str, Any]] = {}
        self.catalog: dict[int, dict[str, Any]] = {}
        # the catalog's groups (the seeded items use subcategory 1 / type 1); [client SubCategoriesApi,
        # ProductTypesApi] list them at /procurement/subcategories and /procurement/types
        self.subcategories: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "Cloud", "category": {"id": 1, "name": "Cloud Services"}},
            2: {"id": 2, "name": "Backup", "category": {"id": 1, "name": "Cloud Services"}},
        }
        self.product_types: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "Service"},
            2: {"id": 2, "name": "Hardware"},
        }
        self.agreements: dict[int, dict[str, Any]] = {}
        self.additions: dict[int, dict[str, Any]] = {}
        self.writes = 0
        self.requests: list[httpx.Request] = []
        self._index: dict[int, list[int]] | None = None  # agreement id -> addition ids
        self._indexed = 0
        self._next_id = 1000
        # What ConnectWise has invoiced (engine.margin.psa_invoices.PsaInvoiceLine), built on first read.
        self.invoiced_source: Callable[[], list[Any]] = list
        self._issued: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]] | None = None

    # --- loading ---

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, faults: Faults | None = None, **credentials: str
    ) -> ConnectWiseSandbox:
        sandbox = cls(faults=faults, **credentials)  # type: ignore[arg-type]  # credentials: the str keywords of __init__ (site, company_id, keys), never rate_limit/clock
        codec = KeyCodec(SERIAL_MAX)
        psa = scenario.psa
        for company in psa.companies:
            cid = _num_id(company.id, "company")
            sandbox.companies[cid] = {
                "id": cid,
                "identifier": re.sub(r"[^A-Za-z0-9]", "", company.name)[:25] or f"C{cid}",
                "name": company.name,
                "status": {"id": 1, "name": "Active"},
                "deletedFlag": False,
                "_info": {"lastUpdated": "2026-01-01T00:00:00Z"},
            }
        for product in psa.products:
            pid = _num_id(product.id, "product")
            sandbox.catalog[pid] = {
                "id": pid,
                "identifier": product.sku or f"P{pid}",
                "description": product.name[:60],
                "inactiveFlag": False,
                "subcategory": {"id": 1, "name": "Cloud"},
                "type": {"id": 1, "name": "Service"},
                "productClass": "Service",
                "customerDescription": product.name,
                "recurringFlag": True,
                "price": product.unit_price,
                "cost": product.unit_cost,
            }
        companies = {c.id: c for c in psa.companies}
        for agreement in psa.agreements:
            aid = _num_id(agreement.id, "agreement")
            owner = companies.get(agreement.company_id)
            company_record = sandbox.companies.get(_num_id(agreement.company_id, "company"), {})
            expired = agreement.end_date is not None and agreement.end_date < scenario.as_of
            sandbox.agreements[aid] = {
                "id": aid,
                "name": agreement.name,
                "type": {"id": 1, "name": "Managed Services"},
                "company": {
                    "id": _num_id(agreement.company_id, "company"),
                    "identifier": company_record.get("identifier"),
                    "name": owner.name if owner else None,
                },
                "contact": {"id": 1, "name": "Billing Contact"},
                "startDate": cw_datetime(agreement.start_date),
                "endDate": cw_datetime(agreement.end_date) if agreement.end_date else None,
                "noEndingDateFlag": agreement.end_date is None,
                "agreementStatus": "Expired" if expired else "Active",
                "billingCycle": {
                    "id": 2 if agreement.billing_period == "annual" else 1,
                    "name": "Annual" if agreement.billing_period == "annual" else "Monthly",
                },
            }
        for line in psa.lines:
            lid = _num_id(line.id, "line")
            key = line.source.key if line.source else None
            sandbox.additions[lid] = sandbox._addition_record(
                lid,
                _num_id(line.agreement_id, "agreement"),
                {
                    "product": {"id": _num_id(line.product_id, "product")},
                    "billCustomer": BILL_CUSTOMER[line.bill_option or "billable"],
                    **({} if line.taxable is None else {"taxableFlag": line.taxable}),
                    "quantity": line.quantity,
                    "unitPrice": line.unit_price,
                    "unitCost": line.unit_cost,
                    "effectiveDate": cw_datetime(line.effective_date),
                    "cancelledDate": cw_datetime(line.cancelled_date) if line.cancelled_date else None,
                    "serialNumber": codec.encode(key) if key else None,
                    "invoiceDescription": line.description,
                    "description": line.description[:SHORT_DESCRIPTION_MAX],
                    "prorateCurrentPeriodFlag": False,
                    "customFields": [sandbox.metered_field(line.metered)],
                },
            )
        ids = [*sandbox.companies, *sandbox.catalog, *sandbox.agreements, *sandbox.additions]
        sandbox._next_id = max([999, *ids]) + 1

        def invoiced() -> list[Any]:
            from engine.sandbox.demo import sandbox_psa_invoices

            return sandbox_psa_invoices(scenario)

        sandbox.invoiced_source = invoiced
        return sandbox

    def issued(self) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
        """(invoices, their product lines) as ConnectWise shows them: an agreement invoice [spec
        Invoice: `invoiceNumber` max 15, `type` "Agreement", `date` date-time, `company`,
        `currency`, `total`] and one product item per billed addition [spec ProductItem:
        `catalogItem` and `billableOption` required, `invoice`, `agreement`, `quantity`, `price`,
        `extPrice`]."""
        if self._issued is None:
            invoices: dict[int, dict[str, Any]] = {}
            items: dict[int, dict[str, Any]] = {}
            count: dict[int, int] = {}
            for line in self.invoiced_source():
                iid = _num_id(line.invoice_id, "invoice")
                cid = _num_id(line.company_id, "company")
                when = cw_datetime(line.invoice_date)
                head = invoices.setdefault(
                    iid,
                    {
                        "id": iid,
                        "invoiceNumber": line.invoice_number[:15],
                        "type": "Agreement",
                        "company": {"id": cid, "name": (self.companies.get(cid) or {}).get("name")},
                        "date": when,
                        "currency": {"id": 1, "currencyCode": line.currency},
                        "total": Decimal("0"),
                    },
                )
                head["total"] += line.amount
                product = _num_id(line.product_id or "0", "product")
                count[iid] = count.get(iid, 0) + 1
                item_id = iid * 1000 + count[iid]
                items[item_id] = {
                    "id": item_id,
                    "catalogItem": {
                        "id": product,
                        "identifier": (self.catalog.get(product) or {}).get("identifier"),
                    },
                    "description": line.description,
                    "quantity": line.quantity,
                    "price": line.unit_price,
                    "extPrice": line.amount,
                    "billableOption": "Billable",
                    "invoice": {"id": iid, "identifier": head["invoiceNumber"], "invoiceDate": when},
                    "agreement": {"id": _num_id(line.agreement_id, "agreement")}
                    if line.agreement_id
                    else None,
                    "company": {"id": cid},
                }
            self._issued = (invoices, items)
        return self._issued

    @staticmethod
    def metered_field(value: bool) -> dict[str, Any]:
        """The addition's `Metered` Checkbox custom field [spec CustomFieldValue]."""
        return {
            "id": METERED_FIELD_ID,
            "caption": METERED_CAPTION,
            "type": "Checkbox",
            "entryMethod": "EntryField",
            "numberOfDecimals": 0,
            "value": value,
        }

    def _addition_record(self, lid: int, aid: int, body: Mapping[str, Any]) -> dict[str, Any]:
        product = self.catalog.get(int(body["product"]["id"]), {})
        agreement = self.agreements.get(aid, {})
        fields = {int(f["id"]): f for f in body.get("customFields") or [] if f.get("id") is not None}
        metered = bool((fields.get(METERED_FIELD_ID) or {}).get("value") is True)
        record = {
            "id": lid,
            "product": {
                "id": int(body["product"]["id"]),
                "identifier": product.get("identifier"),
                "serializedFlag": False,
            },
            "billCustomer": body.get("billCustomer", "Billable"),
            "quantity": body.get("quantity", Decimal("0")),
            "lessIncluded": body.get("lessIncluded") or Decimal("0"),
            "unitPrice": body.get("unitPrice", product.get("price")),
            "unitCost": body.get("unitCost", product.get("cost")),
            "effectiveDate": body.get("effectiveDate"),
            "cancelledDate": body.get("cancelledDate"),
            # absent: the catalog item's taxableFlag (ASSUMED, as the product's default tax applies)
            "taxableFlag": body.get("taxableFlag", product.get("taxableFlag", True)),
            "serialNumber": body.get("serialNumber"),
            "invoiceDescription": body.get("invoiceDescription"),
            "description": body.get("description", product.get("description")),
            "agreementId": aid,
            "agreementStatus": agreement.get("agreementStatus", "Active"),
            # ASSUMED: an absent flag follows the agreement's proration, on by default.
            "prorateCurrentPeriodFlag": body.get("prorateCurrentPeriodFlag", True) is not False,
            "customFields": [self.metered_field(metered)],
            "_info": {
                "lastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "dateEntered": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }
        self._compute(record)
        return record

    @staticmethod
    def _compute(record: dict[str, Any]) -> None:
        """The values ConnectWise computes for an addition: extended price/cost, margin and, when
        `prorateCurrentPeriodFlag` is on, the prorate of the first partial month (days left in the
        month, change day counted, / days in the month)."""

        def dec(v: Any) -> Decimal:
            return Decimal(str(v)) if v is not None else Decimal("0")

        billable = record.get("billCustomer") == "Billable"
        billed = dec(record.get("quantity")) - dec(record.get("lessIncluded"))
        cents = Decimal("0.01")
        price = (
            (billed * dec(record.get("unitPrice"))).quantize(cents, ROUND_HALF_UP)
            if billable
            else Decimal("0")
        )
        cost = (billed * dec(record.get("unitCost"))).quantize(cents, ROUND_HALF_UP)
        record.update({"billedQuantity": billed, "extPrice": price, "extCost": cost, "margin": price - cost})
        start = record.get("effectiveDate")
        factor = Decimal("0")
        if record.get("prorateCurrentPeriodFlag") and start:
            day = date.fromisoformat(str(start)[:10])
            days = calendar.monthrange(day.year, day.month)[1]
            if day.day != 1:
                factor = Decimal(days - day.day + 1) / Decimal(days)
        prorate_price = (dec(record.get("unitPrice")) * factor).quantize(cents, ROUND_HALF_UP)
        prorate_cost = (dec(record.get("unitCost")) * factor).quantize(cents, ROUND_HALF_UP)
        record.update(
            {
                "proratePrice": prorate_price,
                "prorateCost": prorate_cost,
                "extendedProratePrice": (prorate_price * billed).quantize(cents, ROUND_HALF_UP)
                if billable
                else Decimal("0"),
                "extendedProrateCost": (prorate_cost * billed).quantize(cents, ROUND_HALF_UP),
            }
        )

    def invoiced(self, addition_id: int) -> tuple[Decimal, Decimal]:
        """(per period, once) that ConnectWise invoices for an addition: `extPrice` each period while
        active, plus the prorate it adds itself for the first partial month."""
        record = self.additions[int(addition_id)]
        return Decimal(str(record["extPrice"])), Decimal(str(record["extendedProratePrice"]))

    def _additions_of(self, aid: int) -> list[dict[str, Any]]:
        """The additions of one agreement, through an index by agreement (rebuilt whenever the set of
        additions changed, so tests may edit `additions` directly), as a database would answer."""
        index = self._index
        if (
            index is None
            or self._indexed != len(self.additions)
            or any(i not in self.additions for ids in index.values() for i in ids[:1])
        ):
            index = {}
            for lid, addition in self.additions.items():
                index.setdefault(addition["agreementId"], []).append(lid)
            self._index, self._indexed = index, len(self.additions)
        rows = (self.additions.get(lid) for lid in index.get(aid, ()))
        return [a for a in rows if a is not None and a["agreementId"] == aid]

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- what tests look at ---

    def lines_for(self, agreement_id: str | int) -> list[dict[str, Any]]:
        """The additions of an agreement as the API would return them (copies)."""
        aid = int(agreement_id)
        ordered = sorted(self.additions.values(), key=lambda a: a["id"])
        return [copy.deepcopy(a) for a in ordered if a["agreementId"] == aid]

    # --- serving ---

    @property
    def base(self) -> str:
        return f"/{self.codebase}/{API}"

    def _authorised(self, request: httpx.Request) -> httpx.Response | None:
        login = f"{self.company_id}+{self.public_key}:{self.private_key}"
        expected = base64.b64encode(login.encode()).decode()
        auth = request.headers.get("Authorization", "")
        if auth != f"Basic {expected}":
            return _error(401, "Unauthorized", "Authentication failed")
        if request.headers.get("clientId") != self.client_id:
            return _error(403, "Forbidden", "A valid clientId header is required")
        return None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        limited = self._rate_limited(request)
        if limited is not None:
            return limited
        return await self.faults.serve(request, self._route, too_many_requests)

    def _rate_limited(self, request: httpx.Request) -> httpx.Response | None:
        """A rolling window of `rate_limit` (requests, seconds), when set: refused with a 429 that
        says how long until the oldest request leaves the window."""
        if self.rate_limit is None:
            return None
        limit, seconds = self.rate_limit
        now = self._clock()
        while self._starts and now - self._starts[0] >= seconds:
            self._starts.popleft()
        if len(self._starts) >= limit:
            return too_many_requests(request, float(-(-(self._starts[0] + seconds - now) // 1)))
        self._starts.append(now)
        return None

    def _route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.site:
            return httpx.Response(404, text="Not Found")
        path = request.url.path
        match = re.fullmatch(r"/login/companyinfo/([^/]+)/?", path)
        if match and request.method == "GET":
            if match[1].lower() != self.company_id.lower():
                return httpx.Response(200, content=b"null", headers={"Content-Type": "application/json"})
            return _json(
                200,
                {
                    "CompanyName": "Sandbox MSP",
                    "Codebase": f"{self.codebase}/",
                    "VersionCode": "v2026.4",
                    "VersionNumber": "v4.6.2026.4",
                    "CompanyID": self.company_id,
                    "IsCloud": True,
                    "SiteUrl": self.site,
                },
            )
        if not path.startswith(self.base + "/"):
            return _error(404, "NotFound", f"The resource {path} was not found")
        denied = self._authorised(request)
        if denied is not None:
            return denied
        rest = path[len(self.base) :]
        method = request.method
        try:
            if rest == "/company/companies":
                if method == "GET":
                    return self._list(request, list(self.companies.values()))
                if method == "POST":
                    return self._create_company(request)
            if rest == "/procurement/catalog" and method == "GET":
                return self._list(request, list(self.catalog.values()))
            if rest == "/procurement/catalog" and method == "POST":
                return self._create_catalog_item(request)
            if rest == "/procurement/subcategories" and method == "GET":
                return self._list(request, list(self.subcategories.values()))
            if rest == "/procurement/types" and method == "GET":
                return self._list(request, list(self.product_types.values()))
            if rest == "/finance/agreements" and method == "GET":
                records = list(self.agreements.values())
                company = re.search(
                    r"(?:^|\s)company/id\s*=\s*(\d+)", request.url.params.get("conditions", "")
                )
                if company:  # a database would use its index: narrow first, the conditions still apply
                    records = [r for r in records if (r.get("company") or {}).get("id") == int(company[1])]
                return self._list(request, records)
            if rest == "/finance/invoices" and method == "GET":
                return self._list(request, list(self.issued()[0].values()))
            if (m := re.fullmatch(r"/finance/invoices/(\d+)", rest)) and method == "GET":
                invoice = self.issued()[0].get(int(m[1]))
                if invoice is None:
                    return _error(404, "NotFound", f"Invoice recID {m[1]} not found")
                return _json(200, invoice)
            if rest == "/procurement/products" and method == "GET":
                return self._list(request, list(self.issued()[1].values()))
            if (m := re.fullmatch(r"/procurement/products/(\d+)", rest)) and method == "GET":
                item = self.issued()[1].get(int(m[1]))
                if item is None:
                    return _error(404, "NotFound", f"Product recID {m[1]} not found")
                return _json(200, item)
            if m := re.fullmatch(r"/finance/agreements/(\d+)", rest):
                agreement = self.agreements.get(int(m[1]))
                if agreement is None:
                    return _error(404, "NotFound", f"Agreement recID {m[1]} not found")
                if method == "GET":
                    return _json(200, agreement)
            if m := re.fullmatch(r"/finance/agreements/(\d+)/additions", rest):
                aid = int(m[1])
                if aid not in self.agreements:
                    return _error(404, "NotFound", f"Agreement recID {aid} not found")
                if method == "GET":
                    return self._list(request, self._additions_of(aid))
                if method == "POST":
                    return self._create_addition(aid, request)
            if m := re.fullmatch(r"/finance/agreements/(\d+)/additions/(\d+)", rest):
                aid, lid = int(m[1]), int(m[2])
                addition = self.additions.get(lid)
                if aid not in self.agreements or addition is None or addition["agreementId"] != aid:
                    return _error(404, "NotFound", f"Agreement addition recID {lid} not found")
                if method == "GET":
                    return _json(200, addition)
                if method == "PATCH":
                    return self._patch_addition(addition, request)
        except ValueError as exc:
            return _error(400, "InvalidRequest", f"The request is invalid: {exc}")
        if not any(re.fullmatch(route, rest) for route in ROUTES):
            return _error(404, "NotFound", f"The resource {path} was not found")
        return _error(
            405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
        )

    def _list(self, request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        params = request.url.params
        conditions_text = params.get("conditions", "")
        try:
            conditions = parse_conditions(conditions_text)
        except ValueError as exc:
            return _error(400, "InvalidRequest", f"Expected a condition near '{exc}'")
        selected = sorted((r for r in records if matches(r, conditions)), key=lambda r: r["id"])
        try:  # [spec] page, pageSize: int32
            page_size = int(params.get("pageSize", "25"))
            page = int(params.get("page", "1"))
        except ValueError:
            return _error(400, "InvalidRequest", "page and pageSize must be whole numbers")
        if page_size < 1 or page < 1:  # ASSUMED wording; pages are 1-based [doc PSA-Pagination]
            return _error(400, "InvalidRequest", "page and pageSize must be at least 1")
        page_size = min(page_size, MAX_PAGE_SIZE)
        chunk = selected[(page - 1) * page_size : page * page_size]
        last = max(1, -(-len(selected) // page_size))
        links = []

        def link(number: int, rel: str) -> str:
            query = {k: v for k, v in params.multi_items() if k not in ("page", "pageSize")}
            query.update({"pageSize": str(page_size), "page": str(number)})
            url = request.url.copy_with(query=urlencode(query).encode())
            return f'<{url}>; rel="{rel}"'

        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        return _json(200, chunk, headers)

    def _body(self, request: httpx.Request) -> Any:
        try:
            return loads(request.content)
        except ValueError as exc:
            raise ValueError(f"the body is not JSON ({exc})") from None

    # [spec CatalogItem] required fields and enums; lengths [APIS §2] (identifier 75, description 60,
    # customerDescription 6000)
    _CATALOG_REQUIRED = ("identifier", "description", "subcategory", "type", "customerDescription")
    _CATALOG_LENGTHS = {"identifier": 75, "description": 60, "customerDescription": 6000}
    _PRODUCT_CLASSES = ("Agreement", "Bundle", "Inventory", "NonInventory", "Service")

    def _create_catalog_item(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if not isinstance(body, dict):
            return _error(400, "InvalidRequest", "The request body must be an object")
        if "id" in body:
            return _invalid("catalogItem", "id", "ReadOnly", "The id field is read-only.")
        for field in self._CATALOG_REQUIRED:
            if body.get(field) in (None, "", {}):
                return _invalid("catalogItem", field, "NullValue", f"The {field} field is required.")
        for field, limit in self._CATALOG_LENGTHS.items():
            if not isinstance(body[field], str) or len(body[field]) > limit:
                return _invalid(
                    "catalogItem",
                    field,
                    "MaxLength",
                    f"The field {field} must be a string with a maximum length of {limit}.",
                )
        for field, known in (("subcategory", self.subcategories), ("type", self.product_types)):
            ref = body[field]
            if not isinstance(ref, dict) or not isinstance(ref.get("id"), int) or ref["id"] not in known:
                return _invalid("catalogItem", field, "InvalidObject", f"The {field} is not valid.")
        if body.get("productClass") is not None and body["productClass"] not in self._PRODUCT_CLASSES:
            return _invalid("catalogItem", "productClass", "InvalidValue", "productClass is not valid.")
        for field in ("price", "cost", "recurringRevenue", "recurringCost"):
            value = body.get(field)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float | Decimal)
            ):
                return _invalid("catalogItem", field, "InvalidValue", f"{field} must be a number.")
        if any(str(c["identifier"]).lower() == body["identifier"].lower() for c in self.catalog.values()):
            return _invalid("catalogItem", "identifier", "ObjectExists", "The identifier is already in use.")
        pid = self.new_id()
        record = {k: v for k, v in body.items() if v is not None}
        record["id"] = pid
        record["subcategory"] = dict(self.subcategories[body["subcategory"]["id"]])
        record["type"] = dict(self.product_types[body["type"]["id"]])
        record.setdefault("inactiveFlag", False)
        self.catalog[pid] = record
        self.writes += 1
        return _json(201, record)

    def _create_company(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if not isinstance(body, dict):
            return _error(400, "InvalidRequest", "The request body must be an object")
        for field in ("identifier", "name"):
            if not body.get(field):  # [spec] Company.required
                return _invalid("company", field, "NullValue", f"The {field} field is required.")
            if len(str(body[field])) > 156:  # [spec] "Max length: 156;"
                return _invalid(
                    "company",
                    field,
                    "MaxLength",
                    f"The field {field} must be a string with a maximum length of 156.",
                )
        if any(c["identifier"].lower() == str(body["identifier"]).lower() for c in self.companies.values()):
            return _invalid("company", "identifier", "ObjectExists", "The identifier is already in use.")
        cid = self.new_id()
        record = {
            "id": cid,
            "identifier": body["identifier"],
            "name": body["name"],
            "status": {"id": 1, "name": "Active"},
            "deletedFlag": False,
        }
        self.companies[cid] = record
        self.writes += 1
        return _json(201, record)

    def _validate_addition(self, body: Mapping[str, Any], *, partial: bool) -> httpx.Response | None:
        unknown = sorted(set(body) - ADDITION_FIELDS)
        if unknown:  # ASSUMED: refused rather than ignored, so a misspelt field never passes
            return _invalid(
                "addition", unknown[0], "InvalidField", f"{unknown[0]} is not a field of addition."
            )
        computed = sorted((set(body) & COMPUTED) - ({"agreementStatus"} if partial else set()))
        if computed or (partial and "agreementStatus" in body):
            field = (computed or ["agreementStatus"])[0]
            return _invalid("addition", field, "ReadOnly", f"The field {field} is read only.")
        if not partial:
            product = body.get("product")
            if not isinstance(product, Mapping) or product.get("id") is None:  # [spec] required
                return _invalid("addition", "product", "NullValue", "The product field is required.")
            if not body.get("billCustomer"):  # [spec] required
                return _invalid(
                    "addition", "billCustomer", "NullValue", "The billCustomer field is required."
                )
        product = body.get("product")
        if isinstance(product, Mapping) and product.get("id") is not None:
            item = self.catalog.get(int(product["id"]))
            if item is None:
                return _invalid(
                    "addition", "product", "InvalidObject", f"Product recID {product['id']} not found."
                )
        if body.get("billCustomer") not in (None, "Billable", "DoNotBill", "NoCharge"):  # [spec] enum
            return _invalid("addition", "billCustomer", "InvalidValue", "billCustomer is not a valid value.")
        for field, limit in (
            ("serialNumber", SERIAL_MAX),
            ("invoiceDescription", INVOICE_DESCRIPTION_MAX),
            ("description", SHORT_DESCRIPTION_MAX),
        ):
            value = body.get(field)
            if value is not None and not isinstance(value, str):
                return _invalid("addition", field, "InvalidValue", f"The field {field} must be a string.")
            if value is not None and len(value) > limit:  # [spec] "Max length" (description: ASSUMED)
                return _invalid(
                    "addition",
                    field,
                    "MaxLength",
                    f"The field {field} must be a string with a maximum length of {limit}.",
                )
        for field in ("quantity", "unitPrice", "unitCost", "lessIncluded"):  # [spec] double
            value = body.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | Decimal)):
                return _invalid("addition", field, "InvalidValue", f"The field {field} must be a number.")
        for field in ("taxableFlag", "prorateCurrentPeriodFlag", "purchaseItemFlag", "specialOrderFlag"):
            if body.get(field) is not None and not isinstance(body[field], bool):  # [spec] boolean
                return _invalid(
                    "addition", field, "InvalidValue", f"The field {field} must be true or false."
                )
        for field in ("effectiveDate", "cancelledDate"):
            value = body.get(field)
            if value is not None and not (isinstance(value, str) and _CW_DATETIME.fullmatch(value)):
                return _invalid(
                    "addition",
                    field,
                    "InvalidValue",
                    f"The field {field} is not a valid date (yyyy-MM-ddTHH:mm:ssZ).",
                )
            if value is not None:
                try:
                    date.fromisoformat(value[:10])
                except ValueError:
                    return _invalid(
                        "addition", field, "InvalidValue", f"The field {field} is not a valid date."
                    )
        fields = body.get("customFields")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, Mapping) for f in fields):
                return _invalid("addition", "customFields", "InvalidValue", "customFields must be a list.")
            for custom in fields:
                if custom.get("id") != METERED_FIELD_ID:  # custom fields are matched by id
                    return _invalid(
                        "addition",
                        "customFields",
                        "InvalidObject",
                        f"Custom field recID {custom.get('id')} not found.",
                    )
                if not isinstance(custom.get("value"), bool | None):
                    return _invalid(
                        "addition",
                        "customFields",
                        "InvalidValue",
                        "The Metered custom field is a Checkbox: true or false.",
                    )
        return None

    def _create_addition(self, aid: int, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if not isinstance(body, dict):
            return _error(400, "InvalidRequest", "The request body must be an object")
        invalid = self._validate_addition(body, partial=False)
        if invalid is not None:
            return invalid
        if body.get("agreementId") is not None and int(body["agreementId"]) != aid:
            return _invalid(
                "addition", "agreementId", "InvalidValue", "agreementId does not match the agreement."
            )
        lid = self.new_id()
        record = self._addition_record(lid, aid, body)
        self.additions[lid] = record
        if self._index is not None and self._indexed == len(self.additions) - 1:
            self._index.setdefault(aid, []).append(lid)
            self._indexed += 1
        self.writes += 1
        return _json(201, record)

    WRITABLE = frozenset(
        {
            "quantity",
            "unitPrice",
            "unitCost",
            "cancelledDate",
            "effectiveDate",
            "serialNumber",
            "invoiceDescription",
            "description",
            "billCustomer",
            "taxableFlag",
            "lessIncluded",
            "prorateCurrentPeriodFlag",
            "customFields",
            "uom",
            "sequenceNumber",
        }
    )

    def _patch_addition(self, addition: dict[str, Any], request: httpx.Request) -> httpx.Response:
        ops = self._body(request)
        if not isinstance(ops, list) or not ops:
            return _error(400, "InvalidRequest", "The request body must be a list of patch operations")
        changes: dict[str, Any] = {}
        for op in ops:
            if not isinstance(op, Mapping) or op.get("op") not in ("add", "replace", "remove"):
                return _error(400, "InvalidRequest", "Each operation needs an op of add, replace or remove")
            field = str(op.get("path") or "").lstrip("/")
            if field in COMPUTED:
                return _invalid("addition", field, "ReadOnly", f"The field {field} is read only.")
            if field not in self.WRITABLE:
                return _invalid(
                    "addition", field or "path", "InvalidField", f"The path {op.get('path')!r} is not valid."
                )
            if op["op"] != "remove" and "value" not in op:
                return _error(400, "InvalidRequest", f"The {op['op']} operation for {field} needs a value")
            changes[field] = None if op["op"] == "remove" else op["value"]
        invalid = self._validate_addition(changes, partial=True)
        if invalid is not None:
            return invalid
        if "customFields" in changes:
            changes["customFields"] = [
                self.metered_field(bool(next((f.get("value") for f in changes["customFields"] or []), False)))
            ]
        addition.update(changes)
        addition["_info"] = {
            **addition.get("_info", {}),
            "lastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self._compute(addition)
        self.writes += 1
        return _json(200, addition)
