"""The PSA connectors' reads of what was invoiced, against respx with the real request shapes:
ConnectWise `/finance/invoices` then `/procurement/products?conditions=invoice/id in (…)`, HaloPSA
`/Invoice?includelines=true` (paged), Autotask `BillingItems/query` (one filter, paged by
nextPageUrl). Each maps the wire onto `PsaInvoiceLine` with Decimal money and the range applied."""

from __future__ import annotations

import base64
from datetime import date
from decimal import Decimal

import httpx
import pytest
import respx

from engine.connectors.autotask import AutotaskConnector
from engine.connectors.base import ServiceError
from engine.connectors.connectwise import ConnectWiseConnector
from engine.connectors.halopsa import HaloConnector
from engine.connectors.http import loads

D = Decimal
NOV = (date(2026, 11, 1), date(2026, 11, 30))


async def _no_sleep(_: float) -> None:
    return None


# --- ConnectWise ---------------------------------------------------------------------------------

SITE = "api-na.myconnectwise.net"
ROOT = f"https://{SITE}/v2026_4/apis/3.0"


def cw() -> ConnectWiseConnector:
    return ConnectWiseConnector(
        SITE, "acme", "pub", "priv", "client-guid", codebase="v2026_4", sleep=_no_sleep
    )


@respx.mock
async def test_connectwise_reads_agreement_invoices_then_their_product_lines() -> None:
    invoices = respx.get(f"{ROOT}/finance/invoices").respond(
        json=[
            {
                "id": 5001,
                "invoiceNumber": "AGR5001",
                "type": "Agreement",
                "company": {"id": 19, "identifier": "Ace"},
                "date": "2026-11-01T00:00:00Z",
                "currency": {"id": 1, "currencyCode": "USD"},
            }
        ]
    )
    products = respx.get(f"{ROOT}/procurement/products").respond(
        json=[
            {
                "id": 9,
                "catalogItem": {"id": 301, "identifier": "M365-BB"},
                "invoice": {"id": 5001},
                "agreement": {"id": 290},
                "quantity": 268,
                "price": 6.0,
                "extPrice": 1608.0,
                "description": "Pax8 - M365",
                "billableOption": "Billable",
            }
        ]
    )
    client = cw()
    (line,) = await client.invoiced_lines(*NOV)
    await client.aclose()
    sent = invoices.calls.last.request
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"acme+pub:priv").decode()
    assert sent.url.params.multi_items() == [
        ("conditions", 'type="Agreement" and date>=[2026-11-01T00:00:00Z] and date<[2026-12-01T00:00:00Z]'),
        ("pageSize", "1000"),
        ("page", "1"),
    ]
    assert products.calls.last.request.url.params["conditions"] == "invoice/id in (5001)"
    assert (line.invoice_id, line.invoice_number, line.invoice_date) == ("5001", "AGR5001", date(2026, 11, 1))
    assert (line.company_id, line.agreement_id, line.line_id, line.product_id) == ("19", "290", None, "301")
    assert (line.quantity, line.unit_price, line.amount) == (D(268), D("6.0"), D("1608.0"))
    assert isinstance(line.amount, Decimal)


@respx.mock
async def test_connectwise_asks_for_product_lines_a_hundred_invoices_at_a_time() -> None:
    heads = [
        {"id": n, "company": {"id": 19}, "date": "2026-11-01T00:00:00Z", "type": "Agreement"}
        for n in range(1, 151)
    ]
    respx.get(f"{ROOT}/finance/invoices").respond(json=heads)
    products = respx.get(f"{ROOT}/procurement/products").respond(json=[])
    client = cw()
    assert await client.invoiced_lines(*NOV) == []
    await client.aclose()
    asked = [c.request.url.params["conditions"] for c in products.calls]
    assert len(asked) == 2
    assert asked[0].startswith("invoice/id in (1,2,") and asked[0].endswith(",100)")
    assert asked[1] == f"invoice/id in ({','.join(map(str, range(101, 151)))})"


@respx.mock
async def test_connectwise_refuses_a_product_line_without_its_catalog_item() -> None:
    respx.get(f"{ROOT}/finance/invoices").respond(
        json=[{"id": 1, "company": {"id": 19}, "date": "2026-11-01T00:00:00Z"}]
    )
    respx.get(f"{ROOT}/procurement/products").respond(json=[{"id": 2, "invoice": {"id": 1}}])
    client = cw()
    with pytest.raises(ServiceError, match="procurement/products"):
        await client.invoiced_lines(*NOV)
    await client.aclose()


# --- HaloPSA -------------------------------------------------------------------------------------

HALO = "https://acme.halopsa.com"


def halo() -> HaloConnector:
    return HaloConnector(HALO, "cid", "secret", sleep=_no_sleep)


def halo_auth() -> None:
    respx.get(f"{HALO}/api/authinfo").respond(json={"auth_url": f"{HALO}/auth", "tenant_id": "acme"})
    respx.post(f"{HALO}/auth/token").respond(
        json={"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}
    )


def halo_invoice(iid: int, day: str, **line: object) -> dict[str, object]:
    return {
        "id": iid,
        "invoicenumber": f"INV{iid}",
        "invoice_date": f"{day}T00:00:00",
        "client_id": 19,
        "lines": [
            {
                "id": iid * 10,
                "_itemid": 301,
                "qty_order": 10,
                "unit_price": 6.5,
                "net_total": 65.0,
                "recurring_invoice_id": 290,
                "recurring_invoice_line_id": 8638,
                "item_shortdescription": "M365",
                **line,
            }
        ],
    }


@respx.mock
async def test_halo_reads_invoices_with_lines_paged_and_keeps_the_month() -> None:
    halo_auth()
    client = halo()
    client.page_size = 2
    pages = [
        [halo_invoice(1, "2026-10-01"), halo_invoice(2, "2026-11-01")],
        [halo_invoice(3, "2026-11-15", net_total=None, qty_order=3, unit_price=1.115)],
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page_no"])
        return httpx.Response(200, json={"record_count": 3, "invoices": pages[number - 1]})

    route = respx.get(f"{HALO}/api/Invoice").mock(side_effect=answer)
    lines = await client.invoiced_lines(*NOV)
    await client.aclose()
    assert [dict(c.request.url.params.multi_items()) for c in route.calls] == [
        {"includelines": "true", "pageinate": "true", "page_size": "2", "page_no": "1"},
        {"includelines": "true", "pageinate": "true", "page_size": "2", "page_no": "2"},
    ]
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok"
    assert [(x.invoice_id, x.line_id, x.agreement_id, x.amount) for x in lines] == [
        ("2", "8638", "290", D("65.0")),
        ("3", "8638", "290", D("3.35")),  # no net_total: 3 × 1.115 rounded half-up
    ]


@respx.mock
async def test_halo_refuses_an_invoice_without_its_client() -> None:
    halo_auth()
    broken = halo_invoice(1, "2026-11-01")
    del broken["client_id"]
    respx.get(f"{HALO}/api/Invoice").respond(json={"record_count": 1, "invoices": [broken]})
    client = halo()
    with pytest.raises(ServiceError, match="client_id"):
        await client.invoiced_lines(*NOV)
    await client.aclose()


# --- Autotask ------------------------------------------------------------------------------------

ZONE = "https://webservices15.autotask.net/atservicesrest/"


def item(n: int, day: str, **change: object) -> dict[str, object]:
    return {
        "id": n,
        "companyID": 19,
        "invoiceID": 700 + n,
        "itemDate": f"{day}T00:00:00Z",
        "contractID": 290,
        "contractServiceID": 8638,
        "serviceID": 301,
        "itemName": "M365",
        "quantity": 10,
        "rate": 6.5,
        "extendedPrice": 65.0,
        **change,
    }


@respx.mock
async def test_autotask_queries_posted_billing_items_and_follows_the_next_page() -> None:
    next_url = ZONE + "v1.0/BillingItems/query/next?paging=2"
    first = respx.post(ZONE + "v1.0/BillingItems/query").respond(
        json={
            "items": [item(1, "2026-10-31"), item(2, "2026-11-01")],
            "pageDetails": {"count": 2, "requestCount": 500, "nextPageUrl": next_url},
        }
    )
    respx.get(next_url).respond(
        json={
            "items": [item(3, "2026-12-01"), item(4, "2026-11-30", invoiceID=None)],
            "pageDetails": {"count": 2},
        }
    )
    client = AutotaskConnector("api@msp.example", "s3cret", "TRACK", zone_url=ZONE, sleep=_no_sleep)
    lines = await client.invoiced_lines(*NOV)
    await client.aclose()
    sent = first.calls.last.request
    assert sent.headers["ApiIntegrationCode"] == "TRACK" and sent.headers["UserName"] == "api@msp.example"
    assert loads(sent.content) == {
        "MaxRecords": 500,
        "Filter": [
            {"op": "gte", "field": "itemDate", "value": "2026-10-31T00:00:00.00"},
            {"op": "lt", "field": "itemDate", "value": "2026-12-02T00:00:00.00"},
            {"op": "exist", "field": "invoiceID"},
            {"op": "exist", "field": "contractID"},
        ],
    }
    assert [(x.invoice_id, x.invoice_date, x.line_id, x.amount) for x in lines] == [
        ("702", date(2026, 11, 1), "8638", D("65.0"))
    ]
