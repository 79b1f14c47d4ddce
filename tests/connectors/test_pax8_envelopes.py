"""Every Pax8 response is checked before anything of it is used (issue 11, items 3 and 4): a 200
carrying an error body, an empty 200, a body that is not a `Page`, an invalid item, and a listing
that never ends are each a `ServiceError` naming the call — never "no data"."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import respx

from engine.connectors.base import ServiceError
from engine.connectors.pax8 import Pax8Connector

API = "https://api.pax8.com/v1"


def token() -> httpx.Response:
    return httpx.Response(200, json={"access_token": "tok", "expires_in": 86400, "token_type": "Bearer"})


def page(content: list[dict], number: int, total_pages: int, total: int | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": content,
            "page": {
                "size": 200,
                "totalElements": len(content) if total is None else total,
                "totalPages": total_pages,
                "number": number,
            },
        },
    )


def sub(sid: str) -> dict:
    return {
        "id": sid,
        "companyId": "c1",
        "productId": "p1",
        "quantity": 3,
        "status": "Active",
        "startDate": "2020-12-01T08:30:00Z",
        "price": 10,
        "partnerCost": 8,
        "billingTerm": "Monthly",
    }


@pytest.fixture
async def connector():
    async def no_sleep(_seconds: float) -> None:
        return None

    conn = Pax8Connector("cid", "secret", sleep=no_sleep, today=lambda: date(2021, 1, 4))
    yield conn
    await conn.aclose()


@pytest.fixture
def api():
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        mock.post("/token").mock(return_value=token())
        # No published pricing (a 404, as for products whose pricing Pax8 does not publish): the
        # connector's price cross-check (engine.connectors.pax8, "Price and cost") finds no evidence.
        mock.get(url__regex=r"/products/[^/]+/pricing").mock(
            return_value=httpx.Response(
                404, json={"type": "NOT_FOUND", "message": "Product Not Found", "status": 404, "details": []}
            )
        )
        yield mock


ERROR_BODY = {
    "type": "INTERNAL",
    "message": "Upstream catalogue unavailable",
    "instance": "/public/v1/subscriptions",
    "status": 500,
    "details": [
        {
            "type": "INTERNAL",
            "status": 500,
            "message": "try again later",
            "instance": "/public/v1/subscriptions",
        }
    ],
}


async def test_a_200_with_an_error_body_is_a_service_error(connector, api):
    api.get("/subscriptions").mock(return_value=httpx.Response(200, json=ERROR_BODY))
    with pytest.raises(ServiceError) as caught:
        await connector.subscriptions()
    text = str(caught.value)
    assert (
        "GET /subscriptions" in text
        and "Upstream catalogue unavailable" in text
        and "try again later" in text
    )
    assert caught.value.status == 200


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"ok"', b"{not json"])
async def test_an_empty_or_non_object_200_is_a_service_error(connector, api, body):
    api.get("/companies").mock(
        return_value=httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    )
    with pytest.raises(ServiceError, match="GET /companies: answered 200"):
        await connector.companies()


@pytest.mark.parametrize(
    "body",
    [
        {"content": [sub("a")]},  # no page block
        {"page": {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0}},  # no content
        {"content": {"id": "a"}, "page": {"size": 200, "totalElements": 1, "totalPages": 1, "number": 0}},
        {"content": [sub("a")], "page": {"size": 500, "totalElements": 1, "totalPages": 1, "number": 0}},
        {"content": [sub("a")], "page": {"size": 200, "totalElements": -1, "totalPages": 1, "number": 0}},
    ],
)
async def test_a_list_that_is_not_a_page_envelope_is_refused(connector, api, body):
    api.get("/subscriptions").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ServiceError, match=r"GET /subscriptions: not a valid PageBody \((content|page)"):
        await connector.raw_subscriptions()


async def test_an_item_without_its_id_names_the_item(connector, api):
    bad = sub("b")
    del bad["id"]
    api.get("/subscriptions").mock(return_value=page([sub("a"), bad], 0, 1))
    with pytest.raises(
        ServiceError, match=r"GET /subscriptions item 1: not a valid Subscription \(id: Field required"
    ):
        await connector.raw_subscriptions()


async def test_history_must_be_a_content_list(connector, api):
    api.get("/subscriptions").mock(return_value=page([sub("a")], 0, 1))
    api.get("/subscriptions/a/history").mock(return_value=httpx.Response(200, json={"items": []}))
    with pytest.raises(ServiceError, match=r"GET /subscriptions/a/history: not a valid ListBody \(content"):
        await connector.subscriptions()


async def test_a_listing_that_never_ends_is_stopped_by_the_page_cap(connector, api):
    connector.max_pages = 25
    calls = 0

    def endless(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        number = int(request.url.params["page"])
        return page([sub(f"s{number}")], number, number + 2, total=10**9)  # always "one more page"

    api.get("/subscriptions").mock(side_effect=endless)
    with pytest.raises(ServiceError, match="GET /subscriptions: stopped after 25 pages"):
        await connector.subscriptions()
    assert calls == 26  # the 26th page passed the cap; nothing more was asked


async def test_a_listing_over_the_byte_cap_is_stopped(connector, api):
    connector.max_bytes = 50_000
    big = [sub(f"s{n}") | {"productName": "x" * 1000} for n in range(20)]  # ~21 KB a page

    def pages(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        return page(big, number, 100, total=2000)

    api.get("/subscriptions").mock(side_effect=pages)
    with pytest.raises(
        ServiceError, match=r"stopped after [\d,]+ bytes in 3 pages \(over the 50,000-byte cap\)"
    ):
        await connector.raw_subscriptions()


async def test_a_page_answering_another_page_number_is_refused(connector, api):
    api.get("/subscriptions").mock(side_effect=[page([sub("a")], 0, 2, 2), page([sub("a")], 0, 2, 2)])
    with pytest.raises(ServiceError, match="asked for page 1, answered page 0"):
        await connector.raw_subscriptions()


async def test_an_empty_page_before_the_last_is_refused(connector, api):
    api.get("/subscriptions").mock(side_effect=[page([sub("a")], 0, 3, 401), page([], 1, 3, 401)])
    with pytest.raises(ServiceError, match=r"page 1 of 3 came back empty \(1 of 401 items read\)"):
        await connector.raw_subscriptions()


async def test_an_honest_empty_listing_is_no_error(connector, api):
    api.get("/subscriptions").mock(return_value=page([], 0, 0))
    assert await connector.subscriptions() == []


async def test_deeply_nested_json_is_a_service_error_not_a_crash(connector, api):
    api.get("/companies").mock(return_value=httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(ServiceError, match="GET /companies: answered 200"):
        await connector.companies()
