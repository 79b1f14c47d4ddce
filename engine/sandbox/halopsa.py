"""A stateful HaloPSA for the sandbox and the tests, served through `httpx.MockTransport(sandbox.handle)`
so `HaloConnector` runs unchanged.

It speaks what the connector uses (shared/APIS.md §3): `GET /api/authinfo`, `POST /auth/token?tenant=…`
(form-encoded client credentials), and with a Bearer token: `/api/Client` (GET, POST), `/api/Item`,
`/api/RecurringInvoice` (`includelines`, `client_id`), `/api/RecurringInvoice/{id}` (`includedetails`),
`POST /api/RecurringInvoice/Lines` and `POST /api/RecurringInvoice/updatelines` (JSON arrays; an
element with an `id` updates that line). Lists page with `pageinate=true&page_size=…&page_no=…` and
are wrapped as `{"record_count": N, "<key>": [...]}`. A POST of one element answers with the saved
record, of several with the list. Halo's error bodies are not documented: errors come back as a JSON
string with a 400 (validation) or 401 (token), token errors as OAuth `{"error": …}`.

As strict as Halo where it is known (each rule cites its source beside the code): writes answer 200
[spec: every POST's only response is "200 Success"]; unknown routes 404 and wrong methods 405 with
an `Allow` header and no body (ASSUMED: ASP.NET Core's defaults); a line needs `ihid` and `_itemid`;
the spec's readOnly InvoiceDetail fields are refused; `page_size`/`page_no` must be whole numbers ≥ 1
(ignored without `pageinate=true`). `rate_limit=(300, 300)` turns on Halo's hosted limit — 300
requests per rolling 5 minutes per tenant, shared with every other integration — answered with 429
and "Rate Limit Reached - 300 Requests per rolling 5 minute window", no Retry-After [issue
KelvinTegelaar/PowerShellWarrantyReports#51, homotechsual/HaloAPI#31]; off unless a test sets it
(`other_integrations` counts the tenant's other traffic). What Halo invoices for a line: `qty_order ×
unit_price` each period (once for `onetimecharge`), plus its own pro-rata of a first partial month
unless `prorata_next_invoice` is false (ASSUMED default on) — see `invoiced()`. Whether Halo keeps
`comment_1` as written is unproven: `keeps_comment_1=False` / `comment_limit=N` model a Halo that
drops or truncates it, for the connector's second match.

Faults are consulted before every request: refusals (429/503) do nothing, a 500-after-apply or a lost
response (`httpx.ReadTimeout`) strikes after the write was applied. `expire_tokens()` invalidates every
issued token (the next call gets a 401), for refresh tests.
"""

from __future__ import annotations

import calendar
import copy
import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx

from engine.connectors.connectwise import KeyCodec, json_bytes
from engine.connectors.halopsa import KEY_FIELD, KEY_MAX, halo_datetime
from engine.connectors.http import loads
from engine.sandbox.faults import Faults
from engine.scenario import Scenario


def _num_id(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Halo sandbox: {what} id {value!r} is not numeric") from None


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, content=json_bytes(body), headers={"Content-Type": "application/json"})


def _bad(message: str) -> httpx.Response:
    return _json(400, message)


RATE_LIMIT_MESSAGE = "Rate Limit Reached - 300 Requests per rolling 5 minute window"


def too_many_requests(_: httpx.Request, retry_after: float = 0) -> httpx.Response:
    """Halo's 429: its message as reported by users, and no Retry-After [APIS §3.4] — unless a test's
    `Faults(retry_after=…)` asks for one (Halo itself sends none)."""
    headers = {"Content-Type": "text/plain"}
    if retry_after > 0:
        headers["Retry-After"] = f"{retry_after:g}"
    return httpx.Response(429, text=RATE_LIMIT_MESSAGE, headers=headers)


ROUTES = {  # path (lower case) → methods served
    "/api/authinfo": ("GET",),
    "/auth/token": ("POST",),
    "/api/client": ("GET", "POST"),
    "/api/item": ("GET",),
    "/api/recurringinvoice": ("GET",),
    "/api/recurringinvoice/lines": ("POST",),
    "/api/recurringinvoice/updatelines": ("POST",),
    "/api/invoice": ("GET",),
}
READ_ONLY = frozenset(
    {"discount_converted", "net_amount_converted", "total_price_converted", "total_net_total"}
)  # [spec] InvoiceDetail readOnly


LINE_FIELDS = frozenset(
    {
        "id",
        "ihid",
        "_itemid",
        "qty_order",
        "unit_price",
        "unit_cost",
        "startdate",
        "enddate",
        "item_shortdescription",
        "item_longdescription",
        "onetimecharge",
        "is_meter",
        "comment_1",
        "comment_2",
        "recurring_invoice_id",
        "item_code",
        "nominal_code",
        "tax_code",
        "sequenceid",
        "isinactive",
        "autorenew",
        "billingperiod",
        "discount_perc",
        "hide_on_pdf",
        "contract_id",
        "prorata_next_invoice",
    }
)


class HaloSandbox:
    """HaloPSA in memory. `handle` is the MockTransport handler."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        host: str = "sandbox.halopsa.com",
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        tenant: str = "sandbox",
        token_lifetime: int = 3600,
        rate_limit: tuple[int, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        keeps_comment_1: bool = True,
        comment_limit: int | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.rate_limit = rate_limit
        self._clock = clock
        self._starts: deque[float] = deque()
        self.other_integrations = 0  # requests the tenant's other integrations made in the window
        self.keeps_comment_1 = keeps_comment_1
        self.comment_limit = comment_limit
        self.host = host
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.token_lifetime = token_lifetime
        self.clients: dict[int, dict[str, Any]] = {}
        self.items: dict[int, dict[str, Any]] = {}
        self.headers: dict[int, dict[str, Any]] = {}
        self.lines: dict[int, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self.writes = 0
        self.requests: list[httpx.Request] = []
        self._ids = itertools.count(5000)
        # What Halo has invoiced (engine.margin.psa_invoices.PsaInvoiceLine), built on first read.
        self.invoiced_source: Callable[[], list[Any]] = list
        self._issued: dict[int, dict[str, Any]] | None = None

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    # --- loading ---

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, faults: Faults | None = None, **credentials: Any
    ) -> HaloSandbox:
        sandbox = cls(faults=faults, **credentials)
        codec = KeyCodec(KEY_MAX)
        psa = scenario.psa
        for company in psa.companies:
            cid = _num_id(company.id, "client")
            sandbox.clients[cid] = {"id": cid, "name": company.name, "inactive": False, "toplevel_id": 1}
        for product in psa.products:
            iid = _num_id(product.id, "item")
            sandbox.items[iid] = {
                "id": iid,
                "name": product.name,
                "description": product.name,
                "internalreference": product.sku,
                "baseprice": product.unit_price,
                "costprice": product.unit_cost,
                "recurringprice": product.unit_price,
                "recurringcost": product.unit_cost,
                "isrecurringitem": True,
            }
        for agreement in psa.agreements:
            hid = _num_id(agreement.id, "recurring invoice")
            client = sandbox.clients.get(_num_id(agreement.company_id, "client"), {})
            sandbox.headers[hid] = {
                "id": hid,
                "client_id": int(agreement.company_id),
                "client_name": client.get("name"),
                "reference": agreement.name,
                "is_recurring_invoice": True,
                "startdate": halo_datetime(agreement.start_date),
                "enddate": halo_datetime(agreement.end_date) if agreement.end_date else None,
                "period": 12 if agreement.billing_period == "annual" else 1,
                "disabled": False,
            }
        for line in psa.lines:
            lid = _num_id(line.id, "line")
            key = line.source.key if line.source else None
            sandbox.lines[lid] = sandbox._line_record(
                lid,
                {
                    "ihid": _num_id(line.agreement_id, "recurring invoice"),
                    "_itemid": _num_id(line.product_id, "item"),
                    "qty_order": line.quantity,
                    "unit_price": line.unit_price,
                    "unit_cost": line.unit_cost,
                    "startdate": halo_datetime(line.effective_date),
                    "enddate": halo_datetime(line.cancelled_date) if line.cancelled_date else None,
                    "item_shortdescription": line.description,
                    "item_longdescription": line.description,
                    "onetimecharge": line.kind == "one_time",
                    "is_meter": line.metered,
                    "prorata_next_invoice": False,
                    KEY_FIELD: codec.encode(key) if key else None,
                },
            )
        start = max([4999, *sandbox.clients, *sandbox.items, *sandbox.headers, *sandbox.lines]) + 1
        sandbox._ids = itertools.count(start)

        def invoiced() -> list[Any]:
            from engine.sandbox.demo import sandbox_psa_invoices

            return sandbox_psa_invoices(scenario)

        sandbox.invoiced_source = invoiced
        return sandbox

    def issued_invoices(self) -> dict[int, dict[str, Any]]:
        """The invoices Halo issued, as `GET /Invoice?includelines=true` shows them [spec
        InvoiceHeader / InvoiceDetail]: one per invoice id, its lines naming the recurring invoice
        line they came from (`recurring_invoice_line_id`) and their `net_total`."""
        if self._issued is None:
            self._issued = {}
            for line in self.invoiced_source():
                iid = _num_id(line.invoice_id, "invoice")
                client = self.clients.get(_num_id(line.company_id, "client"), {})
                header = self._issued.setdefault(
                    iid,
                    {
                        "id": iid,
                        "invoicenumber": line.invoice_number,
                        "invoice_date": halo_datetime(line.invoice_date),
                        "client_id": int(line.company_id),
                        "client_name": client.get("name"),
                        "total": Decimal("0"),
                        "lines": [],
                    },
                )
                header["total"] += line.amount
                header["lines"].append(
                    {
                        "id": iid * 1000 + len(header["lines"]) + 1,
                        "ihid": iid,
                        "_itemid": int(line.product_id) if line.product_id else None,
                        "item_shortdescription": line.description,
                        "qty_order": line.quantity,
                        "unit_price": line.unit_price,
                        "net_total": line.amount,
                        "recurring_invoice_id": int(line.agreement_id) if line.agreement_id else None,
                        "recurring_invoice_line_id": int(line.line_id) if line.line_id else None,
                    }
                )
        return self._issued

    def _line_record(self, lid: int, body: Mapping[str, Any]) -> dict[str, Any]:
        item = self.items.get(int(body["_itemid"]), {})
        record: dict[str, Any] = {
            "id": lid,
            "ihid": int(body["ihid"]),
            "recurring_invoice_id": int(body["ihid"]),
            "_itemid": int(body["_itemid"]),
            "item_code": item.get("internalreference"),
            "qty_order": Decimal("1"),
            "unit_price": item.get("recurringprice"),
            "unit_cost": item.get("recurringcost"),
            "startdate": None,
            "enddate": None,
            "item_shortdescription": item.get("name"),
            "item_longdescription": item.get("description"),
            "onetimecharge": False,
            "is_meter": False,
            "comment_1": None,
            "comment_2": None,
            "isinactive": False,
        }
        record.update({k: v for k, v in body.items() if k in LINE_FIELDS and k != "id"})
        record["id"] = lid
        record.setdefault("prorata_next_invoice", True)  # ASSUMED: Halo pro-ratas unless told not to
        self._keep_comment(record)
        self._compute(record)
        return record

    def _keep_comment(self, record: dict[str, Any]) -> None:
        if not self.keeps_comment_1:
            record[KEY_FIELD] = None
        elif self.comment_limit is not None and isinstance(record.get(KEY_FIELD), str):
            record[KEY_FIELD] = record[KEY_FIELD][: self.comment_limit]

    @staticmethod
    def _compute(record: dict[str, Any]) -> None:
        """Halo's pro-rata of a first partial month (days left, start day counted / days in the month)
        when `prorata_next_invoice` is on."""
        start = record.get("startdate")
        factor = Decimal("0")
        if record.get("prorata_next_invoice") and start and not record.get("onetimecharge"):
            day = date.fromisoformat(str(start)[:10])
            days = calendar.monthrange(day.year, day.month)[1]
            if day.day != 1:
                factor = Decimal(days - day.day + 1) / Decimal(days)
        price = Decimal(str(record.get("unit_price") or 0))
        record["prorata_quantity"] = record.get("qty_order") if factor else Decimal("0")
        record["prorata_unit_price"] = (price * factor).quantize(Decimal("0.01"), ROUND_HALF_UP)

    def invoiced(self, line_id: int) -> tuple[Decimal, Decimal]:
        """(per period, once) that Halo invoices for a line: qty_order × unit_price each period (or once
        for a one-time charge), plus its own pro-rata when `prorata_next_invoice` is on."""
        record = self.lines[int(line_id)]
        amount = Decimal(str(record.get("qty_order") or 0)) * Decimal(str(record.get("unit_price") or 0))
        prorata = Decimal(str(record.get("prorata_quantity") or 0)) * Decimal(
            str(record["prorata_unit_price"])
        )
        if record.get("onetimecharge"):
            return Decimal("0"), amount + prorata
        return amount, prorata

    # --- what tests look at ---

    def lines_for(self, agreement_id: str | int) -> list[dict[str, Any]]:
        """The lines of a recurring invoice as the API would return them (copies)."""
        hid = int(agreement_id)
        ordered = sorted(self.lines.values(), key=lambda r: r["id"])
        return [copy.deepcopy(line) for line in ordered if line["ihid"] == hid]

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # --- serving ---

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._rate_limited():
            return too_many_requests(request)
        return await self.faults.serve(request, self._route, too_many_requests)

    def _rate_limited(self) -> bool:
        """The rolling window per tenant, shared with the tenant's other integrations."""
        if self.rate_limit is None:
            return False
        limit, seconds = self.rate_limit
        now = self._clock()
        while self._starts and now - self._starts[0] >= seconds:
            self._starts.popleft()
        if len(self._starts) + self.other_integrations >= limit:
            return True
        self._starts.append(now)
        return False

    def _route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.host:
            return httpx.Response(404, text="Not Found")
        path = request.url.path.rstrip("/")
        low = path.lower()
        method = request.method
        if low == "/api/authinfo" and method == "GET":
            return _json(
                200,
                {
                    "auth_url": f"{self.base_url}/auth",
                    "tenant_id": self.tenant,
                    "resource_url": f"{self.base_url}/api",
                },
            )
        if low == "/auth/token" and method == "POST":
            return self._token(request)
        if not low.startswith("/api/"):
            return httpx.Response(404)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :] not in self.tokens:
            return httpx.Response(401, text="", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        rest = path[len("/api") :]
        key = rest.lower()
        try:
            if key == "/client":
                if method == "GET":
                    return self._list(request, self.clients.values(), "clients")
                if method == "POST":
                    return self._post_clients(request)
            if key == "/item" and method == "GET":
                return self._list(request, self.items.values(), "items")
            if key == "/item" and method == "POST":
                return self._post_items(request)
            if key == "/recurringinvoice" and method == "GET":
                return self._list_headers(request)
            if m := re.fullmatch(r"/recurringinvoice/(\d+)", key):
                header = self.headers.get(int(m[1]))
                if header is None:
                    return httpx.Response(
                        404,
                        content=json_bytes(f"Recurring invoice {m[1]} not found"),
                        headers={"Content-Type": "application/json"},
                    )
                if method == "GET":
                    return _json(200, self._header_view(header, with_lines=True))
            if key == "/invoice" and method == "GET":
                return self._list_issued(request)
            if (m := re.fullmatch(r"/invoice/(\d+)", key)) and method == "GET":
                invoice = self.issued_invoices().get(int(m[1]))
                if invoice is None:
                    return httpx.Response(
                        404,
                        content=json_bytes(f"Invoice {m[1]} not found"),
                        headers={"Content-Type": "application/json"},
                    )
                return _json(200, copy.deepcopy(invoice))
            if key == "/recurringinvoice/lines" and method == "POST":
                return self._post_lines(request, update_only=False)
            if key == "/recurringinvoice/updatelines" and method == "POST":
                return self._post_lines(request, update_only=True)
        except ValueError as exc:
            return _bad(f"Invalid request: {exc}")
        if re.fullmatch(r"/api/invoice/\d+", low):
            return httpx.Response(405, headers={"Allow": "GET, DELETE"})  # [spec] /Invoice/{id}
        if re.fullmatch(r"/api/recurringinvoice/\d+", low):
            return httpx.Response(405, headers={"Allow": "GET, DELETE"})
        if low in ROUTES:
            return httpx.Response(405, headers={"Allow": ", ".join(ROUTES[low])})
        return httpx.Response(404)

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("tenant") != self.tenant:
            return _json(400, {"error": "invalid_request", "error_description": "Unknown tenant"})
        if not request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return _json(400, {"error": "invalid_request", "error_description": "Expected a form post"})
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _json(401, {"error": "invalid_client"})
        self.tokens_issued += 1
        token = f"halo-token-{self.tokens_issued}"
        self.tokens.add(token)
        return _json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "scope": form.get("scope", "all"),
            },
        )

    def _page(self, request: httpx.Request, rows: list[dict[str, Any]], key: str) -> httpx.Response:
        params = request.url.params
        rows = sorted(rows, key=lambda r: r["id"])
        total = len(rows)
        if params.get("pageinate", "").lower() == "true":
            size = int(params.get("page_size", "50"))
            number = int(params.get("page_no", "1"))
            if size < 1 or number < 1:
                return _bad("page_size and page_no must be positive")
            chunk = rows[(number - 1) * size : number * size]
            return _json(200, {"page_no": number, "page_size": size, "record_count": total, key: chunk})
        if params.get("count"):
            rows = rows[: int(params["count"])]
        return _json(200, {"record_count": total, key: rows})

    def _list(self, request: httpx.Request, records: Any, key: str) -> httpx.Response:
        return self._page(request, [copy.deepcopy(r) for r in records], key)

    def _header_view(self, header: Mapping[str, Any], *, with_lines: bool) -> dict[str, Any]:
        view = copy.deepcopy(dict(header))
        if with_lines:
            view["lines"] = self.lines_for(header["id"])
        return view

    def _list_headers(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        with_lines = params.get("includelines", "").lower() == "true"
        rows = [self._header_view(h, with_lines=with_lines) for h in self.headers.values()]
        if params.get("client_id"):
            rows = [h for h in rows if str(h["client_id"]) == params["client_id"]]
        return self._page(request, rows, "invoices")

    def _list_issued(self, request: httpx.Request) -> httpx.Response:
        """`GET /Invoice`: `client_id` filters [spec], lines only with `includelines=true` [spec]."""
        params = request.url.params
        with_lines = params.get("includelines", "").lower() == "true"
        rows = []
        if params.get("client_id") and not params["client_id"].isdigit():
            raise ValueError(f"client_id {params['client_id']!r} is not an integer")  # [spec] int
        for invoice in self.issued_invoices().values():
            if params.get("client_id") and str(invoice["client_id"]) != params["client_id"]:
                continue
            view = copy.deepcopy(invoice)
            if not with_lines:
                view.pop("lines")
            rows.append(view)
        return self._page(request, rows, "invoices")

    def _array(self, request: httpx.Request) -> list[Any]:
        try:
            body = loads(request.content)
        except ValueError as exc:
            raise ValueError(f"the body is not JSON ({exc})") from None
        if not isinstance(body, list) or not body:
            raise ValueError("the body must be a non-empty JSON array")
        return body

    @staticmethod
    def _answer(saved: list[dict[str, Any]]) -> httpx.Response:
        return _json(200, saved[0] if len(saved) == 1 else saved)  # [spec] 200 "Success"

    def _post_clients(self, request: httpx.Request) -> httpx.Response:
        saved = []
        for element in self._array(request):
            if not isinstance(element, Mapping):
                return _bad("Each element must be an object")
            if element.get("id"):
                client = self.clients.get(int(element["id"]))
                if client is None:
                    return _bad(f"Client {element['id']} not found")
                client.update({k: v for k, v in element.items() if k in ("name", "inactive")})
                saved.append(copy.deepcopy(client))
                continue
            if not str(element.get("name") or "").strip():
                return _bad("Please enter a Name")
            cid = next(self._ids)
            self.clients[cid] = {"id": cid, "name": element["name"], "inactive": False, "toplevel_id": 1}
            saved.append(copy.deepcopy(self.clients[cid]))
        self.writes += 1
        return self._answer(saved)

    # [spec Item] types; ASSUMED: Halo's "Please enter a Name" wording, as for a client
    _ITEM_NUMBERS = ("baseprice", "costprice", "recurringprice", "recurringcost")
    _ITEM_FLAGS = ("isrecurringitem", "taxable")
    _ITEM_TEXTS = ("name", "description", "internalreference")

    def _post_items(self, request: httpx.Request) -> httpx.Response:
        saved = []
        for element in self._array(request):
            if not isinstance(element, Mapping):
                return _bad("Each element must be an object")
            if element.get("id"):
                return _bad("trueup's sandbox creates items only")  # updates are not used
            unknown = sorted(set(element) - {*self._ITEM_NUMBERS, *self._ITEM_FLAGS, *self._ITEM_TEXTS})
            if unknown:
                return _bad(f"Unknown Item field(s): {', '.join(unknown)}")
            if not str(element.get("name") or "").strip():
                return _bad("Please enter a Name")
            for name in self._ITEM_NUMBERS:
                value = element.get(name)
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float | Decimal)
                ):
                    return _bad(f"{name}: not a number")
            for name in self._ITEM_FLAGS:
                if element.get(name) is not None and not isinstance(element[name], bool):
                    return _bad(f"{name}: not a boolean")
            for name in self._ITEM_TEXTS:
                if element.get(name) is not None and not isinstance(element[name], str):
                    return _bad(f"{name}: not a string")
            iid = next(self._ids)
            record = {"id": iid, "description": element.get("description") or element["name"]}
            record.update({k: v for k, v in element.items() if v is not None})
            record.setdefault("isrecurringitem", False)
            self.items[iid] = record
            saved.append(copy.deepcopy(record))
        self.writes += 1
        return self._answer(saved)

    def _check_line(self, element: Mapping[str, Any], *, existing: Mapping[str, Any] | None) -> str | None:
        ihid = element.get("ihid", existing.get("ihid") if existing else None)
        if ihid is None or int(ihid) not in self.headers:
            if ihid is None:
                return "A recurring invoice (ihid) is required"
            return f"Recurring invoice {ihid} not found"
        itemid = element.get("_itemid", existing.get("_itemid") if existing else None)
        if itemid is None:
            return "An item (_itemid) is required"
        if int(itemid) not in self.items:
            return f"Item {itemid} not found"
        for field in ("qty_order", "unit_price", "unit_cost"):
            value = element.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | Decimal)):
                return f"{field} must be a number"
        for field in ("startdate", "enddate"):
            value = element.get(field)
            if value is not None:
                try:
                    datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                except ValueError:
                    return f"{field} is not a valid date"
        for field in ("onetimecharge", "is_meter", "prorata_next_invoice"):
            if field in element and not isinstance(element[field], bool):
                return f"{field} must be true or false"
        read_only = sorted(set(element) & READ_ONLY)
        if read_only:
            return f"{read_only[0]} is read only"
        return None

    def _post_lines(self, request: httpx.Request, *, update_only: bool) -> httpx.Response:
        elements = self._array(request)
        plan: list[tuple[int | None, Mapping[str, Any]]] = []
        for element in elements:
            if not isinstance(element, Mapping):
                return _bad("Each element must be an object")
            existing = None
            if element.get("id"):
                existing = self.lines.get(int(element["id"]))
                if existing is None:
                    return _bad(f"Line {element['id']} not found")
                if element.get("ihid") is not None and int(element["ihid"]) != existing["ihid"]:
                    return _bad(f"Line {element['id']} is not on recurring invoice {element['ihid']}")
            elif update_only:
                return _bad("updatelines needs the id of each line")
            problem = self._check_line(element, existing=existing)
            if problem:
                return _bad(problem)
            plan.append((existing["id"] if existing else None, element))
        saved = []
        for lid, element in plan:
            if lid is None:
                lid = next(self._ids)
                self.lines[lid] = self._line_record(lid, element)
            else:
                self.lines[lid].update({k: v for k, v in element.items() if k in LINE_FIELDS and k != "id"})
                if KEY_FIELD in element:
                    self._keep_comment(self.lines[lid])
                self._compute(self.lines[lid])
            saved.append(copy.deepcopy(self.lines[lid]))
        self.writes += 1
        return self._answer(saved)
