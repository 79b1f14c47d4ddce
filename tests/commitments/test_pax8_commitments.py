"""Commitment data from Pax8 (issue 15): `commitmentTerm {id, term, endDate}` on a subscription, the
product's `GET /products/{id}/dependencies` → `commitmentDependencies[]` [spec], and the seat
additions read from the history snapshots — against the spec's shapes (respx) and the sandbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
import respx

from engine.connectors.pax8 import Pax8Connector
from engine.sandbox.demo import build_demo_scenario
from engine.sandbox.pax8 import Pax8Sandbox

API = "https://api.pax8.com/v1"


def record(quantity: int, *, updated: str | None = None, term: str = "3-Year") -> dict:
    body = {
        "id": "s1",
        "companyId": "c1",
        "productId": "p1",
        "quantity": quantity,
        "startDate": "2025-07-01T08:30:00Z",
        "createdDate": "2025-06-30T13:20:13.153-0700",
        "billingStart": "2025-07-01",
        "status": "Active",
        "price": 22.0,
        "partnerCost": 18.0,
        "currencyCode": "USD",
        "productName": "Microsoft 365 Business Premium",
        "billingTerm": "Monthly",
        "commitmentTerm": {"id": "t1", "term": term, "endDate": "2028-06-30T00:00:00Z"},
    }
    if updated:
        body["updatedDate"] = updated
    return body


def page(content: list[dict]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": content,
            "page": {"size": 200, "totalElements": len(content), "totalPages": 1, "number": 0},
        },
    )


async def read(dependencies: httpx.Response, *, term: str = "3-Year"):  # type: ignore[no-untyped-def]
    history = [record(12, updated="2026-11-18T09:30:00.000-0500", term=term), record(10, term=term)]
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        mock.post("/token").mock(
            return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
        )
        mock.get("/subscriptions").mock(return_value=page([history[0]]))
        mock.get("/subscriptions/s1/history").mock(
            return_value=httpx.Response(200, json={"content": history})
        )
        mock.get("/products/p1/pricing").mock(return_value=httpx.Response(200, json={"content": []}))
        route = mock.get("/products/p1/dependencies").mock(return_value=dependencies)
        async with Pax8Connector(
            "cid", "secret", price_reading="retail", product_kinds={"p1": "seat"}
        ) as pax8:
            await pax8.subscriptions()
            found = await pax8.commitments(["s1", "s1", "unknown"])
            return found, route


RULE = {
    "id": "497f6eca-6276-4993-bfeb-53cbbbba6f08",
    "term": "3-Year",
    "autoRenew": False,
    "renewalWindowDaysBeforeTermEnd": 30,
    "renewalWindowDaysAfterTermEnd": 0,
    "allowForQuantityIncrease": True,
    "allowForQuantityDecrease": False,
    "allowForEarlyCancellation": False,
    "cancellationFeeApplied": True,
    "isTransferable": True,
}


async def test_the_term_the_products_rule_for_it_and_the_seat_additions_are_read() -> None:
    other = {**RULE, "term": "Annual", "renewalWindowDaysBeforeTermEnd": 3}
    body = {"commitmentDependencies": [other, RULE], "productDependencies": []}
    [found], route = await read(httpx.Response(200, json=body))
    assert route.call_count == 1
    assert (found.subscription_id, found.term, found.end_date) == ("s1", "three_year", date(2028, 6, 30))
    assert (found.auto_renew, found.window_days_before, found.window_days_after) == (False, 30, 0)
    assert (found.allow_decrease, found.allow_early_cancellation, found.cancellation_fee) == (
        False,
        False,
        True,
    )
    assert [(a.at, a.quantity) for a in found.seat_additions] == [
        (datetime(2025, 6, 30, 20, 20, 13, 153000, tzinfo=UTC), Decimal(10)),
        (datetime(2026, 11, 18, 14, 30, tzinfo=UTC), Decimal(2)),
    ]


async def test_a_product_without_dependencies_gets_new_commerce_rules() -> None:
    missing = httpx.Response(404, json={"type": "NOT_FOUND", "message": "Product not found", "status": 404})
    [found], _ = await read(missing)
    assert (found.auto_renew, found.window_days_before, found.window_days_after) == (True, 0, 7)
    assert not found.allow_decrease and not found.allow_early_cancellation


async def test_an_unknown_term_is_not_guessed() -> None:
    found, _ = await read(httpx.Response(200, json={"commitmentDependencies": []}), term="Fortnightly")
    assert found == []


async def test_a_server_error_on_dependencies_is_not_taken_for_no_rules() -> None:
    from engine.connectors.base import ServiceError

    with pytest.raises(ServiceError):
        await read(httpx.Response(400, json={"type": "BAD_REQUEST", "message": "bad", "status": 400}))


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    return build_demo_scenario()


async def test_the_sandbox_serves_the_demos_commitments_and_the_connector_reads_them_back(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox = Pax8Sandbox.from_scenario(demo)
    async with Pax8Connector(
        sandbox.client_id,
        sandbox.client_secret,
        transport=httpx.MockTransport(sandbox.handle),
        product_kinds=sandbox.product_kinds(),
        price_reading="retail",
    ) as pax8:
        subs = await pax8.subscriptions()
        found = await pax8.commitments([s.id for s in subs])
    assert sorted(found, key=lambda c: c.subscription_id) == sorted(
        demo.vendor.commitments, key=lambda c: c.subscription_id
    )
    calls = [r.url.path for r in sandbox.requests if r.url.path.endswith("/dependencies")]
    assert len(calls) == len({c.subscription_id for c in demo.vendor.commitments})  # one per product


async def test_the_sandboxs_dependencies_route_is_as_strict_as_pax8(demo) -> None:  # type: ignore[no-untyped-def]
    sandbox = Pax8Sandbox.from_scenario(demo)
    async with httpx.AsyncClient(transport=httpx.MockTransport(sandbox.handle), base_url=API) as client:
        token = (
            await client.post(
                "/token",
                json={
                    "client_id": "sandbox",
                    "client_secret": "sandbox",
                    "audience": "https://api.pax8.com",
                    "grant_type": "client_credentials",
                },
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/products/p1/dependencies")).status_code == 401
        unknown = await client.get("/products/nope/dependencies", headers=auth)
        assert unknown.status_code == 404 and unknown.json()["status"] == 404
        product = next(iter(sandbox.dependencies))
        assert (await client.post(f"/products/{product}/dependencies", headers=auth)).status_code == 405
        body = (await client.get(f"/products/{product}/dependencies", headers=auth)).json()
        assert set(body) == {"commitmentDependencies", "productDependencies"}
        [rule] = body["commitmentDependencies"]
        assert set(rule) >= {
            "term",
            "autoRenew",
            "renewalWindowDaysBeforeTermEnd",
            "renewalWindowDaysAfterTermEnd",
        }
