"""The PSA sandboxes serve what the PSA invoiced as strictly as the real services: routes and
methods, paging, the conditions / filter syntax, 400 and 404 shapes; and what they serve is the
demo's history (the PSA invoiced its lines in force each month)."""

from __future__ import annotations

import base64
from decimal import Decimal

import httpx
import pytest

from engine.sandbox.autotask import AutotaskSandbox
from engine.sandbox.connectwise import ConnectWiseSandbox
from engine.sandbox.demo import build_demo_psa_invoices, build_demo_scenario
from engine.sandbox.halopsa import HaloSandbox
from engine.scenario import Scenario

D = Decimal


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return build_demo_scenario()


# --- ConnectWise ---------------------------------------------------------------------------------


def cw_client(sandbox: ConnectWiseSandbox) -> httpx.AsyncClient:
    token = base64.b64encode(
        f"{sandbox.company_id}+{sandbox.public_key}:{sandbox.private_key}".encode()
    ).decode()
    return httpx.AsyncClient(
        transport=httpx.MockTransport(sandbox.handle),
        base_url=f"https://{sandbox.site}{sandbox.base}",
        headers={"Authorization": f"Basic {token}", "clientId": sandbox.client_id},
    )


async def test_connectwise_invoices_page_and_filter_by_conditions(demo: Scenario) -> None:
    sandbox = ConnectWiseSandbox.from_scenario(demo)
    november = 'type="Agreement" and date>=[2026-11-01T00:00:00Z] and date<[2026-12-01T00:00:00Z]'
    async with cw_client(sandbox) as client:
        first = await client.get("/finance/invoices", params={"conditions": november, "pageSize": "10"})
        assert first.status_code == 200 and len(first.json()) == 10
        assert 'rel="next"' in first.headers["Link"]
        every = await client.get("/finance/invoices", params={"conditions": november, "pageSize": "1000"})
        heads = every.json()
        expected = {x.invoice_id for x in build_demo_psa_invoices(demo) if x.month == "2026-11"}
        assert {str(h["id"]) for h in heads} == expected
        assert all(h["date"] == "2026-11-01T00:00:00Z" and len(h["invoiceNumber"]) <= 15 for h in heads)
        ids = ",".join(str(h["id"]) for h in heads[:3])
        items = (
            await client.get("/procurement/products", params={"conditions": f"invoice/id in ({ids})"})
        ).json()
        assert {i["invoice"]["id"] for i in items} == {h["id"] for h in heads[:3]}
        assert all(i["catalogItem"]["id"] and i["billableOption"] == "Billable" for i in items)
        # the invoice's total is the sum of its lines
        one = heads[0]
        mine = (
            await client.get("/procurement/products", params={"conditions": f"invoice/id={one['id']}"})
        ).json()
        assert sum(D(str(i["extPrice"])) for i in mine) == D(str(one["total"]))


async def test_connectwise_refuses_what_connectwise_refuses(demo: Scenario) -> None:
    sandbox = ConnectWiseSandbox.from_scenario(demo)
    async with cw_client(sandbox) as client:
        bad = await client.get("/procurement/products", params={"conditions": "invoice/id in ()"})
        assert bad.status_code == 400 and bad.json()["code"] == "InvalidRequest"
        bad = await client.get("/finance/invoices", params={"conditions": "date>=2026-11-01"})
        assert bad.status_code == 400
        bad = await client.get("/finance/invoices", params={"pageSize": "0"})
        assert bad.status_code == 400
        missing = await client.get("/finance/invoices/1")
        assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
        refused = await client.post("/finance/invoices", json={})
        assert refused.status_code == 405 and refused.json()["code"] == "MethodNotAllowed"
        unauthorised = await client.get("/finance/invoices", headers={"Authorization": "Basic eA=="})
        assert unauthorised.status_code == 401


# --- HaloPSA -------------------------------------------------------------------------------------


async def halo_client(sandbox: HaloSandbox) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.MockTransport(sandbox.handle), base_url=sandbox.base_url)
    token = await client.post(
        "/auth/token",
        params={"tenant": sandbox.tenant},
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "scope": "all",
        },
    )
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return client


async def test_halo_invoices_page_and_carry_lines_only_when_asked(demo: Scenario) -> None:
    sandbox = HaloSandbox.from_scenario(build_demo_scenario(psa="halopsa"))
    client = await halo_client(sandbox)
    try:
        page = await client.get(
            "/api/Invoice", params={"pageinate": "true", "page_size": "5", "page_no": "2"}
        )
        body = page.json()
        assert page.status_code == 200 and body["page_no"] == 2 and len(body["invoices"]) == 5
        assert body["record_count"] == len({x.invoice_id for x in build_demo_psa_invoices(demo)})
        assert "lines" not in body["invoices"][0]
        with_lines = await client.get("/api/Invoice", params={"includelines": "true", "client_id": "101"})
        invoices = with_lines.json()["invoices"]
        assert invoices and {i["client_id"] for i in invoices} == {101}
        line = invoices[0]["lines"][0]
        assert line["recurring_invoice_line_id"] and line["recurring_invoice_id"]
        assert sum(D(str(x["net_total"])) for x in invoices[0]["lines"]) == D(str(invoices[0]["total"]))
    finally:
        await client.aclose()


async def test_halo_refuses_what_halo_refuses() -> None:
    sandbox = HaloSandbox.from_scenario(build_demo_scenario(psa="halopsa"))
    client = await halo_client(sandbox)
    try:
        bad = await client.get("/api/Invoice", params={"pageinate": "true", "page_size": "0"})
        assert bad.status_code == 400
        bad = await client.get("/api/Invoice", params={"client_id": "abc"})
        assert bad.status_code == 400 and "client_id" in bad.json()
        missing = await client.get("/api/Invoice/1")
        assert missing.status_code == 404 and missing.json() == "Invoice 1 not found"
        refused = await client.post("/api/Invoice/1", json={})
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET, DELETE"
        client.headers["Authorization"] = "Bearer nope"
        assert (await client.get("/api/Invoice")).status_code == 401
    finally:
        await client.aclose()


# --- Autotask ------------------------------------------------------------------------------------


def at_client(sandbox: AutotaskSandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.MockTransport(sandbox.handle),
        base_url=f"{sandbox.zone_url}v1.0",
        headers={
            "ApiIntegrationCode": sandbox.integration_code,
            "UserName": sandbox.username,
            "Secret": sandbox.secret,
            "Content-Type": "application/json",
        },
    )


async def test_autotask_billing_items_are_query_only_and_paged() -> None:
    scenario = build_demo_scenario(psa="autotask")
    sandbox = AutotaskSandbox.from_scenario(scenario)
    november = [
        {"op": "gte", "field": "itemDate", "value": "2026-11-01T00:00:00"},
        {"op": "lt", "field": "itemDate", "value": "2026-12-01T00:00:00"},
    ]
    async with at_client(sandbox) as client:
        first = await client.post("/BillingItems/query", json={"MaxRecords": 100, "Filter": november})
        body = first.json()
        assert first.status_code == 200 and body["pageDetails"]["count"] == 100
        assert body["pageDetails"]["nextPageUrl"].startswith(
            f"{sandbox.zone_url}v1.0/BillingItems/query/next"
        )
        count = await client.post("/BillingItems/query/count", json={"Filter": november})
        expected = [x for x in build_demo_psa_invoices(scenario) if x.month == "2026-11"]
        assert count.json() == {"queryCount": len(expected)}
        one = await client.get(f"/BillingItems/{body['items'][0]['id']}")
        assert one.json()["item"]["itemDate"] == "2026-11-01T00:00:00Z"
        assert (await client.post("/BillingItems", json={"quantity": 1})).status_code == 405
        assert (await client.patch("/BillingItems", json={"id": 1, "quantity": 2})).status_code == 405
        bad = await client.post("/BillingItems/query", json={"MaxRecords": 0, "Filter": november})
        assert bad.status_code == 400 and bad.json()["errors"]
        bad = await client.post("/BillingItems/query", json={"Filter": [{"op": "near", "field": "id"}]})
        assert bad.status_code == 400


def test_the_sandboxes_invoice_the_scenario_they_were_given() -> None:
    scenario = build_demo_scenario()
    for sandbox in (
        ConnectWiseSandbox.from_scenario(scenario),
        HaloSandbox.from_scenario(scenario),
        AutotaskSandbox.from_scenario(scenario),
    ):
        served = sandbox.invoiced_source()
        assert served == build_demo_psa_invoices(scenario)
