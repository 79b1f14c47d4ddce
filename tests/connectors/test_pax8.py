"""The Pax8 connector against respx: exact requests, paging, token handling, retries, errors,
money and date parsing, history diffing and usage mapping."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
import respx

from engine.connectors.base import ServiceError, VendorConnector
from engine.connectors.pax8 import (
    Pax8Connector,
    Pax8Subscription,
    history_rows,
    pax8_error,
    snapshot_order,
    sub_product_name,
)
from engine.scenario import Subscription, VendorProduct

API = "https://api.pax8.com/v1"
TOKEN_BODY = {
    "client_id": "cid",
    "client_secret": "secret",
    "audience": "https://api.pax8.com",
    "grant_type": "client_credentials",
}


def token_response(token: str = "tok-1", expires_in: int = 86400) -> httpx.Response:
    return httpx.Response(200, json={"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})


def page(content: list[dict], number: int, total_pages: int, total: int | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": content,
            "page": {
                "size": 200,
                "totalElements": total if total is not None else len(content),
                "totalPages": total_pages,
                "number": number,
            },
        },
    )


def raw(text: str, status: int = 200) -> httpx.Response:
    """A body exactly as written (floats in the text, not Python floats)."""
    return httpx.Response(status, content=text.encode(), headers={"Content-Type": "application/json"})


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def connector(sleep: FakeSleep):
    conn = Pax8Connector("cid", "secret", sleep=sleep, today=lambda: date(2021, 1, 4))
    yield conn
    await conn.aclose()


@pytest.fixture
def api():
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        mock.post("/token").mock(return_value=token_response())
        # No published pricing (a 404, as for products whose pricing Pax8 does not publish): the
        # connector's price cross-check (engine.connectors.pax8, "Price and cost") finds no evidence.
        mock.get(url__regex=r"/products/[^/]+/pricing").mock(
            return_value=httpx.Response(
                404, json={"type": "NOT_FOUND", "message": "Product Not Found", "status": 404, "details": []}
            )
        )
        yield mock


def sub(**fields) -> dict:
    base = {
        "id": "s1",
        "companyId": "c1",
        "productId": "p1",
        "quantity": 1,
        "status": "Active",
        "startDate": "2020-12-01T08:30:00Z",
        "createdDate": "2020-12-01",
        "price": 10,
        "partnerCost": 8,
        "billingTerm": "Monthly",
        "productName": "Thing",
    }
    base.update(fields)
    return base


# --- protocol, token -----------------------------------------------------------------------------


def test_is_a_vendor_connector():
    conn: VendorConnector = Pax8Connector("a", "b")
    assert conn.name == "pax8"


async def test_token_request_and_bearer_header_and_cache(connector, api):
    companies = api.get("/companies").mock(
        return_value=page([{"id": "c1", "name": "Acme", "status": "Active"}], 0, 1)
    )
    await connector.companies()
    await connector.companies()

    token_call = api.routes[0].calls
    assert token_call.call_count == 1  # cached
    request = token_call.last.request
    assert str(request.url) == "https://api.pax8.com/v1/token"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == TOKEN_BODY
    assert companies.call_count == 2
    for call in companies.calls:
        assert call.request.headers["Authorization"] == "Bearer tok-1"
        assert str(call.request.url) == "https://api.pax8.com/v1/companies?page=0&size=200"


async def test_token_refreshed_shortly_before_expiry():
    clock = FakeClock()
    conn = Pax8Connector("cid", "secret", clock=clock)
    with respx.mock(base_url=API) as api:
        token = api.post("/token").mock(side_effect=[token_response("t1", 3600), token_response("t2", 3600)])
        companies = api.get("/companies").mock(return_value=page([], 0, 0))
        await conn.companies()
        clock.now += 3600 - 301  # 301 s to go: the cached token is used
        await conn.companies()
        clock.now += 2  # 299 s to go, within the 5-minute margin: a new token
        await conn.companies()
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in companies.calls] == [
        "Bearer t1",
        "Bearer t1",
        "Bearer t2",
    ]
    await conn.aclose()


async def test_401_refreshes_the_token_once_and_retries(connector):
    with respx.mock(base_url=API) as api:
        token = api.post("/token").mock(side_effect=[token_response("old"), token_response("new")])
        route = api.get("/companies/c1").mock(
            side_effect=[
                httpx.Response(401, json={"error": "access_denied", "error_description": "Unauthorized"}),
                httpx.Response(200, json={"id": "c1", "name": "Acme"}),
            ]
        )
        body = await connector.get("/companies/c1")
    assert body == {"id": "c1", "name": "Acme"}
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer old", "Bearer new"]


async def test_a_second_401_surfaces(connector):
    with respx.mock(base_url=API) as api:
        token = api.post("/token").mock(side_effect=[token_response("a"), token_response("b")])
        api.get("/companies").mock(
            return_value=httpx.Response(
                401, json={"error": "access_denied", "error_description": "Unauthorized"}
            )
        )
        with pytest.raises(ServiceError) as info:
            await connector.companies()
    assert info.value.status == 401
    assert info.value.message == "Unauthorized"
    assert token.call_count == 2


async def test_token_failure_carries_error_description(connector):
    with respx.mock(base_url=API, assert_all_called=False) as api:
        api.post("/token").mock(
            return_value=httpx.Response(
                401, json={"error": "access_denied", "error_description": "Unauthorized"}
            )
        )
        companies = api.get("/companies")
        with pytest.raises(ServiceError) as info:
            await connector.companies()
    assert info.value.service == "pax8"
    assert info.value.status == 401
    assert info.value.message == "Unauthorized"
    assert info.value.details == ["access_denied"]
    assert info.value.rejected
    assert companies.call_count == 0


# --- paging, retries, errors ---------------------------------------------------------------------


async def test_pages_until_total_pages(connector, api):
    route = api.get("/subscriptions").mock(
        side_effect=[
            page([sub(id="a")], 0, 3, 3),
            page([sub(id="b")], 1, 3, 3),
            page([sub(id="c")], 2, 3, 3),
        ]
    )
    subs = await connector.raw_subscriptions()
    assert [s.id for s in subs] == ["a", "b", "c"]
    assert [str(c.request.url) for c in route.calls] == [
        f"{API}/subscriptions?page=0&size=200",
        f"{API}/subscriptions?page=1&size=200",
        f"{API}/subscriptions?page=2&size=200",
    ]


async def test_filters_go_in_the_query(connector, api):
    route = api.get("/subscriptions").mock(return_value=page([], 0, 0))
    await connector.raw_subscriptions(companyId="c1", status="Active")
    assert route.calls.last.request.url.query == b"companyId=c1&status=Active&page=0&size=200"


async def test_429_with_retry_after_then_success(connector, api, sleep):
    route = api.get("/companies").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "Too many requests"}),
            page([{"id": "c1", "name": "Acme", "status": "Active"}], 0, 1),
        ]
    )
    companies = await connector.companies()
    assert [c.id for c in companies] == ["c1"]
    assert route.call_count == 2
    assert sleep.calls == [7.0]


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_5xx_on_reads_is_retried(connector, api, sleep, status):
    route = api.get("/companies").mock(
        side_effect=[
            httpx.Response(status, text="bad gateway"),
            httpx.Response(status, text="bad gateway"),
            page([{"id": "c1", "name": "Acme"}], 0, 1),
        ]
    )
    assert len(await connector.companies()) == 1
    assert route.call_count == 3
    assert len(sleep.calls) == 2 and all(0 <= s <= 30 for s in sleep.calls)


async def test_retries_give_up_after_five_attempts(connector, api, sleep):
    route = api.get("/companies").mock(return_value=httpx.Response(503, text="Service Unavailable"))
    with pytest.raises(ServiceError) as info:
        await connector.companies()
    assert info.value.status == 503 and info.value.retryable
    assert route.call_count == 5


async def test_error_body_maps_to_message_and_details(connector, api):
    api.get("/subscriptions/nope/history").mock(
        return_value=httpx.Response(
            404,
            json={
                "type": "NOT_FOUND",
                "message": "Subscription Not Found: nope",
                "instance": "/public/v1/subscriptions/nope/history",
                "status": 404,
                "details": [{"type": "NOT_FOUND", "message": "no such id"}, {"message": "check the id"}],
            },
        )
    )
    with pytest.raises(ServiceError) as info:
        await connector.raw_history("nope")
    err = info.value
    assert (err.status, err.message, err.details) == (
        404,
        "Subscription Not Found: nope",
        ["no such id", "check the id"],
    )
    assert not err.retryable
    assert "Subscription Not Found: nope — no such id; check the id" in str(err)


def test_error_parser_falls_back_to_text():
    response = httpx.Response(500, text="Internal Server Error")
    assert pax8_error(response) == ("Internal Server Error", [])


# --- money and dates -----------------------------------------------------------------------------


async def test_money_is_decimal_to_the_cent(connector, api):
    body = (
        '{"id": "s1", "companyId": "c1", "productId": "p1", "quantity": 3, "price": 25.00, '
        '"partnerCost": 19.99, "startDate": "2020-12-03", "createdDate": "2020-12-03"}'
    )
    api.get("/subscriptions").mock(
        return_value=raw(
            '{"content": ['
            + body
            + '], "page": {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0}}'
        )
    )
    api.get("/subscriptions/s1/history").mock(return_value=raw('{"content": [' + body + "]}"))
    history = await connector.get("/subscriptions/s1/history")
    parsed = Pax8Subscription.model_validate(history["content"][0])
    assert str(parsed.price) == "25.00" and str(parsed.partner_cost) == "19.99"
    [mapped] = await connector.subscriptions()
    assert isinstance(mapped.unit_price, Decimal) and isinstance(mapped.unit_cost, Decimal)
    assert str(mapped.unit_price) == "25.00"  # never 25.0000001 or 25.0
    assert str(mapped.unit_cost) == "19.99"
    assert mapped.unit_cost * 3 == Decimal("59.97")
    assert mapped.history[0].quantity == Decimal(3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-12-03", date(2020, 12, 3)),
        ("2021-01-01T08:30:00Z", date(2021, 1, 1)),
        ("2020-12-01T13:20:13.153-0700", date(2020, 12, 1)),
        ("2020-12-31T23:30:00-0700", date(2020, 12, 31)),  # as written, not shifted to UTC
        ("2023-08-11T11:33:12.314-06:00", date(2023, 8, 11)),
    ],
)
def test_dates_are_taken_as_written(text, expected):
    snapshot = Pax8Subscription.model_validate(
        {"id": "s", "startDate": text, "updatedDate": text, "endDate": text}
    )
    assert snapshot.start_date.date() == expected
    assert snapshot.updated_date.date() == expected


async def test_subscription_fields_map_through(connector, api):
    api.get("/subscriptions").mock(
        return_value=page(
            [
                sub(
                    id="s1",
                    price=25.00,
                    partnerCost=19.5,
                    billingTerm="Annual",
                    startDate="2021-01-01T08:30:00Z",
                    createdDate="2020-12-03",
                ),
                sub(
                    id="s2",
                    status="Cancelled",
                    endDate="2021-03-15",
                    updatedDate="2021-03-10T10:00:00Z",
                    billingTerm="3-Year",
                ),
            ],
            0,
            1,
        )
    )
    api.get("/subscriptions/s1/history").mock(
        return_value=httpx.Response(
            200,
            json={
                "content": [
                    sub(id="s1", quantity=5, startDate="2021-01-01T08:30:00Z", createdDate="2020-12-03")
                ]
            },
        )
    )
    api.get("/subscriptions/s2/history").mock(
        return_value=httpx.Response(
            200,
            json={
                "content": [
                    sub(
                        id="s2",
                        quantity=2,
                        status="Cancelled",
                        endDate="2021-03-15",
                        updatedDate="2021-03-10T10:00:00Z",
                    ),
                    sub(id="s2", quantity=2),
                ]
            },
        )
    )
    subs = {s.id: s for s in await connector.subscriptions()}
    s1, s2 = subs["s1"], subs["s2"]
    assert (s1.billing_term, s1.start_date, s1.unit_price, s1.unit_cost, s1.status) == (
        "annual",
        date(2021, 1, 1),
        Decimal("25.00"),
        Decimal("19.5"),
        "active",
    )
    assert [(h.id, h.action, h.quantity, h.effective_date) for h in s1.history] == [
        ("s1-h1", "initial", Decimal(5), date(2021, 1, 1))
    ]
    assert (s2.status, s2.end_date, s2.cancelled_date, s2.billing_term) == (
        "cancelled",
        date(2021, 3, 15),
        date(2021, 3, 15),
        "annual",
    )
    assert [(h.action, h.effective_date) for h in s2.history] == [
        ("initial", date(2020, 12, 1)),
        ("cancel", date(2021, 3, 15)),
    ]


# --- history diffing -----------------------------------------------------------------------------


def snap(quantity, updated=None, created="2020-12-01T13:20:13.153-0700", status="Active", **extra):
    body = {
        "id": "s9",
        "quantity": quantity,
        "status": status,
        "createdDate": created,
        "startDate": "2020-12-01T08:30:00Z",
        **extra,
    }
    if updated:
        body["updatedDate"] = updated
    return Pax8Subscription.model_validate(body)


def test_history_diffing_ignores_response_order():
    snapshots = [
        snap(9, "2021-02-10T03:12:14.453-0300"),
        snap(2),  # the original: no updatedDate
        snap(2, "2021-03-01T00:00:00Z", status="Cancelled", endDate="2021-03-31"),
        snap(5, "2020-12-10T03:12:14.453-0300"),
        snap(5, "2020-12-20T00:00:00Z", price=99),  # a price change: no row
        snap(4, "2021-01-05T08:00:00-0700"),
    ]
    rows = history_rows("s9", snapshots)
    assert [(r.id, r.action, r.quantity, r.effective_date) for r in rows] == [
        ("s9-h1", "initial", Decimal(2), date(2020, 12, 1)),
        ("s9-h2", "increase", Decimal(5), date(2020, 12, 10)),
        ("s9-h3", "decrease", Decimal(4), date(2021, 1, 5)),
        ("s9-h4", "increase", Decimal(9), date(2021, 2, 10)),
        ("s9-h5", "cancel", Decimal(2), date(2021, 3, 31)),
    ]
    assert history_rows("s9", list(reversed(snapshots))) == rows


def test_same_day_changes_order_by_instant_across_offsets():
    # 10:00-0700 is 17:00Z, later than 16:00Z although it reads earlier.
    later = snap(7, "2021-01-05T10:00:00-0700")
    earlier = snap(3, "2021-01-05T16:00:00Z")
    ordered = snapshot_order([later, snap(1), earlier])
    assert [s.quantity for s in ordered] == [1, 3, 7]
    rows = history_rows("s9", [later, snap(1), earlier])
    assert [(r.action, r.quantity) for r in rows] == [("initial", 1), ("increase", 3), ("increase", 7)]


def test_reactivation_and_status_only_changes():
    rows = history_rows(
        "s9",
        [
            snap(3, status="PendingAutomated"),
            snap(3, "2021-01-02T00:00:00Z"),  # PendingAutomated -> Active: no row
            snap(3, "2021-02-01T00:00:00Z", status="Cancelled"),  # no endDate: the updatedDate
            snap(1, "2021-03-01T00:00:00Z"),
        ],
    )
    assert [(r.action, r.quantity, r.effective_date) for r in rows] == [
        ("initial", 3, date(2020, 12, 1)),
        ("cancel", 3, date(2021, 2, 1)),
        ("initial", 1, date(2021, 3, 1)),
    ]


def test_no_snapshots_no_history():
    assert history_rows("s9", []) == []


# --- incremental refresh -------------------------------------------------------------------------


async def test_changed_since_fetches_history_only_for_changed(connector, api):
    api.get("/subscriptions").mock(
        return_value=page(
            [
                sub(id="old", updatedDate="2021-01-01T00:00:00Z"),
                sub(id="new", updatedDate="2021-02-01T12:00:00.000-0700"),
                sub(id="never", createdDate="2021-02-03"),
            ],
            0,
            1,
        )
    )
    old = api.get("/subscriptions/old/history").mock(return_value=httpx.Response(200, json={"content": []}))
    new = api.get("/subscriptions/new/history").mock(
        return_value=httpx.Response(200, json={"content": [sub()]})
    )
    never = api.get("/subscriptions/never/history").mock(
        return_value=httpx.Response(200, json={"content": []})
    )
    subs = await connector.subscriptions(changed_since=datetime(2021, 1, 15, tzinfo=UTC))
    assert sorted(s.id for s in subs) == ["never", "new"]
    assert (old.call_count, new.call_count, never.call_count) == (0, 1, 1)
    # A naive datetime is UTC: 19:00Z on Feb 1 is the `new` update itself, so it is not "since".
    subs = await connector.subscriptions(changed_since=datetime(2021, 2, 1, 19, 0))  # noqa: DTZ001
    assert [s.id for s in subs] == ["never"]


# --- products and kinds --------------------------------------------------------------------------


async def test_products_and_their_kinds(api):
    conn = Pax8Connector("cid", "secret", today=lambda: date(2021, 1, 4), product_kinds={"AZ-OVR": "quota"})
    api.get("/subscriptions").mock(
        return_value=page(
            [
                sub(id="s-seat", productId="seat"),
                sub(id="s-pp", productId="pp"),
                sub(id="s-az", productId="az"),
                sub(id="s-pw", productId="pw"),
                sub(id="s-ovr", productId="ovr"),
                sub(id="s-gone", productId="gone", productName="Retired thing"),
            ],
            0,
            1,
        )
    )
    products = {
        "seat": {"id": "seat", "name": "M365 Business Basic", "sku": "MST-1"},
        "pp": {"id": "pp", "name": "Proofpoint Essentials", "sku": "PPT"},
        "az": {"id": "az", "name": "Azure plan", "sku": "AZ"},
        "pw": {"id": "pw", "name": "Workstations", "sku": "pw-base-workstations"},
        "ovr": {"id": "ovr", "name": "Some usage", "sku": "AZ-OVR"},
    }
    for pid, body in products.items():
        api.get(f"/products/{pid}").mock(return_value=httpx.Response(200, json=body))
    api.get("/products/gone").mock(
        return_value=httpx.Response(
            404, json={"type": "NOT_FOUND", "message": "Product Not Found: gone", "status": 404}
        )
    )
    api.get("/subscriptions/s-seat/usage-summaries").mock(return_value=page([], 0, 0))
    api.get("/subscriptions/s-gone/usage-summaries").mock(return_value=page([], 0, 0))
    api.get("/subscriptions/s-pp/usage-summaries").mock(return_value=page([{"id": "u-pp"}], 0, 1))
    api.get("/subscriptions/s-az/usage-summaries").mock(return_value=page([{"id": "u-az"}], 0, 1))
    pp_lines = api.get("/usage-summaries/u-pp/usage-lines").mock(
        return_value=page(
            [
                {"productId": "x1", "productName": "Proofpoint Essentials - Business", "quantity": 3},
                {"productId": "x2", "productName": "Proofpoint Essentials - Advanced", "quantity": 1},
                {"productId": "x1", "productName": "Proofpoint Essentials - Business", "quantity": 1},
            ],
            0,
            1,
        )
    )
    api.get("/usage-summaries/u-az/usage-lines").mock(
        return_value=page(
            [{"productId": "az", "productName": "Azure plan", "quantity": 1, "currentCharges": 10}], 0, 1
        )
    )

    got = {p.id: p for p in await conn.products()}
    assert {pid: p.kind for pid, p in got.items()} == {
        "seat": "seat",
        "pp": "endpoint_usage",
        "az": "usage_summary",
        "pw": "quota",
        "ovr": "quota",
        "gone": "seat",
    }
    assert got["pp"].sub_products == ["Business", "Advanced"]
    assert (got["gone"].name, got["gone"].sku) == ("Retired thing", None)
    assert (got["seat"].sku, got["seat"].name) == ("MST-1", "M365 Business Basic")
    # The probe reads day 19 of the month before today.
    assert pp_lines.calls.last.request.url.query == b"usageDate=2020-12-19&page=0&size=200"
    await conn.aclose()


def test_sub_product_names():
    assert sub_product_name("Proofpoint Essentials - Business", "Proofpoint Essentials") == "Business"
    assert sub_product_name("Proofpoint Servers", "Proofpoint Essentials") == "Proofpoint Servers"
    assert sub_product_name("Advanced", None) == "Advanced"


# --- usage ---------------------------------------------------------------------------------------


def engine_sub(sid: str, pid: str) -> Subscription:
    return Subscription(
        id=sid,
        company_id="c1",
        product_id=pid,
        start_date=date(2020, 7, 1),
        unit_price=Decimal(0),
        unit_cost=Decimal(0),
    )


async def test_endpoint_usage_reads_day_19(api):
    conn = Pax8Connector("cid", "secret")
    conn.remember_products(
        [
            VendorProduct(id="pp", name="Proofpoint Essentials", kind="endpoint_usage"),
            VendorProduct(id="seat", name="M365", kind="seat"),
        ]
    )
    api.get("/subscriptions/pp1/usage-summaries").mock(return_value=page([{"id": "u1"}, {"id": "u2"}], 0, 1))
    u1 = api.get("/usage-summaries/u1/usage-lines").mock(
        return_value=raw(
            '{"content": [{"usageDate": "2020-12-19", "productId": "x1",'
            ' "productName": "Proofpoint Essentials - Business", "quantity": 12, "unitPrice": 3.00,'
            ' "partnerTotal": 29.28, "currentCharges": 36.00},'
            ' {"usageDate": "2020-12-19", "productId": "x2",'
            ' "productName": "Proofpoint Essentials - Advanced",'
            ' "quantity": 4, "unitPrice": 4.50, "partnerTotal": 14.40}],'
            ' "page": {"size": 200, "totalElements": 2, "totalPages": 1, "number": 0}}'
        )
    )
    api.get("/usage-summaries/u2/usage-lines").mock(
        return_value=raw(
            '{"content": [{"usageDate": "2020-12-19", "productId": "x1",'
            ' "productName": "Proofpoint Essentials - Business", "quantity": 5, "unitPrice": 3.00,'
            ' "partnerTotal": 12.20}],'
            ' "page": {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0}}'
        )
    )
    seat = api.get("/subscriptions/seat1/usage-summaries")
    rows = await conn.usage([engine_sub("pp1", "pp"), engine_sub("seat1", "seat")], period="2020-12")
    assert seat.call_count == 0
    assert u1.calls.last.request.url.query == b"usageDate=2020-12-19&page=0&size=200"
    assert [
        (r.sub_product, r.quantity, r.unit_price, r.unit_cost, r.snapshot_date, r.period) for r in rows
    ] == [
        ("Business", Decimal(17), Decimal("3.00"), Decimal("2.44"), date(2020, 12, 19), "2020-12"),
        ("Advanced", Decimal(4), Decimal("4.50"), Decimal("3.60"), date(2020, 12, 19), "2020-12"),
    ]
    assert str(rows[0].unit_cost) == "2.44"
    await conn.aclose()


async def test_usage_summary_uses_the_latest_day_of_the_period(api):
    conn = Pax8Connector("cid", "secret", today=lambda: date(2024, 6, 3))
    conn.remember_products([VendorProduct(id="az", name="Azure plan", kind="usage_summary")])
    api.get("/subscriptions/az1/usage-summaries").mock(return_value=page([{"id": "u1"}], 0, 1))

    def lines(request: httpx.Request) -> httpx.Response:
        if request.url.params["usageDate"] == "2024-05-28":
            return raw(
                '{"content": [{"productId": "az", "quantity": 1, "currentCharges": 100.56,'
                ' "partnerTotal": 86.456}, {"productId": "az", "quantity": 1, "currentCharges": 0.10,'
                ' "partnerTotal": 0.09}],'
                ' "page": {"size": 200, "totalElements": 2, "totalPages": 1, "number": 0}}'
            )
        return page([], 0, 0)

    route = api.get("/usage-summaries/u1/usage-lines").mock(side_effect=lines)
    rows = await conn.usage([engine_sub("az1", "az")], period="2024-05")
    assert len(rows) == 1
    row = rows[0]
    assert (
        row.quantity,
        row.charges,
        row.partner_total,
        row.unit_price,
        row.unit_cost,
        row.snapshot_date,
    ) == (
        Decimal(1),
        Decimal("100.66"),
        Decimal("86.546"),
        Decimal("100.66"),
        Decimal("86.546"),
        date(2024, 5, 28),
    )
    asked = {c.request.url.params["usageDate"] for c in route.calls}
    assert {"2024-05-31", "2024-05-30", "2024-05-29", "2024-05-28"} <= asked
    assert "2024-06-01" not in asked
    await conn.aclose()


async def test_quota_usage_latest_line_and_nothing_when_no_lines(api):
    conn = Pax8Connector("cid", "secret", today=lambda: date(2025, 3, 10))
    conn.remember_products([VendorProduct(id="ws", name="Workstations", kind="quota")])
    api.get("/subscriptions/ws1/usage-summaries").mock(return_value=page([{"id": "u1"}], 0, 1))

    def lines(request: httpx.Request) -> httpx.Response:
        day = request.url.params["usageDate"]
        if day in ("2025-03-02", "2025-03-08"):
            qty = 2 if day == "2025-03-02" else 5
            return page(
                [{"productId": "ws", "quantity": qty, "unitPrice": 12.5, "partnerTotal": qty * 10}], 0, 1
            )
        return page([], 0, 0)

    route = api.get("/usage-summaries/u1/usage-lines").mock(side_effect=lines)
    rows = await conn.usage([engine_sub("ws1", "ws")], period="2025-03")
    assert [(r.quantity, r.unit_price, r.unit_cost, r.snapshot_date, r.sub_product) for r in rows] == [
        (Decimal(5), Decimal("12.5"), Decimal("10.00"), date(2025, 3, 8), None)
    ]
    # Today is March 10: nothing after it is asked for.
    assert max(c.request.url.params["usageDate"] for c in route.calls) == "2025-03-10"

    route.side_effect = lambda request: page([], 0, 0)
    assert await conn.usage([engine_sub("ws1", "ws")], period="2025-02") == []
    await conn.aclose()


# --- one customer (targeted refresh) ---------------------------------------------------------------


async def test_one_company_lists_by_company_id_and_reads_history_only_for_changes(connector, api):
    from engine.scenario import HistoryRow

    since = datetime(2021, 1, 10, tzinfo=UTC)
    quiet = sub(id="s-quiet", quantity=5, updatedDate="2021-01-02T09:00:00Z")
    bumped = sub(id="s-bumped", quantity=7, updatedDate="2021-01-12T09:00:00Z")  # newer than since
    repriced = sub(id="s-repriced", quantity=3, price=11, updatedDate="2021-01-02T09:00:00Z")  # disagrees
    new = sub(id="s-new", quantity=2)
    listing = api.get("/subscriptions").mock(return_value=page([quiet, bumped, repriced, new], 0, 1))
    history = {
        s["id"]: api.get(f"/subscriptions/{s['id']}/history").mock(
            return_value=httpx.Response(200, json={"content": [s]})
        )
        for s in (quiet, bumped, repriced, new)
    }

    def stored(raw: dict, quantity: int) -> Subscription:
        return Subscription(
            id=raw["id"],
            company_id="c1",
            product_id="p1",
            start_date=date(2020, 12, 1),
            unit_price=Decimal("10"),
            unit_cost=Decimal("8"),
            history=[
                HistoryRow(
                    id=f"{raw['id']}-h1",
                    action="initial",
                    quantity=Decimal(quantity),
                    effective_date=date(2020, 12, 1),
                )
            ],
        )

    known = {"s-quiet": stored(quiet, 5), "s-bumped": stored(bumped, 6), "s-repriced": stored(repriced, 3)}
    got = {s.id: s for s in await connector.subscriptions(company_id="c1", changed_since=since, known=known)}

    assert set(got) == {"s-quiet", "s-bumped", "s-repriced", "s-new"}
    assert got["s-quiet"] is known["s-quiet"]  # unchanged: not read again
    assert [str(c.request.url) for c in listing.calls] == [
        "https://api.pax8.com/v1/subscriptions?companyId=c1&page=0&size=200"
    ]
    assert {sid for sid, route in history.items() if route.called} == {"s-bumped", "s-repriced", "s-new"}
    assert got["s-repriced"].unit_price == Decimal("11")


async def test_one_company_with_no_stamp_reads_every_history(connector, api):
    api.get("/subscriptions").mock(return_value=page([sub(id="s1")], 0, 1))
    route = api.get("/subscriptions/s1/history").mock(
        return_value=httpx.Response(200, json={"content": [sub()]})
    )
    known = {"s1": (await connector.subscriptions(company_id="c1"))[0]}
    await connector.subscriptions(company_id="c1", changed_since=None, known=known)
    assert route.call_count == 2  # no stamp to trust: every history is read


async def test_company_reads_one_and_is_none_when_pax8_does_not_know_it(connector, api):
    api.get("/companies/c1").mock(
        return_value=httpx.Response(200, json={"id": "c1", "name": "Acme", "status": "Inactive"})
    )
    api.get("/companies/nope").mock(
        return_value=httpx.Response(
            404, json={"type": "NOT_FOUND", "message": "Company Not Found: nope", "status": 404}
        )
    )
    company = await connector.company("c1")
    assert (company.id, company.name, company.status) == ("c1", "Acme", "inactive")
    assert await connector.company("nope") is None


async def test_products_of_given_ids_reuse_the_listing_already_read(connector, api):
    listing = api.get("/subscriptions").mock(return_value=page([sub(id="s1", productId="p1")], 0, 1))
    api.get("/subscriptions/s1/history").mock(return_value=httpx.Response(200, json={"content": [sub()]}))
    api.get("/products/p1").mock(
        return_value=httpx.Response(200, json={"id": "p1", "name": "Thing", "sku": "T-1"})
    )
    api.get("/products/p2").mock(return_value=httpx.Response(200, json={"id": "p2", "name": "Other"}))
    api.get("/subscriptions/s1/usage-summaries").mock(return_value=page([], 0, 0))
    await connector.subscriptions()
    assert listing.call_count == 1

    products = await connector.products(["p1"])
    assert [(p.id, p.name, p.kind) for p in products] == [("p1", "Thing", "seat")]
    assert listing.call_count == 1  # the listing was not paged again

    # a product no listing has shown is looked up with the documented productId filter
    listing.mock(return_value=page([], 0, 0))
    products = await connector.products(["p2"])
    assert [(p.id, p.name) for p in products] == [("p2", "Other")]
    assert [str(c.request.url) for c in listing.calls[1:]] == [
        "https://api.pax8.com/v1/subscriptions?productId=p2&page=0&size=200"
    ]
