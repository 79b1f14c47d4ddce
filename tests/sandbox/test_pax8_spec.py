"""Every request the Pax8 connector sends during a sandbox refresh, and every answer the Pax8
sandbox gives, checked against Pax8's own OpenAPI files (../shared/specs/pax8): the route and
method exist, every query parameter is declared and valid (enums, size 1..200, uuid ids,
yyyy-MM-dd dates), required ones are present, the answer's status is documented for the
operation and a 200 body validates against its schema. Pax8-specific; the cross-service check is
another test's."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from engine.connectors.http import loads
from engine.sandbox.demo import build_demo_scenario
from engine.workspace import Workspace

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "pax8"
if not SPECS.is_dir():  # the worktree layout: /work/wt/<name>/tests -> /work/wt/shared
    SPECS = Path("/work/wt/shared/specs/pax8")

pytestmark = pytest.mark.skipif(
    not (SPECS / "partner-endpoints.openapi.json").is_file(),
    reason="the Pax8 OpenAPI files are not at ../shared/specs/pax8",
)


def _spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text(encoding="utf-8"))


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


@FORMATS.checks("yyyy-MM-dd", raises=ValueError)
def _is_day(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))


class Spec:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.routes = []
        for template, item in document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^/]+\}", "([^/]+)", template) + "$")
            names = re.findall(r"\{([^/]+)\}", template)
            self.routes.append((len(names), template, pattern, names, item))
        self.routes.sort(key=lambda r: r[0])  # a literal segment wins over a template

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]] | None:
        for _, template, pattern, names, item in self.routes:
            match = pattern.match(path)
            if match and method.lower() in item:
                op = item[method.lower()]
                return (
                    template,
                    {**op, "parameters": [*item.get("parameters", []), *op.get("parameters", [])]},
                    dict(zip(names, match.groups(), strict=True)),
                )
        return None

    def validate(self, schema: dict[str, Any], value: Any) -> list[str]:
        root = {**schema, "components": self.document.get("components", {})}
        validator = jsonschema.Draft7Validator(root, format_checker=FORMATS)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}"
            for e in validator.iter_errors(value)
        ]


PARTNER = Spec(_spec("partner-endpoints.openapi.json"))
AUTH = Spec(_spec("authentication.openapi.json"))


def _typed(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind in ("number", "integer"):
            number = Decimal(value)
            return int(number) if number == number.to_integral_value() else float(number)
        if kind == "boolean":
            return {"true": True, "false": False}.get(value, value)
    except InvalidOperation:
        return value
    return value


def check(request: httpx.Request, response: httpx.Response) -> list[str]:
    """What a real Pax8 would refuse in `request`, and where `response` departs from the spec."""
    path = request.url.path.removeprefix("/v1")
    where = f"{request.method} {request.url.path}"
    spec = AUTH if path == "/token" else PARTNER
    found = spec.operation(request.method, path)
    if found is None:
        return [f"{where}: no such operation in the spec"]
    template, op, path_values = found
    problems = []
    declared = {p["name"]: p for p in op["parameters"] if p.get("in") == "query"}
    if "paginated" in (op.get("description") or "") and "page" not in declared:
        # usage-lines declares no page/size, but says "Fetch a paginated list of usage lines. Default
        # page is 0 and default size is 10. The maximum page size is 200" [spec] and answers a Page.
        declared |= {
            "page": {"name": "page", "schema": {"type": "number", "minimum": 0}},
            "size": {"name": "size", "schema": {"type": "number", "minimum": 1, "maximum": 200}},
        }
    for name, value in request.url.params.multi_items():
        param = declared.get(name)
        if param is None:
            problems.append(f"{where}: query parameter {name!r} is not declared for {template}")
            continue
        for error in spec.validate(param.get("schema", {}), _typed(value, param.get("schema", {}))):
            problems.append(f"{where}: {name}={value!r}: {error}")
    for name, param in declared.items():
        if param.get("required") and name not in request.url.params:
            problems.append(f"{where}: required query parameter {name!r} missing")
    for param in (p for p in op["parameters"] if p.get("in") == "path"):
        for error in spec.validate(param.get("schema", {}), path_values.get(param["name"])):
            problems.append(f"{where}: path {param['name']}: {error}")
    body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body_schema is not None:
        if request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            problems.append(f"{where}: request body is not application/json")
        problems += [
            f"{where}: request body {e}" for e in spec.validate(body_schema, json.loads(request.content))
        ]
    status = str(response.status_code)
    if status not in op["responses"] and response.status_code not in (401, 429):
        problems.append(f"{where}: answered {status}, which the spec does not list for {template}")
    if status in op["responses"]:
        schema = op["responses"][status].get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            body = json.loads(json.dumps(loads(response.content), default=float))
            problems += [f"{where}: response {e}" for e in spec.validate(schema, body)]
    return problems


async def recorded_refresh(field: str) -> list[tuple[httpx.Request, httpx.Response]]:
    workspace = Workspace.sandbox_from_scenario(build_demo_scenario(), pax8_price_field=field)
    pax8 = workspace.sandboxes["pax8"]
    seen: list[tuple[httpx.Request, httpx.Response]] = []
    handle = pax8.handle

    async def recording(request: httpx.Request) -> httpx.Response:
        response = await handle(request)
        await response.aread()
        seen.append((request, response))
        return response

    pax8.handle = recording
    result = await workspace.refresh()
    assert result.ok, result.errors
    company = workspace.store.vendor_companies()[0]
    assert (await workspace.refresh_customer(company.id)).ok
    await workspace.vendor.catalogue()
    assert await workspace.vendor.company(str(uuid.uuid4())) is None  # a 404 in the Error envelope
    await workspace.aclose()
    return seen


@pytest.mark.parametrize("field", ["retail", "partner"])
async def test_every_request_and_answer_of_a_refresh_is_what_the_spec_allows(field):
    seen = await recorded_refresh(field)
    operations = {
        PARTNER.operation(r.method, r.url.path.removeprefix("/v1"))[0]  # type: ignore[index]
        for r, _ in seen
        if r.url.path != "/v1/token"
    }
    assert {
        "/companies",
        "/companies/{companyId}",
        "/products",
        "/products/{productId}",
        "/products/{productId}/pricing",
        "/subscriptions",
        "/subscriptions/{subscriptionId}/history",
        "/subscriptions/{subscriptionId}/usage-summaries",
        "/usage-summaries/{usageSummaryId}/usage-lines",
    } <= operations, operations
    assert any(response.status_code == 404 for _, response in seen)
    problems = [problem for request, response in seen for problem in check(request, response)]
    assert problems == [], f"{len(problems)} of {len(seen)} exchanges depart from the spec:\n" + "\n".join(
        problems[:20]
    )


def test_the_check_itself_catches_what_the_spec_refuses():
    """The checker is not a rubber stamp: undeclared and out-of-range parameters, a wrong route, a
    missing required parameter and a body off its schema are all reported."""
    ok = httpx.Response(
        200, json={"content": [], "page": {"size": 10, "totalElements": 0, "totalPages": 0, "number": 0}}
    )
    assert check(httpx.Request("GET", "https://api.pax8.com/v1/subscriptions?page=0&size=200"), ok) == []
    assert check(httpx.Request("GET", "https://api.pax8.com/v1/subscriptions?size=500"), ok)
    assert check(httpx.Request("GET", "https://api.pax8.com/v1/subscriptions?updatedSince=2026-01-01"), ok)
    assert check(httpx.Request("GET", "https://api.pax8.com/v1/subscriptions?companyId=acme"), ok)
    assert check(httpx.Request("GET", "https://api.pax8.com/v1/subscriptions?sort=updatedDate,desc"), ok)
    assert check(httpx.Request("GET", "https://api.pax8.com/v1/things"), ok)
    assert check(
        httpx.Request("GET", f"https://api.pax8.com/v1/usage-summaries/{uuid.uuid4()}/usage-lines"), ok
    )
    assert check(
        httpx.Request("GET", "https://api.pax8.com/v1/subscriptions"),
        httpx.Response(200, json={"content": [{"id": "s1", "quantity": "three"}]}),
    )
    assert check(
        httpx.Request("GET", f"https://api.pax8.com/v1/companies/{uuid.uuid4()}"),
        httpx.Response(404, json={"type": "NOT_FOUND", "status": "404"}),
    )
