"""ConnectWiseConnector against respx: exact requests, paging, retries, errors, and request bodies
validated against ConnectWise's published schemas (../shared/specs/connectwise)."""

from __future__ import annotations

import base64
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from engine.connectors.base import LineUpdate, LineWrite, ProductSpec, ServiceError
from engine.connectors.connectwise import ConnectWiseConnector, KeyCodec, json_bytes

SITE = "api-na.myconnectwise.net"
ROOT = f"https://{SITE}/v2026_4/apis/3.0"
SUB = "8c1b6c3e-1d2a-4c55-9a77-0e2a5b3c4d5e"
SPEC_PATH = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "specs"
    / "connectwise"
    / "manage-2026.4-get-subset.openapi.json"
)

# PatchOperation is not in the saved GET subset; this is its shape in ConnectWise's full spec (2025.8,
# op/path/value, where `value` is declared as an untyped object), tightened to what JSON Patch requires.
PATCH_OPERATION = {
    "type": "object",
    "required": ["op", "path", "value"],
    "properties": {"op": {"enum": ["add", "replace", "remove"]}, "path": {"type": "string"}, "value": {}},
    "additionalProperties": False,
}


def _openapi_nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` → JSON Schema `type: [T, "null"]`."""
    if isinstance(node, dict):
        node = {k: _openapi_nullable(v) for k, v in node.items()}
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_openapi_nullable(v) for v in node]
    return node


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"the ConnectWise spec is not at {SPEC_PATH}")
    return _openapi_nullable(json.loads(SPEC_PATH.read_text()))


def validate(spec: dict[str, Any], schema_name: str, instance: Any) -> None:
    """Validate against `#/components/schemas/<name>` with every `$ref` resolved inside the spec file, and
    check that every field sent is one the schema names (the spec has no additionalProperties: false)."""
    registry = Registry().with_resource(
        "urn:cw", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    Draft202012Validator({"$ref": f"urn:cw#/components/schemas/{schema_name}"}, registry=registry).validate(
        instance
    )
    schema = spec["components"]["schemas"][schema_name]
    assert set(instance) <= set(schema["properties"]), set(instance) - set(schema["properties"])
    for field, value in instance.items():
        if schema["properties"][field].get("format") == "date-time":
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00Z", value), value
        max_length = re.search(r"Max length: (\d+);", schema["properties"][field].get("description", ""))
        if max_length:
            assert len(value) <= int(max_length[1]), field


def test_patch_operation_schema_is_strict():
    validator = Draft202012Validator(PATCH_OPERATION)
    assert not validator.is_valid({"op": "set", "path": "quantity", "value": 1})
    assert not validator.is_valid({"op": "replace", "path": "quantity"})


class Sleeps:
    """A fake `sleep` that records the waits (truthy even before the first call)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def connector(sleep: Sleeps | None = None, codebase: str | None = "v2026_4") -> ConnectWiseConnector:
    return ConnectWiseConnector(
        SITE,
        "acme",
        "pubkey",
        "privkey",
        "client-guid",
        codebase=codebase,
        sleep=sleep if sleep is not None else Sleeps(),
    )


def write(**changes: Any) -> LineWrite:
    values: dict[str, Any] = dict(
        key=f"{SUB}:prorate:2026-03-05",
        agreement_id="290",
        product_id="301",
        kind="one_time",
        quantity=Decimal("12"),
        unit_price=Decimal("5.03"),
        unit_cost=Decimal("4.19"),
        effective_date=date(2026, 3, 5),
        end_date=date(2026, 3, 31),
        description="Pax8 - Microsoft 365 Business Basic - prorate 5 Mar to 31 Mar 2026 (12 seats)",
    )
    values.update(changes)
    return LineWrite(**values)


ADDITION = {
    "id": 7001,
    "product": {"id": 301, "identifier": "M365-BB", "serializedFlag": False},
    "quantity": 283,
    "unitPrice": 5.03,
    "unitCost": 4.19,
    "billCustomer": "Billable",
    "effectiveDate": "2019-01-01T00:00:00Z",
    "cancelledDate": None,
    "serialNumber": f"{SUB}:recurring",
    "invoiceDescription": "Pax8 - M365",
    "description": "Pax8 - M365",
    "agreementId": 290,
    "_info": {"lastUpdated": "2026-03-01T10:00:00Z"},
}

AUTH = "Basic " + base64.b64encode(b"acme+pubkey:privkey").decode()


@respx.mock
async def test_codebase_discovery_then_companies_with_exact_headers_and_query():
    info = respx.get(f"https://{SITE}/login/companyinfo/acme").respond(
        json={"CompanyName": "Acme", "Codebase": "v2026_4/", "VersionCode": "v2026.4", "CompanyID": "acme"}
    )
    companies = respx.get(f"{ROOT}/company/companies").respond(
        json=[{"id": 19, "identifier": "Ace", "name": "Ace"}]
    )
    client = connector(codebase=None)
    result = await client.companies()
    assert [(c.id, c.name) for c in result] == [("19", "Ace")]
    assert client.codebase == "v2026_4" and info.call_count == 1
    request = companies.calls.last.request
    assert request.headers["Authorization"] == AUTH
    assert request.headers["clientId"] == "client-guid"
    assert request.headers["Accept"] == "application/json"
    assert request.url.params.multi_items() == [
        ("conditions", "deletedFlag=false"),
        ("pageSize", "1000"),
        ("page", "1"),
    ]
    await client.companies()
    assert info.call_count == 1  # discovered once
    await client.aclose()


@respx.mock
async def test_agreements_follow_link_headers_to_the_end():
    page2 = f"{ROOT}/finance/agreements?conditions=agreementStatus%3D%22Active%22&pageSize=1000&page=2"
    route = respx.get(f"{ROOT}/finance/agreements")
    route.side_effect = [
        httpx.Response(
            200,
            json=[
                {
                    "id": 290,
                    "name": "Ace",
                    "company": {"id": 19},
                    "startDate": "2019-01-01T00:00:00Z",
                    "noEndingDateFlag": True,
                    "billingCycle": {"id": 1, "name": "Monthly"},
                }
            ],
            headers={"Link": f'<{page2}>; rel="next", <{page2}>; rel="last"'},
        ),
        httpx.Response(
            200,
            json=[
                {
                    "id": 291,
                    "name": "Wayne",
                    "company": {"id": 20},
                    "startDate": "2020-01-01T00:00:00Z",
                    "endDate": "2027-12-31T00:00:00Z",
                    "billingCycle": {"id": 4, "name": "Annual"},
                }
            ],
            headers={"Link": f'<{ROOT}/finance/agreements?page=1>; rel="first"'},
        ),
    ]
    client = connector()
    agreements = await client.agreements()
    assert [(a.id, a.company_id, a.billing_period, a.end_date) for a in agreements] == [
        ("290", "19", "monthly", None),
        ("291", "20", "annual", date(2027, 12, 31)),
    ]
    first, second = (call.request for call in route.calls)
    assert first.url.params["conditions"] == 'agreementStatus="Active"'
    assert first.url.params["pageSize"] == "1000" and first.url.params["page"] == "1"
    assert str(second.url) == page2 and second.headers["Authorization"] == AUTH
    await client.aclose()


@respx.mock
async def test_a_next_link_to_another_host_is_refused():
    respx.get(f"{ROOT}/procurement/catalog").respond(
        json=[{"id": 1, "identifier": "X", "description": "X"}],
        headers={"Link": '<https://evil.example.com/steal?page=2>; rel="next"'},
    )
    with pytest.raises(ServiceError, match="another host"):
        await connector().products()


@respx.mock
async def test_additions_map_to_lines_with_money_to_the_cent():
    rows = [
        ADDITION,
        {
            **ADDITION,
            "id": 7002,
            "quantity": 12,
            "unitPrice": 0.1,
            "unitCost": 2.675,
            "cancelledDate": "2026-03-31T00:00:00Z",
            "effectiveDate": "2026-03-05T00:00:00Z",
            "serialNumber": KeyCodec(50).encode(f"{SUB}:prorate:2026-03-05"),
            "invoiceDescription": "Prorate",
        },
        {**ADDITION, "id": 7003, "serialNumber": "SN-12345", "quantity": None, "unitPrice": 19.99},
    ]
    respx.get(f"{ROOT}/finance/agreements/290/additions").mock(
        return_value=httpx.Response(
            200, content=json.dumps(rows).encode(), headers={"Content-Type": "application/json"}
        )
    )
    lines = {line.id: line for line in await connector().lines(["290"])}
    recurring, prorate, foreign = lines["7001"], lines["7002"], lines["7003"]
    assert (
        recurring.kind == "recurring"
        and recurring.unit_price == Decimal("5.03")
        and recurring.quantity == Decimal("283")
    )
    assert recurring.source.key == f"{SUB}:recurring" and recurring.source.subscription_id == SUB
    assert prorate.kind == "one_time" and prorate.cancelled_date == date(2026, 3, 31)
    assert prorate.unit_price == Decimal("0.1") and prorate.unit_cost == Decimal("2.675")
    assert str(prorate.unit_cost) == "2.675"  # never through a float
    assert prorate.source.key == f"{SUB}:prorate:2026-03-05" and prorate.effective_date == date(2026, 3, 5)
    assert (
        foreign.source is None and foreign.quantity == Decimal("0") and foreign.unit_price == Decimal("19.99")
    )
    assert not any(line.metered for line in lines.values())


@respx.mock
async def test_find_line_queries_the_encoded_key(spec):
    key = f"{SUB}:prorate:2026-03-05"
    encoded = KeyCodec(50).encode(key)
    route = respx.get(f"{ROOT}/finance/agreements/290/additions").respond(
        json=[{**ADDITION, "id": 7002, "serialNumber": encoded.upper()}]
    )
    found = await connector().find_line("290", key)
    assert found is not None and found.id == "7002" and found.source.key == key
    assert route.calls.last.request.url.params["conditions"] == f'serialNumber="{encoded}"'
    route.respond(json=[])
    assert await connector().find_line("290", key) is None


@respx.mock
async def test_create_line_sends_the_exact_addition(spec):
    route = respx.post(f"{ROOT}/finance/agreements/290/additions").respond(
        201,
        json={
            **ADDITION,
            "id": 7005,
            "serialNumber": KeyCodec(50).encode(write().key),
            "quantity": 12,
            "unitPrice": 5.03,
            "cancelledDate": "2026-03-31T00:00:00Z",
        },
    )
    client = connector()
    planned = client.create_requests(write())
    line = await client.create_line(write())
    assert route.call_count == 1
    sent = route.calls.last.request
    body = json.loads(sent.content, parse_float=Decimal)
    assert body == {
        "product": {"id": 301},
        "billCustomer": "Billable",
        "quantity": 12,
        "unitPrice": Decimal("5.03"),
        "unitCost": Decimal("4.19"),
        "effectiveDate": "2026-03-05T00:00:00Z",
        "serialNumber": KeyCodec(50).encode(write().key),
        "invoiceDescription": write().description,
        "description": write().description[:50],
        "agreementId": 290,
        "cancelledDate": "2026-03-31T00:00:00Z",
        "prorateCurrentPeriodFlag": False,
    }
    assert b'"unitPrice":5.03,' in sent.content and b'"unitCost":4.19,' in sent.content
    validate(spec, "Addition", body)
    assert sent.headers["Content-Type"] == "application/json" and sent.headers["Authorization"] == AUTH
    assert sent.headers["clientId"] == "client-guid"
    # the dry run shows exactly what was sent
    assert len(planned) == 1
    assert (planned[0].method, str(planned[0].url), planned[0].content) == (
        sent.method,
        str(sent.url),
        sent.content,
    )
    assert {k: v for k, v in planned[0].headers.items() if k != "content-length"} == {
        k: v for k, v in sent.headers.items() if k != "content-length"
    }
    assert line.id == "7005" and line.kind == "one_time" and line.source.key == write().key


@respx.mock
async def test_recurring_create_has_no_cancelled_date(spec):
    route = respx.post(f"{ROOT}/finance/agreements/290/additions").respond(201, json=ADDITION)
    await connector().create_line(
        write(key=f"{SUB}:recurring", kind="recurring", end_date=None, description="Pax8 - M365")
    )
    body = json.loads(route.calls.last.request.content)
    assert "cancelledDate" not in body and body["serialNumber"] == f"{SUB}:recurring"
    validate(spec, "Addition", body)


@respx.mock
async def test_update_and_cancel_are_json_patch_arrays():
    route = respx.patch(f"{ROOT}/finance/agreements/290/additions/7001").respond(
        200, json={**ADDITION, "quantity": 290}
    )
    client = connector()
    update = LineUpdate(
        key=f"{SUB}:recurring",
        line_id="7001",
        agreement_id="290",
        quantity=Decimal("290"),
        unit_price=Decimal("6.50"),
        effective_date=date(2026, 4, 1),
    )
    planned = client.update_requests(update)
    line = await client.update_line(update)
    ops = json.loads(route.calls.last.request.content, parse_float=Decimal)
    assert ops == [
        {"op": "replace", "path": "quantity", "value": 290},
        {"op": "replace", "path": "unitPrice", "value": Decimal("6.50")},
    ]
    assert planned[0].content == route.calls.last.request.content and planned[0].method == "PATCH"
    for op in ops:
        Draft202012Validator(PATCH_OPERATION).validate(op)
    assert line.quantity == Decimal("290")

    await client.update_line(
        LineUpdate(key=f"{SUB}:cancel", line_id="7001", agreement_id="290", cancelled_date=date(2026, 3, 31))
    )
    cancel = json.loads(route.calls.last.request.content)
    assert cancel == [{"op": "replace", "path": "cancelledDate", "value": "2026-03-31T00:00:00Z"}]
    Draft202012Validator(PATCH_OPERATION).validate(cancel[0])


@respx.mock
async def test_an_empty_update_sends_nothing_and_reads_the_line():
    get = respx.get(f"{ROOT}/finance/agreements/290/additions/7001").respond(json=ADDITION)
    client = connector()
    assert client.update_requests(LineUpdate(key="k", line_id="7001", agreement_id="290")) == []
    line = await client.update_line(LineUpdate(key="k", line_id="7001", agreement_id="290"))
    assert line.id == "7001" and get.call_count == 1


@respx.mock
async def test_create_company_body(spec):
    route = respx.post(f"{ROOT}/company/companies").respond(
        201, json={"id": 55, "identifier": "GothamClinic", "name": "Gotham Clinic"}
    )
    company = await connector().create_company("Gotham Clinic")
    body = json.loads(route.calls.last.request.content)
    assert body == {"identifier": "GothamClinic", "name": "Gotham Clinic", "site": {"name": "Main"}}
    validate(spec, "Company", body)
    assert (company.id, company.name) == ("55", "Gotham Clinic")


# --- retries and errors -----------------------------------------------------------------------------


@respx.mock
async def test_a_read_waits_out_429_retry_after_then_succeeds():
    sleeps = Sleeps()
    route = respx.get(f"{ROOT}/procurement/catalog")
    route.side_effect = [
        httpx.Response(
            429, headers={"Retry-After": "7"}, json={"code": "TooManyRequests", "message": "slow down"}
        ),
        httpx.Response(
            200, json=[{"id": 301, "identifier": "M365-BB", "description": "M365", "price": 6.0, "cost": 5.0}]
        ),
    ]
    products = await connector(sleeps).products()
    assert route.call_count == 2 and sleeps.calls == [7.0]
    assert products[0].unit_price == Decimal("6.0") and products[0].sku == "M365-BB"


@respx.mock
async def test_a_read_is_retried_after_503_and_502():
    sleeps = Sleeps()
    route = respx.get(f"{ROOT}/company/companies")
    route.side_effect = [
        httpx.Response(503, text="Service Unavailable"),
        httpx.Response(502, text="Bad gateway"),
        httpx.Response(200, json=[]),
    ]
    assert await connector(sleeps).companies() == []
    assert route.call_count == 3 and len(sleeps.calls) == 2


@respx.mock
async def test_a_read_timeout_is_retried():
    route = respx.get(f"{ROOT}/company/companies")
    route.side_effect = [httpx.ReadTimeout("slow"), httpx.Response(200, json=[])]
    assert await connector().companies() == []
    assert route.call_count == 2


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"code": "ServerError", "message": "An error occurred"}),
        httpx.Response(503, text="Service Unavailable"),
        httpx.ReadTimeout("lost"),
    ],
)
async def test_a_write_is_never_resent_after_a_500_503_or_timeout(failure):
    route = respx.post(f"{ROOT}/finance/agreements/290/additions")
    route.side_effect = [failure, httpx.Response(201, json=ADDITION)]
    with pytest.raises(ServiceError) as caught:
        await connector().create_line(write())
    assert caught.value.sent is True and route.call_count == 1
    assert not caught.value.rejected


@respx.mock
async def test_a_patch_is_never_resent_after_a_timeout():
    route = respx.patch(f"{ROOT}/finance/agreements/290/additions/7001")
    route.side_effect = [httpx.ReadTimeout("lost"), httpx.Response(200, json=ADDITION)]
    with pytest.raises(ServiceError) as caught:
        await connector().update_line(
            LineUpdate(key="k", line_id="7001", agreement_id="290", quantity=Decimal("1"))
        )
    assert caught.value.sent and caught.value.status is None and route.call_count == 1


@respx.mock
async def test_a_write_refused_with_429_is_sent_again():
    sleeps = Sleeps()
    route = respx.post(f"{ROOT}/finance/agreements/290/additions")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(201, json=ADDITION),
    ]
    await connector(sleeps).create_line(write())
    assert route.call_count == 2 and sleeps.calls == [2.0]


@respx.mock
async def test_validation_errors_carry_the_errors_array():
    respx.post(f"{ROOT}/finance/agreements/290/additions").respond(
        400,
        json={
            "code": "InvalidObject",
            "message": "addition object is invalid",
            "errors": [
                {
                    "code": "NullValue",
                    "message": "The product field is required.",
                    "resource": "addition",
                    "field": "product",
                },
                {"code": "MaxLength", "message": "serialNumber is too long", "resource": "addition"},
            ],
        },
    )
    with pytest.raises(ServiceError) as caught:
        await connector().create_line(write())
    error = caught.value
    assert error.status == 400 and error.rejected and error.service == "ConnectWise Manage"
    assert error.message == "addition object is invalid (InvalidObject)"
    assert error.details == ["product: The product field is required.", "serialNumber is too long"]
    assert "The product field is required." in str(error)


@respx.mock
async def test_unauthorised_is_rejected_not_retried():
    route = respx.get(f"{ROOT}/company/companies").respond(
        401, json={"code": "Unauthorized", "message": "Nope"}
    )
    with pytest.raises(ServiceError) as caught:
        await connector().companies()
    assert caught.value.status == 401 and caught.value.rejected and route.call_count == 1


def test_non_numeric_ids_are_refused_before_sending():
    with pytest.raises(ServiceError) as caught:
        connector().create_requests(write(agreement_id="AD"))
    assert caught.value.sent is False


# --- the key codec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        f"{SUB}:recurring",
        f"{SUB}:prorate:2020-08-05",
        f"{SUB}:extra_months:2020-07",
        f"{SUB}:arrears:Business",
        f"{SUB}:usage_summary",
        "500:prorate:2020-08-05",
        f"{SUB.upper()}:prorate:2020-08-05",
        f"{SUB}:arrears:Microsoft 365 Business Premium and more",
        'x"y:usage',
    ],
)
def test_keys_fit_serial_number_and_round_trip(key):
    codec = KeyCodec(50)
    encoded = codec.encode(key)
    assert len(encoded) <= 50 and '"' not in encoded
    assert codec.decode(encoded) == key
    assert KeyCodec(50).encode(key) == encoded  # stable across processes
    if not encoded.startswith("#"):
        assert KeyCodec(50).decode(encoded) == key  # reversible without memory


def test_foreign_serial_numbers_are_not_keys():
    codec = KeyCodec(50)
    assert codec.decode("SN-12345") is None and codec.decode("") is None and codec.decode("~tooshort") is None
    assert codec.decode("#" + "a" * 32) is None


def test_json_numbers_keep_their_decimal_text():
    assert (
        json_bytes({"a": Decimal("6.00"), "b": [Decimal("-0.05"), Decimal("1E+2")], "c": "6.00"})
        == b'{"a":6.00,"b":[-0.05,100],"c":"6.00"}'
    )


@respx.mock
async def test_company_billing_filters_agreements_by_company_then_reads_their_additions():
    agreements = respx.get(f"{ROOT}/finance/agreements").respond(
        json=[
            {
                "id": 290,
                "name": "Ace",
                "company": {"id": 19},
                "startDate": "2019-01-01T00:00:00Z",
                "noEndingDateFlag": True,
                "billingCycle": {"id": 1, "name": "Monthly"},
            }
        ]
    )
    additions = respx.get(f"{ROOT}/finance/agreements/290/additions").respond(json=[ADDITION])
    client = connector()
    got, lines = await client.company_billing("19")
    assert [(a.id, a.company_id) for a in got] == [("290", "19")]
    assert [(line.id, line.agreement_id, line.quantity) for line in lines] == [
        ("7001", "290", Decimal("283"))
    ]
    request = agreements.calls.last.request
    assert request.url.params.multi_items() == [
        ("conditions", 'company/id=19 and agreementStatus="Active"'),
        ("pageSize", "1000"),
        ("page", "1"),
    ]
    assert additions.calls.last.request.url.params.multi_items() == [("pageSize", "1000"), ("page", "1")]
    with pytest.raises(ServiceError, match="company 'nineteen' is not a ConnectWise id"):
        await client.company_billing("nineteen")  # never sent: a condition must not carry text
    await client.aclose()


# --- responses are validated before use (issue 11) ---------------------------------------------------


@respx.mock
@pytest.mark.parametrize(
    "response, message",
    [
        (
            httpx.Response(200, json={"code": "InvalidObject", "message": "agreement object is invalid"}),
            "agreement object is invalid",
        ),
        (httpx.Response(200, content=b""), "empty body"),
        (httpx.Response(200, content=b"<html>Cloudflare</html>"), "not JSON"),
        (httpx.Response(200, json={"items": []}), "unexpected response"),
        (httpx.Response(200, json=[{"name": "no id"}]), r"unexpected response \(0.id"),
        (httpx.Response(200, json=[{**ADDITION, "product": "301"}]), r"0.product"),
    ],
)
async def test_a_200_that_is_not_a_list_of_additions_is_an_error_not_no_rows(response, message):
    respx.get(f"{ROOT}/finance/agreements/290/additions").mock(return_value=response)
    with pytest.raises(ServiceError, match=message):
        await connector().lines(["290"])


@respx.mock
async def test_a_next_link_that_never_ends_is_stopped():
    looping = f"{ROOT}/procurement/catalog?pageSize=1000&page=2"
    respx.get(f"{ROOT}/procurement/catalog").respond(
        json=[{"id": 1, "identifier": "X", "description": "X"}], headers={"Link": f'<{looping}>; rel="next"'}
    )
    with pytest.raises(ServiceError, match="repeats a page already read"):
        await connector().products()


@respx.mock
async def test_paging_is_capped_by_pages_and_bytes():
    counter = {"n": 1}

    def page(request: httpx.Request) -> httpx.Response:
        counter["n"] += 1
        following = f"{ROOT}/procurement/catalog?pageSize=1000&page={counter['n']}"
        return httpx.Response(
            200,
            json=[{"id": counter["n"], "identifier": "X" * 500}],
            headers={"Link": f'<{following}>; rel="next"'},
        )

    respx.get(f"{ROOT}/procurement/catalog").mock(side_effect=page)
    client = ConnectWiseConnector(
        SITE, "acme", "pubkey", "privkey", "client-guid", codebase="v2026_4", sleep=Sleeps(), max_pages=5
    )
    with pytest.raises(ServiceError, match="stopped after 5 pages"):
        await client.products()
    client = ConnectWiseConnector(
        SITE, "acme", "pubkey", "privkey", "client-guid", codebase="v2026_4", sleep=Sleeps(), max_bytes=2000
    )
    with pytest.raises(ServiceError, match="stopped after .* bytes"):
        await client.products()


@respx.mock
async def test_a_create_answered_with_an_empty_201_is_an_error():
    respx.post(f"{ROOT}/finance/agreements/290/additions").respond(201, content=b"")
    with pytest.raises(ServiceError, match="create addition: .*empty body"):
        await connector().create_line(write())


# --- billing facts: lessIncluded, metered, prorate flag ----------------------------------------------


@respx.mock
async def test_less_included_is_read_as_the_invoiced_quantity_and_kept_on_update():
    """ConnectWise invoices (quantity − lessIncluded) × unitPrice: the line holds what is invoiced, and
    a quantity change keeps the addition's included units."""
    respx.get(f"{ROOT}/finance/agreements/290/additions").respond(
        json=[{**ADDITION, "quantity": 12, "lessIncluded": 2}]
    )
    client = connector()
    (line,) = await client.lines(["290"])
    assert line.quantity == Decimal("10")
    route = respx.patch(f"{ROOT}/finance/agreements/290/additions/7001").respond(
        200, json={**ADDITION, "quantity": 13, "lessIncluded": 2}
    )
    updated = await client.update_line(
        LineUpdate(key=f"{SUB}:recurring", line_id="7001", agreement_id="290", quantity=Decimal("11"))
    )
    assert json.loads(route.calls.last.request.content) == [
        {"op": "replace", "path": "quantity", "value": 13}
    ]
    assert updated.quantity == Decimal("11")


@respx.mock
async def test_the_metered_line_is_the_addition_with_the_metered_custom_field_ticked():
    metered = {"id": 5, "caption": "Metered", "type": "Checkbox", "entryMethod": "EntryField", "value": True}
    respx.get(f"{ROOT}/finance/agreements/290/additions").respond(
        json=[
            {**ADDITION, "customFields": [{**metered, "value": False}]},
            {**ADDITION, "id": 7002, "serialNumber": None, "customFields": [metered]},
            {**ADDITION, "id": 7003, "serialNumber": None},
        ]
    )
    client = connector()
    lines = {line.id: line.metered for line in await client.lines(["290"])}
    assert lines == {"7001": False, "7002": True, "7003": False}
    body = client.addition_body(write(metered=True))
    assert body["customFields"] == [metered]


def test_a_metered_create_before_the_field_is_known_is_refused_before_sending():
    with pytest.raises(ServiceError, match="cannot mark the addition metered") as caught:
        connector().addition_body(write(metered=True))
    assert caught.value.sent is False


def test_every_addition_is_written_with_prorating_off_and_billable():
    body = connector().addition_body(write())
    assert body["prorateCurrentPeriodFlag"] is False and body["billCustomer"] == "Billable"


# --- issue 13: the product wizard creates a catalog item ----------------------------------------------


@respx.mock
async def test_create_product_posts_a_catalog_item_the_spec_accepts(spec):
    respx.get(f"{ROOT}/procurement/subcategories").respond(
        200, json=[{"id": 7, "name": "Cloud"}, {"id": 8, "name": "Backup"}]
    )
    respx.get(f"{ROOT}/procurement/types").respond(
        200, json=[{"id": 3, "name": "Hardware"}, {"id": 4, "name": "Service"}]
    )
    route = respx.post(f"{ROOT}/procurement/catalog").respond(201, json={"id": 901, "identifier": "ACR-GB"})
    spec_ = ProductSpec(
        "Acronis Backup GB", "ACR-GB", Decimal("0.12"), Decimal("0.05"), taxable=True, category="backup"
    )
    product = await connector().create_product(spec_)
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "identifier": "ACR-GB",
        "description": "Acronis Backup GB",
        "customerDescription": "Acronis Backup GB",
        "subcategory": {"id": 8},
        "type": {"id": 4},
        "productClass": "Service",
        "price": 0.12,
        "cost": 0.05,
        "taxableFlag": True,
        "recurringFlag": True,
        "inactiveFlag": False,
        "recurringRevenue": 0.12,
        "recurringCost": 0.05,
    }
    validate(spec, "CatalogItem", body)
    assert (product.id, product.sku, product.name, product.unit_price) == (
        "901",
        "ACR-GB",
        "Acronis Backup GB",
        Decimal("0.12"),
    )


@respx.mock
async def test_create_product_with_an_unknown_category_names_the_choices_and_sends_nothing():
    respx.get(f"{ROOT}/procurement/subcategories").respond(200, json=[{"id": 7, "name": "Cloud"}])
    respx.get(f"{ROOT}/procurement/types").respond(200, json=[{"id": 4, "name": "Service"}])
    route = respx.post(f"{ROOT}/procurement/catalog").respond(201, json={"id": 1})
    with pytest.raises(ServiceError) as info:
        await connector().create_product(ProductSpec("X", "X1", Decimal(1), Decimal(0), category="Backup"))
    assert "no subcategory named 'Backup' (ConnectWise has: Cloud)" in str(info.value)
    assert info.value.sent is False and not route.called


# --- bill options (issue 13, APIS.md §2.8 Addition.billCustomer / taxableFlag) ------------------------


@respx.mock
async def test_a_bindings_bill_options_are_written_on_the_addition_and_read_back(spec):
    route = respx.post(f"{ROOT}/finance/agreements/290/additions").respond(
        201, json={**ADDITION, "id": 7006, "billCustomer": "NoCharge", "taxableFlag": False}
    )
    line = await connector().create_line(write(bill_option="no_charge", taxable=False))
    body = json.loads(route.calls.last.request.content)
    assert (body["billCustomer"], body["taxableFlag"]) == ("NoCharge", False)
    validate(spec, "Addition", body)
    assert (line.bill_option, line.taxable) == ("no_charge", False)

    await connector().create_line(write(bill_option="do_not_bill"))
    body = json.loads(route.calls.last.request.content)
    assert body["billCustomer"] == "DoNotBill" and "taxableFlag" not in body  # the catalog item's default


@respx.mock
async def test_an_update_writes_bill_options_only_when_the_binding_sets_them():
    route = respx.patch(f"{ROOT}/finance/agreements/290/additions/7001").respond(200, json=ADDITION)
    client = connector()
    base = dict(key=f"{SUB}:recurring", line_id="7001", agreement_id="290", quantity=Decimal("290"))
    await client.update_line(LineUpdate(**base, bill_option="no_charge", taxable=True))
    ops = json.loads(route.calls.last.request.content)
    assert ops == [
        {"op": "replace", "path": "quantity", "value": 290},
        {"op": "replace", "path": "billCustomer", "value": "NoCharge"},
        {"op": "replace", "path": "taxableFlag", "value": True},
    ]
    await client.update_line(LineUpdate(**base))
    assert json.loads(route.calls.last.request.content) == [
        {"op": "replace", "path": "quantity", "value": 290}
    ]


@respx.mock
async def test_a_read_addition_with_an_unknown_bill_customer_is_refused():
    respx.get(f"{ROOT}/finance/agreements/290/additions").respond(
        json=[{**ADDITION, "billCustomer": "Sometimes"}]
    )
    with pytest.raises(ServiceError):
        await connector().lines(["290"])
