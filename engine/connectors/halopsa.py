"""HaloPSA (Halo API v2, `{base}/api`): clients, items and recurring invoices with their lines
(shared/APIS.md §3).

Authentication: `GET {base}/api/authinfo` gives the authorisation server (`auth_url`) and the
tenant (`tenant_id`; `tenant` accepted too; a `tenant` passed to the constructor wins). A token comes
from `POST {auth_url}/token?tenant=…` (form: `grant_type=client_credentials`, `client_id`,
`client_secret`, `scope=all`) and is reused until 60 s before `expires_in` runs out; a 401 on a call
drops it, fetches a new one and sends the call once more (a 401 was refused, nothing was applied).

Reads page with `pageinate=true&page_size=…&page_no=…` and stop once `record_count` rows are in (or a
page comes back short). The rate budget is Halo's hosted limit, 300 requests per rolling 300 s.

Agreements are recurring invoice headers (`/RecurringInvoice`; `disabled` ones are left out); lines
are their `lines[]` (`InvoiceDetail`), read with `includelines=true` (all headers) or
`GET /RecurringInvoice/{id}?includedetails=true` (one); one client's headers with their lines are
`GET /RecurringInvoice?client_id=N&includelines=true` (`company_billing`, the spec's `client_id`
filter). A line is created by POSTing a one-element
array to `/RecurringInvoice/Lines` and updated by POSTing `[{"id": …, …}]` to
`/RecurringInvoice/updatelines`; a cancel writes the line's `enddate`.

Field mapping: `ihid` = header (agreement), `_itemid` = item (product), `qty_order`, `unit_price`,
`unit_cost`, `startdate` (effective date), `enddate` (cancelled/end date), `item_shortdescription` /
`item_longdescription` (description; the long one is read first), `onetimecharge` (kind one_time),
`is_meter` (metered; the spec's "is a meter" flag on InvoiceDetail). Dates go out as
`yyyy-MM-ddT00:00:00` (Halo's values carry no offset) and a date before 1901 reads as "no date"
(Halo's empty-date sentinel is not documented). Annual agreements: a header whose `period` is 12
(VERIFY: the spec types `period`/`period_type` as bare integers).

**The line key** lives in the line's `comment_1` (a free-text InvoiceDetail field the API returns
[spec InvoiceDetail.comment_1]). Unproven: whether Halo keeps it as written on a recurring invoice
line, on create and on update, its length (the spec gives none; `KeyCodec(100)` stores a key of at
most 100 characters as is — every key trueup makes today — and compacts / digests longer ones as for
ConnectWise), and what an operator's edit of it does (after an edit, the line is no longer found by
its key). So `find_line` falls back to a **second, independent match** before anything is sent
again: a line on the same recurring invoice with the same item (`_itemid`), start date and the
description trueup wrote, that carries no other trueup key — matched against `expect` (the
`LineWrite`, when the caller passes it) or what this connector sent for that key (the timeout-then-
lookup case). `lines()` decodes `comment_1` into `source.key`.

**What Halo invoices** for a line: `qty_order × unit_price` each period, once for a
`onetimecharge` line [spec fields; the arithmetic ASSUMED from their meaning]. Every create writes
`prorata_next_invoice: false` — trueup writes its own prorates (RULES.md §2), Halo must not add a
pro-rata of its own on the next invoice [spec field; its default and effect ASSUMED] — and
`is_meter` (the metered flag, as the Acronis integration guide sets "Is metered" [seed 004]).

Writes per line kind (`POST /RecurringInvoice/Lines` with `ihid`, `_itemid`, `qty_order`,
`unit_price`, `unit_cost`, `startdate`, `item_shortdescription`, `item_longdescription`,
`onetimecharge`, `prorata_next_invoice` false, `is_meter`, `comment_1`): recurring / arrears /
usage summary / backup configuration: `onetimecharge` false, no `enddate`; prorate and extra
months: `onetimecharge` true, `enddate` = the period's last day; metered usage: `is_meter` true.
A quantity or price change: `POST /RecurringInvoice/updatelines` `[{"id", "ihid", "qty_order",
"unit_price", "unit_cost"}]`; a cancel: the same with `enddate`.

**Responses are validated before use**: a page must be `{"record_count": int, "<key>": [rows with
an integer id]}`, a header an object with an integer id; a 200 whose body is a bare JSON string or
an error object, an empty or garbled body is a `ServiceError`, never "no rows". Paging stops at
`max_pages` pages or `max_bytes` read, and when a page repeats the previous one. A 429 (Halo sends
no Retry-After; 300 requests per rolling 5 minutes per tenant, shared with every other
integration) is waited out 30 s a try for up to 5 minutes.

Extra-months lines (RULES.md §3): an InvoiceDetail has no months field, so the one-time line
(`onetimecharge`) is written with `qty_order` = gap × months at the full `unit_price` (Halo invoices
qty × price, [spec] InvoiceDetail), and the descriptions end with
`- 1 seat × 2 months (02/2021–03/2021)` (`engine.connectors.base.psa_quantity/psa_description`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter, create_model
from tenacity import RetryCallState

from engine.connectors.base import (
    LineUpdate,
    LineWrite,
    ProductSpec,
    ServiceError,
    psa_description,
    psa_quantity,
    refuse_bill_options,
)
from engine.connectors.connectwise import (
    ONE_TIME_KINDS,
    KeyCodec,
    json_bytes,
)
from engine.connectors.http import (
    IdRecord,
    JsonNumber,
    ListingCap,
    RateBudget,
    ServiceClient,
    decimal_or_none,
    json_body,
    parse_date,
    parse_json,
    validated,
)
from engine.keys import kind_of, line_source
from engine.margin.psa_invoices import PsaInvoiceLine
from engine.money import round_cents
from engine.scenario import PsaAgreement, PsaCompany, PsaLine, PsaProduct

SERVICE = "HaloPSA"
KEY_FIELD = "comment_1"
KEY_MAX = 100  # ASSUMED: the spec gives InvoiceDetail.comment_1 no length; every key trueup makes fits
TOKEN_MARGIN = 60.0
MAX_PAGES = 10_000
MAX_BYTES = 2 * 1024 * 1024 * 1024
# Halo's 429 carries no Retry-After and its window is 300 requests per rolling 5 minutes, shared
# with every other integration on the tenant [APIS §3.4; issue homotechsual/HaloAPI#31: 5 s waits
# were "not long enough to get to the next 5 minute window"]: wait 30 s per try, for up to 11 tries
# (5 minutes), so a full window has drained before a read gives up.
RATE_LIMIT_WAIT = 30.0
READ_ATTEMPTS = 11


class _HaloClient(ServiceClient):
    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ServiceError) and exc.status == 429 and exc.retry_after is None:
            return RATE_LIMIT_WAIT
        return super()._wait(state)


# --- response envelopes (issue 11: validated before use) -------------------------------------------
# Halo's swagger types no response [spec], so the shapes are those its clients read [client
# homotechsual/HaloAPI]: `{"record_count": N, "<key>": [...]}` for a paged list, the record itself
# for `GET /X/{id}`. Only what the connector relies on is checked.

_Number = JsonNumber
_Record = IdRecord


class _Line(_Record):
    ihid: StrictInt | None = None
    itemid: StrictInt | None = Field(None, alias="_itemid")
    qty_order: _Number | None = None
    unit_price: _Number | None = None
    unit_cost: _Number | None = None
    startdate: StrictStr | None = None
    enddate: StrictStr | None = None
    onetimecharge: StrictBool | None = None
    is_meter: StrictBool | None = None
    comment_1: StrictStr | None = None


class _Header(_Record):
    client_id: StrictInt | None = None
    disabled: StrictBool | None = None
    lines: list[_Line] | None = None


def _page_model(key: str, row: type[BaseModel]) -> TypeAdapter[Any]:
    fields: dict[str, Any] = {"record_count": (StrictInt, ...), key: (list[row], ...)}  # type: ignore[valid-type]  # a model built at runtime: list[row] of a runtime class is valid to pydantic
    return TypeAdapter(create_model(f"Halo_{key}", __config__=ConfigDict(extra="allow"), **fields))


class _InvoiceLine(_Record):
    """An issued invoice's line [spec InvoiceDetail]: `recurring_invoice_line_id` names the
    recurring invoice line it was raised from, `recurring_invoice_id` that line's header."""

    itemid: StrictInt | None = Field(None, alias="_itemid")
    qty_order: _Number | None = None
    unit_price: _Number | None = None
    net_total: _Number | None = None
    recurring_invoice_id: StrictInt | None = None
    recurring_invoice_line_id: StrictInt | None = None
    item_shortdescription: StrictStr | None = None


class _Invoice(_Record):
    """An issued invoice [spec InvoiceHeader]: `invoicenumber`, `invoice_date`, `client_id`."""

    client_id: StrictInt
    invoicenumber: StrictStr | None = None
    invoice_date: StrictStr
    currency: StrictStr | None = None
    lines: list[_InvoiceLine] | None = None


_PAGES: dict[str, TypeAdapter[Any]] = {
    "invoices": _page_model("invoices", _Header),
    "issued": _page_model("invoices", _Invoice),
    "clients": _page_model("clients", _Record),
    "items": _page_model("items", _Record),
}
_ONE_HEADER = TypeAdapter(_Header)


def halo_datetime(value: date) -> str:
    return f"{value.isoformat()}T00:00:00"


def halo_date(value: object) -> date | None:
    parsed = parse_date(value)
    if parsed is None or parsed.year < 1901:
        return None
    return parsed


def halo_error_parser(response: httpx.Response) -> tuple[str, list[str]]:
    """Halo's error bodies are undocumented: a JSON string, an object with a message, or text."""
    try:
        body = parse_json(response)
    except ValueError:
        body = None
    if isinstance(body, str) and body.strip():
        return body.strip()[:500], []
    if isinstance(body, Mapping):
        for field in ("message", "Message", "error_description", "error", "title"):
            if isinstance(body.get(field), str) and body[field].strip():
                extra = ("error_description", "detail")
                details = [str(body[f]) for f in extra if f != field and body.get(f)]
                return body[field].strip(), details
    text = response.text.strip()
    return (text[:500] or response.reason_phrase or "request failed"), []


def _checked(response: httpx.Response, what: str, model: TypeAdapter[Any]) -> Any:
    """The body of a 2xx once it is what `model` says. Halo answers some failures with a 200 whose
    body is a bare JSON string (its error bodies are undocumented, [APIS §3.4]) or an OAuth-style
    `{"error": …}`: those, an empty or a garbled body are a `ServiceError`, never "no rows"."""
    body = json_body(SERVICE, what, response)
    if isinstance(body, str) or (
        isinstance(body, Mapping)
        and "id" not in body
        and any(k in body for k in ("error", "message", "Message"))
    ):
        message, details = halo_error_parser(response)
        raise ServiceError(SERVICE, f"{what}: {message}", status=response.status_code, details=details)
    return validated(SERVICE, what, model, response, body)


def _int_id(value: str, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ServiceError(SERVICE, f"{what} {value!r} is not a Halo id", sent=False) from None


class HaloConnector:
    """A `PsaConnector` for HaloPSA."""

    name: Literal["halopsa"] = "halopsa"
    page_size = 1000

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        tenant: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Any = None,
        clock: Callable[[], float] | None = None,
        max_pages: int = MAX_PAGES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/api")
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        # key -> the line this connector asked Halo to create (the second match, see find_line)
        self._sent: dict[str, LineWrite] = {}
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.auth_url: str | None = None
        self.keys = KeyCodec(KEY_MAX)
        self._clock = clock or time.monotonic
        self._token: str | None = None
        self._token_expires = 0.0
        self._client = _HaloClient(
            SERVICE,
            f"{self.base_url}/api",
            transport=transport,
            headers={"Accept": "application/json"},
            budget=RateBudget(300, 300),
            error_parser=halo_error_parser,
            sleep=sleep,
            read_attempts=READ_ATTEMPTS,
            max_backoff=RATE_LIMIT_WAIT,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def remember_keys(self, keys: Iterable[str]) -> None:
        self.keys.remember(keys)

    # --- auth ---

    async def _discover(self) -> str:
        if self.auth_url is None:
            body = await self._client.read("GET", f"{self.base_url}/api/authinfo")
            if not isinstance(body, Mapping) or not body.get("auth_url"):
                raise ServiceError(SERVICE, "authinfo: no auth_url in the response")
            self.auth_url = str(body["auth_url"]).rstrip("/")
            if self.tenant is None:
                tenant = body.get("tenant_id") or body.get("tenant")
                self.tenant = str(tenant) if tenant else None
        return self.auth_url

    async def token(self) -> str:
        if self._token is not None and self._clock() < self._token_expires:
            return self._token
        auth_url = await self._discover()
        params = {"tenant": self.tenant} if self.tenant else None
        response = await self._client.read_response(
            "POST",
            f"{auth_url}/token",
            params=params,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "scope": "all",
            },
        )
        body = parse_json(response)
        if not isinstance(body, Mapping) or not body.get("access_token"):
            raise ServiceError(SERVICE, "token: no access_token in the response", status=response.status_code)
        lifetime = float(body.get("expires_in") or 3600)
        self._token = str(body["access_token"])
        self._token_expires = self._clock() + max(0.0, lifetime - TOKEN_MARGIN)
        return self._token

    async def connect(self) -> None:
        """Discovery and a token, so that `create_requests`/`update_requests` carry the exact headers."""
        await self.token()

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _call(self, build: Callable[[], httpx.Request], *, idempotent: bool) -> httpx.Response:
        """Send a request built with the current token; on a 401, renew the token and send it once more."""
        await self.token()
        try:
            return await self._client.send(build(), idempotent=idempotent)
        except ServiceError as exc:
            if exc.status != 401:
                raise
        self._token = None
        await self.token()
        return await self._client.send(build(), idempotent=idempotent)

    async def _get_response(self, path: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        def build() -> httpx.Request:
            return self._client.build("GET", path, params=params, headers=self._auth_headers())

        return await self._call(build, idempotent=True)

    async def _get_all(
        self,
        path: str,
        list_key: str,
        params: Mapping[str, str] | None = None,
        *,
        model_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of a paged list: `pageinate=true&page_size=…&page_no=…` until `record_count` rows
        are in or a page comes back short; stopped by the page and byte caps, and by a page that
        repeats the previous one (a service that ignores `page_no`)."""
        rows: list[dict[str, Any]] = []
        page = 1
        cap = ListingCap(SERVICE, f"GET {path}", max_pages=self.max_pages, max_bytes=self.max_bytes)
        model = _PAGES[model_key or list_key]
        previous: list[Any] | None = None
        while True:
            query = dict(params or {})
            query.update({"pageinate": "true", "page_size": str(self.page_size), "page_no": str(page)})
            response = await self._get_response(path, query)
            cap.count(response)
            body = _checked(response, f"GET {path}", model)
            batch = body[list_key]
            ids = [row["id"] for row in batch]
            if batch and ids == previous:
                raise ServiceError(
                    SERVICE,
                    f"GET {path}: page {page} repeats page {page - 1} (is page_no ignored?)",
                    status=response.status_code,
                )
            previous = ids
            rows.extend(batch)
            total = body["record_count"]
            if not batch or len(batch) < self.page_size or len(rows) >= total:
                return rows
            page += 1

    # --- reads ---

    async def companies(self) -> list[PsaCompany]:
        rows = await self._get_all("/Client", "clients")
        return [PsaCompany(id=str(r["id"]), name=str(r.get("name") or "")) for r in rows]

    async def products(self) -> list[PsaProduct]:
        rows = await self._get_all("/Item", "items")
        result = []
        for r in rows:
            recurring = bool(r.get("isrecurringitem"))
            result.append(
                PsaProduct(
                    id=str(r["id"]),
                    name=str(r.get("name") or ""),
                    sku=r.get("internalreference") or None,
                    unit_price=decimal_or_none(r.get("recurringprice") if recurring else r.get("baseprice")),
                    unit_cost=decimal_or_none(r.get("recurringcost") if recurring else r.get("costprice")),
                )
            )
        return result

    async def agreements(self) -> list[PsaAgreement]:
        rows = await self._get_all("/RecurringInvoice", "invoices")
        return [self._agreement(r) for r in rows if not r.get("disabled")]

    @staticmethod
    def _agreement(row: Mapping[str, Any]) -> PsaAgreement:
        name = (
            row.get("reference")
            or row.get("contract_ref")
            or row.get("client_name")
            or f"Recurring invoice {row['id']}"
        )
        return PsaAgreement(
            id=str(row["id"]),
            company_id=str(row.get("client_id")),
            name=str(name),
            start_date=(
                halo_date(row.get("startdate")) or halo_date(row.get("invoice_date")) or date(1900, 1, 1)
            ),
            end_date=halo_date(row.get("enddate")),
            billing_period="annual" if row.get("period") == 12 else "monthly",
        )

    async def company_billing(self, company_id: str) -> tuple[list[PsaAgreement], list[PsaLine]]:
        """One client's recurring invoices (not disabled) and their lines, in one paged read:
        `GET /RecurringInvoice?client_id=N&includelines=true`."""
        cid = _int_id(company_id, "client")
        headers = await self._get_all(
            "/RecurringInvoice", "invoices", {"client_id": str(cid), "includelines": "true"}
        )
        agreements: list[PsaAgreement] = []
        lines: list[PsaLine] = []
        for header in headers:
            if header.get("disabled"):
                continue
            agreements.append(self._agreement(header))
            lines.extend(self._line(line, header) for line in header.get("lines") or [])
        return agreements, lines

    async def lines(self, agreement_ids: Sequence[str] | None = None) -> list[PsaLine]:
        result: list[PsaLine] = []
        if agreement_ids is None:
            headers = await self._get_all("/RecurringInvoice", "invoices", {"includelines": "true"})
            for header in headers:
                if header.get("disabled"):
                    continue
                result.extend(self._line(line, header) for line in header.get("lines") or [])
            return result
        for agreement_id in agreement_ids:
            header = await self._header(agreement_id)
            result.extend(self._line(line, header) for line in header.get("lines") or [])
        return result

    async def invoiced_lines(self, start: date, end: date, currency: str = "USD") -> list[PsaInvoiceLine]:
        """What Halo invoiced from `start` through `end`: `GET /Invoice?includelines=true` (paged)
        [spec /Invoice: `includelines` "Include invoice lines in the response"], the invoices whose
        `invoice_date` falls in the range. The spec's `/Invoice` has no invoice-date range filter
        (`invoicedatestart`/`invoicedateend` are booleans that include those fields), so the range is
        applied here. A line names the recurring invoice line it came from in
        `recurring_invoice_line_id` [spec InvoiceDetail]; `net_total` is its amount before tax
        (ASSUMED: the spec gives no description; a line without one is qty_order × unit_price).
        An invoice without a `currency` is in `currency` (ASSUMED: the spec's header `currency` is
        a bare string)."""
        rows = await self._get_all("/Invoice", "invoices", {"includelines": "true"}, model_key="issued")
        out: list[PsaInvoiceLine] = []
        for row in rows:
            on = halo_date(row.get("invoice_date"))
            if on is None or not start <= on <= end:
                continue
            for line in row.get("lines") or []:
                quantity = decimal_or_none(line.get("qty_order")) or Decimal("0")
                price = decimal_or_none(line.get("unit_price")) or Decimal("0")
                amount = decimal_or_none(line.get("net_total"))
                recurring = line.get("recurring_invoice_line_id")
                header = line.get("recurring_invoice_id")
                item = line.get("_itemid")
                out.append(
                    PsaInvoiceLine(
                        invoice_id=str(row["id"]),
                        invoice_number=str(row.get("invoicenumber") or row["id"]),
                        invoice_date=on,
                        company_id=str(row["client_id"]),
                        agreement_id=str(header) if header else None,
                        line_id=str(recurring) if recurring else None,
                        product_id=str(item) if item else None,
                        description=str(line.get("item_shortdescription") or ""),
                        quantity=quantity,
                        unit_price=price,
                        amount=amount if amount is not None else round_cents(quantity * price),
                        currency=str(row.get("currency") or currency),
                    )
                )
        return out

    async def _header(self, agreement_id: str) -> dict[str, Any]:
        hid = _int_id(agreement_id, "recurring invoice")
        response = await self._get_response(f"/RecurringInvoice/{hid}", {"includedetails": "true"})
        body: dict[str, Any] = _checked(response, f"GET /RecurringInvoice/{hid}", _ONE_HEADER)
        return body

    async def find_line(self, agreement_id: str, key: str, expect: LineWrite | None = None) -> PsaLine | None:
        """The line trueup wrote for `key`: first by `comment_1`; when none carries it, by a second,
        independent match — the same recurring invoice, item, start date and description as the line
        written (`expect`, or what this connector sent for `key`) on a line that carries no other
        trueup key — because whether Halo keeps `comment_1` as written is unproven (module docstring)."""
        stored = self.keys.encode(key)
        header = await self._header(agreement_id)
        lines = header.get("lines") or []
        found = [line for line in lines if KeyCodec.same(line.get(KEY_FIELD), stored)]
        if not found:
            write = expect or self._sent.get(key)
            if write is None:
                return None
            found = [line for line in lines if self._same_line(line, write)]
            if not found:
                return None
        found.sort(key=lambda r: (halo_date(r.get("enddate")) is not None, -int(r.get("id") or 0)))
        line = self._line(found[0], header)
        if line.source is None or line.source.key != key:
            line = line.model_copy(update={"source": line_source(key)})
        return line

    def _same_line(self, row: Mapping[str, Any], write: LineWrite) -> bool:
        if self.keys.decode(row.get(KEY_FIELD)) is not None:
            return False  # another trueup line
        description = str(row.get("item_longdescription") or row.get("item_shortdescription") or "").strip()
        return (
            str(row.get("_itemid")) == str(write.product_id)
            and halo_date(row.get("startdate")) == write.effective_date
            and description == write.description.strip()
        )

    def _line(self, row: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> PsaLine:
        header = header or {}
        key = self.keys.decode(row.get(KEY_FIELD))
        one_time = bool(row.get("onetimecharge")) or kind_of(key) in ONE_TIME_KINDS
        effective = halo_date(row.get("startdate")) or halo_date(header.get("startdate")) or date(1900, 1, 1)
        return PsaLine(
            id=str(row["id"]),
            agreement_id=str(row.get("ihid") or header.get("id")),
            product_id=str(row.get("_itemid")),
            kind="one_time" if one_time else "recurring",
            quantity=decimal_or_none(row.get("qty_order")) or Decimal("0"),
            unit_price=decimal_or_none(row.get("unit_price")) or Decimal("0"),
            unit_cost=decimal_or_none(row.get("unit_cost")) or Decimal("0"),
            effective_date=effective,
            cancelled_date=halo_date(row.get("enddate")),
            description=str(row.get("item_longdescription") or row.get("item_shortdescription") or ""),
            metered=bool(row.get("is_meter")),
            source=line_source(key),
        )

    # --- writes ---

    def line_body(self, write: LineWrite) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ihid": _int_id(write.agreement_id, "recurring invoice"),
            "_itemid": _int_id(write.product_id, "item"),
            "qty_order": psa_quantity(write),  # extra months: gap × months (module docstring)
            "unit_price": write.unit_price,
            "unit_cost": write.unit_cost,
            "startdate": halo_datetime(write.effective_date),
            "item_shortdescription": psa_description(write),
            "item_longdescription": psa_description(write),
            "onetimecharge": write.kind == "one_time",
            # trueup writes its own prorates (RULES.md §2): Halo must not add a pro-rata charge of its
            # own on the next invoice [spec InvoiceDetail.prorata_next_invoice; its effect ASSUMED].
            "prorata_next_invoice": False,
            "is_meter": write.metered,
            KEY_FIELD: self.keys.encode(write.key),
        }
        if write.end_date is not None:
            body["enddate"] = halo_datetime(write.end_date)
        return body

    @staticmethod
    def update_body(update: LineUpdate) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": _int_id(update.line_id, "line"),
            "ihid": _int_id(update.agreement_id, "recurring invoice"),
        }
        if update.quantity is not None:
            body["qty_order"] = update.quantity
        if update.unit_price is not None:
            body["unit_price"] = update.unit_price
        if update.unit_cost is not None:
            body["unit_cost"] = update.unit_cost
        if update.cancelled_date is not None:
            body["enddate"] = halo_datetime(update.cancelled_date)
        return body

    def _post(self, path: str, payload: Any) -> httpx.Request:
        return self._client.build(
            "POST",
            path,
            content=json_bytes(payload),
            headers={"Content-Type": "application/json", **self._auth_headers()},
        )

    def create_requests(self, write: LineWrite) -> list[httpx.Request]:
        # [spec] InvoiceDetail has no taxable flag (only tenant tax codes) and no bill option
        refuse_bill_options(SERVICE, "halopsa", write.key, write.taxable, write.bill_option)
        self._sent[write.key] = write
        return [self._post("/RecurringInvoice/Lines", [self.line_body(write)])]

    def update_requests(self, update: LineUpdate) -> list[httpx.Request]:
        refuse_bill_options(SERVICE, "halopsa", update.key, update.taxable, update.bill_option)
        body = self.update_body(update)
        if set(body) <= {"id", "ihid"}:
            return []
        return [self._post("/RecurringInvoice/updatelines", [body])]

    @staticmethod
    def _written(response: httpx.Response, what: str) -> Any:
        """The body of a write's 2xx: None when empty (the caller reads the line back); a bare string,
        an error object or garbled JSON is a `ServiceError` (it may or may not have been applied: the
        caller looks before anything is sent again)."""
        if not response.content.strip():
            return None
        try:
            body = parse_json(response)
        except ValueError:
            raise ServiceError(
                SERVICE,
                f"{what}: the service answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from None
        if isinstance(body, str) or (isinstance(body, Mapping) and "id" not in body and "lines" not in body):
            message, details = halo_error_parser(response)
            raise ServiceError(SERVICE, f"{what}: {message}", status=response.status_code, details=details)
        return body

    @staticmethod
    def _saved(body: Any) -> dict[str, Any] | None:
        if isinstance(body, list):
            body = body[0] if body else None
        if isinstance(body, Mapping) and isinstance(body.get("lines"), list) and "qty_order" not in body:
            body = body["lines"][0] if body["lines"] else None
        return dict(body) if isinstance(body, Mapping) and body.get("id") is not None else None

    async def create_line(self, write: LineWrite) -> PsaLine:
        response = await self._call(lambda: self.create_requests(write)[0], idempotent=False)
        saved = self._saved(self._written(response, "create line"))
        if saved is None:  # the response did not echo the line: read it back by its key
            line = await self.find_line(write.agreement_id, write.key)
            if line is None:
                raise ServiceError(SERVICE, "create line: the line is not on the recurring invoice after")
            return line
        return self._line(saved)

    async def update_line(self, update: LineUpdate) -> PsaLine:
        if self.update_requests(update):
            response = await self._call(lambda: self.update_requests(update)[0], idempotent=False)
            saved = self._saved(self._written(response, "update line"))
            if saved is not None and saved.get("_itemid") is not None:
                return self._line(saved)
        header = await self._header(update.agreement_id)
        for line in header.get("lines") or []:
            if str(line.get("id")) == update.line_id:
                return self._line(line, header)
        message = f"line {update.line_id} is not on recurring invoice {update.agreement_id}"
        raise ServiceError(SERVICE, message)

    @staticmethod
    def item_body(spec: ProductSpec) -> dict[str, Any]:
        """`POST /Item` element [spec Item]: `name`, sell `baseprice` / cost `costprice`, and for a
        recurring item `isrecurringitem` with `recurringprice` / `recurringcost` (what `products()`
        reads back); the SKU in `internalreference` (where `products()` reads it; ASSUMED: Halo has
        no SKU field of its own), `taxable`."""
        body: dict[str, Any] = {
            "name": spec.name,
            "baseprice": spec.unit_price,
            "costprice": spec.unit_cost,
            "isrecurringitem": spec.recurring,
            "taxable": spec.taxable,
        }
        if spec.recurring:
            body["recurringprice"], body["recurringcost"] = spec.unit_price, spec.unit_cost
        if spec.sku:
            body["internalreference"] = spec.sku
        return body

    async def create_product(self, spec: ProductSpec) -> PsaProduct:
        """Create an item: create and update are both a POST of a JSON array [spec]."""
        if spec.category:
            raise ServiceError(
                SERVICE, "trueup does not set a HaloPSA item's group; leave the category empty", sent=False
            )
        response = await self._call(lambda: self._post("/Item", [self.item_body(spec)]), idempotent=False)
        body = self._written(response, "create item")
        if isinstance(body, list):
            body = body[0] if body else None
        if not isinstance(body, Mapping) or body.get("id") is None:
            raise ServiceError(SERVICE, "create item: the response holds no item")
        return PsaProduct(
            id=str(body["id"]),
            name=str(body.get("name") or spec.name),
            sku=body.get("internalreference") or spec.sku,
            unit_price=spec.unit_price,
            unit_cost=spec.unit_cost,
        )

    async def create_company(self, name: str) -> PsaCompany:
        response = await self._call(lambda: self._post("/Client", [{"name": name}]), idempotent=False)
        body = self._written(response, "create client")
        if isinstance(body, list):
            body = body[0] if body else None
        if not isinstance(body, Mapping) or body.get("id") is None:
            raise ServiceError(SERVICE, "create client: the response holds no client")
        return PsaCompany(id=str(body["id"]), name=str(body.get("name") or name))
