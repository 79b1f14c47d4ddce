"""Autotask: a product created in the PSA is a Service (issue 13, "Products the seeds' way"):
the connector's request shape against respx, and the sandbox as strict as a real zone about it
(required fields, read-only id, lengths, picklist, an unknown billingCodeID → its error body)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from engine.connectors.autotask import AutotaskConnector, dumps
from engine.connectors.base import ProductSpec, ServiceError
from engine.connectors.http import loads
from engine.sandbox.autotask import BILLING_CODE_BASE, DEFAULT_ZONE, AutotaskSandbox
from engine.scenario import Scenario

ZONE = "https://webservices15.autotask.net/atservicesrest/"
BASE = ZONE + "v1.0/"
SPEC = ProductSpec("Backup per GB", "BK-GB", Decimal("0.12"), Decimal("0.05"))


def connector(**kwargs: Any) -> AutotaskConnector:
    async def sleep(_: float) -> None:
        return None

    return AutotaskConnector("api@msp.example", "s3cret", "TRACK", zone_url=ZONE, sleep=sleep, **kwargs)


@respx.mock
async def test_create_product_posts_a_service_with_the_required_fields_then_reads_it() -> None:
    post = respx.post(BASE + "Services").mock(return_value=httpx.Response(200, json={"itemId": 4321}))
    service = {
        "id": 4321,
        "name": "Backup per GB",
        "sku": "BK-GB",
        "unitPrice": 0.12,
        "unitCost": 0.05,
        "billingCodeID": 29682801,
        "periodType": 1,
        "isActive": True,
    }
    get = respx.get(BASE + "Services/4321").mock(return_value=httpx.Response(200, json={"item": service}))
    psa = connector(service_billing_code_id=29682801)
    created = await psa.create_product(SPEC)
    assert post.called and get.called
    sent = post.calls[0].request
    assert sent.headers["ApiIntegrationCode"] == "TRACK" and sent.headers["Secret"] == "s3cret"
    assert loads(sent.content) == {
        "name": "Backup per GB",
        "unitPrice": Decimal("0.12"),
        "unitCost": Decimal("0.05"),
        "periodType": 1,
        "billingCodeID": 29682801,
        "isActive": True,
        "sku": "BK-GB",  # the Service's own sku [anteris], not a marker in the description
    }
    assert b'"unitPrice": 0.12,' in sent.content  # money as the exact decimal, not a float's repr
    assert (created.id, created.name, created.unit_price) == ("4321", "Backup per GB", Decimal("0.12"))
    assert created.sku == "BK-GB"  # read back from the Service
    await psa.aclose()


@respx.mock
async def test_products_read_the_services_sku() -> None:
    services = [
        {"id": 11, "name": "Backup per GB", "sku": " BK-GB ", "unitPrice": 0.12, "billingCodeID": 7},
        {"id": 12, "name": "Managed Firewall", "sku": "", "unitPrice": 40, "billingCodeID": 7},
        {"id": 13, "name": "Legacy", "unitPrice": 5, "billingCodeID": 7},
    ]
    route = respx.post(BASE + "Services/query").mock(
        return_value=httpx.Response(
            200,
            json={
                "items": services,
                "pageDetails": {"count": 3, "requestCount": 500, "prevPageUrl": None, "nextPageUrl": None},
            },
        )
    )
    psa = connector()
    found = {p.id: p.sku for p in await psa.products()}
    assert route.called
    assert found == {"11": "BK-GB", "12": None, "13": None}
    await psa.aclose()


@respx.mock
async def test_create_product_carries_autotasks_error_body() -> None:
    respx.post(BASE + "Services").mock(
        return_value=httpx.Response(500, json={"errors": ["billingCodeID 7 does not exist"]})
    )
    psa = connector(service_billing_code_id=7)
    with pytest.raises(ServiceError, match="billingCodeID 7 does not exist") as caught:
        await psa.create_product(SPEC)
    assert caught.value.status == 500
    await psa.aclose()


@pytest.mark.parametrize(
    ("kwargs", "spec", "message"),
    [
        ({}, SPEC, "needs a billing code id"),
        (
            {"service_billing_code_id": 7},
            ProductSpec("X", None, Decimal(1), Decimal(0), recurring=False),
            "recurring",
        ),
        (
            {"service_billing_code_id": 7},
            ProductSpec("X", None, Decimal(1), Decimal(0), category="Backup"),
            "category",
        ),
        ({"service_billing_code_id": 7}, ProductSpec("X", None, Decimal(1), Decimal(0), taxable=True), "tax"),
        (
            {"service_billing_code_id": 7},
            ProductSpec("X", "S" * 51, Decimal(1), Decimal(0)),
            "is 51 characters; an Autotask service's sku holds 50",
        ),
    ],
)
@respx.mock(assert_all_called=False)
async def test_what_trueup_cannot_write_is_refused_before_sending(
    kwargs: dict[str, Any], spec: ProductSpec, message: str
) -> None:
    route = respx.post(BASE + "Services")
    psa = connector(**kwargs)
    with pytest.raises(ServiceError, match=message) as caught:
        await psa.create_product(spec)
    assert caught.value.sent is False and not route.called
    await psa.aclose()


# --- the sandbox ------------------------------------------------------------------------------------


def sandbox() -> AutotaskSandbox:
    world = Scenario.model_validate(
        {
            "as_of": "2026-12-01",
            "psa": {
                "companies": [{"id": "19", "name": "Ace Chemical"}],
                "products": [{"id": "700", "name": "Business Essentials", "unit_price": "6.00"}],
            },
        }
    )
    return AutotaskSandbox.from_scenario(world)


async def raw(at: AutotaskSandbox, payload: Any) -> httpx.Response:
    headers = {
        "ApiIntegrationCode": at.integration_code,
        "UserName": at.username,
        "Secret": at.secret,
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(transport=at.transport()) as client:
        return await client.post(
            DEFAULT_ZONE + "v1.0/Services", content=dumps(payload).encode(), headers=headers
        )


GOOD = {
    "name": "Backup per GB",
    "unitPrice": Decimal("0.12"),
    "periodType": 1,
    "billingCodeID": BILLING_CODE_BASE + 700,
}


async def test_the_sandbox_creates_a_service_and_serves_it_back() -> None:
    at = sandbox()
    psa = at.connector(service_billing_code_id=BILLING_CODE_BASE + 700)
    created = await psa.create_product(SPEC)
    row = at.tables["Services"][int(created.id)]
    assert (row["name"], row["unitPrice"], row["unitCost"], row["sku"], row["description"]) == (
        "Backup per GB",
        Decimal("0.12"),
        Decimal("0.05"),
        "BK-GB",
        None,
    )
    assert created.sku == "BK-GB"
    assert {p.id: p.sku for p in await psa.products()}[created.id] == "BK-GB"
    await psa.aclose()


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"name": None}, 400, "Required field Services.name is missing"),
        ({"unitPrice": None}, 400, "Required field Services.unitPrice is missing"),
        ({"periodType": None}, 400, "Required field Services.periodType is missing"),
        ({"billingCodeID": None}, 400, "Required field Services.billingCodeID is missing"),
        ({"id": 5}, 500, "Services.id is read-only"),
        ({"name": "x" * 151}, 500, "Services.name: at most 150 characters (151 given)"),
        ({"description": "x" * 401}, 500, "Services.description: at most 400 characters (401 given)"),
        ({"periodType": 9}, 500, "Services.periodType: 9 is not a valid picklist value"),
        ({"billingCodeID": 12345}, 500, "billingCodeID 12345 does not exist"),
        ({"sku": "x" * 51}, 500, "Services.sku: at most 50 characters (51 given)"),
        ({"sku": 42}, 400, "Services.sku: not a valid str: 42"),
        ({"partNumber": "BK"}, 400, "Services: unknown field 'partNumber'"),
    ],
)
async def test_the_sandbox_refuses_a_service_a_real_zone_would(
    change: dict[str, Any], status: int, error: str
) -> None:
    at = sandbox()
    before = dict(at.tables["Services"])
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    response = await raw(at, body)
    assert response.status_code == status
    assert error in loads(response.content)["errors"]
    assert at.tables["Services"] == before
    assert (await raw(at, GOOD)).status_code == 200  # the same body without the fault is taken
