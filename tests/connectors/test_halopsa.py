"""HaloConnector against respx: discovery, token caching, paging by record_count, exact requests,
retries, and request bodies validated against Halo's swagger (../shared/specs/halopsa)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from engine.connectors.base import LineUpdate, LineWrite, ProductSpec, ServiceError
from engine.connectors.halopsa import HaloConnector

BASE = "https://acme.halopsa.com"
API = f"{BASE}/api"
AUTH_URL = f"{BASE}/auth"
SUB = "8c1b6c3e-1d2a-4c55-9a77-0e2a5b3c4d5e"
SPEC_PATH = (
    Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "halopsa" / "halo-api-v2.openapi.json"
)


def _openapi_nullable(node: Any) -> Any:
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
        pytest.skip(f"the Halo spec is not at {SPEC_PATH}")
    return _openapi_nullable(json.loads(SPEC_PATH.read_text()))


def validate_post(spec: dict[str, Any], path: str, body: Any) -> None:
    """Validate a POST body against the request schema the swagger declares for `path` (refs resolved
    inside the spec file), and check every field sent is a property of the element schema."""
    registry = Registry().with_resource(
        "urn:halo", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array"
    element_ref = schema["items"]["$ref"]
    Draft202012Validator(
        {"type": "array", "items": {"$ref": "urn:halo" + element_ref}}, registry=registry
    ).validate(body)
    properties = spec["components"]["schemas"][element_ref.rsplit("/", 1)[1]]["properties"]
    for element in body:
        assert set(element) <= set(properties), set(element) - set(properties)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connector(sleep: Sleeps | None = None, clock: Clock | None = None, **kw: Any) -> HaloConnector:
    return HaloConnector(
        BASE,
        "cid",
        "secret",
        sleep=sleep if sleep is not None else Sleeps(),
        clock=clock if clock is not None else Clock(),
        **kw,
    )


def mock_auth(expires_in: int = 3600) -> tuple[respx.Route, respx.Route]:
    info = respx.get(f"{API}/authinfo").respond(json={"auth_url": AUTH_URL, "tenant_id": "acme"})
    counter = {"n": 0}

    def issue(request: httpx.Request) -> httpx.Response:
        counter["n"] += 1
        return httpx.Response(
            200, json={"access_token": f"tok{counter['n']}", "token_type": "Bearer", "expires_in": expires_in}
        )

    token = respx.post(f"{AUTH_URL}/token").mock(side_effect=issue)
    return info, token


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
        description="Pax8 - M365 prorate",
    )
    values.update(changes)
    return LineWrite(**values)


LINE = {
    "id": 8638,
    "ihid": 290,
    "_itemid": 301,
    "qty_order": 283,
    "unit_price": 6.0,
    "unit_cost": 5.0,
    "startdate": "2019-01-01T00:00:00",
    "enddate": "1900-01-01T00:00:00",
    "item_shortdescription": "M365",
    "item_longdescription": "Pax8 - M365",
    "onetimecharge": False,
    "is_meter": False,
    "comment_1": f"{SUB}:recurring",
}


@respx.mock
async def test_discovery_token_and_a_paged_read_are_exact():
    info, token = mock_auth()
    clients = respx.get(f"{API}/Client").respond(
        json={"page_no": 1, "page_size": 1000, "record_count": 1, "clients": [{"id": 19, "name": "Ace"}]}
    )
    client = connector()
    result = await client.companies()
    assert [(c.id, c.name) for c in result] == [("19", "Ace")]
    assert info.call_count == 1 and token.call_count == 1
    token_request = token.calls.last.request
    assert token_request.url.params["tenant"] == "acme"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert {k: v[0] for k, v in parse_qs(token_request.content.decode()).items()} == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "secret",
        "scope": "all",
    }
    assert "Authorization" not in token_request.headers
    request = clients.calls.last.request
    assert request.headers["Authorization"] == "Bearer tok1"
    assert request.url.params.multi_items() == [
        ("pageinate", "true"),
        ("page_size", "1000"),
        ("page_no", "1"),
    ]
    await client.aclose()


@respx.mock
async def test_an_explicit_tenant_wins_over_discovery():
    _, token = mock_auth()
    respx.get(f"{API}/Item").respond(json={"record_count": 0, "items": []})
    client = connector(tenant="other")
    await client.products()
    assert token.calls.last.request.url.params["tenant"] == "other"


@respx.mock
async def test_the_token_is_cached_until_it_nearly_expires():
    _, token = mock_auth(expires_in=3600)
    respx.get(f"{API}/Client").respond(json={"record_count": 0, "clients": []})
    clock = Clock()
    client = connector(clock=clock)
    await client.companies()
    clock.now += 3000
    await client.companies()
    assert token.call_count == 1
    clock.now += 600 - 60 + 1  # within the 60 s margin
    await client.companies()
    assert token.call_count == 2
    assert respx.calls.last.request.headers["Authorization"] == "Bearer tok2"


@respx.mock
async def test_a_401_renews_the_token_and_sends_once_more():
    _, token = mock_auth()
    route = respx.get(f"{API}/Client")
    route.side_effect = [
        httpx.Response(200, json={"record_count": 0, "clients": []}),
        httpx.Response(401, text=""),
        httpx.Response(200, json={"record_count": 0, "clients": []}),
    ]
    client = connector()
    await client.companies()
    await client.companies()
    assert token.call_count == 2 and route.call_count == 3
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok2"


@respx.mock
async def test_paging_stops_at_record_count():
    mock_auth()
    route = respx.get(f"{API}/Item")
    items = [
        {"id": i, "name": f"Item {i}", "baseprice": "1.10", "costprice": 0.7, "internalreference": f"SKU{i}"}
        for i in range(1, 6)
    ]
    route.side_effect = [
        httpx.Response(200, json={"record_count": 5, "items": items[i : i + 2]}) for i in (0, 2, 4)
    ]
    client = connector()
    client.page_size = 2
    products = await client.products()
    assert [p.id for p in products] == ["1", "2", "3", "4", "5"]
    assert [c.request.url.params["page_no"] for c in route.calls] == ["1", "2", "3"]
    assert products[0].unit_price == Decimal("1.10") and products[0].unit_cost == Decimal("0.7")
    assert products[0].sku == "SKU1"


@respx.mock
async def test_paging_stops_on_an_exactly_full_last_page():
    mock_auth()
    route = respx.get(f"{API}/Client")
    route.side_effect = [
        httpx.Response(200, json={"record_count": 4, "clients": [{"id": 1}, {"id": 2}]}),
        httpx.Response(200, json={"record_count": 4, "clients": [{"id": 3}, {"id": 4}]}),
        httpx.Response(200, json={"record_count": 4, "clients": []}),
    ]
    client = connector()
    client.page_size = 2
    assert len(await client.companies()) == 4 and route.call_count == 2


@respx.mock
async def test_recurring_invoices_and_lines_map_with_money_to_the_cent():
    mock_auth()
    headers = [
        {
            "id": 290,
            "client_id": 19,
            "client_name": "Ace",
            "reference": "Ace Managed",
            "startdate": "2019-01-01T00:00:00",
            "enddate": None,
            "period": 1,
            "disabled": False,
            "lines": [
                LINE,
                {
                    **LINE,
                    "id": 8640,
                    "qty_order": 12.5,
                    "unit_price": 0.1,
                    "unit_cost": 2.675,
                    "is_meter": True,
                    "comment_1": "a note from the operator",
                    "enddate": "2020-06-30T00:00:00",
                    "item_longdescription": None,
                },
                {
                    **LINE,
                    "id": 8641,
                    "onetimecharge": True,
                    "comment_1": f"{SUB}:prorate:2026-03-05",
                    "startdate": None,
                },
            ],
        },
        {
            "id": 291,
            "client_id": 20,
            "reference": "Wayne annual",
            "startdate": "2020-01-01T00:00:00",
            "period": 12,
            "disabled": False,
            "lines": [],
        },
        {
            "id": 292,
            "client_id": 20,
            "reference": "Disabled",
            "startdate": "2020-01-01T00:00:00",
            "disabled": True,
            "lines": [{**LINE, "id": 9999}],
        },
    ]
    route = respx.get(f"{API}/RecurringInvoice").mock(
        return_value=httpx.Response(
            200,
            content=json.dumps({"record_count": 3, "invoices": headers}).encode(),
            headers={"Content-Type": "application/json"},
        )
    )
    client = connector()
    agreements = await client.agreements()
    assert [(a.id, a.company_id, a.name, a.billing_period) for a in agreements] == [
        ("290", "19", "Ace Managed", "monthly"),
        ("291", "20", "Wayne annual", "annual"),
    ]
    lines = {line.id: line for line in await client.lines()}
    assert route.calls.last.request.url.params["includelines"] == "true"
    assert set(lines) == {"8638", "8640", "8641"}
    recurring, metered, prorate = lines["8638"], lines["8640"], lines["8641"]
    assert recurring.cancelled_date is None  # 1900-01-01 is Halo's "no date"
    assert recurring.source.key == f"{SUB}:recurring" and recurring.quantity == Decimal("283")
    assert metered.metered and metered.source is None and metered.description == "M365"
    assert metered.quantity == Decimal("12.5") and metered.unit_price == Decimal("0.1")
    assert str(metered.unit_cost) == "2.675" and metered.cancelled_date == date(2020, 6, 30)
    assert prorate.kind == "one_time" and prorate.effective_date == date(2019, 1, 1)  # header start


@respx.mock
async def test_lines_of_given_agreements_and_find_line():
    mock_auth()
    route = respx.get(f"{API}/RecurringInvoice/290").respond(
        json={"id": 290, "startdate": "2019-01-01T00:00:00", "lines": [LINE]}
    )
    client = connector()
    assert [line.id for line in await client.lines(["290"])] == ["8638"]
    assert route.calls.last.request.url.params["includedetails"] == "true"
    found = await client.find_line("290", f"{SUB}:recurring")
    assert found is not None and found.id == "8638" and found.agreement_id == "290"
    assert await client.find_line("290", f"{SUB}:prorate:2026-03-05") is None


@respx.mock
async def test_create_line_posts_an_exact_invoice_detail_array(spec):
    mock_auth()
    saved = {
        **LINE,
        "id": 9001,
        "qty_order": 12,
        "unit_price": 5.03,
        "unit_cost": 4.19,
        "onetimecharge": True,
        "startdate": "2026-03-05T00:00:00",
        "enddate": "2026-03-31T00:00:00",
        "comment_1": write().key,
    }
    route = respx.post(f"{API}/RecurringInvoice/Lines").respond(201, json=saved)
    client = connector()
    assert "Authorization" not in client.create_requests(write())[0].headers  # no token yet
    await client.connect()
    planned = client.create_requests(write())
    line = await client.create_line(write())
    sent = route.calls.last.request
    body = json.loads(sent.content, parse_float=Decimal)
    assert body == [
        {
            "ihid": 290,
            "_itemid": 301,
            "qty_order": 12,
            "unit_price": Decimal("5.03"),
            "unit_cost": Decimal("4.19"),
            "startdate": "2026-03-05T00:00:00",
            "item_shortdescription": "Pax8 - M365 prorate",
            "item_longdescription": "Pax8 - M365 prorate",
            "onetimecharge": True,
            "comment_1": write().key,
            "enddate": "2026-03-31T00:00:00",
            "prorata_next_invoice": False,
            "is_meter": False,
        }
    ]
    assert b'"unit_price":5.03' in sent.content
    validate_post(spec, "/RecurringInvoice/Lines", body)
    assert (
        sent.headers["Authorization"] == "Bearer tok1" and sent.headers["Content-Type"] == "application/json"
    )
    assert (planned[0].method, str(planned[0].url), planned[0].content) == (
        sent.method,
        str(sent.url),
        sent.content,
    )
    assert planned[0].headers["Authorization"] == sent.headers["Authorization"]
    assert line.id == "9001" and line.kind == "one_time" and line.unit_price == Decimal("5.03")
    assert line.source.key == write().key and route.call_count == 1


@respx.mock
async def test_update_and_cancel_post_to_updatelines(spec):
    mock_auth()
    route = respx.post(f"{API}/RecurringInvoice/updatelines").respond(200, json={**LINE, "qty_order": 290})
    client = connector()
    update = LineUpdate(
        key="k", line_id="8638", agreement_id="290", quantity=Decimal("290"), unit_cost=Decimal("5.10")
    )
    line = await client.update_line(update)
    body = json.loads(route.calls.last.request.content, parse_float=Decimal)
    assert body == [{"id": 8638, "ihid": 290, "qty_order": 290, "unit_cost": Decimal("5.10")}]
    validate_post(spec, "/RecurringInvoice/updatelines", body)
    assert line.quantity == Decimal("290")
    await client.update_line(
        LineUpdate(key="k", line_id="8638", agreement_id="290", cancelled_date=date(2026, 3, 31))
    )
    cancel = json.loads(route.calls.last.request.content)
    assert cancel == [{"id": 8638, "ihid": 290, "enddate": "2026-03-31T00:00:00"}]
    validate_post(spec, "/RecurringInvoice/updatelines", cancel)
    assert client.update_requests(LineUpdate(key="k", line_id="8638", agreement_id="290")) == []


@respx.mock
async def test_create_company_posts_a_client_array(spec):
    mock_auth()
    route = respx.post(f"{API}/Client").respond(201, json={"id": 77, "name": "Gotham Clinic"})
    company = await connector().create_company("Gotham Clinic")
    body = json.loads(route.calls.last.request.content)
    assert body == [{"name": "Gotham Clinic"}]
    validate_post(spec, "/Client", body)
    assert (company.id, company.name) == ("77", "Gotham Clinic")


# --- retries and errors -----------------------------------------------------------------------------


@respx.mock
async def test_a_read_backs_off_on_429_and_honours_retry_after():
    mock_auth()
    sleeps = Sleeps()
    route = respx.get(f"{API}/Client")
    route.side_effect = [
        httpx.Response(429, text="Rate Limit Reached - 300 Requests per rolling 5 minute window"),
        httpx.Response(429, headers={"Retry-After": "4"}, text="Rate Limit Reached"),
        httpx.Response(200, json={"record_count": 0, "clients": []}),
    ]
    await connector(sleeps).companies()
    assert route.call_count == 3 and len(sleeps.calls) == 2 and sleeps.calls[1] == 4.0


@respx.mock
async def test_a_read_is_retried_after_a_503():
    mock_auth()
    route = respx.get(f"{API}/Item")
    route.side_effect = [httpx.Response(503), httpx.Response(200, json={"record_count": 0, "items": []})]
    assert await connector().products() == []
    assert route.call_count == 2


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500, text="Object reference not set"), httpx.ReadTimeout("lost"), httpx.Response(502)],
)
async def test_a_line_write_is_never_resent(failure):
    mock_auth()
    route = respx.post(f"{API}/RecurringInvoice/Lines")
    route.side_effect = [failure, httpx.Response(201, json={**LINE, "id": 9001})]
    with pytest.raises(ServiceError) as caught:
        await connector().create_line(write())
    assert caught.value.sent is True and route.call_count == 1


@respx.mock
async def test_an_update_is_never_resent_after_a_timeout():
    mock_auth()
    route = respx.post(f"{API}/RecurringInvoice/updatelines")
    route.side_effect = [httpx.ReadTimeout("lost"), httpx.Response(200, json=LINE)]
    with pytest.raises(ServiceError) as caught:
        await connector().update_line(
            LineUpdate(key="k", line_id="8638", agreement_id="290", quantity=Decimal("1"))
        )
    assert caught.value.sent and caught.value.status is None and route.call_count == 1


@respx.mock
async def test_a_validation_error_surfaces_halo_s_message():
    mock_auth()
    respx.post(f"{API}/RecurringInvoice/Lines").respond(400, json="Item 999 not found")
    with pytest.raises(ServiceError) as caught:
        await connector().create_line(write(product_id="999"))
    assert (
        caught.value.status == 400 and caught.value.rejected and caught.value.message == "Item 999 not found"
    )


@respx.mock
async def test_bad_client_credentials_are_rejected():
    respx.get(f"{API}/authinfo").respond(json={"auth_url": AUTH_URL, "tenant_id": "acme"})
    token = respx.post(f"{AUTH_URL}/token").respond(401, json={"error": "invalid_client"})
    with pytest.raises(ServiceError) as caught:
        await connector().companies()
    assert caught.value.status == 401 and caught.value.message == "invalid_client" and token.call_count == 1


@respx.mock
async def test_company_billing_reads_one_clients_recurring_invoices_with_their_lines():
    mock_auth()
    headers = respx.get(f"{API}/RecurringInvoice").respond(
        json={
            "record_count": 2,
            "invoices": [
                {
                    "id": 290,
                    "client_id": 19,
                    "reference": "Ace monthly",
                    "startdate": "2019-01-01T00:00:00",
                    "lines": [LINE],
                },
                {"id": 291, "client_id": 19, "disabled": True, "lines": [{**LINE, "id": 8639, "ihid": 291}]},
            ],
        }
    )
    client = connector()
    agreements, lines = await client.company_billing("19")
    assert [(a.id, a.company_id, a.name) for a in agreements] == [("290", "19", "Ace monthly")]
    assert [(line.id, line.agreement_id, line.quantity, line.unit_price) for line in lines] == [
        ("8638", "290", Decimal("283"), Decimal("6.0"))
    ]
    assert headers.call_count == 1
    assert headers.calls.last.request.url.params.multi_items() == [
        ("client_id", "19"),
        ("includelines", "true"),
        ("pageinate", "true"),
        ("page_size", "1000"),
        ("page_no", "1"),
    ]
    with pytest.raises(ServiceError, match="is not a Halo id"):
        await client.company_billing("acme")
    await client.aclose()


# --- responses are validated before use (issue 11) ---------------------------------------------------


@respx.mock
@pytest.mark.parametrize(
    "response, message",
    [
        (httpx.Response(200, json="You do not have permission to view recurring invoices"), "permission"),
        (httpx.Response(200, json={"error": "invalid_token"}), "invalid_token"),
        (httpx.Response(200, content=b""), "empty body"),
        (httpx.Response(200, content=b"{not json"), "not JSON"),
        (httpx.Response(200, json={"invoices": []}), r"record_count"),
        (httpx.Response(200, json={"record_count": 1, "invoices": [{"client_id": 19}]}), r"invoices.0.id"),
        (httpx.Response(200, json=[{"id": 290}]), "unexpected response"),
    ],
)
async def test_a_200_that_is_not_a_page_of_recurring_invoices_is_an_error_not_no_rows(response, message):
    mock_auth()
    respx.get(f"{API}/RecurringInvoice").mock(return_value=response)
    with pytest.raises(ServiceError, match=message):
        await connector().lines()


@respx.mock
async def test_a_service_that_ignores_page_no_is_stopped():
    mock_auth()
    respx.get(f"{API}/Client").respond(json={"record_count": 10, "clients": [{"id": 1}, {"id": 2}]})
    client = connector()
    client.page_size = 2
    with pytest.raises(ServiceError, match="page 2 repeats page 1"):
        await client.companies()


@respx.mock
async def test_paging_is_capped_by_pages_and_bytes():
    mock_auth()
    counter = {"n": 0}

    def page(request: httpx.Request) -> httpx.Response:
        counter["n"] += 2
        return httpx.Response(
            200,
            json={
                "record_count": 10**9,
                "clients": [{"id": counter["n"], "name": "x" * 400}, {"id": counter["n"] + 1, "name": "y"}],
            },
        )

    respx.get(f"{API}/Client").mock(side_effect=page)
    client = connector(max_pages=4)
    client.page_size = 2
    with pytest.raises(ServiceError, match="stopped after 4 pages"):
        await client.companies()
    client = connector(max_bytes=1500)
    client.page_size = 2
    with pytest.raises(ServiceError, match="stopped after .* bytes"):
        await client.companies()


@respx.mock
async def test_a_write_answered_with_an_error_string_is_an_error_that_was_maybe_sent():
    mock_auth()
    respx.post(f"{API}/RecurringInvoice/Lines").respond(200, json="Line could not be saved")
    with pytest.raises(ServiceError, match="Line could not be saved") as caught:
        await connector().create_line(write())
    assert caught.value.sent  # the executor looks before sending again


# --- the second match (comment_1 is unproven) --------------------------------------------------------


@respx.mock
async def test_find_line_falls_back_to_item_start_date_and_description_when_comment_1_is_lost():
    mock_auth()
    kept_nothing = {
        **LINE,
        "id": 9001,
        "qty_order": 12,
        "onetimecharge": True,
        "startdate": "2026-03-05T00:00:00",
        "enddate": "2026-03-31T00:00:00",
        "comment_1": None,
        "item_longdescription": "Pax8 - M365 prorate",
    }
    respx.get(f"{API}/RecurringInvoice/290").respond(json={"id": 290, "lines": [LINE, kept_nothing]})
    fresh = connector()
    assert await fresh.find_line("290", write().key) is None  # nothing to match by: not ours
    found = await fresh.find_line("290", write().key, expect=write())
    assert found is not None and found.id == "9001" and found.source.key == write().key
    sender = connector()
    sender.create_requests(write())  # what this connector sent is remembered for the lookup after a timeout
    assert (await sender.find_line("290", write().key)).id == "9001"
    other = write(description="Pax8 - M365 prorate (edited)")
    assert await fresh.find_line("290", write().key, expect=other) is None
    assert await fresh.find_line("290", write().key, expect=write(product_id="302")) is None
    assert await fresh.find_line("290", write().key, expect=write(effective_date=date(2026, 3, 6))) is None


# --- issue 13: the product wizard creates an item -------------------------------------------------


@respx.mock
async def test_create_product_posts_an_item_array_the_spec_accepts(spec):
    mock_auth()
    route = respx.post(f"{API}/Item").respond(
        200, json={"id": 912, "name": "Acronis Backup GB", "internalreference": "ACR-GB"}
    )
    created = await connector().create_product(
        ProductSpec(
            "Acronis Backup GB", "ACR-GB", Decimal("0.12"), Decimal("0.05"), recurring=True, taxable=True
        )
    )
    body = json.loads(route.calls.last.request.content)
    assert body == [
        {
            "name": "Acronis Backup GB",
            "baseprice": 0.12,
            "costprice": 0.05,
            "isrecurringitem": True,
            "taxable": True,
            "recurringprice": 0.12,
            "recurringcost": 0.05,
            "internalreference": "ACR-GB",
        }
    ]
    validate_post(spec, "/Item", body)
    assert (created.id, created.sku, created.unit_price) == ("912", "ACR-GB", Decimal("0.12"))


@respx.mock
async def test_bill_options_are_refused_before_sending_for_halo_lines_have_none() -> None:
    """[spec] InvoiceDetail has no taxable flag (only tax codes) and no bill option (issue 13)."""
    route = respx.post(f"{API}/RecurringInvoice/Lines").respond(json=[])
    for asked in ({"bill_option": "no_charge"}, {"taxable": True}):
        with pytest.raises(ServiceError) as refused:
            connector().create_requests(write(**asked))
        assert refused.value.sent is False and "HaloPSA recurring invoice lines have no taxable flag" in str(
            refused.value
        )
    assert route.call_count == 0
    assert connector().create_requests(write(bill_option="billable", taxable=None))  # the defaults go out
