"""Every request the connectors send and every response the sandboxes return, validated against the
services' published OpenAPI files (../shared/specs: ConnectWise, HaloPSA, Pax8) — issue 10 item 3.

Traffic is recorded by a transport wrapped around each sandbox while the real connector runs its
whole surface (the refresh reads, then every kind of write). Each exchange is checked with
jsonschema (OpenAPI 3.0 schemas, `nullable` turned into JSON Schema types) plus the rules OpenAPI
states but JSON Schema does not check:

- the route and method exist in the spec; every query parameter is one the operation declares, of
  its type; required parameters and headers are there;
- a request body names only properties of its schema and no `readOnly` one; ConnectWise's
  "Max length: N;" descriptions are lengths; `date-time` values are date-times;
- a response status is one the operation declares; a response body matches its schema and names
  only properties the schema has.

Each violation is reported as `METHOD path — where.field: rule`. What the files cannot check:
- ConnectWise's file is a GET subset: the writes (`POST/PATCH …/additions`, `POST /company/companies`)
  are checked against the schemas the spec gives (`Addition`, `Company`, answered with 201 / 200 and
  the record) and `PatchOperation` as ConnectWise's full 2025.8 spec declares it (op/path/value); the
  spec is silent on write responses' status, which [doc PSA-API-Requests] gives as 201 for a create.
- Halo's swagger declares no response schema: a paged response must be `{"record_count": int,
  "<key>": [...]}` [client homotechsual/HaloAPI] and each record is checked against the resource
  schema the spec gives its POST body (Area, Item, InvoiceHeader, InvoiceDetail).
- Discovery and token endpoints outside these files (ConnectWise `/login/companyinfo`, Halo
  `/api/authinfo` and `/auth/token`) are listed, not validated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from engine.connectors.base import LineUpdate, LineWrite
from engine.connectors.connectwise import ConnectWiseConnector
from engine.connectors.halopsa import HaloConnector
from engine.connectors.http import loads
from engine.connectors.pax8 import Pax8Connector
from engine.sandbox.connectwise import ConnectWiseSandbox
from engine.sandbox.halopsa import HaloSandbox
from engine.sandbox.pax8 import Pax8Sandbox
from engine.scenario import Scenario

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SPECS = SHARED / "specs"
SUB = "8c1b6c3e-1d2a-4c55-9a77-0e2a5b3c4d5e"
NEW = "0b4d7f1e-6a2c-4e8b-b1a3-5c6d7e8f9a0b"  # a subscription the PSA has no line for yet
BACKUP = "cfg-backup-7"

# PatchOperation in ConnectWise's full spec (2025.8): op/path/value, `value` an untyped object.
PATCH_OPERATION = {
    "type": "object",
    "required": ["op", "path"],
    "properties": {"op": {"enum": ["add", "replace", "remove"]}, "path": {"type": "string"}, "value": {}},
}
_HALO_TYPES = {
    "int": "integer",
    "bool": "boolean",
    "long": "integer",
    "double": "number",
    "float": "number",
    "datetime": "string",
    "date": "string",
    "guid": "string",
}  # the swagger's .NET type names
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
_OFFSET = re.compile(r".*(Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class Violation:
    method: str
    path: str
    where: str
    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} — {self.where}.{self.field}: {self.rule}"


def _normalise(node: Any, urn: str) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable`, .NET type names, `$ref`s made absolute, and a bare
    `{"type": "object"}` (the generator's spelling of an untyped .NET `object`) left untyped."""
    if isinstance(node, list):
        return [_normalise(v, urn) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _normalise(v, urn) for k, v in node.items()}
    if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
        node["$ref"] = urn + node["$ref"]
    kind = node.get("type")
    if isinstance(kind, str) and kind in _HALO_TYPES:
        node["type"] = kind = _HALO_TYPES[kind]
    if kind == "object" and not ({"properties", "additionalProperties", "$ref", "allOf"} & set(node)):
        node.pop("type")
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    return node


class Spec:
    """One OpenAPI file: routes, and checks of one request/response against it."""

    def __init__(self, files: Iterable[Path], base_path: str, *, offset_optional: bool = False) -> None:
        self.base_path = base_path
        self.offset_optional = offset_optional
        self.operations: list[tuple[re.Pattern[str], str, str, dict[str, Any]]] = []
        self.registry = Registry()
        self.schemas: dict[str, Any] = {}
        for n, file in enumerate(files):
            urn = f"urn:spec{n}"
            document = _normalise(json.loads(file.read_text()), urn)
            self.registry = self.registry.with_resource(
                urn, Resource.from_contents(document, default_specification=DRAFT202012)
            )
            for name, schema in (document.get("components") or {}).get("schemas", {}).items():
                self.schemas[name] = schema
                self.schemas[f"{urn}#/components/schemas/{name}"] = schema
            for template, item in document["paths"].items():
                pattern = re.compile(
                    "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$", re.IGNORECASE
                )
                for method, operation in item.items():
                    if method in ("get", "post", "put", "patch", "delete"):
                        self.operations.append((pattern, template, method.upper(), operation))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template, verb, operation in self.operations:
            if verb == method and pattern.match(path):
                return template, operation
        return None

    def resolve(self, schema: Any) -> Any:
        while isinstance(schema, dict) and "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        return schema

    # --- checks ---

    def body(
        self,
        instance: Any,
        schema: Any,
        *,
        where: str,
        request: bool,
        out: list[tuple[str, str, str]],
        field: str = "",
    ) -> None:
        """Validate `instance`, then walk it for what JSON Schema leaves out."""
        if not field:
            validator = Draft202012Validator(schema, registry=self.registry)
            for error in validator.iter_errors(instance):
                location = ".".join(str(p) for p in error.absolute_path) or "(body)"
                out.append((where, location, f"{error.validator}: {error.message[:160]}"))
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return
        if isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(instance):
                self.body(item, schema["items"], where=where, request=request, out=out, field=f"{field}{i}.")
            return
        properties = schema.get("properties")
        if not isinstance(instance, dict) or not isinstance(properties, dict):
            return
        for name, value in instance.items():
            path = f"{field}{name}"
            if name not in properties:
                if not schema.get("additionalProperties"):
                    out.append((where, path, "not a property of the schema"))
                continue
            prop = self.resolve(properties[name])
            if request and prop.get("readOnly"):
                out.append((where, path, "readOnly, sent in a request"))
            limit = re.search(r"Max length: (\d+);", prop.get("description") or "")
            if limit and isinstance(value, str) and len(value) > int(limit[1]):
                out.append((where, path, f"longer than Max length {limit[1]} ({len(value)})"))
            if prop.get("format") == "date-time" and isinstance(value, str):
                if not _DATE_TIME.fullmatch(value) or (not self.offset_optional and not _OFFSET.match(value)):
                    out.append((where, path, f"not a date-time with an offset: {value!r}"))
            if isinstance(value, dict | list):
                self.body(value, prop, where=where, request=request, out=out, field=f"{path}.")

    def params(
        self, request: httpx.Request, operation: dict[str, Any], out: list[tuple[str, str, str]]
    ) -> None:
        declared = {(p.get("in"), p["name"].lower()): p for p in operation.get("parameters") or []}
        for name, value in request.url.params.multi_items():
            parameter = declared.get(("query", name.lower()))
            if parameter is None:
                out.append(("query", name, "not a parameter of the operation"))
                continue
            kind = (parameter.get("schema") or {}).get("type")
            kind = kind[0] if isinstance(kind, list) else kind
            if kind == "integer" and not re.fullmatch(r"-?\d+", value):
                out.append(("query", name, f"not an integer: {value!r}"))
            if kind == "boolean" and value.lower() not in ("true", "false"):
                out.append(("query", name, f"not a boolean: {value!r}"))
        for (where, name), parameter in declared.items():
            if not parameter.get("required"):
                continue
            present = (
                name in {k.lower() for k in request.headers}
                if where == "header"
                else name in {k.lower() for k in request.url.params}
                if where == "query"
                else True
            )
            if not present:
                out.append((where or "?", name, "required, missing"))


@dataclass
class Route:
    """A write the spec file lacks (ConnectWise's GET subset): the schemas it uses instead."""

    pattern: str
    method: str
    request: Any
    status: int
    response: Any


class Checker:
    def __init__(
        self,
        spec: Spec,
        *,
        outside: Iterable[tuple[str, str]] = (),
        routes: Iterable[Route] = (),
        records: Callable[[str, Any], Any] | None = None,
        documented: Iterable[tuple[str, str, str, str]] = (),
    ) -> None:
        """`documented`: (method, path regex, where, field regex) the file's schema leaves out but the
        same file states elsewhere (its examples, an operation's description) — each with its source
        where the checker is built."""
        self.spec = spec
        self.documented = [(m, re.compile(p), w, re.compile(f)) for m, p, w, f in documented]
        self.documented_hits: set[str] = set()
        self.outside = [(m, re.compile(p)) for m, p in outside]
        self.routes = list(routes)
        self.records = records
        self.violations: list[Violation] = []
        self.unchecked: set[str] = set()
        self.checked = 0

    def __call__(self, request: httpx.Request, response: httpx.Response) -> None:
        path = request.url.path
        if any(m == request.method and p.fullmatch(path) for m, p in self.outside):
            self.unchecked.add(f"{request.method} {path}")
            return
        if not path.lower().startswith(self.spec.base_path.lower()):
            self._add(request, "route", path, "outside the spec's server path")
            return
        rel = path[len(self.spec.base_path) :]
        out: list[tuple[str, str, str]] = []
        found = self.spec.operation(request.method, rel)
        body = loads(request.content) if request.content else None
        answer = loads(response.content) if response.content else None
        if found is not None:
            template, operation = found
            self.spec.params(request, operation, out)
            content = (operation.get("requestBody") or {}).get("content") or {}
            schema = (content.get("application/json") or next(iter(content.values()), {})).get("schema")
            if body is not None and schema is None:
                out.append(("request", "(body)", "the operation takes no body"))
            elif body is not None:
                self.spec.body(body, schema, where="request", request=True, out=out)
            declared = operation.get("responses") or {}
            if str(response.status_code) not in declared:
                out.append(("response", "(status)", f"{response.status_code} not among {sorted(declared)}"))
            else:
                media = declared[str(response.status_code)].get("content") or {}
                response_schema = next(iter(media.values()), {}).get("schema") if media else None
                if response_schema is not None and answer is not None:
                    self.spec.body(answer, response_schema, where="response", request=False, out=out)
                elif self.records is not None and answer is not None:
                    for schema_name, record in self.records(template, answer):
                        self.spec.body(record, schema_name, where="response", request=False, out=out)
        else:
            route = next(
                (r for r in self.routes if r.method == request.method and re.fullmatch(r.pattern, rel)), None
            )
            if route is None:
                self._add(request, "route", rel, "no such operation in the spec")
                return
            if body is not None:
                self.spec.body(body, route.request, where="request", request=True, out=out)
            if response.status_code != route.status:
                out.append(("response", "(status)", f"{response.status_code}, expected {route.status}"))
            elif answer is not None:
                self.spec.body(answer, route.response, where="response", request=False, out=out)
        self.checked += 1
        for where, field, rule in out:
            self._add(request, where, field, rule)

    def _add(self, request: httpx.Request, where: str, field: str, rule: str) -> None:
        path = request.url.path
        for method, pattern, place, name in self.documented:
            if (
                method == request.method
                and pattern.fullmatch(path)
                and place == where
                and name.fullmatch(field)
            ):
                self.documented_hits.add(f"{request.method} {path} {where}.{field}")
                return
        self.violations.append(Violation(request.method, request.url.path, where, field, rule))


def recording(
    handle: Callable[[httpx.Request], Awaitable[httpx.Response]], check: Checker
) -> httpx.MockTransport:
    async def record(request: httpx.Request) -> httpx.Response:
        response = await handle(request)
        check(request, response)
        return response

    return httpx.MockTransport(record)


def report(check: Checker) -> str:
    unique = sorted({str(v) for v in check.violations})
    return f"{len(unique)} violation(s) in {check.checked} checked exchanges:\n" + "\n".join(unique)


async def no_sleep(_: float) -> None:
    return None


def psa_scenario(psa: str) -> Scenario:
    return Scenario.model_validate(
        {
            "as_of": "2026-03-10",
            "settings": {"psa": psa},
            "psa": {
                "companies": [
                    {"id": "19", "name": "Ace Chemical"},
                    {"id": "20", "name": "Wayne Enterprises"},
                ],
                "products": [
                    {
                        "id": "301",
                        "name": "M365 Business Basic",
                        "sku": "M365-BB",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                    },
                    {
                        "id": "302",
                        "name": "Backup per GB",
                        "sku": "BK-GB",
                        "unit_price": "0.10",
                        "unit_cost": "0.05",
                    },
                ],
                "agreements": [
                    {"id": "290", "company_id": "19", "name": "Ace Managed", "start_date": "2019-01-01"},
                    {
                        "id": "291",
                        "company_id": "20",
                        "name": "Wayne Annual",
                        "start_date": "2020-01-01",
                        "billing_period": "annual",
                    },
                ],
                "lines": [
                    {
                        "id": "8638",
                        "agreement_id": "290",
                        "product_id": "301",
                        "quantity": "270",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                        "effective_date": "2019-01-01",
                        "description": "Pax8 - M365 Business Basic",
                        "source": {"subscription_id": SUB, "key": f"{SUB}:recurring"},
                    },
                    {
                        "id": "8639",
                        "agreement_id": "290",
                        "product_id": "302",
                        "quantity": "12",
                        "unit_price": "0.10",
                        "unit_cost": "0.05",
                        "effective_date": "2020-02-01",
                        "description": "Backup - overage",
                        "metered": True,
                    },
                ],
            },
        }
    )


def writes() -> list[LineWrite]:
    """One write of every kind the rules produce (RULES.md §2–§7)."""
    common = dict(
        agreement_id="290",
        product_id="301",
        unit_price=Decimal("5.03"),
        unit_cost=Decimal("4.19"),
        subscription_id=NEW,
    )
    return [
        LineWrite(
            key=f"{NEW}:recurring",
            kind="recurring",
            quantity=Decimal("283"),
            effective_date=date(2026, 3, 1),
            end_date=None,
            description="Pax8 - M365 Business Basic",
            **common,
        ),
        LineWrite(
            key=f"{NEW}:prorate:2026-03-05",
            kind="one_time",
            quantity=Decimal("12"),
            effective_date=date(2026, 3, 5),
            end_date=date(2026, 3, 31),
            description="Pax8 - M365 Business Basic - prorate 5 Mar to 31 Mar 2026",
            **common,
        ),
        LineWrite(
            key=f"{NEW}:extra_months:2026-01",
            kind="one_time",
            quantity=Decimal("6"),
            effective_date=date(2026, 3, 1),
            end_date=date(2026, 3, 31),
            months=2,
            period_start=date(2026, 1, 1),
            period_end=date(2026, 2, 28),
            description="Pax8 - M365 Business Basic - 3 seats × 2 months (Jan–Feb 2026)",
            **common,
        ),
        LineWrite(
            key=f"{NEW}:arrears:Microsoft 365 Business Premium Extra Features",
            kind="recurring",
            quantity=Decimal("4"),
            effective_date=date(2026, 3, 1),
            end_date=None,
            description="Pax8 - Teams Phone (arrears)",
            sub_product="Microsoft 365 Business Premium Extra Features",
            **common,
        ),
        LineWrite(
            key=f"{NEW}:usage_summary",
            kind="recurring",
            quantity=Decimal("1"),
            effective_date=date(2026, 3, 1),
            end_date=None,
            description="Microsoft Azure Plan (Usage Summary)",
            **common,
        ),
        LineWrite(
            key=f"{NEW}:usage",
            kind="recurring",
            quantity=Decimal("112"),
            effective_date=date(2026, 3, 1),
            end_date=None,
            description="Backup - overage",
            metered=True,
            **{**common, "product_id": "302", "unit_price": Decimal("0.10"), "unit_cost": Decimal("0.05")},
        ),
        LineWrite(
            key=f"{BACKUP}:usage",
            kind="recurring",
            quantity=Decimal("3"),
            effective_date=date(2026, 3, 1),
            end_date=None,
            description="Backup configuration (average)",
            subscription_id=BACKUP,
            **{k: v for k, v in common.items() if k != "subscription_id"},
        ),
    ]


async def drive_psa(connector: Any) -> None:
    """The connector's whole surface: refresh reads, then every write kind, update and cancel."""
    await connector.companies()
    await connector.products()
    agreements = await connector.agreements()
    await connector.lines(None)
    await connector.lines([a.id for a in agreements])
    await connector.company_billing("19")
    invoiced = await connector.invoiced_lines(date(2025, 4, 1), date(2026, 3, 31))
    assert {line.month for line in invoiced} >= {"2025-04", "2026-03"}  # what the PSA invoiced
    created = []
    for write in writes():
        assert await connector.find_line(write.agreement_id, write.key) is None
        created.append(await connector.create_line(write))
    assert await connector.find_line("290", writes()[0].key) is not None
    await connector.update_line(
        LineUpdate(
            key=f"{SUB}:recurring",
            line_id="8638",
            agreement_id="290",
            quantity=Decimal("283"),
            previous_quantity=Decimal("270"),
        )
    )
    await connector.update_line(
        LineUpdate(
            key=f"{SUB}:recurring",
            line_id="8638",
            agreement_id="290",
            quantity=Decimal("283"),
            unit_price=Decimal("6.50"),
            unit_cost=Decimal("5.10"),
        )
    )
    await connector.update_line(
        LineUpdate(
            key=f"{SUB}:usage",
            line_id="8639",
            agreement_id="290",
            quantity=Decimal("112"),
            previous_quantity=Decimal("12"),
        )
    )
    await connector.update_line(
        LineUpdate(
            key=f"{SUB}:cancel", line_id=created[0].id, agreement_id="290", cancelled_date=date(2026, 3, 31)
        )
    )
    await connector.create_company("Gotham Clinic")
    await connector.aclose()


# --- ConnectWise -----------------------------------------------------------------------------------


def connectwise_checker() -> Checker:
    spec_file = SPECS / "connectwise" / "manage-2026.4-get-subset.openapi.json"
    if not spec_file.exists():
        pytest.skip(f"no ConnectWise spec at {spec_file}")
    spec = Spec([spec_file], "/v4_6_release/apis/3.0")
    addition = {"$ref": "urn:spec0#/components/schemas/Addition"}
    company = {"$ref": "urn:spec0#/components/schemas/Company"}
    routes = [
        Route(r"/finance/agreements/\d+/additions", "POST", addition, 201, addition),
        Route(
            r"/finance/agreements/\d+/additions/\d+",
            "PATCH",
            {"type": "array", "items": PATCH_OPERATION, "minItems": 1},
            200,
            addition,
        ),
        Route(r"/company/companies", "POST", company, 201, company),
    ]
    return Checker(spec, outside=[("GET", r"/login/companyinfo/[^/]+")], routes=routes)


async def test_connectwise_traffic_matches_the_spec():
    check = connectwise_checker()
    sandbox = ConnectWiseSandbox.from_scenario(psa_scenario("connectwise"))
    connector = ConnectWiseConnector(
        sandbox.site,
        sandbox.company_id,
        sandbox.public_key,
        sandbox.private_key,
        sandbox.client_id,
        transport=recording(sandbox.handle, check),
        sleep=no_sleep,
    )
    await drive_psa(connector)
    patches = [r for r in sandbox.requests if r.method == "PATCH"]
    addition_fields = set(check.spec.schemas["Addition"]["properties"])
    for request in patches:  # a PATCH path must name a field of the Addition
        for op in loads(request.content):
            if op["path"].lstrip("/") not in addition_fields:
                check.violations.append(
                    Violation("PATCH", request.url.path, "request", op["path"], "not a property of Addition")
                )
    assert check.checked >= 25
    assert check.unchecked == {f"GET /login/companyinfo/{sandbox.company_id}"}
    assert not check.violations, report(check)


def test_the_connectwise_checker_catches_what_connectwise_refuses():
    """The checks are not vacuous: a sandbox answer or a request that breaks the spec is reported."""
    check = connectwise_checker()
    base = "https://api-na.myconnectwise.net/v4_6_release/apis/3.0"
    bad_post = httpx.Request(
        "POST",
        f"{base}/finance/agreements/290/additions",
        json={
            "product": {"id": 301},
            "serialNumber": "x" * 51,
            "extPrice": 1,
            "effectiveDate": "2026-03-05",
            "nonsense": True,
        },
    )
    check(bad_post, httpx.Response(201, json={"id": "7", "product": {"id": 301}, "billCustomer": "Billable"}))
    check(
        httpx.Request("GET", f"{base}/finance/agreements?pageSize=lots&bogus=1", headers={}),
        httpx.Response(
            200,
            json=[
                {
                    "id": 1,
                    "name": "A",
                    "type": {"id": 1},
                    "company": {"id": 1},
                    "contact": {"id": 1},
                    "invented": 1,
                }
            ],
        ),
    )
    check(httpx.Request("DELETE", f"{base}/finance/agreements/290"), httpx.Response(204))
    found = {(v.where, v.field, v.rule.split(":")[0]) for v in check.violations}
    assert ("request", "(body)", "required") in found  # billCustomer missing [spec]
    assert ("request", "serialNumber", "longer than Max length 50 (51)") in found
    assert ("request", "nonsense", "not a property of the schema") in found
    assert ("request", "effectiveDate", "not a date-time with an offset") in found
    assert ("response", "id", "type") in found
    assert ("query", "pageSize", "not an integer") in found and (
        "query",
        "bogus",
        "not a parameter of the operation",
    ) in found
    assert ("header", "clientid", "required, missing") in found
    assert ("response", "0.invented", "not a property of the schema") in found
    assert ("route", "/finance/agreements/290", "no such operation in the spec") in found


# --- HaloPSA ---------------------------------------------------------------------------------------


_HALO_RECORDS = {
    "/Client": ("clients", "Area"),
    "/Item": ("items", "Item"),
    "/RecurringInvoice": ("invoices", "InvoiceHeader"),
    "/Invoice": ("invoices", "InvoiceHeader"),
}


def halo_records(template: str, answer: Any) -> list[tuple[Any, Any]]:
    """The records inside a Halo answer, each with the resource schema the spec gives it."""

    def header(record: Any) -> list[tuple[Any, Any]]:
        lines = record.get("lines") or [] if isinstance(record, dict) else []
        rest = {k: v for k, v in record.items() if k != "lines"} if isinstance(record, dict) else record
        return [({"$ref": "urn:spec0#/components/schemas/InvoiceHeader"}, rest)] + [
            ({"$ref": "urn:spec0#/components/schemas/InvoiceDetail"}, line) for line in lines
        ]

    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"urn:spec0#/components/schemas/{name}"}

    envelope = {
        "type": "object",
        "required": ["record_count"],
        "properties": {
            "record_count": {"type": "integer"},
            "page_no": {"type": "integer"},
            "page_size": {"type": "integer"},
        },
    }
    if template in _HALO_RECORDS:
        key, name = _HALO_RECORDS[template]
        env = {
            **envelope,
            "required": ["record_count", key],
            "properties": {**envelope["properties"], key: {"type": "array"}},
        }
        records = answer.get(key) if isinstance(answer, dict) else None
        found: list[tuple[Any, Any]] = [(env, answer)]
        for record in records or []:
            found += header(record) if name == "InvoiceHeader" else [(ref(name), record)]
        return found
    if template == "/RecurringInvoice/{id}":
        return header(answer)
    if template in ("/RecurringInvoice/Lines", "/RecurringInvoice/updatelines"):
        items = answer if isinstance(answer, list) else [answer]
        return [(ref("InvoiceDetail"), item) for item in items]
    if template == "/Client":
        items = answer if isinstance(answer, list) else [answer]
        return [(ref("Area"), item) for item in items]
    return [({"not": {}}, answer)]  # an answer this test does not know how to check


def halo_checker() -> Checker:
    spec_file = SPECS / "halopsa" / "halo-api-v2.openapi.json"
    if not spec_file.exists():
        pytest.skip(f"no Halo spec at {spec_file}")
    spec = Spec([spec_file], "/api", offset_optional=True)  # Halo's values carry no offset [APIS §3.6]
    records = halo_records

    def by_template(template: str, answer: Any) -> Any:
        if template == "/Client" and isinstance(answer, dict) and "clients" not in answer:
            return [({"$ref": "urn:spec0#/components/schemas/Area"}, answer)]
        return records(template, answer)

    return Checker(spec, outside=[("GET", r"/api/authinfo"), ("POST", r"/auth/token")], records=by_template)


async def test_halo_traffic_matches_the_spec():
    check = halo_checker()
    sandbox = HaloSandbox.from_scenario(psa_scenario("halopsa"))
    connector = HaloConnector(
        sandbox.base_url,
        sandbox.client_id,
        sandbox.client_secret,
        transport=recording(sandbox.handle, check),
        sleep=no_sleep,
    )
    await drive_psa(connector)
    assert check.checked >= 25
    assert check.unchecked == {"GET /api/authinfo", "POST /auth/token"}
    assert not check.violations, report(check)


def test_the_halo_checker_catches_what_the_spec_refuses():
    check = halo_checker()
    base = "https://sandbox.halopsa.com/api"
    check(
        httpx.Request(
            "POST",
            f"{base}/RecurringInvoice/Lines",
            json=[{"ihid": "290", "qty": 1, "total_price_converted": 1, "startdate": "soon"}],
        ),
        httpx.Response(201, json={"id": 1}),
    )
    check(
        httpx.Request("GET", f"{base}/Client?pageinate=yes&page_sized=10"),
        httpx.Response(200, json={"clients": [{"id": "x"}]}),
    )
    found = {(v.where, v.field, v.rule.split(":")[0]) for v in check.violations}
    assert ("request", "0.ihid", "type") in found
    assert ("request", "0.qty", "not a property of the schema") in found
    assert ("request", "0.total_price_converted", "readOnly, sent in a request") in found
    assert ("request", "0.startdate", "not a date-time with an offset") in found
    assert ("response", "(status)", "201 not among ['200']") in found
    assert ("query", "pageinate", "not a boolean") in found and (
        "query",
        "page_sized",
        "not a parameter of the operation",
    ) in found
    assert ("response", "(body)", "required") in found  # no record_count
    assert ("response", "id", "type") in found


# --- Pax8 ------------------------------------------------------------------------------------------

# Where the Pax8 file's schemas are narrower than the file itself (each from partner-endpoints.openapi.json):
# - the usage-summaries examples carry `subscriptionId`, the `UsageSummary` schema does not;
# - usage-lines declares only `usageDate` and `productId`, yet its description says the list is paginated
#   with a maximum page size of 200 (the Page envelope comes back), so `page` and `size` are sent.
PAX8_DOCUMENTED = [
    ("GET", r"/v1/subscriptions/[^/]+/usage-summaries", "response", r"content\.\d+\.subscriptionId"),
    ("GET", r"/v1/usage-summaries/[^/]+/usage-lines", "query", r"page|size"),
]


def pax8_checker() -> Checker:
    files = [
        SPECS / "pax8" / "partner-endpoints.openapi.json",
        SPECS / "pax8" / "authentication.openapi.json",
    ]
    if not all(f.exists() for f in files):
        pytest.skip("no Pax8 spec")
    return Checker(Spec(files, "/v1"), documented=PAX8_DOCUMENTED)


async def test_pax8_traffic_matches_the_spec():
    check = pax8_checker()
    scenario = Scenario.model_validate(
        json.loads((SHARED / "contract" / "examples" / "seed003_multi_product_arrears.json").read_text())
    )
    sandbox = Pax8Sandbox.from_scenario(scenario)
    connector = Pax8Connector(
        "sandbox",
        "sandbox",
        transport=recording(sandbox.handle, check),
        sleep=no_sleep,
        today=lambda: scenario.as_of,
    )
    companies = await connector.companies()
    await connector.company(companies[0].id)
    subscriptions = await connector.subscriptions()
    await connector.products()
    await connector.subscriptions(company_id=companies[0].id)
    for period in sorted({row.period for row in scenario.vendor.usage}):
        await connector.usage(subscriptions, period=period)
    await connector.aclose()
    assert check.checked >= 5
    assert not check.violations, report(check)
