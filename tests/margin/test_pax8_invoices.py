"""Pax8 invoices: the connector against respx with the spec's own example bodies, and against the
sandbox (strict paging and parameters, the demo's invoices read back exactly)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import respx

from engine.connectors.base import ServiceError
from engine.connectors.pax8 import Pax8Connector
from engine.sandbox.demo import build_demo_invoices, build_demo_scenario
from engine.sandbox.pax8 import Pax8Sandbox

API = "https://api.pax8.com/v1"
SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "pax8" / "partner-endpoints.openapi.json"
D = Decimal


def example(name: str) -> dict:
    return json.loads(SPEC.read_text())["components"]["examples"][name]["value"]


def token() -> httpx.Response:
    return httpx.Response(200, json={"access_token": "tok", "expires_in": 86400, "token_type": "Bearer"})


@respx.mock
async def test_reads_the_spec_examples() -> None:
    respx.post(f"{API}/token").mock(return_value=token())
    invoice = example("invoice-0")
    listing = respx.get(f"{API}/invoices").mock(
        return_value=httpx.Response(
            200,
            json={
                "content": [invoice],
                "page": {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0},
            },
        )
    )
    items = example("invoice-items")
    items["page"] = {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0}
    respx.get(f"{API}/invoices/{invoice['id']}/items").mock(return_value=httpx.Response(200, json=items))
    async with Pax8Connector("cid", "secret") as pax8:
        (found,) = await pax8.invoices(date(2020, 9, 1), date(2020, 9, 30))
    params = listing.calls[0].request.url.params
    assert params["invoiceDateRangeStart"] == "2020-09-01" and params["invoiceDateRangeEnd"] == "2020-09-30"
    assert params["page"] == "0" and params["size"] == "200"
    assert (found.id, found.status, found.month, found.total, found.currency) == (
        invoice["id"],
        "Paid",
        "2020-09",
        D("17432960"),
        "USD",
    )
    assert found.final and found.counted
    (item,) = found.items
    assert item.id == f"{invoice['id']}:0"  # the spec's example item has no id
    assert (item.type, item.term, item.quantity, item.cost, item.price) == (
        "subscription",
        "Monthly",
        11,
        2500,
        50000,
    )
    assert item.cost_total == D("27500") and item.subscription_id == "f6b60139-8ab6-45f4-b808-354ebbe53070"
    assert item.start_period == date(2019, 4, 1) and item.end_period == date(2019, 5, 1)


@respx.mock
async def test_an_item_without_any_currency_is_refused() -> None:
    respx.post(f"{API}/token").mock(return_value=token())
    respx.get(f"{API}/invoices").mock(
        return_value=httpx.Response(
            200,
            json={
                "content": [{"id": "i1", "invoiceDate": "2026-11-05", "total": 10}],
                "page": {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0},
            },
        )
    )
    respx.get(f"{API}/invoices/i1/items").mock(
        return_value=httpx.Response(
            200,
            json={
                "content": [{"id": "x", "type": "subscription", "quantity": 1, "cost": 10, "costTotal": 10}],
                "page": {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0},
            },
        )
    )
    async with Pax8Connector("cid", "secret") as pax8:
        with pytest.raises(ServiceError, match="no currencyCode"):
            await pax8.invoices(date(2026, 11, 1), date(2026, 11, 30))


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    return build_demo_scenario()


def connector(sandbox: Pax8Sandbox) -> Pax8Connector:
    return Pax8Connector("sandbox", "sandbox", transport=httpx.MockTransport(sandbox.handle))


async def test_the_sandbox_serves_the_demo_invoices_exactly(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox = Pax8Sandbox.from_scenario(demo, rate_limit=None)
    async with connector(sandbox) as pax8:
        read = await pax8.invoices(date(2025, 1, 1), date(2026, 11, 30))
    expected = build_demo_invoices(demo)
    assert sorted(read, key=lambda i: i.id) == sorted(expected, key=lambda i: i.id)
    statuses = sorted(i.status for i in read)
    assert statuses.count("Credited") == 1 and statuses.count("Unpaid") == 1 and statuses.count("Paid") == 11
    items = [item for invoice in read for item in invoice.items]
    assert {item.type for item in items} >= {"subscription", "prorate", "service-charge"}
    assert any(item.term == "Arrears" for item in items)
    # Items page 200 at a time: the latest invoice needs more than one page.
    pages = [r for r in sandbox.requests if r.url.path.endswith("/items") and r.url.params["page"] != "0"]
    assert pages


async def test_sandbox_paging_and_parameters_are_strict(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox = Pax8Sandbox.from_scenario(demo, rate_limit=None)
    async with connector(sandbox) as pax8:
        for params, message in (
            ({"size": "201"}, "size must be between 1 and 200"),
            ({"invoiceDateRangeStart": "11/01/2026"}, "yyyy-MM-dd"),
            ({"status": "Open"}, "status must be one of"),
            ({"sort": "companyName"}, "sort must be one of"),
        ):
            with pytest.raises(ServiceError) as err:
                await pax8.get("/invoices", params)
            assert err.value.status == 400 and any(message in d for d in err.value.details), params
        with pytest.raises(ServiceError) as err:
            await pax8.get("/invoices/no-such-invoice")
        assert err.value.status == 404 and "Invoice Not Found" in str(err.value)
        with pytest.raises(ServiceError) as err:
            await pax8.get("/invoices/no-such-invoice/items")
        assert err.value.status == 404
        body = await pax8.get("/invoices", {"sort": "invoiceDate,desc", "size": "2"})
        assert body["page"] == {"size": 2, "totalElements": 13, "totalPages": 7, "number": 0}
        dates = [i["invoiceDate"] for i in body["content"]]
        assert dates == sorted(dates, reverse=True)
        paid = await pax8.raw_invoices(status="Paid")
        assert len(paid) == 11


async def test_a_scenario_that_is_not_the_demo_gets_no_planted_leaks() -> None:
    from engine.scenario import Scenario

    small = Scenario.model_validate(
        {
            "as_of": "2026-11-21",
            "vendor": {
                "companies": [{"id": "c1", "name": "Acme"}],
                "products": [{"id": "p1", "name": "Seat"}],
                "subscriptions": [
                    {
                        "id": "s1",
                        "company_id": "c1",
                        "product_id": "p1",
                        "start_date": "2026-01-10",
                        "unit_price": "10.00",
                        "unit_cost": "8.00",
                        "history": [
                            {"id": "h1", "action": "initial", "quantity": 3, "effective_date": "2026-01-10"}
                        ],
                    }
                ],
            },
        }
    )
    sandbox = Pax8Sandbox.from_scenario(small, rate_limit=None)
    async with connector(sandbox) as pax8:
        read = await pax8.invoices(date(2025, 1, 1), date(2026, 11, 30))
    assert {i.status for i in read} == {"Paid", "Unpaid"}
    nov = [i for i in read if i.month == "2026-11"]
    assert [(it.type, it.quantity, it.cost_total) for it in nov[0].items] == [("subscription", 3, D("24.00"))]
