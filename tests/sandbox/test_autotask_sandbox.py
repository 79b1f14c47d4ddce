"""The Autotask sandbox, driven through the real connector (httpx.MockTransport) and raw requests."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from engine.connectors.autotask import AutotaskConnector, dumps
from engine.connectors.base import LineUpdate, LineWrite, ServiceError
from engine.connectors.http import loads
from engine.sandbox.autotask import DEFAULT_ZONE, UNAUTHORIZED, AutotaskSandbox
from engine.sandbox.faults import Fault, Faults
from engine.scenario import Scenario

BASE = DEFAULT_ZONE + "v1.0/"


def scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "as_of": "2021-02-18",
            "psa": {
                "companies": [
                    {"id": "19", "name": "Ace Chemical"},
                    {"id": "20", "name": "Wayne Enterprises"},
                ],
                "products": [
                    {"id": "700", "name": "Business Essentials", "unit_price": "6.00", "unit_cost": "5.00"},
                    {"id": "701", "name": "Business Premium"},
                ],
                "agreements": [
                    {"id": "290", "company_id": "19", "name": "Ace Monthly", "start_date": "2018-11-16"},
                    {
                        "id": "291",
                        "company_id": "20",
                        "name": "Wayne Yearly",
                        "start_date": "2020-01-01",
                        "end_date": "2022-12-31",
                        "billing_period": "annual",
                    },
                ],
                "lines": [
                    {
                        "id": "8638",
                        "agreement_id": "290",
                        "product_id": "700",
                        "kind": "recurring",
                        "quantity": "270",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                        "effective_date": "2019-02-01",
                        "description": "Pax8 - Business Essentials",
                        "source": {"subscription_id": "500", "key": "500:recurring"},
                    },
                    {
                        "id": "8639",
                        "agreement_id": "290",
                        "product_id": "701",
                        "kind": "recurring",
                        "quantity": "3",
                        "unit_price": "22.00",
                        "unit_cost": "18.70",
                        "effective_date": "2020-06-01",
                        "cancelled_date": "2021-01-31",
                        "description": "Pax8 - Business Premium",
                    },
                    {
                        "id": "8640",
                        "agreement_id": "291",
                        "product_id": "700",
                        "kind": "recurring",
                        "quantity": "40",
                        "unit_price": "5.75",
                        "unit_cost": "5.00",
                        "effective_date": "2020-01-01",
                        "description": "Wayne seats",
                    },
                    {
                        "id": "9001",
                        "agreement_id": "290",
                        "product_id": "700",
                        "kind": "one_time",
                        "quantity": "12",
                        "unit_price": "5.03",
                        "unit_cost": "4.19",
                        "effective_date": "2020-09-01",
                        "description": "Pax8 - Business Essentials - Prorated for 08/05/2020-08/31/2020",
                        "source": {"subscription_id": "500", "key": "500:prorate:2020-08-05"},
                    },
                ],
            },
        }
    )


def connector(sandbox: AutotaskSandbox, **kwargs: Any) -> tuple[AutotaskConnector, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return sandbox.connector(sleep=sleep, **kwargs), slept


def auth(sandbox: AutotaskSandbox) -> dict[str, str]:
    return {
        "ApiIntegrationCode": sandbox.integration_code,
        "UserName": sandbox.username,
        "Secret": sandbox.secret,
        "Content-Type": "application/json",
    }


async def raw(
    sandbox: AutotaskSandbox,
    method: str,
    path: str,
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    async with httpx.AsyncClient(transport=sandbox.transport()) as client:
        content = dumps(payload).encode() if payload is not None else None
        return await client.request(
            method,
            path if path.startswith("http") else BASE + path,
            content=content,
            headers=auth(sandbox) if headers is None else headers,
        )


NEW_LINE = LineWrite(
    key="501:recurring",
    agreement_id="290",
    product_id="701",
    kind="recurring",
    quantity=Decimal("3"),
    unit_price=Decimal("25.00"),
    unit_cost=Decimal("20.00"),
    effective_date=date(2021, 3, 1),
    end_date=None,
    description="Pax8 - Business Premium",
)


# --- loading and reading -----------------------------------------------------------------------------


async def test_scenario_lines_read_back_with_the_same_figures() -> None:
    source = scenario()
    sandbox = AutotaskSandbox.from_scenario(source)
    at, _ = connector(sandbox, discover=True)

    assert sorted((c.id, c.name) for c in await at.companies()) == [
        ("19", "Ace Chemical"),
        ("20", "Wayne Enterprises"),
    ]
    products = {p.id: p for p in await at.products()}
    assert products["700"].unit_price == Decimal("6.00") and products["701"].unit_price is None
    agreements = {a.id: a for a in await at.agreements()}
    assert agreements["291"].billing_period == "annual" and agreements["290"].billing_period == "monthly"
    assert agreements["291"].end_date == date(2022, 12, 31)

    lines = {line.id: line for line in await at.lines()}
    assert set(lines) == {"8638", "8639", "8640", "9001"}
    for expected in source.psa.lines:
        got = lines[expected.id]
        assert (got.agreement_id, got.product_id, got.kind) == (
            expected.agreement_id,
            expected.product_id,
            expected.kind,
        )
        assert (got.quantity, got.unit_price, got.unit_cost) == (
            expected.quantity,
            expected.unit_price,
            expected.unit_cost,
        )
        assert (got.effective_date, got.cancelled_date) == (expected.effective_date, expected.cancelled_date)
        assert got.description == expected.description
    assert lines["8638"].source is not None and lines["8638"].source.key == "500:recurring"
    assert lines["9001"].source is not None and lines["9001"].source.key == "500:prorate:2020-08-05"
    assert lines["8639"].source is None  # nothing in Autotask carries a line trueup did not write
    await at.aclose()


def test_scenario_ids_must_be_numeric() -> None:
    data = scenario().model_dump(mode="json")
    data["psa"]["companies"][0]["id"] = "ace"
    with pytest.raises(ValueError, match="numeric"):
        AutotaskSandbox.from_scenario(Scenario.model_validate(data))


def test_units_rows_follow_billing_periods_and_split_mid_period() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario())
    sandbox.add_adjustment(8638, date(2021, 2, 17), 2)

    rows = sandbox.units_rows(8638)

    feb = [(r["startDate"], r["endDate"], r["units"]) for r in rows if r["startDate"].startswith("2021-02")]
    # Ace's contract starts on the 16th: its periods run 16th..15th
    assert feb == [
        ("2021-02-16T00:00:00Z", "2021-02-16T00:00:00Z", 270),  # UTC, with Z, as a zone answers
        ("2021-02-17T00:00:00Z", "2021-03-15T00:00:00Z", 272),
    ]
    yearly = sandbox.units_rows(8640)
    assert [(r["startDate"][:10], r["endDate"][:10], r["units"]) for r in yearly] == [
        ("2020-01-01", "2020-12-31", 40),
        ("2021-01-01", "2021-12-31", 40),
        ("2022-01-01", "2022-12-31", 40),
    ]


# --- the API surface -----------------------------------------------------------------------------------


async def test_zone_information_and_auth_headers() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario())
    zone = await raw(
        sandbox,
        "GET",
        f"https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation?user={sandbox.username}",
        headers={},
    )
    assert zone.status_code == 200 and zone.json()["url"] == DEFAULT_ZONE

    for missing in ("ApiIntegrationCode", "UserName", "Secret"):
        headers = {k: v for k, v in auth(sandbox).items() if k != missing}
        response = await raw(sandbox, "GET", "Companies/19", headers=headers)
        assert response.status_code == 401 and response.json() == UNAUTHORIZED

    at = AutotaskConnector(
        sandbox.username,
        "wrong",
        sandbox.integration_code,
        zone_url=DEFAULT_ZONE,
        transport=sandbox.transport(),
    )
    with pytest.raises(ServiceError) as caught:
        await at.companies()
    assert caught.value.status == 401 and caught.value.rejected
    await at.aclose()


async def test_pages_carry_absolute_next_page_urls_and_the_client_reads_them_all() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario(), page_size=2)
    for n in range(30, 37):
        sandbox.add_company(n, f"Company {n}")

    first = await raw(
        sandbox,
        "POST",
        "Companies/query",
        {"MaxRecords": 500, "Filter": [{"op": "gte", "field": "id", "value": 0}]},
    )
    details = first.json()["pageDetails"]
    assert details["count"] == 2 and details["nextPageUrl"].startswith(BASE + "Companies/query/next?")
    second = await raw(sandbox, "GET", details["nextPageUrl"])
    assert [c["id"] for c in second.json()["items"]] == [30, 31]

    at, _ = connector(sandbox)
    assert len(await at.companies()) == 9
    await at.aclose()

    too_many = await raw(
        sandbox,
        "POST",
        "Companies/query",
        {"MaxRecords": 501, "Filter": [{"op": "gte", "field": "id", "value": 0}]},
    )
    assert too_many.status_code == 400 and too_many.json()["errors"]
    no_filter = await raw(sandbox, "POST", "Companies/query", {"MaxRecords": 10})
    assert no_filter.status_code == 400


async def test_filter_ops_and_groups() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario())

    async def ids(*filters: dict) -> list[int]:
        response = await raw(sandbox, "POST", "ContractServices/query", {"Filter": list(filters)})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids({"op": "eq", "field": "contractID", "value": 290}) == [8638, 8639]
    assert await ids({"op": "in", "field": "serviceID", "value": [701]}) == [8639]
    assert await ids({"op": "eq", "field": "internalDescription", "value": "TRUEUP:500:RECURRING"}) == [8638]
    assert await ids(
        {
            "op": "or",
            "items": [
                {"op": "eq", "field": "id", "value": 8640},
                {
                    "op": "and",
                    "items": [
                        {"op": "eq", "field": "contractID", "value": 290},
                        {"op": "noteq", "field": "serviceID", "value": 700},
                    ],
                },
            ],
        }
    ) == [8639, 8640]
    assert await ids({"op": "exist", "field": "internalDescription"}) == [8638]
    assert await ids({"op": "gt", "field": "unitPrice", "value": "6.00"}) == [8639]
    units = await raw(
        sandbox,
        "POST",
        "ContractServiceUnits/query",
        {
            "Filter": [
                {"op": "eq", "field": "contractServiceID", "value": 8639},
                {"op": "gte", "field": "startDate", "value": "2021-01-16"},
            ]
        },
    )
    assert [(u["startDate"][:10], u["units"]) for u in units.json()["items"]][:2] == [
        ("2021-01-16", 3),
        ("2021-02-01", 0),
    ]
    count = await raw(
        sandbox,
        "POST",
        "ContractServices/query/count",
        {"Filter": [{"op": "eq", "field": "contractID", "value": 290}]},
    )
    assert count.json() == {"queryCount": 2}
    bad = await raw(sandbox, "POST", "ContractServices/query", {"Filter": [{"op": "like", "field": "id"}]})
    assert bad.status_code == 400


async def test_writes_are_validated_with_errors_bodies() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario())
    sandbox.add_contract(292, 19, "Time and materials", date(2020, 1, 1), None, contract_type=1)

    missing = await raw(sandbox, "POST", "Contracts/290/Charges", {"contractID": 290, "name": "x"})
    assert missing.status_code == 400 and len(missing.json()["errors"]) == 3
    not_recurring = await raw(
        sandbox, "POST", "Contracts/292/Services", {"contractID": 292, "serviceID": 700}
    )
    assert not_recurring.status_code == 500
    assert not_recurring.json() == {"errors": ["contract 292 is not a Recurring Service contract"]}
    negative = await raw(
        sandbox,
        "POST",
        "Contracts/290/ServiceAdjustments",
        {
            "contractID": 290,
            "contractServiceID": 8639,
            "effectiveDate": "2020-07-01T00:00:00",
            "unitChange": -4,
        },
    )
    assert negative.status_code == 500 and "leaves -1 units" in negative.json()["errors"][0]
    read_only = await raw(
        sandbox, "PATCH", "Contracts/290/Services", {"id": 8638, "internalDescription": "x"}
    )
    assert read_only.status_code == 500
    assert read_only.json()["errors"] == ["ContractServices.internalDescription is read-only on update"]
    query_adjustments = await raw(
        sandbox,
        "POST",
        "ContractServiceAdjustments/query",
        {"Filter": [{"op": "gte", "field": "id", "value": 0}]},
    )
    assert query_adjustments.status_code == 405
    assert sandbox.writes == 0


async def test_an_adjustment_without_a_contract_service_creates_one() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario())
    response = await raw(
        sandbox,
        "POST",
        "Contracts/291/ServiceAdjustments",
        {"contractID": 291, "serviceID": 701, "effectiveDate": "2021-03-01T00:00:00.00", "unitChange": 4},
    )
    assert response.status_code == 200
    created = [line for line in sandbox.lines_for(291) if line["serviceID"] == 701]
    assert (
        len(created) == 1 and created[0]["units"] == 4 and created[0]["schedule"] == [(date(2021, 3, 1), 4)]
    )


# --- the write round trip ------------------------------------------------------------------------------


async def test_create_change_quantity_cancel_and_read_back() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario())
    at, _ = connector(sandbox)

    created = await at.create_line(NEW_LINE)
    assert (created.quantity, created.unit_price, created.unit_cost) == (
        3,
        Decimal("25.00"),
        Decimal("20.00"),
    )
    assert created.effective_date == date(2021, 3, 1) and created.cancelled_date is None
    assert created.source is not None and created.source.key == "501:recurring"
    assert sandbox.writes == 2  # the contract service, then its units

    increase = LineUpdate(
        key="501:recurring",
        line_id=created.id,
        agreement_id="290",
        quantity=Decimal(5),
        previous_quantity=Decimal(3),
        effective_date=date(2021, 4, 1),
    )
    after_increase = await at.update_line(increase)
    assert after_increase.quantity == 5 and after_increase.effective_date == date(2021, 3, 1)
    assert await at.update_applied(increase)
    assert await at.current_units(created.id, date(2021, 3, 31)) == 3

    cancel = LineUpdate(
        key="501:cancel",
        line_id=created.id,
        agreement_id="290",
        cancelled_date=date(2021, 5, 31),
        previous_quantity=Decimal(5),
    )
    cancelled = await at.update_line(cancel)
    assert cancelled.cancelled_date == date(2021, 5, 31) and cancelled.quantity == 5
    assert await at.update_applied(cancel)

    charge = await at.create_line(
        LineWrite(
            key="501:prorate:2021-02-17",
            agreement_id="290",
            product_id="701",
            kind="one_time",
            quantity=Decimal(3),
            unit_price=Decimal("9.82"),
            unit_cost=Decimal("7.86"),
            effective_date=date(2021, 3, 1),
            end_date=date(2021, 3, 31),
            description="Pax8 - Business Premium - Prorated for 02/17/2021-02/28/2021",
        )
    )

    lines = {line.id: line for line in await at.lines(["290"])}
    assert lines[created.id].cancelled_date == date(2021, 5, 31) and lines[created.id].quantity == 5
    assert lines[charge.id].kind == "one_time" and lines[charge.id].unit_price == Decimal("9.82")
    assert lines["8638"].quantity == 270  # untouched
    stored = {line["id"]: line for line in sandbox.lines_for(290)}
    assert stored[int(created.id)]["schedule"] == [
        (date(2021, 3, 1), 3),
        (date(2021, 4, 1), 2),
        (date(2021, 6, 1), -5),
    ]
    assert stored[int(created.id)]["internalDescription"] == "trueup:501:recurring"
    assert (await at.find_line("290", "501:prorate:2021-02-17")) == lines[charge.id]
    assert await at.find_line("290", "999:recurring") is None
    assert sandbox.writes == 5
    await at.aclose()


async def test_price_only_update_patches_the_contract_service() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario())
    at, _ = connector(sandbox)
    line = await at.update_line(
        LineUpdate(key="500:recurring", line_id="8638", agreement_id="290", unit_price=Decimal("6.50"))
    )
    assert line.unit_price == Decimal("6.50") and line.quantity == 270
    assert sandbox.tables["ContractServices"][8638]["unitPrice"] == Decimal("6.50")
    await at.aclose()


# --- faults and limits -----------------------------------------------------------------------------------


async def test_a_refused_query_is_retried_and_writes_only_faults_spare_queries() -> None:
    faults = Faults(retry_after=3)
    faults.push(Fault.RATE_LIMITED)
    sandbox = AutotaskSandbox.from_scenario(scenario(), faults=faults)
    at, slept = connector(sandbox)
    assert len(await at.companies()) == 2
    assert slept == [3.0] and faults.injected == [
        ("GET", "/atservicesrest/v1.0/Companies/query", Fault.RATE_LIMITED)
    ]
    await at.aclose()

    always = Faults(rate_503=1.0, writes_only=True)
    sandbox = AutotaskSandbox.from_scenario(scenario(), faults=always)
    at, _ = connector(sandbox)
    assert len(await at.lines(["290"])) == 3
    with pytest.raises(ServiceError) as caught:
        await at.create_line(NEW_LINE)
    assert caught.value.status == 503 and sandbox.writes == 0
    await at.aclose()


async def test_a_500_after_apply_is_not_resent_and_find_line_recovers_the_charge() -> None:
    faults = Faults()
    sandbox = AutotaskSandbox.from_scenario(scenario(), faults=faults)
    at, _ = connector(sandbox)
    await at.products()  # the charge takes its Service's billing code: read it before the fault
    faults.push(Fault.SERVER_ERROR)
    write = LineWrite(
        key="500:extra_months:2021-02",
        agreement_id="290",
        product_id="700",
        kind="one_time",
        quantity=Decimal(1),
        unit_price=Decimal("25.00"),
        unit_cost=Decimal("20.00"),
        effective_date=date(2021, 3, 1),
        end_date=date(2021, 3, 31),
        description="Extra month",
    )

    with pytest.raises(ServiceError) as caught:
        await at.create_line(write)

    assert caught.value.status == 500 and caught.value.sent
    assert sandbox.writes == 1
    found = await at.find_line("290", write.key)
    assert found is not None and found.quantity == 1 and found.unit_price == Decimal("25.00")
    assert sum(1 for line in sandbox.lines_for(290) if line["kind"] == "one_time") == 2  # not written twice
    await at.aclose()


async def test_a_crash_between_service_and_units_is_found_and_finished() -> None:
    faults = Faults()
    faults.push(Fault.NONE, Fault.UNAVAILABLE)  # the service is created; its units adjustment is refused
    sandbox = AutotaskSandbox.from_scenario(scenario(), faults=faults)
    at, _ = connector(sandbox)

    with pytest.raises(ServiceError):
        await at.create_line(NEW_LINE)

    found = await at.find_line("290", NEW_LINE.key)
    assert found is not None and found.quantity == 0
    assert found.effective_date == date(2018, 11, 16)  # no units yet: the contract's start
    finished = await at.update_line(
        LineUpdate(
            key=NEW_LINE.key,
            line_id=found.id,
            agreement_id="290",
            quantity=NEW_LINE.quantity,
            previous_quantity=Decimal(0),
            effective_date=NEW_LINE.effective_date,
        )
    )
    assert finished.quantity == 3 and finished.effective_date == date(2021, 3, 1)
    await at.aclose()


async def test_a_lost_adjustment_response_is_resolved_with_update_applied() -> None:
    faults = Faults()
    sandbox = AutotaskSandbox.from_scenario(scenario(), faults=faults)
    at, _ = connector(sandbox)
    update = LineUpdate(
        key="500:recurring",
        line_id="8638",
        agreement_id="290",
        quantity=Decimal(283),
        previous_quantity=Decimal(270),
        effective_date=date(2021, 3, 1),
    )
    assert not await at.update_applied(update)

    faults.push(Fault.LOST_RESPONSE)
    with pytest.raises(ServiceError) as caught:
        await at.update_line(update)

    assert caught.value.sent and caught.value.status is None
    assert sandbox.units(8638) == 283  # applied once, not re-sent
    assert await at.update_applied(update)
    await at.aclose()


async def test_three_requests_in_flight_per_endpoint_then_429() -> None:
    sandbox = AutotaskSandbox.from_scenario(scenario(), faults=Faults(latency=0.02))
    query = {"Filter": [{"op": "gte", "field": "id", "value": 0}]}

    responses = await asyncio.gather(*(raw(sandbox, "POST", "Companies/query", query) for _ in range(5)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 429, 429]
    assert loads(next(r for r in responses if r.status_code == 429).content)["errors"]

    at, _ = connector(sandbox)
    results = await asyncio.gather(*(at.companies() for _ in range(6)))
    assert all(len(r) == 2 for r in results)
    assert sandbox.peak_in_flight["Companies"] == 3 and sandbox.throttled == 2  # the client kept to 3
    await at.aclose()
