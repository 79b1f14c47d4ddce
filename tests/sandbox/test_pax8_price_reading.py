"""Pax8's subscription `price`: the spec reads it as the customer price, the Pax8 CLI's tracker
(#711) as the partner's buy rate. The sandbox serves either; the connector's "auto" reading
cross-checks with `/products/{id}/pricing?companyId=` and gets retail and cost right under both, a
forced wrong reading shows what it would cost, and disagreeing sources are warnings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest
import respx

from engine.connectors.pax8 import Pax8Connector
from engine.sandbox.demo import build_demo_scenario
from engine.sandbox.pax8 import Pax8Sandbox
from engine.workspace import Workspace


@pytest.fixture(scope="module")
def demo():
    return build_demo_scenario()


def connect(sandbox: Pax8Sandbox, reading: str = "auto") -> Pax8Connector:
    return Pax8Connector(
        sandbox.client_id,
        sandbox.client_secret,
        transport=httpx.MockTransport(sandbox.handle),
        product_kinds=sandbox.product_kinds(),
        today=lambda: date(2026, 12, 1),
        price_reading=reading,
    )  # type: ignore[arg-type]


def amounts(subs):
    return {s.id: (s.unit_price, s.unit_cost) for s in subs}


@pytest.mark.parametrize("field", ["retail", "partner"])
async def test_auto_reads_retail_and_cost_right_whatever_price_carries(demo, field):
    sandbox = Pax8Sandbox.from_scenario(demo, price_field=field)
    async with connect(sandbox) as connector:
        subs = await connector.subscriptions()
        warnings = connector.take_warnings()
    assert amounts(subs) == amounts(demo.vendor.subscriptions)
    if field == "partner":
        assert any("at the partner's buy rate" in w for w in warnings), warnings
    else:
        assert warnings == []
    pricing_calls = [r for r in sandbox.requests if r.url.path.endswith("/pricing")]
    products = {s.product_id for s in demo.vendor.subscriptions}
    if field == "retail":  # one cross-check per product, nothing more
        assert len(pricing_calls) == len(products)
    else:  # + the company's suggested retail price for each (product, company)
        assert len(pricing_calls) <= len(products) + len(
            {(s.product_id, s.company_id) for s in demo.vendor.subscriptions}
        )
    assert all("companyId" in r.url.params for r in pricing_calls)


async def test_the_spec_reading_on_a_buy_rate_feed_bills_at_cost(demo):
    """What "retail" (the spec, forced) would do if Pax8 sends the buy rate: every price at cost."""
    sandbox = Pax8Sandbox.from_scenario(demo, price_field="partner")
    async with connect(sandbox, "retail") as connector:
        subs = await connector.subscriptions()
    wrong = [s for s in subs if s.unit_price != {x.id: x.unit_price for x in demo.vendor.subscriptions}[s.id]]
    assert wrong and all(s.unit_price == s.unit_cost for s in wrong)


@pytest.mark.parametrize("field", ["retail", "partner"])
async def test_the_demo_plan_is_the_same_under_both_readings(demo, field):
    reference = Workspace.sandbox_from_scenario(demo)
    await reference.refresh()
    workspace = Workspace.sandbox_from_scenario(demo, pax8_price_field=field)
    result = await workspace.refresh()
    assert result.ok, result.errors
    assert bool(result.warnings) == (field == "partner")

    def lines(ws):
        return sorted(
            (line.key, line.quantity, line.unit_price, line.total_price, line.total_cost)
            for line in ws.plan().lines
        )

    assert lines(workspace) == lines(reference)
    assert sum(line.total_price for line in workspace.plan().lines) > 0
    await reference.aclose()
    await workspace.aclose()


# --- respx, the spec's shapes ----------------------------------------------------------------------

API = "https://api.pax8.com/v1"


def sub(sid: str, price, partner_cost=None, **extra) -> dict:
    body = {
        "id": sid,
        "companyId": "c1",
        "productId": "p1",
        "quantity": 5,
        "status": "Active",
        "startDate": "2026-01-01T08:30:00Z",
        "price": price,
        "billingTerm": "Monthly",
        "commitmentTerm": {"id": "t1", "term": "Monthly", "endDate": "2027-01-01"},
        **extra,
    }
    if partner_cost is not None:
        body["partnerCost"] = partner_cost
    return body


def pricing(buy, retail) -> dict:
    """[spec Pricing/Rate] two commitment terms of the Monthly billing term, a volume range."""
    return {
        "content": [
            {
                "productId": "p1",
                "billingTerm": "Monthly",
                "commitmentTerm": "1-Year",
                "type": "Volume",
                "rates": [
                    {
                        "partnerBuyRate": buy - 2,
                        "suggestedRetailPrice": retail,
                        "startQuantityRange": 1,
                        "chargeType": "Per Unit",
                    }
                ],
            },
            {
                "productId": "p1",
                "billingTerm": "Monthly",
                "commitmentTerm": "Monthly",
                "type": "Volume",
                "rates": [
                    {
                        "partnerBuyRate": buy + 5,
                        "suggestedRetailPrice": retail + 5,
                        "startQuantityRange": 0,
                        "endQuantityRange": 4,
                        "chargeType": "Per Unit",
                    },
                    {
                        "partnerBuyRate": buy,
                        "suggestedRetailPrice": retail,
                        "startQuantityRange": 5,
                        "chargeType": "Per Unit",
                    },
                ],
            },
        ]
    }


def page(content: list[dict]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "content": content,
            "page": {"size": 200, "totalElements": len(content), "totalPages": 1, "number": 0},
        },
    )


async def read(subs: list[dict], pricing_body: dict, reading: str = "auto"):
    with respx.mock(base_url=API) as mock:
        mock.post("/token").mock(
            return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
        )
        mock.get("/subscriptions").mock(return_value=page(subs))
        for s in subs:
            mock.get(f"/subscriptions/{s['id']}/history").mock(
                return_value=httpx.Response(200, json={"content": [s]})
            )
        route = mock.get("/products/p1/pricing").mock(return_value=httpx.Response(200, json=pricing_body))
        async with Pax8Connector("cid", "secret", price_reading=reading) as connector:  # type: ignore[arg-type]
            found = await connector.subscriptions()
            return found, connector.take_warnings(), route


async def test_price_equal_to_the_buy_rate_of_its_term_commitment_and_range_reads_as_cost():
    found, warnings, route = await read([sub("s1", 22.50)], pricing(22.50, 30))
    assert (found[0].unit_price, found[0].unit_cost) == (Decimal("30"), Decimal("22.5"))
    assert route.calls.last.request.url.params["companyId"] == "c1"
    assert any("partner's buy rate" in w for w in warnings)


async def test_price_equal_to_the_suggested_retail_price_reads_as_the_spec_says():
    found, warnings, _ = await read([sub("s1", 30, partner_cost=22.50)], pricing(22.50, 30))
    assert (found[0].unit_price, found[0].unit_cost) == (Decimal("30"), Decimal("22.5"))
    assert warnings == []


async def test_a_partner_cost_that_differs_from_the_buy_rate_is_a_warning():
    found, warnings, _ = await read([sub("s1", 30, partner_cost=21)], pricing(22.50, 30))
    assert (found[0].unit_price, found[0].unit_cost) == (Decimal("30"), Decimal("21"))
    assert warnings == [
        "subscription s1: partnerCost 21 differs from the partner buy rate 22.5 /pricing gives "
        "for its company"
    ]


async def test_a_price_matching_neither_is_read_as_the_spec_says_with_a_warning():
    found, warnings, _ = await read([sub("s1", 27, partner_cost=20)], pricing(22.50, 30))
    assert (found[0].unit_price, found[0].unit_cost) == (Decimal("27"), Decimal("20"))
    assert (
        len(warnings) == 1 and "matched neither" in warnings[0] and "TRUEUP_PAX8_PRICE_READING" in warnings[0]
    )


async def test_retail_reading_takes_an_omitted_partner_cost_from_the_buy_rate():
    found, _, _ = await read([sub("s1", 30)], pricing(22.50, 30), reading="retail")
    assert (found[0].unit_price, found[0].unit_cost) == (Decimal("30"), Decimal("22.5"))


async def test_partner_reading_without_a_suggested_retail_price_warns_and_bills_at_cost():
    body = {"content": [{"productId": "p1", "billingTerm": "Annual", "rates": [{"partnerBuyRate": 1}]}]}
    found, warnings, _ = await read([sub("s1", 22.50)], body, reading="partner")
    assert (found[0].unit_price, found[0].unit_cost) == (Decimal("22.5"), Decimal("22.5"))
    assert any("no suggested retail price" in w and "s1" in w for w in warnings)


def test_an_unknown_reading_is_refused():
    with pytest.raises(ValueError, match="price_reading must be one of auto, retail, partner"):
        Pax8Connector("a", "b", price_reading="cost")  # type: ignore[arg-type]
