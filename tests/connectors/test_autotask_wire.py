"""The Autotask connector against respx, for what issue 10/11 found: answers validated before use,
paging caps, waiting out the hourly threshold, UTC date-times read in the partner's zone, extra
months as one charge, the metered flag, and the configured zone reaching the connector."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from engine.connectors.autotask import AutotaskConnector, charge_quantity, service_marker, to_date
from engine.connectors.base import LineWrite, ServiceError
from engine.connectors.http import loads

ZONE = "https://webservices15.autotask.net/atservicesrest/"
BASE = ZONE + "v1.0/"
SYDNEY = ZoneInfo("Australia/Sydney")
DENVER = ZoneInfo("America/Denver")


def connector(**kwargs: object) -> tuple[AutotaskConnector, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    kwargs.setdefault("zone_url", ZONE)
    return AutotaskConnector("api@msp.example", "s3cret", "TRACK", sleep=sleep, **kwargs), slept  # type: ignore[arg-type]


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


# --- answers are validated before they are used -------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            httpx.Response(200, json={"errors": ["Object reference not set to an instance of an object."]}),
            "Object reference not set",
        ),
        (httpx.Response(200, content=b""), "empty answer"),
        (httpx.Response(200, content=b"<html>maintenance</html>"), "not JSON"),
        (
            httpx.Response(200, json={"pageDetails": {"count": 0}}),
            "unexpected answer (items: Field required)",
        ),
        (httpx.Response(200, json={"items": []}), "pageDetails: Field required"),
        (httpx.Response(200, json=[]), "unexpected answer"),
    ],
)
@respx.mock
async def test_a_200_that_is_not_a_page_is_an_error_never_no_rows(
    answer: httpx.Response, expected: str
) -> None:
    respx.post(BASE + "Companies/query").mock(return_value=answer)
    at, _ = connector()

    with pytest.raises(ServiceError) as caught:
        await at.companies()

    assert expected in str(caught.value)
    await at.aclose()


@respx.mock
async def test_a_row_without_what_trueup_needs_names_the_entity_and_row() -> None:
    respx.post(BASE + "ContractServices/query").respond(json=page([{"id": 8638, "contractID": 290}]))
    at, _ = connector()

    with pytest.raises(ServiceError, match=r"ContractServices: row 1 \(id 8638\).*serviceID"):
        await at.lines(["290"])
    await at.aclose()


@respx.mock
async def test_a_create_answer_without_item_id_is_an_error() -> None:
    respx.post(BASE + "Contracts/290/Services").respond(json={"id": 5})
    at, _ = connector()
    write = LineWrite(
        key="s:recurring",
        agreement_id="290",
        product_id="700",
        kind="recurring",
        quantity=Decimal(1),
        unit_price=Decimal(1),
        unit_cost=Decimal(1),
        effective_date=date(2021, 3, 1),
        end_date=None,
        description="x",
    )

    with pytest.raises(ServiceError, match="itemId"):
        await at.create_line(write)
    await at.aclose()


# --- paging: caps, loops, other hosts ---------------------------------------------------------------------


@respx.mock
async def test_paging_that_never_ends_is_stopped_by_the_page_cap() -> None:
    counter = {"n": 0}

    def endless(request: httpx.Request) -> httpx.Response:
        counter["n"] += 1
        return httpx.Response(
            200,
            json=page(
                [{"id": counter["n"], "companyName": "x"}],
                f"{BASE}Companies/query/next?paging={counter['n']}",
            ),
        )

    respx.post(BASE + "Companies/query").mock(side_effect=endless)
    respx.get(url__startswith=BASE + "Companies/query/next").mock(side_effect=endless)
    at, _ = connector(max_pages=25)

    with pytest.raises(ServiceError, match="stopped after 25 pages"):
        await at.companies()
    assert counter["n"] == 25
    await at.aclose()


@respx.mock
async def test_paging_is_stopped_by_the_byte_cap() -> None:
    big = [{"id": n, "companyName": "x" * 1000} for n in range(20)]
    respx.post(BASE + "Companies/query").respond(json=page(big, BASE + "Companies/query/next?paging=2"))
    respx.get(BASE + "Companies/query/next?paging=2").respond(
        json=page(big, BASE + "Companies/query/next?paging=3")
    )
    at, _ = connector(max_bytes=30_000)

    with pytest.raises(ServiceError, match="bytes"):
        await at.companies()
    await at.aclose()


@respx.mock
async def test_a_next_page_on_another_host_is_not_followed_with_the_credentials() -> None:
    respx.post(BASE + "Companies/query").respond(
        json=page(
            [{"id": 1}], "https://webservices15.autotask.net.evil.example/v1.0/Companies/query/next?p=2"
        )
    )
    evil = respx.get(url__startswith="https://webservices15.autotask.net.evil.example").respond(json=page([]))
    at, _ = connector()

    with pytest.raises(ServiceError, match="leaves the zone"):
        await at.companies()
    assert evil.call_count == 0
    await at.aclose()


# --- 429: the hourly threshold ------------------------------------------------------------------------------


THROTTLED = {"errors": ["The request threshold for this database has been exceeded."]}


@respx.mock
async def test_a_429_beyond_the_shared_retries_waits_on_the_threshold_then_goes_on() -> None:
    answers = [httpx.Response(429, json=THROTTLED)] * 7 + [httpx.Response(200, json=page([{"id": 5}]))]
    route = respx.post(BASE + "Companies/query").mock(side_effect=answers)
    threshold = respx.get(BASE + "ThresholdInformation").respond(
        json={
            "externalRequestThreshold": 10000,
            "requestThresholdTimeframe": 60,
            "currentTimeframeRequestCount": 10000,
        }
    )
    at, slept = connector()

    companies = await at.companies()

    assert [c.id for c in companies] == ["5"] and route.call_count == 8
    # 4 short back-offs of the shared layer, then 60 s waits while the hourly budget is used up
    assert slept[4] == 60.0 and slept.count(60.0) >= 1 and threshold.call_count >= 1
    await at.aclose()


@respx.mock
async def test_a_used_up_hourly_budget_gives_up_with_a_clear_message() -> None:
    respx.post(BASE + "Companies/query").respond(429, json=THROTTLED)
    respx.get(BASE + "ThresholdInformation").respond(
        json={
            "externalRequestThreshold": 10000,
            "requestThresholdTimeframe": 60,
            "currentTimeframeRequestCount": 10012,
        }
    )
    at, slept = connector(max_throttle_wait=300)

    with pytest.raises(ServiceError) as caught:
        await at.companies()

    message = str(caught.value)
    assert "request budget is used up: 10,012 of 10,000 requests in the last 60 minutes" in message
    assert "try again later" in message and caught.value.status == 429
    assert sum(s for s in slept if s == 60.0) == 300  # waited the bound, no more
    await at.aclose()


@respx.mock
async def test_a_429_with_retry_after_waits_what_the_service_says() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "120"}, json=THROTTLED)] * 6
    route = respx.post(BASE + "Companies/query").mock(
        side_effect=[*answers, httpx.Response(200, json=page([]))]
    )
    threshold = respx.get(BASE + "ThresholdInformation").respond(json={})
    at, slept = connector()

    assert await at.companies() == []
    assert route.call_count == 7 and threshold.call_count == 0
    assert slept[:4] == [30.0] * 4  # the shared layer caps its wait at 30 s …
    assert slept[4] == 120.0  # … then the connector waits what the service said
    await at.aclose()


# --- dates: UTC date-times in the partner's zone -----------------------------------------------------------


def test_utc_date_times_become_the_partners_local_dates() -> None:
    assert to_date("2026-11-30T13:00:00Z", SYDNEY) == date(2026, 12, 1)  # local midnight east of UTC
    assert to_date("2026-12-01T07:00:00Z", DENVER) == date(2026, 12, 1)  # local midnight west of UTC
    assert to_date("2026-11-30T13:00:00Z") == date(2026, 11, 30)  # default zone UTC
    assert to_date("2026-12-01T00:00:00Z", DENVER) == date(2026, 12, 1)  # a date-only field, as written
    assert to_date("2026-12-01T00:00:00", SYDNEY) == date(2026, 12, 1)
    assert to_date("2024-01-31T15:04:05.307", SYDNEY) == date(2024, 2, 1)  # zone-less = UTC
    assert to_date("2026-11-30T13:00:00+00:00", SYDNEY) == date(2026, 12, 1)


@respx.mock
async def test_agreements_read_dates_in_the_partners_zone() -> None:
    respx.post(BASE + "Contracts/query").respond(
        json=page(
            [
                {
                    "id": 290,
                    "companyID": 19,
                    "contractName": "M",
                    "contractPeriodType": 1,
                    "startDate": "2026-11-30T13:00:00Z",
                    "endDate": "2027-11-30T12:59:59Z",
                }
            ]
        )
    )
    at, _ = connector(zone=SYDNEY)

    (agreement,) = await at.agreements()

    assert (agreement.start_date, agreement.end_date) == (date(2026, 12, 1), date(2027, 11, 30))
    await at.aclose()


# --- extra months, metered ------------------------------------------------------------------------------------


EXTRA = LineWrite(
    key="sub-9:extra_months:2026-10",
    agreement_id="290",
    product_id="700",
    kind="one_time",
    quantity=Decimal(1),
    unit_price=Decimal("66.00"),
    unit_cost=Decimal("50.00"),
    effective_date=date(2026, 12, 1),
    end_date=date(2026, 12, 31),
    description="Extra months 10/2026-11/2026",
    months=2,
)


def test_an_extra_months_charge_is_gap_times_months_at_the_full_price() -> None:
    at, _ = connector()
    (request,) = at.create_requests(EXTRA)

    sent = loads(request.content)
    assert charge_quantity(EXTRA) == Decimal(2)
    assert (sent["unitQuantity"], sent["unitPrice"]) == (
        Decimal(2),
        Decimal("66.00"),
    )  # invoices $132.00 once
    plain = LineWrite(**{**EXTRA.__dict__, "months": None, "key": "sub-9:prorate:2026-11-14"})
    assert loads(at.create_requests(plain)[0].content)["unitQuantity"] == Decimal(1)


@respx.mock
async def test_the_metered_flag_is_read_from_the_internal_description() -> None:
    respx.post(BASE + "ContractServices/query").respond(
        json=page(
            [
                {
                    "id": 1,
                    "contractID": 290,
                    "serviceID": 700,
                    "unitPrice": 0.1,
                    "unitCost": 0.05,
                    "internalDescription": "[Metered] backup overage",
                },
                {
                    "id": 2,
                    "contractID": 290,
                    "serviceID": 700,
                    "unitPrice": 0.1,
                    "unitCost": 0.05,
                    "internalDescription": service_marker("sub-1:usage", metered=True),
                },
                {
                    "id": 3,
                    "contractID": 290,
                    "serviceID": 700,
                    "unitPrice": 0.1,
                    "unitCost": 0.05,
                    "internalDescription": "prepaid 500 GB",
                },
            ]
        )
    )
    respx.post(BASE + "ContractServiceUnits/query").respond(
        json=page(
            [
                {"id": n, "contractServiceID": n, "startDate": "2026-01-01T00:00:00Z", "units": 5}
                for n in (1, 2, 3)
            ]
        )
    )
    respx.post(BASE + "ContractCharges/query").respond(json=page([]))
    at, _ = connector()

    lines = {line.id: line for line in await at.lines(["290"])}

    assert [lines[n].metered for n in ("1", "2", "3")] == [True, True, False]
    assert lines["2"].source is not None and lines["2"].source.key == "sub-1:usage"
    await at.aclose()


def test_a_metered_write_tags_its_key_marker_within_the_field_length() -> None:
    at, _ = connector()
    write = LineWrite(
        key="x" * 120 + ":usage",
        agreement_id="290",
        product_id="700",
        kind="recurring",
        quantity=Decimal(3),
        unit_price=Decimal(1),
        unit_cost=Decimal(1),
        effective_date=date(2026, 12, 1),
        end_date=None,
        description="overage",
        metered=True,
    )
    marker = loads(at.create_requests(write)[0].content)["internalDescription"]
    assert marker.startswith("[metered] trueup#") and len(marker) <= 100


# --- the configured zone reaches the connector -----------------------------------------------------------------


def test_the_billing_timezone_setting_reaches_the_autotask_connector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.settings import load_config
    from engine.workspace import _connectors

    path = tmp_path / "trueup.toml"
    path.write_text(
        '[vendor.pax8]\nclient_id = "p"\n[psa]\nkind = "autotask"\n'
        '[psa.autotask]\nusername = "api@msp.example"\nintegration_code = "T"\nzone_url = "' + ZONE + '"\n'
        '[billing]\ntimezone = "Australia/Sydney"\n'
    )
    monkeypatch.setenv("TRUEUP_PAX8_CLIENT_SECRET", "p")
    monkeypatch.setenv("TRUEUP_AUTOTASK_SECRET", "a")
    config = load_config(path, environ={"TRUEUP_PAX8_CLIENT_SECRET": "p", "TRUEUP_AUTOTASK_SECRET": "a"})

    _, psa, _ = _connectors(config)

    assert isinstance(psa, AutotaskConnector) and psa.zone == SYDNEY
