"""The Pax8 sandbox: the real connector runs against it unchanged (round trip from a scenario),
and it behaves like the API (auth, paging, error bodies, faults, mutations)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from engine.connectors.base import ServiceError
from engine.connectors.http import loads
from engine.connectors.pax8 import Pax8Connector
from engine.months import last_of_month, parse_month
from engine.sandbox.faults import Fault, Faults
from engine.sandbox.pax8 import Pax8Sandbox
from engine.scenario import Scenario, UsageRow

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "contract" / "examples"
API = "https://api.pax8.com/v1"


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def scenario() -> Scenario:
    """Every kind, every history action, an inactive company and an annual term."""
    return Scenario.model_validate(
        {
            "as_of": "2021-01-04",
            "vendor": {
                "companies": [
                    {"id": "c-ace", "name": "Ace Chemical"},
                    {"id": "c-fw", "name": "1st West Insurance"},
                    {"id": "c-old", "name": "Gone Ltd", "status": "inactive"},
                ],
                "products": [
                    {
                        "id": "p-m365",
                        "sku": "MST-OFB-BES-C100",
                        "name": "Microsoft 365 Business Basic",
                        "kind": "seat",
                    },
                    {
                        "id": "p-pp",
                        "sku": "PPT-ESS",
                        "name": "Proofpoint Essentials",
                        "kind": "endpoint_usage",
                        "sub_products": ["Business", "Advanced"],
                    },
                    {"id": "p-az", "sku": "MST-AZR-PLAN", "name": "Azure plan", "kind": "usage_summary"},
                    {"id": "p-ws", "sku": "pw-base-workstations", "name": "Workstations", "kind": "quota"},
                ],
                "subscriptions": [
                    {
                        "id": "s-1",
                        "company_id": "c-ace",
                        "product_id": "p-m365",
                        "start_date": "2019-01-01",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                        "history": [
                            {
                                "id": "s-1-h1",
                                "action": "initial",
                                "quantity": "270",
                                "effective_date": "2019-01-01",
                            },
                            {
                                "id": "s-1-h2",
                                "action": "increase",
                                "quantity": "282",
                                "effective_date": "2020-08-05",
                            },
                            {
                                "id": "s-1-h3",
                                "action": "decrease",
                                "quantity": "280",
                                "effective_date": "2020-08-05",
                            },
                            {
                                "id": "s-1-h4",
                                "action": "increase",
                                "quantity": "283",
                                "effective_date": "2020-08-17",
                            },
                        ],
                    },
                    {
                        "id": "s-2",
                        "company_id": "c-ace",
                        "product_id": "p-m365",
                        "billing_term": "annual",
                        "start_date": "2020-03-01",
                        "end_date": "2020-11-30",
                        "unit_price": "60.00",
                        "unit_cost": "50.40",
                        "status": "cancelled",
                        "cancelled_date": "2020-11-30",
                        "history": [
                            {
                                "id": "s-2-h1",
                                "action": "initial",
                                "quantity": "3",
                                "effective_date": "2020-03-01",
                            },
                            {
                                "id": "s-2-h2",
                                "action": "cancel",
                                "quantity": "3",
                                "effective_date": "2020-11-30",
                            },
                        ],
                    },
                    {
                        "id": "s-3",
                        "company_id": "c-old",
                        "product_id": "p-m365",
                        "start_date": "2020-12-04",
                        "end_date": "2021-12-03",
                        "unit_price": "25.00",
                        "unit_cost": "19.99",
                        "history": [
                            {
                                "id": "s-3-h1",
                                "action": "initial",
                                "quantity": "2",
                                "effective_date": "2020-12-04",
                            }
                        ],
                    },
                    {
                        "id": "s-pp",
                        "company_id": "c-fw",
                        "product_id": "p-pp",
                        "start_date": "2020-07-01",
                        "unit_price": "0",
                        "unit_cost": "0",
                    },
                    {
                        "id": "s-az",
                        "company_id": "c-fw",
                        "product_id": "p-az",
                        "start_date": "2020-01-01",
                        "unit_price": "0",
                        "unit_cost": "0",
                    },
                    {
                        "id": "s-ws",
                        "company_id": "c-fw",
                        "product_id": "p-ws",
                        "start_date": "2020-01-01",
                        "unit_price": "0",
                        "unit_cost": "0",
                    },
                ],
                "usage": [
                    {
                        "subscription_id": "s-pp",
                        "sub_product": "Business",
                        "period": "2020-12",
                        "quantity": "17",
                        "unit_price": "3.00",
                        "unit_cost": "2.44",
                        "snapshot_date": "2020-12-19",
                    },
                    {
                        "subscription_id": "s-pp",
                        "sub_product": "Advanced",
                        "period": "2020-12",
                        "quantity": "4",
                        "unit_price": "4.50",
                        "unit_cost": "3.60",
                        "snapshot_date": "2020-12-19",
                    },
                    {
                        "subscription_id": "s-pp",
                        "sub_product": "Business",
                        "period": "2020-11",
                        "quantity": "15",
                        "unit_price": "3.00",
                        "unit_cost": "2.44",
                        "snapshot_date": "2020-11-19",
                    },
                    {
                        "subscription_id": "s-az",
                        "period": "2020-12",
                        "quantity": "1",
                        "unit_price": "452.86",
                        "unit_cost": "350.456",
                        "charges": "452.86",
                        "partner_total": "350.456",
                        "snapshot_date": "2020-12-31",
                    },
                    {
                        "subscription_id": "s-az",
                        "period": "2020-11",
                        "quantity": "1",
                        "unit_price": "100.56",
                        "unit_cost": "86.456",
                        "charges": "100.56",
                        "partner_total": "86.456",
                        "snapshot_date": "2020-11-30",
                    },
                    {
                        "subscription_id": "s-ws",
                        "period": "2020-12",
                        "quantity": "59",
                        "unit_price": "1.25",
                        "unit_cost": "1.00",
                        "snapshot_date": "2020-12-31",
                    },
                ],
            },
        }
    )


def connect(sandbox: Pax8Sandbox, *, today: date = date(2021, 1, 4), sleep=None, **kwargs) -> Pax8Connector:
    return Pax8Connector(
        kwargs.pop("client_id", "sandbox"),
        kwargs.pop("client_secret", "sandbox"),
        transport=httpx.MockTransport(sandbox.handle),
        sleep=sleep or FakeSleep(),
        today=lambda: today,
        **kwargs,
    )


def by_id(items):
    return sorted(items, key=lambda item: item.id)


def usage_key(row: UsageRow):
    return (row.subscription_id, row.period, row.sub_product or "")


async def read_everything(connector: Pax8Connector, periods: list[str]):
    companies = await connector.companies()
    products = await connector.products()
    subscriptions = await connector.subscriptions()
    usage = []
    for period in periods:
        usage += await connector.usage(subscriptions, period=period)
    return companies, products, subscriptions, usage


# --- round trip ----------------------------------------------------------------------------------


async def test_round_trip_returns_the_scenario():
    sc = scenario()
    sandbox = Pax8Sandbox.from_scenario(sc)
    async with connect(sandbox) as connector:
        companies, products, subscriptions, usage = await read_everything(connector, ["2020-11", "2020-12"])
    assert by_id(companies) == by_id(sc.vendor.companies)
    assert by_id(products) == by_id(sc.vendor.products)  # kinds derived from the data, not given
    assert by_id(subscriptions) == by_id(sc.vendor.subscriptions)
    assert sorted(usage, key=usage_key) == sorted(sc.vendor.usage, key=usage_key)
    # Spot checks with real values, so that a vacuous equality cannot pass.
    s1 = next(s for s in subscriptions if s.id == "s-1")
    assert [(h.action, h.quantity) for h in s1.history] == [
        ("initial", 270),
        ("increase", 282),
        ("decrease", 280),
        ("increase", 283),
    ]
    az = next(r for r in usage if r.subscription_id == "s-az" and r.period == "2020-12")
    assert (az.charges, az.partner_total) == (Decimal("452.86"), Decimal("350.456"))


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in EXAMPLES.glob("*.json") if not p.stem.endswith(".plan"))
)
async def test_round_trip_of_the_contract_examples(name):
    sc = Scenario.model_validate(json.loads((EXAMPLES / f"{name}.json").read_text()))
    sandbox = Pax8Sandbox.from_scenario(sc)
    periods = sorted({row.period for row in sc.vendor.usage})
    async with connect(sandbox, today=sc.as_of) as connector:
        companies, products, subscriptions, usage = await read_everything(connector, periods)
    assert by_id(companies) == by_id(sc.vendor.companies)
    used = {s.product_id for s in sc.vendor.subscriptions}
    assert by_id(products) == by_id(p for p in sc.vendor.products if p.id in used)
    assert by_id(subscriptions) == by_id(sc.vendor.subscriptions)
    # Rows without a snapshot date come back with the day the sandbox posted them on.
    expected = [
        row
        if row.snapshot_date
        else row.model_copy(
            update={
                "snapshot_date": date(int(row.period[:4]), int(row.period[5:]), 19)
                if row.sub_product
                else _last_day(row.period)
            }
        )
        for row in sc.vendor.usage
    ]
    assert sorted(usage, key=usage_key) == sorted(expected, key=usage_key)


def _last_day(period: str) -> date:
    return last_of_month(parse_month(period))


async def test_product_kind_overrides_from_the_sandbox():
    """With a `today` whose probe finds no lines the data cannot tell; the sandbox's kinds can."""
    sandbox = Pax8Sandbox.from_scenario(scenario())
    async with connect(sandbox, today=date(2022, 6, 1)) as connector:
        kinds = {p.id: p.kind for p in await connector.products()}
    assert kinds["p-pp"] == "usage_summary"  # the documented fallback
    async with connect(sandbox, today=date(2022, 6, 1), product_kinds=sandbox.product_kinds()) as connector:
        kinds = {p.id: p.kind for p in await connector.products()}
    assert kinds == {"p-m365": "seat", "p-pp": "endpoint_usage", "p-az": "usage_summary", "p-ws": "quota"}


# --- the API's shape -----------------------------------------------------------------------------


async def call(sandbox: Pax8Sandbox, method: str, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.MockTransport(sandbox.handle), base_url=API) as client:
        return await client.request(method, path, **kwargs)


async def bearer(sandbox: Pax8Sandbox) -> dict[str, str]:
    response = await call(
        sandbox,
        "POST",
        "/token",
        json={
            "client_id": "sandbox",
            "client_secret": "sandbox",
            "audience": "https://api.pax8.com",
            "grant_type": "client_credentials",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 86400 and body["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_calls_need_a_valid_bearer_token():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic c2FuZGJveA=="}):
        response = await call(sandbox, "GET", "/companies", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    response = await call(sandbox, "GET", "/companies", headers=await bearer(sandbox))
    assert response.status_code == 200


async def test_wrong_credentials_surface_as_service_error():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    async with connect(sandbox, client_secret="wrong") as connector:
        with pytest.raises(ServiceError) as info:
            await connector.companies()
    assert (info.value.status, info.value.message) == (401, "Unauthorized")
    token_request = sandbox.requests[0]
    assert json.loads(token_request.content)["client_secret"] == "wrong"
    assert len(sandbox.requests) == 1  # nothing else was sent


async def test_paging_like_the_real_api():
    sc = scenario()
    sandbox = Pax8Sandbox.from_scenario(sc)
    base = sc.vendor.subscriptions[0]
    for n in range(444):
        sandbox.add_subscription(base.model_copy(update={"id": f"bulk-{n:03d}"}))
    headers = await bearer(sandbox)
    response = await call(sandbox, "GET", "/subscriptions", headers=headers)
    body = loads(response.content)
    assert body["page"] == {"size": 10, "totalElements": 450, "totalPages": 45, "number": 0}
    assert len(body["content"]) == 10
    response = await call(sandbox, "GET", "/subscriptions", params={"page": 2, "size": 200}, headers=headers)
    body = loads(response.content)
    assert body["page"] == {"size": 200, "totalElements": 450, "totalPages": 3, "number": 2}
    assert len(body["content"]) == 50
    response = await call(sandbox, "GET", "/subscriptions", params={"size": 201}, headers=headers)
    assert response.status_code == 400
    assert response.json()["details"][0]["message"] == "size must be between 1 and 200"

    sandbox.requests.clear()
    async with connect(sandbox) as connector:
        subs = await connector.raw_subscriptions()
    assert len(subs) == 450 and len({s.id for s in subs}) == 450
    listing = [r for r in sandbox.requests if r.url.path == "/v1/subscriptions"]
    assert [r.url.query for r in listing] == [b"page=0&size=200", b"page=1&size=200", b"page=2&size=200"]


async def test_money_is_sent_as_json_numbers_digit_for_digit():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    response = await call(sandbox, "GET", "/subscriptions/s-3", headers=await bearer(sandbox))
    assert b'"price": 25.00' in response.content
    assert b'"partnerCost": 19.99' in response.content
    assert loads(response.content)["price"] == Decimal("25.00")


async def test_history_is_newest_first_with_full_snapshots():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    response = await call(sandbox, "GET", "/subscriptions/s-1/history", headers=await bearer(sandbox))
    body = loads(response.content)
    assert "page" not in body
    quantities = [snapshot["quantity"] for snapshot in body["content"]]
    assert quantities == [283, 280, 282, 270]
    assert all(snapshot["id"] == "s-1" and snapshot["companyId"] == "c-ace" for snapshot in body["content"])
    assert "updatedDate" not in body["content"][-1]
    assert body["content"][0]["updatedDate"] == "2020-08-17T09:00:03.000-0700"


async def test_unknown_ids_are_404_with_the_error_envelope():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    headers = await bearer(sandbox)
    response = await call(sandbox, "GET", "/subscriptions/nope/history", headers=headers)
    assert response.status_code == 404
    assert response.json() == {
        "type": "NOT_FOUND",
        "message": "Subscription Not Found: nope",
        "instance": "/public/v1/subscriptions/nope/history",
        "status": 404,
        "details": [],
    }
    async with connect(sandbox) as connector:
        with pytest.raises(ServiceError) as info:
            await connector.raw_usage_lines("nope", date(2020, 12, 19))
    assert (info.value.status, info.value.message) == (404, "Usage Summary Not Found: nope")


async def test_usage_lines_need_a_usage_date():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    headers = await bearer(sandbox)
    summary_id = next(iter(sandbox.summaries))
    response = await call(sandbox, "GET", f"/usage-summaries/{summary_id}/usage-lines", headers=headers)
    assert response.status_code == 400
    assert response.json()["details"][0]["message"] == "usageDate is required"
    response = await call(
        sandbox,
        "GET",
        f"/usage-summaries/{summary_id}/usage-lines",
        params={"usageDate": "12/19/2020"},
        headers=headers,
    )
    assert response.status_code == 400


# --- faults --------------------------------------------------------------------------------------


async def test_scripted_429_and_503_are_retried_by_the_connector():
    faults = Faults(retry_after=1.5)
    faults.push(Fault.RATE_LIMITED, Fault.NONE, Fault.UNAVAILABLE)
    sandbox = Pax8Sandbox.from_scenario(scenario(), faults=faults)
    sleep = FakeSleep()
    async with connect(sandbox, sleep=sleep) as connector:
        companies = await connector.companies()
    assert len(companies) == 3
    assert [f for _, _, f in faults.injected] == [Fault.RATE_LIMITED, Fault.UNAVAILABLE]
    assert faults.injected[0][:2] == ("POST", "/v1/token")
    assert faults.injected[1][:2] == ("GET", "/v1/companies")
    assert sleep.calls[0] == 1.5 and len(sleep.calls) == 2


async def test_a_lost_response_on_a_read_is_retried():
    faults = Faults()
    faults.push(Fault.NONE, Fault.LOST_RESPONSE)
    sandbox = Pax8Sandbox.from_scenario(scenario(), faults=faults)
    async with connect(sandbox) as connector:
        assert len(await connector.companies()) == 3
    assert [r.url.path for r in sandbox.requests] == ["/v1/token", "/v1/companies", "/v1/companies"]


async def test_random_faults_do_not_change_the_result():
    sc = scenario()
    faults = Faults(seed=7, rate_429=0.15, rate_503=0.15)
    sandbox = Pax8Sandbox.from_scenario(sc, faults=faults)
    async with connect(sandbox) as connector:
        _, products, subscriptions, usage = await read_everything(connector, ["2020-12"])
    assert len(faults.injected) > 5
    assert by_id(subscriptions) == by_id(sc.vendor.subscriptions)
    assert by_id(products) == by_id(sc.vendor.products)
    assert sorted(usage, key=usage_key) == sorted(
        (r for r in sc.vendor.usage if r.period == "2020-12"), key=usage_key
    )


# --- tokens and mutations ------------------------------------------------------------------------


async def test_expired_tokens_are_refreshed_transparently():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    async with connect(sandbox) as connector:
        await connector.companies()
        sandbox.expire_tokens()
        assert len(await connector.companies()) == 3
    paths = [r.url.path for r in sandbox.requests]
    assert paths == ["/v1/token", "/v1/companies", "/v1/companies", "/v1/token", "/v1/companies"]


async def test_change_quantity_and_cancel_show_in_history_and_incremental_refresh():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    sandbox.change_quantity("s-3", 5, on=date(2021, 1, 10))
    sandbox.change_quantity("s-3", 4, on=date(2021, 1, 10))
    async with connect(sandbox) as connector:
        changed = await connector.subscriptions(changed_since=datetime(2021, 1, 1, tzinfo=UTC))
        assert [s.id for s in changed] == ["s-3"]
        assert [(h.id, h.action, h.quantity, h.effective_date) for h in changed[0].history] == [
            ("s-3-h1", "initial", Decimal(2), date(2020, 12, 4)),
            ("s-3-h2", "increase", Decimal(5), date(2021, 1, 10)),
            ("s-3-h3", "decrease", Decimal(4), date(2021, 1, 10)),
        ]
        history_calls = [r for r in sandbox.requests if r.url.path.endswith("/history")]
        assert [r.url.path for r in history_calls] == ["/v1/subscriptions/s-3/history"]

        sandbox.cancel("s-1", on=date(2021, 1, 31))
        changed = await connector.subscriptions(changed_since=datetime(2021, 1, 20, tzinfo=UTC))
    assert [s.id for s in changed] == ["s-1"]
    s1 = changed[0]
    assert (s1.status, s1.cancelled_date, s1.end_date) == ("cancelled", date(2021, 1, 31), date(2021, 1, 31))
    assert (s1.history[-1].action, s1.history[-1].quantity, s1.history[-1].effective_date) == (
        "cancel",
        Decimal(283),
        date(2021, 1, 31),
    )
    with pytest.raises(ValueError):
        sandbox.change_quantity("s-1", 3, on=date(2021, 2, 1))  # cancelled
    with pytest.raises(ValueError):
        sandbox.change_quantity("s-3", 3, on=date(2021, 1, 9))  # older than the last change
    with pytest.raises(KeyError):
        sandbox.cancel("nope", on=date(2021, 2, 1))


async def test_add_usage_replaces_the_same_days_post():
    sandbox = Pax8Sandbox.from_scenario(scenario())
    sandbox.add_usage(
        UsageRow(
            subscription_id="s-pp",
            sub_product="Business",
            period="2020-12",
            quantity=Decimal(20),
            unit_price=Decimal("3.00"),
            unit_cost=Decimal("2.44"),
        )
    )
    async with connect(sandbox) as connector:
        subs = [s for s in await connector.subscriptions() if s.id == "s-pp"]
        rows = await connector.usage(subs, period="2020-12")
    assert {(r.sub_product, r.quantity) for r in rows} == {
        ("Business", Decimal(20)),
        ("Advanced", Decimal(4)),
    }
