"""ConnectWise Manage (PSA REST `/{codebase}/apis/3.0`): companies, catalog items, agreements and
agreement additions (shared/APIS.md §2).

Authentication: `Authorization: Basic base64("{companyId}+{publicKey}:{privateKey}")` plus the
integration's `clientId` header on every call. The codebase (`v4_6_release/`, …) is discovered with
`GET https://{site}/login/companyinfo/{companyId}` (field `Codebase`) unless given.

Reads page with `pageSize=1000` and follow the `Link` header's `rel="next"` until there is none
(the next link must stay on the configured site: credentials are never sent elsewhere).
`company_billing(company)` (the targeted refresh of one customer) reads that company's active
agreements with `conditions=company/id=N and agreementStatus="Active"` (a reference path in the
conditions grammar, shared/APIS.md §2.3), then each one's additions.

Writes: an addition is created with `POST /finance/agreements/{id}/additions` and updated with
`PATCH` and a JSON-patch array (`[{"op": "replace", "path": "quantity", "value": 5}]`); a cancel is a
`replace` of `cancelledDate`. `LineUpdate.effective_date` is not written: ConnectWise keeps an
addition's effective date (RULES.md §1), a new one is a new addition. Dates are sent as
`yyyy-MM-ddT00:00:00Z` and read back by their date part. Amounts go out as JSON numbers written from
the `Decimal` text (never through a float) and come back as `Decimal`.

**The line key** lives in the addition's `serialNumber` (a plain string the API keeps and returns;
max 50 characters, [spec] `Addition.serialNumber`). `KeyCodec` encodes it:
- a key of at most 50 characters is stored as is (`<sub>:recurring`, …);
- a longer key whose subscription id is a UUID is compacted reversibly:
  `~` + base32(uuid bytes) (26 chars, lower case) + one letter for the kind + the rest as is, e.g.
  `~…26…p2020-08-05` for `<uuid>:prorate:2020-08-05` (38 chars);
- anything else becomes `#` + 32 base32 chars of its sha256 (a digest, not reversible).
Base32 in lower case is used because ConnectWise compares strings without regard to case.
`find_line` always matches on the encoded form, so the digest case is found after a crash too;
`lines()` decodes the first two forms and maps digests back through the keys this connector has
encoded or been told about (`remember_keys`); an unknown digest leaves `source.key` None. A
serial number that is not one of these forms (an operator's real serial) is not a trueup key.

Line kind: an addition is `one_time` when its trueup key is a one-time kind (`prorate`,
`extra_months`) — trueup writes those with the period's last day as `cancelledDate`, so
ConnectWise bills them once — and `recurring` otherwise, including additions trueup did not write
(the catalog's `recurringFlag` is not consulted: it would cost a catalog read on every `lines()`).
`description` is `invoiceDescription` (max 6000 [spec]); the addition's own `description` gets the
first 50 characters (the spec gives it no length: ASSUMED).

**What ConnectWise invoices** for an addition is (quantity − lessIncluded) × unitPrice each period,
for a `billCustomer` of Billable [spec Addition: `lessIncluded`, `billCustomer` Billable |
DoNotBill | NoCharge; the arithmetic is ConnectWise's agreement billing, ASSUMED from the field's
meaning]. So a line is read with `quantity` = quantity − lessIncluded (never below 0) — what the
plan and the verification compare — and a quantity update writes the planned quantity +
lessIncluded (known from the read of that addition the executor always makes first), so the
included units stay as the operator set them.

**Bill options** (issue 13, seed 001's review rows "Bill Options: Billable / Taxable"): an addition
is created with the binding's `billCustomer` (Billable | DoNotBill | NoCharge [spec Addition;
APIS.md §2.8], `BILL_CUSTOMER`) and, when the binding says, `taxableFlag` (absent: the catalog
item's default); an update writes them only when the binding is not the default. A line is read
with both, so the landed check sees a line that will not be billed.
`prorateCurrentPeriodFlag` is written false on every create: trueup writes its own prorate lines
(RULES.md §2) and ConnectWise would otherwise add its own for the first partial month [spec field;
ASSUMED: an absent flag follows the agreement's proration].

**The metered line** (quota pay-as-you-go / overage, RULES.md §6) is the addition whose custom field
captioned `Metered` (a Checkbox created by the partner under Setup > Custom Fields for agreement
additions) is ticked. ConnectWise has no meter of its own on an addition; the prepaid and the metered
line bill the same catalog item, so the flag must be per addition, and the spec gives additions
`customFields[]` (`CustomFieldValue{id, caption, type, value}`) [spec Addition.customFields]. The
caption is a constructor argument (`metered_caption`). A metered create sends the field by the id
learnt from any addition read that carries it (refused before sending when none has).

Writes per line kind (all `POST /finance/agreements/{id}/additions` with `product`, `billCustomer`
(the binding's), `taxableFlag` (when the binding sets it), `quantity`, `unitPrice`, `unitCost`, `effectiveDate`, `serialNumber` (the key),
`invoiceDescription`, `description`, `agreementId`, `prorateCurrentPeriodFlag` false):
recurring / arrears / usage summary / backup configuration: no `cancelledDate`; prorate and extra
months: `cancelledDate` = the period's last day (billed once); metered usage: + the `Metered`
custom field. A quantity or price change: `PATCH …/additions/{id}` replacing `quantity`,
`unitPrice`, `unitCost`; a cancel: `PATCH` replacing `cancelledDate`.

**Responses are validated before use** (pydantic envelopes of the fields relied on): a 200 that
carries ConnectWise's error shape, an empty or garbled body, a list whose rows have no integer
`id` is a `ServiceError`, never "no rows". Paging stops at `max_pages` pages or `max_bytes` read,
and a `next` link to a page already read is refused.

Extra-months lines (RULES.md §3): an addition has no months field, so the one-time addition is
written with `quantity` = gap × months at the full `unitPrice` (ConnectWise bills quantity ×
unit price once, [spec] `Addition.quantity`/`unitPrice`), and the invoice description ends with
`- 1 seat × 2 months (02/2021–03/2021)` (`engine.connectors.base.psa_quantity/psa_description`).
One addition per run keeps the key one-to-one with the addition; ASSUMED that a one-time addition
with `cancelledDate` at its period end is invoiced once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, TypeAdapter

from engine.connectors.base import (
    LineUpdate,
    LineWrite,
    ProductSpec,
    ServiceError,
    psa_description,
    psa_quantity,
)
from engine.connectors.http import (
    IdRecord,
    JsonNumber,
    ListingCap,
    ServiceClient,
    decimal_or_none,
    json_body,
    parse_date,
    parse_json,
    validated,
)
from engine.keys import PlanKey, kind_of, line_source
from engine.margin.psa_invoices import PsaInvoiceLine
from engine.money import round_cents
from engine.scenario import BillOption, PsaAgreement, PsaCompany, PsaLine, PsaProduct

SERVICE = "ConnectWise Manage"
# [spec] Addition.billCustomer enum Billable | DoNotBill | NoCharge (APIS.md §2.8)
BILL_CUSTOMER: dict[BillOption, str] = {
    "billable": "Billable",
    "do_not_bill": "DoNotBill",
    "no_charge": "NoCharge",
}
BILL_OPTION_OF: dict[str, BillOption] = {v: k for k, v in BILL_CUSTOMER.items()}
DEFAULT_CODEBASE = "v4_6_release"
API_PREFIX = "apis/3.0"
SERIAL_MAX = 50  # [spec] Addition.serialNumber "Max length: 50;"
SHORT_DESCRIPTION_MAX = 50  # ASSUMED: the spec gives Addition.description no length; 50 keeps it safe
INVOICE_DESCRIPTION_MAX = 6000  # [spec] Addition.invoiceDescription "Max length: 6000;"
METERED_CAPTION = "Metered"  # the addition custom field (Checkbox) that marks the metered line
MAX_PAGES = 10_000  # 10 million rows at pageSize 1000 [doc PSA-Pagination]: far past any real tenant
MAX_BYTES = 2 * 1024 * 1024 * 1024

# --- JSON bodies with exact numbers ---------------------------------------------------------------

_NUMBER = "\x00N:"
_NUMBER_RE = re.compile(r'"\\u0000N:(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"')


def _mark_numbers(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite amount: {value}")
        return _NUMBER + format(value, "f")
    if isinstance(value, Mapping):
        return {k: _mark_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark_numbers(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "")
    return value


def json_bytes(value: Any) -> bytes:
    """JSON with every `Decimal` written as a number from its own text (`6.00`, not `6.0`)."""
    text = json.dumps(_mark_numbers(value), ensure_ascii=False, separators=(",", ":"))
    return _NUMBER_RE.sub(r"\1", text).encode("utf-8")


def cw_datetime(value: date) -> str:
    return f"{value.isoformat()}T00:00:00Z"


# --- the line key ---------------------------------------------------------------------------------

KIND_LETTERS = {
    "recurring": "r",
    "cancel": "c",
    "prorate": "p",
    "extra_months": "e",
    "arrears": "a",
    "usage_summary": "s",
    "usage": "u",
}
LETTER_KINDS = {v: k for k, v in KIND_LETTERS.items()}
ONE_TIME_KINDS = frozenset({"prorate", "extra_months"})


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


class KeyCodec:
    """Stores a plan key in a field of `limit` characters (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._digests: dict[str, str] = {}
        self._remembered: set[str] = set()

    @staticmethod
    def digest(key: str) -> str:
        return "#" + _b32(hashlib.sha256(key.encode("utf-8")).digest())[:32]

    def encode(self, key: str) -> str:
        safe = '"' not in key and "\\" not in key and not key.startswith(("~", "#"))
        if safe and len(key) <= self.limit and PlanKey.parse(key) is not None:
            return key
        compact = self._compact(key) if safe else None
        if compact is not None and len(compact) <= self.limit:
            return compact
        encoded = self.digest(key)
        self._digests[encoded] = key
        return encoded

    def remember(self, keys: Iterable[str]) -> None:
        fresh = set(keys) - self._remembered  # a refresh hands over the same keys every time
        for key in fresh:
            self.encode(key)
        self._remembered |= fresh

    @staticmethod
    def _compact(key: str) -> str | None:
        parsed = PlanKey.parse(key)
        if parsed is None:
            return None
        sub, kind, rest = parsed.subject, parsed.kind, parsed.argument
        try:
            sub_uuid = uuid.UUID(sub)
        except ValueError:
            return None
        if str(sub_uuid) != sub:
            return None
        return "~" + _b32(sub_uuid.bytes) + KIND_LETTERS[kind] + (rest or "")

    def decode(self, stored: str | None) -> str | None:
        """The plan key a stored value stands for; None when it is not trueup's (or an unknown digest)."""
        if not stored:
            return None
        stored = stored.strip()
        if stored.startswith("#"):
            return self._digests.get(stored.lower())
        if stored.startswith("~"):
            body = stored[1:]
            if len(body) < 27 or body[26].lower() not in LETTER_KINDS:
                return None
            try:
                raw = base64.b32decode(body[:26].upper() + "======")
                sub = str(uuid.UUID(bytes=raw[:16]))
            except (ValueError, TypeError):
                return None
            kind = LETTER_KINDS[body[26].lower()]
            rest = body[27:]
            return f"{sub}:{kind}" + (f":{rest}" if rest else "")
        return stored if PlanKey.parse(stored) is not None else None

    @staticmethod
    def same(a: str | None, b: str) -> bool:
        return a is not None and a.strip().lower() == b.lower()


# --- errors ---------------------------------------------------------------------------------------


def cw_error_parser(response: httpx.Response) -> tuple[str, list[str]]:
    """`{"code", "message", "errors": [{"code", "message", "resource", "field"}]}` → message, details."""
    try:
        body = parse_json(response)
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        message = str(body.get("message") or body.get("code") or response.reason_phrase or "request failed")
        if body.get("code") and body.get("message"):
            message = f"{body['message']} ({body['code']})"
        details: list[str] = []
        for error in body.get("errors") or []:
            if not isinstance(error, Mapping):
                continue
            text = str(error.get("message") or error.get("code") or "")
            field = error.get("field")
            details.append(f"{field}: {text}" if field else text)
        return message, details
    text = response.text.strip()
    return (text[:500] or response.reason_phrase or "request failed"), []


# --- response envelopes (issue 11: validated before use) -------------------------------------------
# Only what the connector relies on is checked; every other field may be absent or anything
# (ConnectWise adds fields between versions). Shapes: [spec] Company, CatalogItem, Agreement, Addition.

_Number = JsonNumber
_Record = IdRecord


class _Ref(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: StrictInt | None = None


class _CustomField(BaseModel):
    model_config = ConfigDict(extra="allow")
    caption: StrictStr | None = None
    value: Any = None


class _Company(_Record):
    name: StrictStr | None = None


class _Agreement(_Record):
    company: _Ref
    name: StrictStr | None = None


class _Addition(_Record):
    product: _Ref
    quantity: _Number | None = None
    lessIncluded: _Number | None = None
    unitPrice: _Number | None = None
    unitCost: _Number | None = None
    serialNumber: StrictStr | None = None
    effectiveDate: StrictStr | None = None
    cancelledDate: StrictStr | None = None
    customFields: list[_CustomField] | None = None
    prorateCurrentPeriodFlag: StrictBool | None = None
    billCustomer: Literal["Billable", "DoNotBill", "NoCharge"] | None = None
    taxableFlag: StrictBool | None = None


class _Invoice(_Record):
    """[spec Invoice]: `invoiceNumber`, `date` (date-time), `company`, `currency`."""

    company: _Ref
    invoiceNumber: StrictStr | None = None
    date: StrictStr
    currency: dict[str, Any] | None = None


class _ProductItem(_Record):
    """[spec ProductItem]: `catalogItem` (required), `invoice`, `agreement`, quantity, price."""

    catalogItem: _Ref
    invoice: _Ref | None = None
    agreement: _Ref | None = None
    quantity: _Number | None = None
    price: _Number | None = None
    extPrice: _Number | None = None
    description: StrictStr | None = None


_LISTS: dict[str, TypeAdapter[Any]] = {
    "/finance/invoices": TypeAdapter(list[_Invoice]),
    "/procurement/products": TypeAdapter(list[_ProductItem]),
    "/company/companies": TypeAdapter(list[_Company]),
    "/finance/agreements": TypeAdapter(list[_Agreement]),
    "additions": TypeAdapter(list[_Addition]),
    "": TypeAdapter(list[_Record]),
}
_ONE_ADDITION = TypeAdapter(_Addition)
_ONE_RECORD = TypeAdapter(_Record)


def _list_model(path: str) -> TypeAdapter[Any]:
    if path.endswith("/additions"):
        return _LISTS["additions"]
    return _LISTS.get(path, _LISTS[""])


def _checked(response: httpx.Response, what: str, model: TypeAdapter[Any]) -> Any:
    """The body of a 2xx once it is what `model` says: a 200 carrying ConnectWise's error shape
    (`{"code", "message"}`), an empty or garbled body is a `ServiceError`, never "no rows"."""
    body = json_body(SERVICE, what, response)
    if isinstance(body, Mapping) and "code" in body and "message" in body and "id" not in body:
        message, details = cw_error_parser(response)
        raise ServiceError(SERVICE, f"{what}: {message}", status=response.status_code, details=details)
    return validated(SERVICE, what, model, response, body)


def _metered(row: Mapping[str, Any], caption: str) -> bool:
    """True when the addition's custom field `caption` (a Checkbox) is ticked."""
    for field in row.get("customFields") or []:
        if isinstance(field, Mapping) and str(field.get("caption") or "").strip().lower() == caption.lower():
            value = field.get("value")
            return value is True or (isinstance(value, str) and value.strip().lower() == "true")
    return False


# --- the connector --------------------------------------------------------------------------------


def _int_id(value: str, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ServiceError(SERVICE, f"{what} {value!r} is not a ConnectWise id", sent=False) from None


def _billing_period(agreement: Mapping[str, Any]) -> Literal["monthly", "annual"]:
    cycle = agreement.get("billingCycle") or {}
    name = str(cycle.get("name") or "").lower() if isinstance(cycle, Mapping) else ""
    return "annual" if ("annual" in name or "year" in name) else "monthly"


class ConnectWiseConnector:
    """A `PsaConnector` for ConnectWise Manage."""

    name: Literal["connectwise"] = "connectwise"
    page_size = 1000

    def __init__(
        self,
        site: str,
        company_id: str,
        public_key: str,
        private_key: str,
        client_id: str,
        *,
        codebase: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Any = None,
        metered_caption: str = METERED_CAPTION,
        max_pages: int = MAX_PAGES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.site = site.removeprefix("https://").removeprefix("http://").strip("/")
        # HTTPS always, but for a loopback address given as http:// (the sandbox served over HTTP by
        # engine.sandbox.serve, for the kill tests): credentials never travel in clear text elsewhere.
        loopback = urlsplit(f"http://{self.site}").hostname in ("127.0.0.1", "localhost", "::1")
        self.origin = (
            f"http://{self.site}" if site.startswith("http://") and loopback else f"https://{self.site}"
        )
        self.company_id = company_id
        self.codebase = codebase.strip("/") if codebase else None
        self.keys = KeyCodec(SERIAL_MAX)
        self.metered_caption = metered_caption
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        # lessIncluded of each addition read (id -> value): a quantity update adds it back.
        self._less_included: dict[str, Decimal] = {}
        self._metered_field_id: int | None = None
        token = base64.b64encode(f"{company_id}+{public_key}:{private_key}".encode()).decode("ascii")
        self._client = ServiceClient(
            SERVICE,
            self.origin,
            transport=transport,
            headers={"Authorization": f"Basic {token}", "clientId": client_id, "Accept": "application/json"},
            error_parser=cw_error_parser,
            sleep=sleep,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def remember_keys(self, keys: Iterable[str]) -> None:
        """Plan keys whose digests `lines()` should map back (keys too long to store reversibly)."""
        self.keys.remember(keys)

    # --- plumbing ---

    async def discover_codebase(self) -> str:
        if self.codebase is None:
            body = await self._client.read("GET", f"{self.origin}/login/companyinfo/{self.company_id}")
            codebase = body.get("Codebase") if isinstance(body, Mapping) else None
            if not codebase:
                raise ServiceError(
                    SERVICE,
                    f"no Codebase for company {self.company_id!r} on {self.site}",
                    status=None,
                    sent=True,
                )
            self.codebase = str(codebase).strip("/")
        return self.codebase

    def _url(self, path: str) -> str:
        return f"/{self.codebase or DEFAULT_CODEBASE}/{API_PREFIX}{path}"

    async def _get_all(self, path: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        await self.discover_codebase()
        query = dict(params or {})
        query.update({"pageSize": str(self.page_size), "page": "1"})
        url: str = self._url(path)
        items: list[dict[str, Any]] = []
        request_params: dict[str, str] | None = query
        cap = ListingCap(SERVICE, f"GET {path}", max_pages=self.max_pages, max_bytes=self.max_bytes)
        model = _list_model(path)
        seen: set[str] = set()
        while True:
            response = await self._client.read_response("GET", url, params=request_params)
            cap.count(response)
            body = _checked(response, f"GET {path}", model)
            items.extend(body)
            following = response.links.get("next", {}).get("url")
            if not following or not body:
                return items
            host = urlsplit(following).hostname
            if host is not None and host != urlsplit(self.origin).hostname:
                raise ServiceError(SERVICE, f"refusing a next-page link to another host ({host})")
            if following in seen:
                raise ServiceError(
                    SERVICE,
                    f"GET {path}: the next-page link repeats a page already read ({following})",
                    status=response.status_code,
                )
            seen.add(following)
            url, request_params = following, None

    async def _get_one(self, path: str) -> dict[str, Any]:
        await self.discover_codebase()
        response = await self._client.read_response("GET", self._url(path))
        model = _ONE_ADDITION if "/additions/" in path else _ONE_RECORD
        body: dict[str, Any] = _checked(response, f"GET {path}", model)
        return body

    # --- reads ---

    async def companies(self) -> list[PsaCompany]:
        rows = await self._get_all("/company/companies", {"conditions": "deletedFlag=false"})
        return [PsaCompany(id=str(r["id"]), name=str(r.get("name") or "")) for r in rows]

    async def products(self) -> list[PsaProduct]:
        rows = await self._get_all("/procurement/catalog", {"conditions": "inactiveFlag=false"})
        return [self._product(r) for r in rows]

    @staticmethod
    def _product(row: Mapping[str, Any]) -> PsaProduct:
        return PsaProduct(
            id=str(row["id"]),
            name=str(row.get("description") or row.get("identifier") or ""),
            sku=row.get("identifier"),
            unit_price=decimal_or_none(row.get("price")),
            unit_cost=decimal_or_none(row.get("cost")),
        )

    async def agreements(self) -> list[PsaAgreement]:
        rows = await self._get_all("/finance/agreements", {"conditions": 'agreementStatus="Active"'})
        return [self._agreement(r) for r in rows]

    @staticmethod
    def _agreement(row: Mapping[str, Any]) -> PsaAgreement:
        company = row.get("company") or {}
        start = parse_date(row.get("startDate")) or parse_date((row.get("_info") or {}).get("dateEntered"))
        return PsaAgreement(
            id=str(row["id"]),
            company_id=str(company.get("id")),
            name=str(row.get("name") or ""),
            start_date=start or date(1900, 1, 1),
            end_date=None if row.get("noEndingDateFlag") else parse_date(row.get("endDate")),
            billing_period=_billing_period(row),
        )

    async def company_billing(self, company_id: str) -> tuple[list[PsaAgreement], list[PsaLine]]:
        """One company's active agreements (`conditions=company/id=N and agreementStatus="Active"`)
        and their additions: what `agreements()` and `lines()` read, for that company only."""
        cid = _int_id(company_id, "company")
        rows = await self._get_all(
            "/finance/agreements", {"conditions": f'company/id={cid} and agreementStatus="Active"'}
        )
        agreements = [self._agreement(r) for r in rows]
        return agreements, await self.lines([a.id for a in agreements])

    async def lines(self, agreement_ids: Sequence[str] | None = None) -> list[PsaLine]:
        if agreement_ids is None:
            agreement_ids = [a.id for a in await self.agreements()]
        result: list[PsaLine] = []
        for agreement_id in agreement_ids:
            aid = _int_id(agreement_id, "agreement")
            rows = await self._get_all(f"/finance/agreements/{aid}/additions")
            result.extend(self._line(r, str(aid)) for r in rows)
        return result

    async def invoiced_lines(self, start: date, end: date, currency: str = "USD") -> list[PsaInvoiceLine]:
        """What ConnectWise invoiced from `start` through `end`: the agreement invoices of the range,
        `GET /finance/invoices?conditions=type="Agreement" and date>=[…] and date<[…]` [spec
        Invoice.type enum "Agreement", Invoice.date date-time; conditions grammar APIS.md §2.3],
        then their product lines, `GET /procurement/products?conditions=invoice/id in (…)` [spec
        ProductItem.invoice, .agreement, .catalogItem, quantity, price, extPrice], 100 invoice ids a
        request (ASSUMED: well inside the URL length ConnectWise accepts). A product line names its
        agreement and catalog item, not the addition: the check matches it to the agreement's line
        of that product (engine.margin.psa_invoices). ASSUMED: an agreement invoice lists its billed
        additions as product items; `extPrice` is the line's amount (quantity × price when absent);
        an invoice without `currency.currencyCode` is in `currency`."""
        after = date.fromordinal(end.toordinal() + 1)
        heads = await self._get_all(
            "/finance/invoices",
            {
                "conditions": f'type="Agreement" and date>=[{cw_datetime(start)}] and date<[{cw_datetime(after)}]'
            },
        )
        by_id = {int(h["id"]): h for h in heads}
        out: list[PsaInvoiceLine] = []
        ids = sorted(by_id)
        for chunk in (ids[i : i + 100] for i in range(0, len(ids), 100)):
            rows = await self._get_all(
                "/procurement/products", {"conditions": f"invoice/id in ({','.join(map(str, chunk))})"}
            )
            for row in sorted(rows, key=lambda r: (int((r.get("invoice") or {})["id"]), int(r["id"]))):
                head = by_id.get(int((row.get("invoice") or {}).get("id") or 0))
                on = parse_date(head.get("date")) if head is not None else None
                if head is None or on is None:
                    continue
                quantity = decimal_or_none(row.get("quantity")) or Decimal("0")
                price = decimal_or_none(row.get("price")) or Decimal("0")
                amount = decimal_or_none(row.get("extPrice"))
                agreement = (row.get("agreement") or {}).get("id")
                code = (head.get("currency") or {}).get("currencyCode")
                out.append(
                    PsaInvoiceLine(
                        invoice_id=str(head["id"]),
                        invoice_number=str(head.get("invoiceNumber") or head["id"]),
                        invoice_date=on,
                        company_id=str(head["company"]["id"]),
                        agreement_id=str(agreement) if agreement else None,
                        line_id=None,
                        product_id=str(row["catalogItem"]["id"]),
                        description=str(row.get("description") or ""),
                        quantity=quantity,
                        unit_price=price,
                        amount=amount if amount is not None else round_cents(quantity * price),
                        currency=str(code or currency),
                    )
                )
        return out

    async def find_line(self, agreement_id: str, key: str, expect: LineWrite | None = None) -> PsaLine | None:
        # `expect` is not needed here: serialNumber is kept and returned as written [spec
        # Addition.serialNumber] (module docstring, "The line key").
        aid = _int_id(agreement_id, "agreement")
        stored = self.keys.encode(key)
        rows = await self._get_all(
            f"/finance/agreements/{aid}/additions", {"conditions": f'serialNumber="{stored}"'}
        )
        found = [r for r in rows if KeyCodec.same(r.get("serialNumber"), stored)]
        if not found:
            return None
        found.sort(key=lambda r: (r.get("cancelledDate") is not None, -int(r.get("id") or 0)))
        return self._line(found[0], str(aid))

    def _line(self, row: Mapping[str, Any], agreement_id: str) -> PsaLine:
        key = self.keys.decode(row.get("serialNumber"))
        product = row.get("product") or {}
        entered = (row.get("_info") or {}).get("dateEntered")
        effective = parse_date(row.get("effectiveDate")) or parse_date(entered)
        quantity = decimal_or_none(row.get("quantity")) or Decimal("0")
        less_included = decimal_or_none(row.get("lessIncluded")) or Decimal("0")
        self._less_included[str(row["id"])] = less_included
        self._learn_metered_field(row)
        return PsaLine(
            id=str(row["id"]),
            agreement_id=str(row.get("agreementId") or agreement_id),
            product_id=str(product.get("id")),
            kind="one_time" if kind_of(key) in ONE_TIME_KINDS else "recurring",
            # What ConnectWise invoices: (quantity − lessIncluded) × unitPrice (see the docstring).
            quantity=max(quantity - less_included, Decimal("0")),
            unit_price=decimal_or_none(row.get("unitPrice")) or Decimal("0"),
            unit_cost=decimal_or_none(row.get("unitCost")) or Decimal("0"),
            effective_date=effective or date(1900, 1, 1),
            cancelled_date=parse_date(row.get("cancelledDate")),
            description=str(row.get("invoiceDescription") or row.get("description") or ""),
            metered=_metered(row, self.metered_caption),
            source=line_source(key),
            taxable=row.get("taxableFlag") if isinstance(row.get("taxableFlag"), bool) else None,
            bill_option=BILL_OPTION_OF.get(str(row.get("billCustomer"))),
        )

    def _learn_metered_field(self, row: Mapping[str, Any]) -> None:
        if self._metered_field_id is not None:
            return
        for field in row.get("customFields") or []:
            caption = str(field.get("caption") or "").strip().lower() if isinstance(field, Mapping) else ""
            if caption == self.metered_caption.lower() and isinstance(field.get("id"), int):
                self._metered_field_id = field["id"]
                return

    # --- writes ---

    def addition_body(self, write: LineWrite) -> dict[str, Any]:
        body: dict[str, Any] = {
            "product": {"id": _int_id(write.product_id, "product")},
            "billCustomer": BILL_CUSTOMER[write.bill_option],
            "quantity": psa_quantity(write),  # extra months: gap × months (module docstring)
            "unitPrice": write.unit_price,
            "unitCost": write.unit_cost,
            "effectiveDate": cw_datetime(write.effective_date),
            "serialNumber": self.keys.encode(write.key),
            "invoiceDescription": psa_description(write)[:INVOICE_DESCRIPTION_MAX],
            "description": psa_description(write)[:SHORT_DESCRIPTION_MAX],
            "agreementId": _int_id(write.agreement_id, "agreement"),
            # trueup writes its own prorates (RULES.md §2): ConnectWise must not add one [spec
            # Addition.prorateCurrentPeriodFlag; ASSUMED: an absent flag follows the agreement's
            # prorateFlag, which is commonly on].
            "prorateCurrentPeriodFlag": False,
        }
        if write.taxable is not None:
            body["taxableFlag"] = write.taxable  # absent: the catalog item's default
        if write.end_date is not None:
            body["cancelledDate"] = cw_datetime(write.end_date)
        if write.metered:
            if self._metered_field_id is None:
                raise ServiceError(
                    SERVICE,
                    f"{write.key}: cannot mark the addition metered — no addition read so far "
                    f"carries the custom field {self.metered_caption!r} (create it under Setup > Custom "
                    "Fields > Agreement Additions)",
                    sent=False,
                )
            body["customFields"] = [
                {
                    "id": self._metered_field_id,
                    "caption": self.metered_caption,
                    "type": "Checkbox",
                    "entryMethod": "EntryField",
                    "value": True,
                }
            ]
        return body

    def patch_body(self, update: LineUpdate) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        quantity = update.quantity
        if quantity is not None:
            # ConnectWise invoices (quantity − lessIncluded): keep the addition's included units.
            quantity = quantity + self._less_included.get(update.line_id, Decimal("0"))
        for path, value in (
            ("quantity", quantity),
            ("unitPrice", update.unit_price),
            ("unitCost", update.unit_cost),
            ("billCustomer", BILL_CUSTOMER[update.bill_option] if update.bill_option else None),
            ("taxableFlag", update.taxable),
        ):
            if value is not None:
                ops.append({"op": "replace", "path": path, "value": value})
        if update.cancelled_date is not None:
            ops.append(
                {"op": "replace", "path": "cancelledDate", "value": cw_datetime(update.cancelled_date)}
            )
        return ops

    def create_requests(self, write: LineWrite) -> list[httpx.Request]:
        aid = _int_id(write.agreement_id, "agreement")
        return [
            self._client.build(
                "POST",
                self._url(f"/finance/agreements/{aid}/additions"),
                content=json_bytes(self.addition_body(write)),
                headers={"Content-Type": "application/json"},
            )
        ]

    def update_requests(self, update: LineUpdate) -> list[httpx.Request]:
        ops = self.patch_body(update)
        if not ops:
            return []
        aid = _int_id(update.agreement_id, "agreement")
        line_id = _int_id(update.line_id, "addition")
        return [
            self._client.build(
                "PATCH",
                self._url(f"/finance/agreements/{aid}/additions/{line_id}"),
                content=json_bytes(ops),
                headers={"Content-Type": "application/json"},
            )
        ]

    async def create_line(self, write: LineWrite) -> PsaLine:
        await self.discover_codebase()
        (request,) = self.create_requests(write)
        response = await self._client.send(request, idempotent=False)
        body = _checked(response, "create addition", _ONE_ADDITION)
        return self._line(body, write.agreement_id)

    async def update_line(self, update: LineUpdate) -> PsaLine:
        await self.discover_codebase()
        requests = self.update_requests(update)
        if not requests:
            aid = _int_id(update.agreement_id, "agreement")
            line_id = _int_id(update.line_id, "addition")
            row = await self._get_one(f"/finance/agreements/{aid}/additions/{line_id}")
            return self._line(row, update.agreement_id)
        response = await self._client.send(requests[0], idempotent=False)
        body = _checked(response, "update addition", _ONE_ADDITION)
        return self._line(body, update.agreement_id)

    # --- catalog items (issue 13: the product wizard) ---

    async def _named(self, path: str, wanted: str | None, what: str, default: str | None = None) -> int:
        """The id of the record at `path` whose name is `wanted` (case-folded); with none asked, the
        `default` name, else the only record. Refused (nothing sent) naming the choices."""
        rows = await self._get_all(path)
        names = {
            str(r.get("name") or "").strip().casefold(): int(r["id"]) for r in rows if r.get("id") is not None
        }
        for name in (wanted, None if wanted else default):
            if name and name.strip().casefold() in names:
                return names[name.strip().casefold()]
        if not wanted and len(names) == 1:
            return next(iter(names.values()))
        choices = ", ".join(sorted(str(r.get("name")) for r in rows)[:8]) or "none"
        asked = f"no {what} named {wanted!r}" if wanted else f"say which {what}"
        raise ServiceError(SERVICE, f"create catalog item: {asked} (ConnectWise has: {choices})", sent=False)

    async def catalog_body(self, spec: ProductSpec) -> dict[str, Any]:
        """`POST /procurement/catalog` [client: ConnectWise's generated API, CatalogsItemApi
        procurement_catalog_post]: required `identifier`, `description`, `subcategory`, `type`,
        `customerDescription` [spec CatalogItem.required]; the subcategory is the wizard's category,
        read from `/procurement/subcategories`, the type from `/procurement/types` [client
        SubCategoriesApi, ProductTypesApi] ("Service" when there is one: ASSUMED the usual type for
        a cloud subscription). `identifier` carries the SKU (what `products()` reads back as SKU);
        lengths: identifier 75, description 60, customerDescription 6000 [APIS §2]."""
        subcategory = await self._named("/procurement/subcategories", spec.category, "subcategory")
        kind = await self._named("/procurement/types", None, "product type", default="Service")
        identifier = (spec.sku or re.sub(r"[^A-Za-z0-9-]", "", spec.name) or "Product")[:75]
        body: dict[str, Any] = {
            "identifier": identifier,
            "description": spec.name[:60],
            "customerDescription": spec.name[:6000],
            "subcategory": {"id": subcategory},
            "type": {"id": kind},
            "productClass": "Service",  # [spec CatalogItem.productClass enum]; ASSUMED for subscriptions
            "price": spec.unit_price,
            "cost": spec.unit_cost,
            "taxableFlag": spec.taxable,
            "recurringFlag": spec.recurring,
            "inactiveFlag": False,
        }
        if spec.recurring:
            body["recurringRevenue"], body["recurringCost"] = spec.unit_price, spec.unit_cost
        return body

    async def create_product(self, spec: ProductSpec) -> PsaProduct:
        await self.discover_codebase()
        body = await self.catalog_body(spec)
        response = await self._client.send(
            self._client.build(
                "POST",
                self._url("/procurement/catalog"),
                content=json_bytes(body),
                headers={"Content-Type": "application/json"},
            ),
            idempotent=False,
        )
        row = _checked(response, "create catalog item", _ONE_RECORD)
        return self._product({**body, **row})

    async def create_company(self, name: str) -> PsaCompany:
        await self.discover_codebase()
        identifier = re.sub(r"[^A-Za-z0-9]", "", name)[:25] or "Company"
        body = {"identifier": identifier, "name": name[:156], "site": {"name": "Main"}}
        response = await self._client.send(
            self._client.build(
                "POST",
                self._url("/company/companies"),
                content=json_bytes(body),
                headers={"Content-Type": "application/json"},
            ),
            idempotent=False,
        )
        row = _checked(response, "create company", TypeAdapter(_Company))
        return PsaCompany(id=str(row["id"]), name=str(row.get("name") or name))
