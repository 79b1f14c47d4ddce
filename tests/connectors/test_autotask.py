"""The Autotask connector against respx: exact URLs, headers and bodies, paging, retries, errors."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import httpx
import pytest
import respx

from engine.connectors.autotask import (
    CHARGE_KEY_LIMIT,
    SERVICE_KEY_LIMIT,
    ZONE_LOOKUP_URL,
    AutotaskConnector,
    key_from_marker,
    key_marker,
    service_marker,
)
from engine.connectors.base import LineUpdate, LineWrite, ServiceError
from engine.connectors.http import loads

ZONE = "https://webservices15.autotask.net/atservicesrest/"
BASE = ZONE + "v1.0/"
USER = "api-user@msp.example"


def connector(**kwargs: object) -> tuple[AutotaskConnector, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    kwargs.setdefault("zone_url", ZONE)
    return AutotaskConnector(USER, "s3cret", "TRACK-ID", sleep=sleep, **kwargs), slept  # type: ignore[arg-type]


def body(request: httpx.Request) -> object:
    return loads(request.content)


def page(items: list[dict], next_url: str | None = None) -> dict:
    return {
        "items": items,
        "pageDetails": {
            "count": len(items),
            "requestCount": 500,
            "prevPageUrl": None,
            "nextPageUrl": next_url,
        },
    }


RECURRING = LineWrite(
    key="sub-1:recurring",
    agreement_id="290",
    product_id="700",
    kind="recurring",
    quantity=Decimal("12"),
    unit_price=Decimal("6.00"),
    unit_cost=Decimal("5.00"),
    effective_date=date(2021, 3, 1),
    end_date=None,
    description="Pax8 - Business Essentials",
)
PRORATE = LineWrite(
    key="sub-1:prorate:2021-02-04",
    agreement_id="290",
    product_id="700",
    kind="one_time",
    quantity=Decimal("2"),
    unit_price=Decimal("21.43"),
    unit_cost=Decimal("17.14"),
    effective_date=date(2021, 3, 1),
    end_date=date(2021, 3, 31),
    description="Pax8 - Business Essentials - Prorated for 02/04/2021-02/28/2021",
)


# --- zone, headers, query bodies -------------------------------------------------------------------


@respx.mock
async def test_zone_discovery_then_query_with_auth_headers_and_exact_body() -> None:
    zone = respx.get(ZONE_LOOKUP_URL, params={"user": USER}).respond(json={"url": ZONE, "webUrl": "x"})
    query = respx.post(BASE + "Companies/query").respond(json=page([{"id": 19, "companyName": "Ace"}]))
    at, _ = connector(zone_url=None)

    companies = await at.companies()

    assert [(c.id, c.name) for c in companies] == [("19", "Ace")]
    assert zone.call_count == 1
    lookup = zone.calls[0].request
    assert str(lookup.url) == f"{ZONE_LOOKUP_URL}?user=api-user%40msp.example"
    assert "Secret" not in lookup.headers
    sent = query.calls[0].request
    assert sent.headers["ApiIntegrationCode"] == "TRACK-ID"
    assert sent.headers["UserName"] == USER
    assert sent.headers["Secret"] == "s3cret"
    assert sent.headers["Content-Type"] == "application/json"
    assert body(sent) == {"MaxRecords": 500, "Filter": [{"op": "eq", "field": "isActive", "value": True}]}
    respx.post(BASE + "Services/query").respond(json=page([]))
    await at.products()
    assert zone.call_count == 1
    await at.aclose()


@respx.mock
async def test_agreements_filter_recurring_active_contracts_and_map_period_types() -> None:
    route = respx.post(BASE + "Contracts/query").respond(
        json=page(
            [
                {
                    "id": 290,
                    "companyID": 19,
                    "contractName": "Monthly",
                    "contractPeriodType": 1,
                    "startDate": "2018-11-16T00:00:00",
                    "endDate": None,
                },
                {
                    "id": 291,
                    "companyID": 19,
                    "contractName": "Yearly",
                    "contractPeriodType": 4,
                    "startDate": "2024-01-31T15:04:05.307",
                    "endDate": "2025-01-30T23:59:59.997",
                },
            ]
        )
    )
    at, _ = connector()

    monthly, yearly = await at.agreements()

    assert body(route.calls[0].request)["Filter"] == [
        {"op": "eq", "field": "contractType", "value": 7},
        {"op": "eq", "field": "status", "value": 1},
    ]
    assert (monthly.id, monthly.company_id, monthly.billing_period) == ("290", "19", "monthly")
    assert yearly.billing_period == "annual"
    assert yearly.start_date == date(2024, 1, 31)  # a zone-less UTC date-time is read as its date
    assert yearly.end_date == date(2025, 1, 30)
    await at.aclose()


@respx.mock
async def test_paging_follows_absolute_next_page_urls_to_the_end() -> None:
    next1 = "https://webservices15.autotask.net/atservicesrest/v1.0/Services/query/next?paging=abc"
    next2 = "https://webservices15.autotask.net/atservicesrest/v1.0/Services/query/next?paging=def"
    first = respx.post(BASE + "Services/query").respond(json=page([{"id": 1, "name": "A"}], next1))
    second = respx.get(next1).respond(json=page([{"id": 2, "name": "B"}], next2))
    third = respx.get(next2).respond(json=page([{"id": 3, "name": "C", "unitPrice": 19.99}]))
    at, _ = connector()

    products = await at.products()

    assert [p.id for p in products] == ["1", "2", "3"]
    assert (first.call_count, second.call_count, third.call_count) == (1, 1, 1)
    assert second.calls[0].request.headers["Secret"] == "s3cret"
    assert products[2].unit_price == Decimal("19.99")
    await at.aclose()


@respx.mock
async def test_in_filters_are_chunked_at_500_values() -> None:
    route = respx.post(BASE + "ContractCharges/query").respond(json=page([]))
    at, _ = connector()

    await at.query_in("ContractCharges", "contractID", range(1, 702))

    chunks = [body(call.request)["Filter"][0]["value"] for call in route.calls]
    assert [len(c) for c in chunks] == [500, 201]
    assert chunks[0][0] == 1 and chunks[1][-1] == 701
    await at.aclose()


# --- retries and errors ----------------------------------------------------------------------------


@respx.mock
async def test_a_query_is_retried_after_429_honouring_retry_after() -> None:
    route = respx.post(BASE + "Companies/query").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": ["Thread limit reached"]}),
            httpx.Response(200, json=page([{"id": 5, "companyName": "Wayne"}])),
        ]
    )
    at, slept = connector()

    companies = await at.companies()

    assert [c.id for c in companies] == ["5"]
    assert route.call_count == 2
    assert slept == [7.0]
    await at.aclose()


@respx.mock
async def test_a_write_is_not_resent_after_a_500() -> None:
    respx.get(BASE + "Services/700").respond(json={"item": {"id": 700, "name": "E", "billingCodeID": 29682}})
    route = respx.post(BASE + "Contracts/290/Charges").respond(500, json={"errors": ["Something went wrong"]})
    at, slept = connector()

    with pytest.raises(ServiceError) as caught:
        await at.create_line(PRORATE)

    assert route.call_count == 1
    assert caught.value.sent is True and caught.value.status == 500
    assert caught.value.details == ["Something went wrong"]
    assert slept == []
    await at.aclose()


@respx.mock
async def test_a_write_is_not_resent_after_a_timeout() -> None:
    route = respx.post(BASE + "Contracts/290/ServiceAdjustments").mock(side_effect=httpx.ReadTimeout("slow"))
    at, _ = connector()
    update = LineUpdate(
        key="sub-1:recurring",
        line_id="8638",
        agreement_id="290",
        quantity=Decimal("14"),
        previous_quantity=Decimal("12"),
        effective_date=date(2021, 3, 1),
    )

    with pytest.raises(ServiceError) as caught:
        await at.update_line(update)

    assert route.call_count == 1
    assert caught.value.sent is True and caught.value.status is None
    await at.aclose()


@respx.mock
async def test_errors_body_becomes_message_and_details() -> None:
    respx.post(BASE + "Contracts/290/Services").respond(
        500, json={"errors": ["Contract must be a Recurring Service contract.", "serviceID is invalid."]}
    )
    at, _ = connector()

    with pytest.raises(ServiceError) as caught:
        await at.create_line(RECURRING)

    err = caught.value
    assert err.service == "autotask"
    assert err.message == "Contract must be a Recurring Service contract."
    assert err.details == ["Contract must be a Recurring Service contract.", "serviceID is invalid."]
    assert "serviceID is invalid." in str(err)
    await at.aclose()


@respx.mock
async def test_401_is_a_rejection_with_the_services_message() -> None:
    respx.post(BASE + "Companies/query").respond(
        401, json={"Message": "Authorization has been denied for this request."}
    )
    at, _ = connector()

    with pytest.raises(ServiceError) as caught:
        await at.companies()

    assert caught.value.status == 401 and caught.value.rejected
    assert caught.value.message == "Authorization has been denied for this request."
    await at.aclose()


# --- lines: money, dates, keys ---------------------------------------------------------------------


@respx.mock
async def test_lines_parse_money_to_the_cent_and_units_into_quantity_and_dates() -> None:
    respx.post(BASE + "ContractServices/query").respond(
        content=(
            b'{"items": [{"id": 8638, "contractID": 290, "serviceID": 700,'
            b' "unitPrice": 0.10, "unitCost": 25.005,'
            b' "invoiceDescription": "Pax8 - Essentials", "internalDescription": "trueup:sub-1:recurring"}],'
            b' "pageDetails": {"count": 1, "requestCount": 500, "prevPageUrl": null, "nextPageUrl": null}}'
        )
    )
    respx.post(BASE + "ContractServiceUnits/query").respond(
        json=page(
            [
                {
                    "id": 3,
                    "contractServiceID": 8638,
                    "startDate": "2021-03-01T00:00:00",
                    "endDate": "2021-03-31T00:00:00",
                    "units": 14,
                },
                {
                    "id": 1,
                    "contractServiceID": 8638,
                    "startDate": "2021-02-01T00:00:00",
                    "endDate": "2021-02-16T00:00:00",
                    "units": 12,
                },
                {
                    "id": 2,
                    "contractServiceID": 8638,
                    "startDate": "2021-02-17T00:00:00",
                    "endDate": "2021-02-28T00:00:00",
                    "units": 13,
                },
                {
                    "id": 4,
                    "contractServiceID": 8638,
                    "startDate": "2021-04-01T00:00:00",
                    "endDate": "2021-04-30T00:00:00",
                    "units": 0,
                },
            ]
        )
    )
    respx.post(BASE + "ContractCharges/query").respond(
        json=page(
            [
                {
                    "id": 9001,
                    "contractID": 290,
                    "name": "Prorate",
                    "description": "Prorate 02/04-02/28",
                    "unitQuantity": 2,
                    "unitPrice": 21.43,
                    "unitCost": 17.14,
                    "datePurchased": "2021-03-01T15:04:05.307",
                    "internalPurchaseOrderNumber": "trueup:sub-1:prorate:2021-02-04",
                    "notes": "trueup-key: sub-1:prorate:2021-02-04\ntrueup-service: 700",
                },
            ]
        )
    )
    at, _ = connector()

    recurring, charge = await at.lines(["290"])

    assert recurring.unit_price == Decimal("0.10") and str(recurring.unit_price) == "0.10"
    assert recurring.unit_cost == Decimal("25.005")
    assert recurring.quantity == Decimal(14)  # the latest units before the trailing 0 rows
    assert recurring.effective_date == date(2021, 2, 1)
    assert recurring.cancelled_date == date(2021, 3, 31)
    assert recurring.source is not None and recurring.source.key == "sub-1:recurring"
    assert recurring.source.subscription_id == "sub-1"
    assert charge.kind == "one_time" and charge.product_id == "700"
    assert (charge.quantity, charge.unit_price, charge.unit_cost) == (
        Decimal(2),
        Decimal("21.43"),
        Decimal("17.14"),
    )
    assert charge.effective_date == date(2021, 3, 1)
    assert charge.source is not None and charge.source.key == "sub-1:prorate:2021-02-04"
    await at.aclose()


def test_key_markers_fit_their_fields_and_are_stable() -> None:
    short = "sub-1:recurring"
    assert key_marker(short, SERVICE_KEY_LIMIT) == "trueup:sub-1:recurring"
    assert key_from_marker(key_marker(short, SERVICE_KEY_LIMIT)) == short
    long = "0f8fad5b-d9cb-469f-a165-70867728950e:arrears:Advanced Threat Protection Plus"
    marker = key_marker(long, CHARGE_KEY_LIMIT)
    assert len(marker) == CHARGE_KEY_LIMIT and marker.startswith("trueup#")
    assert marker == key_marker(long, CHARGE_KEY_LIMIT)
    assert marker != key_marker(long + "x", CHARGE_KEY_LIMIT)
    assert key_from_marker(marker) is None


@respx.mock
async def test_find_line_queries_services_then_charges_by_key_marker() -> None:
    key = "0f8fad5b-d9cb-469f-a165-70867728950e:prorate:2021-02-04"
    services = respx.post(BASE + "ContractServices/query").respond(json=page([]))
    charges = respx.post(BASE + "ContractCharges/query").respond(
        json=page(
            [
                {
                    "id": 9001,
                    "contractID": 290,
                    "name": "P",
                    "unitQuantity": 1,
                    "unitPrice": 2.71,
                    "unitCost": 2.26,
                    "datePurchased": "2021-03-01T00:00:00",
                    "internalPurchaseOrderNumber": key_marker(key, CHARGE_KEY_LIMIT),
                    "notes": f"trueup-key: {key}\ntrueup-service: 700",
                },
            ]
        )
    )
    at, _ = connector()

    line = await at.find_line("290", key)

    assert body(services.calls[0].request)["Filter"] == [
        {"op": "eq", "field": "contractID", "value": 290},
        {
            "op": "in",
            "field": "internalDescription",
            "value": sorted([key_marker(key, SERVICE_KEY_LIMIT), service_marker(key, metered=True)]),
        },
    ]
    assert body(charges.calls[0].request)["Filter"][1] == {
        "op": "eq",
        "field": "internalPurchaseOrderNumber",
        "value": key_marker(key, CHARGE_KEY_LIMIT),
    }
    assert line is not None and line.id == "9001" and line.unit_price == Decimal("2.71")
    assert line.source is not None and line.source.key == key  # recovered from notes despite the digest
    await at.aclose()


# --- writes: the dry run is what is sent ------------------------------------------------------------


def test_create_requests_for_a_recurring_line() -> None:
    at, _ = connector()

    service, adjustment = at.create_requests(RECURRING)

    assert (service.method, str(service.url)) == ("POST", BASE + "Contracts/290/Services")
    assert service.headers["Secret"] == "s3cret"
    assert body(service) == {
        "contractID": 290,
        "serviceID": 700,
        "unitPrice": Decimal("6.00"),
        "unitCost": Decimal("5.00"),
        "invoiceDescription": "Pax8 - Business Essentials",
        "internalDescription": "trueup:sub-1:recurring",
    }
    assert b'"unitPrice": 6.00' in service.content  # money written from the Decimal, never a float
    assert (adjustment.method, str(adjustment.url)) == ("POST", BASE + "Contracts/290/ServiceAdjustments")
    assert body(adjustment) == {  # the price lives on the contract service, the adjustment carries units
        "contractID": 290,
        "serviceID": 700,
        "effectiveDate": "2021-03-01T00:00:00.00",
        "unitChange": 12,
    }


@respx.mock
async def test_create_line_sends_the_dry_run_requests_then_reads_the_line_back() -> None:
    at, _ = connector()
    planned = at.create_requests(RECURRING)
    service = respx.post(BASE + "Contracts/290/Services").respond(json={"itemId": 8700})
    adjustment = respx.post(BASE + "Contracts/290/ServiceAdjustments").respond(json={"itemId": 1})
    respx.get(BASE + "ContractServices/8700").respond(
        json={
            "item": {
                "id": 8700,
                "contractID": 290,
                "serviceID": 700,
                "unitPrice": 6.0,
                "unitCost": 5.0,
                "invoiceDescription": "Pax8 - Business Essentials",
                "internalDescription": "trueup:sub-1:recurring",
            }
        }
    )
    units = respx.post(BASE + "ContractServiceUnits/query").respond(
        json=page([{"id": 1, "contractServiceID": 8700, "startDate": "2021-03-01T00:00:00", "units": 12}])
    )

    line = await at.create_line(RECURRING)

    assert service.calls[0].request.content == planned[0].content
    assert body(adjustment.calls[0].request) == {**body(planned[1]), "contractServiceID": 8700}
    assert body(units.calls[0].request)["Filter"] == [
        {"op": "eq", "field": "contractServiceID", "value": 8700}
    ]
    assert (line.id, line.quantity, line.effective_date) == ("8700", Decimal(12), date(2021, 3, 1))
    assert line.source is not None and line.source.key == "sub-1:recurring"
    await at.aclose()


@respx.mock
async def test_create_line_one_time_is_a_contract_charge() -> None:
    at, _ = connector()
    respx.get(BASE + "Services/700").respond(json={"item": {"id": 700, "name": "E", "billingCodeID": 29682}})
    (unread,) = at.create_requests(PRORATE)
    assert "billingCodeID" not in body(unread)  # the dry run before the Service was read says so
    await at._billing_code(700)
    (planned,) = at.create_requests(PRORATE)
    route = respx.post(BASE + "Contracts/290/Charges").respond(json={"itemId": 9001})
    respx.get(BASE + "ContractCharges/9001").respond(
        json={
            "item": {
                "id": 9001,
                "contractID": 290,
                **{k: v for k, v in json.loads(planned.content).items() if k != "contractID"},
                "datePurchased": "2021-03-01T00:00:00",
            }
        }
    )

    line = await at.create_line(PRORATE)

    assert route.calls[0].request.content == planned.content
    assert body(planned) == {
        "contractID": 290,
        "name": PRORATE.description,
        "description": PRORATE.description,
        "unitQuantity": 2,
        "unitPrice": Decimal("21.43"),
        "unitCost": Decimal("17.14"),
        "chargeType": 1,
        "datePurchased": "2021-03-01T00:00:00.00",
        "billingCodeID": 29682,  # the Service's billing code: a charge needs one (or a productID)
        "isBillableToCompany": True,
        "internalPurchaseOrderNumber": "trueup:sub-1:prorate:2021-02-04",
        "notes": "trueup-key: sub-1:prorate:2021-02-04\ntrueup-service: 700",
    }
    assert (line.kind, line.quantity, line.unit_price, line.product_id) == (
        "one_time",
        2,
        Decimal("21.43"),
        "700",
    )
    await at.aclose()


def test_update_requests_quantity_change_is_a_signed_delta() -> None:
    at, _ = connector()
    update = LineUpdate(
        key="k",
        line_id="8638",
        agreement_id="290",
        quantity=Decimal("9"),
        previous_quantity=Decimal("12"),
        effective_date=date(2021, 3, 1),
    )

    (request,) = at.update_requests(update)

    assert (request.method, str(request.url)) == ("POST", BASE + "Contracts/290/ServiceAdjustments")
    assert body(request) == {
        "contractID": 290,
        "contractServiceID": 8638,
        "effectiveDate": "2021-03-01T00:00:00.00",
        "unitChange": -3,
    }


def test_update_requests_cancel_brings_units_to_zero_the_next_day() -> None:
    at, _ = connector()
    update = LineUpdate(
        key="k:cancel",
        line_id="8638",
        agreement_id="290",
        cancelled_date=date(2021, 2, 28),
        previous_quantity=Decimal("12"),
    )

    (request,) = at.update_requests(update)

    assert body(request) == {
        "contractID": 290,
        "contractServiceID": 8638,
        "effectiveDate": "2021-03-01T00:00:00.00",
        "unitChange": -12,
    }


def test_update_requests_price_only_is_a_patch() -> None:
    at, _ = connector()

    (request,) = at.update_requests(
        LineUpdate(key="k", line_id="8638", agreement_id="290", unit_price=Decimal("7.25"))
    )

    assert (request.method, str(request.url)) == ("PATCH", BASE + "Contracts/290/Services")
    assert body(request) == {"id": 8638, "unitPrice": Decimal("7.25")}


def test_update_requests_refuse_what_autotask_cannot_express() -> None:
    at, _ = connector()
    with pytest.raises(ValueError, match="previous_quantity"):
        at.update_requests(
            LineUpdate(
                key="k", line_id="1", agreement_id="2", quantity=Decimal(3), effective_date=date(2021, 3, 1)
            )
        )
    with pytest.raises(ValueError, match="effective_date"):
        at.update_requests(
            LineUpdate(
                key="k", line_id="1", agreement_id="2", quantity=Decimal(3), previous_quantity=Decimal(2)
            )
        )
    with pytest.raises(ValueError, match="whole"):
        at.update_requests(
            LineUpdate(
                key="k",
                line_id="1",
                agreement_id="2",
                quantity=Decimal("2.5"),
                previous_quantity=Decimal(2),
                effective_date=date(2021, 3, 1),
            )
        )


def test_requests_need_a_known_zone() -> None:
    at, _ = connector(zone_url=None)
    with pytest.raises(RuntimeError, match="zone"):
        at.create_requests(RECURRING)


@respx.mock
async def test_company_billing_queries_that_companys_contracts_then_their_lines() -> None:
    contracts = respx.post(BASE + "Contracts/query").respond(
        json=page(
            [
                {
                    "id": 290,
                    "companyID": 19,
                    "contractName": "Monthly",
                    "contractPeriodType": 1,
                    "startDate": "2018-11-16T00:00:00",
                    "endDate": None,
                }
            ]
        )
    )
    services = respx.post(BASE + "ContractServices/query").respond(json=page([]))
    charges = respx.post(BASE + "ContractCharges/query").respond(json=page([]))
    at, _ = connector()

    agreements, lines = await at.company_billing("19")

    assert [(a.id, a.company_id) for a in agreements] == [("290", "19")] and lines == []
    assert body(contracts.calls[0].request) == {
        "MaxRecords": 500,
        "Filter": [
            {"op": "eq", "field": "companyID", "value": 19},
            {"op": "eq", "field": "contractType", "value": 7},
            {"op": "eq", "field": "status", "value": 1},
        ],
    }
    for route in (services, charges):
        assert body(route.calls[0].request)["Filter"] == [{"op": "in", "field": "contractID", "value": [290]}]
    await at.aclose()
