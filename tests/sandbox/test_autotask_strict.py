"""The Autotask sandbox is as strict as a real zone (the entity table in
engine/connectors/autotask_entities.py): every request shape the connector sends is accepted and
lands what the plan bills, each violation is refused with Autotask's error body, the hourly
threshold is enforced on a rolling window, dates come back in UTC with Z, and the line key
round-trips (with the second match when an operator edited it)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from engine.connectors.autotask import AutotaskConnector, dumps, key_from_marker
from engine.connectors.autotask_entities import ENTITIES
from engine.connectors.base import LineUpdate, LineWrite, ServiceError
from engine.sandbox.autotask import DEFAULT_ZONE, AutotaskSandbox
from engine.scenario import Scenario

BASE = DEFAULT_ZONE + "v1.0/"


def world() -> Scenario:
    return Scenario.model_validate(
        {
            "as_of": "2026-12-01",
            "psa": {
                "companies": [{"id": "19", "name": "Ace Chemical"}],
                "products": [
                    {"id": "700", "name": "Business Essentials", "unit_price": "6.00", "unit_cost": "5.00"},
                    {"id": "701", "name": "Backup storage"},
                ],
                "agreements": [
                    {"id": "290", "company_id": "19", "name": "Ace Monthly", "start_date": "2025-01-01"}
                ],
                "lines": [
                    {
                        "id": "8638",
                        "agreement_id": "290",
                        "product_id": "700",
                        "kind": "recurring",
                        "quantity": "12",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                        "effective_date": "2025-02-01",
                        "description": "Pax8 - Business Essentials",
                        "source": {"subscription_id": "500", "key": "500:recurring"},
                    },
                    {
                        "id": "8639",
                        "agreement_id": "290",
                        "product_id": "701",
                        "kind": "recurring",
                        "quantity": "500",
                        "unit_price": "0.10",
                        "unit_cost": "0.05",
                        "effective_date": "2025-02-01",
                        "description": "Backup storage",
                    },
                    {
                        "id": "8640",
                        "agreement_id": "290",
                        "product_id": "701",
                        "kind": "recurring",
                        "quantity": "20",
                        "unit_price": "0.10",
                        "unit_cost": "0.05",
                        "effective_date": "2025-02-01",
                        "description": "Backup storage - overage",
                        "metered": True,
                    },
                ],
            },
        }
    )


def auth(sandbox: AutotaskSandbox) -> dict[str, str]:
    return {
        "ApiIntegrationCode": sandbox.integration_code,
        "UserName": sandbox.username,
        "Secret": sandbox.secret,
        "Content-Type": "application/json",
    }


async def raw(sandbox: AutotaskSandbox, method: str, path: str, payload: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=sandbox.transport()) as client:
        content = dumps(payload).encode() if payload is not None else None
        return await client.request(
            method, path if path.startswith("http") else BASE + path, content=content, headers=auth(sandbox)
        )


def connector(sandbox: AutotaskSandbox, **kwargs: Any) -> tuple[AutotaskConnector, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return sandbox.connector(sleep=sleep, **kwargs), slept


def write(key: str, kind: str = "one_time", **kw: Any) -> LineWrite:
    base: dict[str, Any] = dict(
        key=key,
        agreement_id="290",
        product_id="700",
        kind=kind,
        quantity=Decimal(2),
        unit_price=Decimal("6.00"),
        unit_cost=Decimal("5.00"),
        effective_date=date(2026, 12, 1),
        end_date=None,
        description=f"line {key}",
    )
    base.update(kw)
    return LineWrite(**base)


# --- every request shape the connector sends is accepted, and lands what the plan bills --------------------


async def test_every_line_kind_is_accepted_and_lands_its_planned_amount() -> None:
    sandbox = AutotaskSandbox.from_scenario(world())
    at, _ = connector(sandbox)
    creates = [
        write(
            "501:recurring", "recurring", quantity=Decimal(3), unit_price=Decimal("25.00")
        ),  # recurring create
        write("500:prorate:2026-11-14", unit_price=Decimal("3.40")),  # prorate
        write("500:extra_months:2026-10", quantity=Decimal(2), months=3),  # extra months: 2 × 3 × $6
        write("502:arrears:Advanced Threat Protection", quantity=Decimal(17), unit_price=Decimal("1.10")),
        write("503:usage_summary:2026-11", quantity=Decimal(1), unit_price=Decimal("412.37")),
        write(
            "504:usage",
            "recurring",
            product_id="701",
            quantity=Decimal(9),
            unit_price=Decimal("0.10"),
            metered=True,
        ),  # a metered line
    ]
    landed = {w.key: await at.create_line(w) for w in creates}
    updates = [
        LineUpdate(
            key="500:recurring",
            line_id="8638",
            agreement_id="290",
            quantity=Decimal(15),
            previous_quantity=Decimal(12),
            effective_date=date(2026, 12, 1),
            unit_price=Decimal("6.50"),
            unit_cost=Decimal("5.20"),
        ),  # quantity + price + cost
        LineUpdate(
            key="x:usage",
            line_id="8640",
            agreement_id="290",
            quantity=Decimal(112),
            previous_quantity=Decimal(20),
            effective_date=date(2026, 12, 1),
        ),  # metered usage update
        LineUpdate(
            key="x:price", line_id="8639", agreement_id="290", unit_price=Decimal("0.12")
        ),  # price only
    ]
    after = [await at.update_line(u) for u in updates]
    cancel = await at.update_line(
        LineUpdate(
            key="501:cancel",
            line_id=landed["501:recurring"].id,
            agreement_id="290",
            cancelled_date=date(2026, 12, 31),
            previous_quantity=Decimal(3),
        )
    )

    assert sandbox.refused == []  # not one request a real zone would refuse
    # one-time lines invoice quantity × unit price once; extra months is 2 seats × 3 months × $6.00
    totals = {k: line.quantity * line.unit_price for k, line in landed.items() if line.kind == "one_time"}
    assert totals == {
        "500:prorate:2026-11-14": Decimal("6.80"),
        "500:extra_months:2026-10": Decimal("36.00"),
        "502:arrears:Advanced Threat Protection": Decimal("18.70"),
        "503:usage_summary:2026-11": Decimal("412.37"),
    }
    assert (landed["501:recurring"].quantity, landed["501:recurring"].unit_price) == (3, Decimal("25.00"))
    assert landed["504:usage"].metered and landed["504:usage"].source is not None
    assert (after[0].quantity, after[0].unit_price, after[0].unit_cost) == (
        15,
        Decimal("6.50"),
        Decimal("5.20"),
    )
    assert after[1].quantity == 112 and after[1].metered
    assert after[2].unit_price == Decimal("0.12") and after[2].quantity == 500
    assert cancel.cancelled_date == date(2026, 12, 31)
    charges = [c for c in sandbox.tables["ContractCharges"].values()]
    assert all(c["billingCodeID"] == 10_000_700 and c["status"] == 1 for c in charges)
    await at.aclose()


# --- what a real zone refuses -----------------------------------------------------------------------------------


CHARGE = {
    "contractID": 290,
    "name": "Prorate",
    "chargeType": 1,
    "datePurchased": "2026-12-01T00:00:00.00",
    "unitQuantity": 2,
    "unitPrice": Decimal("6.00"),
    "billingCodeID": 10_000_700,
}
SERVICE = {
    "contractID": 290,
    "serviceID": 700,
    "unitPrice": Decimal("6.00"),
    "internalDescription": "trueup:k",
}
ADJUST = {
    "contractID": 290,
    "contractServiceID": 8638,
    "effectiveDate": "2026-12-01T00:00:00.00",
    "unitChange": 1,
}


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "message"),
    [
        ("POST", "ContractServices", SERVICE, 405, "does not support http method 'POST'"),
        ("POST", "ContractCharges", CHARGE, 405, "does not support http method 'POST'"),
        ("PATCH", "ContractServices", {"id": 8638, "unitPrice": 7}, 405, "'PATCH'"),
        ("PUT", "Contracts/290/ServiceAdjustments", ADJUST, 405, "'PUT'"),
        (
            "POST",
            "ContractServiceAdjustments/query",
            {"Filter": [{"op": "exist", "field": "id"}]},
            405,
            "'POST'",
        ),
        ("POST", "ContractServiceUnits", {"contractID": 290}, 405, "'POST'"),
        ("GET", "Contracts/290/Widgets", None, 404, "No HTTP resource"),
        ("POST", "Invoicez/query", {"Filter": [{"op": "exist", "field": "id"}]}, 404, "No HTTP resource"),
        (
            "POST",
            "Contracts/290/Charges",
            {**CHARGE, "billingCodeID": None},
            500,
            "ContractCharge must have either a productID or billingCodeID.",
        ),
        (
            "POST",
            "Contracts/290/Charges",
            {**CHARGE, "billingCodeID": 42},
            500,
            "billingCodeID 42 does not exist",
        ),
        (
            "POST",
            "Contracts/290/Charges",
            {**CHARGE, "status": 1},
            500,
            "ContractCharges.status is read-only",
        ),
        (
            "POST",
            "Contracts/290/Charges",
            {**CHARGE, "name": "n" * 101},
            500,
            "ContractCharges.name: at most 100 characters (101 given)",
        ),
        (
            "POST",
            "Contracts/290/Charges",
            {**CHARGE, "internalPurchaseOrderNumber": "p" * 51},
            500,
            "internalPurchaseOrderNumber: at most 50 characters",
        ),
        ("POST", "Contracts/290/Charges", {**CHARGE, "chargeType": 9}, 500, "not a valid picklist value"),
        (
            "POST",
            "Contracts/290/Charges",
            {k: v for k, v in CHARGE.items() if k != "datePurchased"},
            400,
            "Required field ContractCharges.datePurchased is missing",
        ),
        ("POST", "Contracts/290/Charges", {**CHARGE, "datePurchased": "2026-12-01"}, 400, "not a valid date"),
        ("POST", "Contracts/290/Charges", {**CHARGE, "contractID": 291}, 500, "does not match the parent"),
        (
            "POST",
            "Contracts/290/Charges",
            {**CHARGE, "adjustedPrice": 1},
            400,
            "unknown field 'adjustedPrice'",
        ),
        (
            "POST",
            "Contracts/290/Services",
            {**SERVICE, "internalDescription": "i" * 101},
            500,
            "ContractServices.internalDescription: at most 100 characters",
        ),
        ("POST", "Contracts/290/Services", {**SERVICE, "internalCurrencyUnitPrice": 1}, 500, "is read-only"),
        (
            "PATCH",
            "Contracts/290/Services",
            {"id": 8638, "unitCost": 1},
            500,
            "ContractServices.unitCost is read-only on update",
        ),
        (
            "PATCH",
            "Contracts/290/Services",
            {"id": 8638, "internalDescription": "x"},
            500,
            "read-only on update",
        ),
        (
            "PATCH",
            "Contracts/290/Services",
            {"id": 8638, "internalCurrencyAdjustedPrice": 7},
            500,
            "ContractServices.internalCurrencyAdjustedPrice is read-only",
        ),
        (
            "PATCH",
            "Contracts/290/Services",
            {"id": 8638, "internalCurrencyUnitPrice": 7},
            500,
            "ContractServices.internalCurrencyUnitPrice is read-only",
        ),
        (
            "PATCH",
            "Contracts/290/Services",
            {"id": 8638, "adjustedPrice": 7},
            400,
            "unknown field 'adjustedPrice'",
        ),
        ("PATCH", "Contracts/290/Services", {"id": 8638, "serviceID": 701}, 500, "read-only on update"),
        ("POST", "Contracts/290/ServiceAdjustments", {**ADJUST, "unitChange": "1"}, 400, "not a valid int"),
        ("POST", "Contracts/290/ServiceAdjustments", {**ADJUST, "unitChange": -13}, 500, "leaves -1 units"),
        (
            "POST",
            "Companies",
            {"companyName": "New Co", "phone": ""},
            400,
            "Required field Companies.ownerResourceID is missing",
        ),
        (
            "POST",
            "Companies",
            {"companyName": "c" * 101, "phone": "", "ownerResourceID": 4},
            500,
            "at most 100 characters",
        ),
    ],
)
async def test_a_request_a_real_zone_refuses_is_refused_with_its_error_body(
    method: str, path: str, payload: Any, status: int, message: str
) -> None:
    sandbox = AutotaskSandbox.from_scenario(world())

    response = await raw(sandbox, method, path, payload)

    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert isinstance(errors, list) and any(message in e for e in errors), errors
    assert sandbox.writes == 0


async def test_a_price_update_lands_on_the_adjusted_price_autotask_bills_at() -> None:
    """Issue 14: the price goes into the one writable price field, and what the connector reads
    back is what the contract's service units bill at, in both currencies."""
    sandbox = AutotaskSandbox.from_scenario(world())
    at, _ = connector(sandbox)

    line = await at.update_line(
        LineUpdate(key="500:recurring", line_id="8638", agreement_id="290", unit_price=Decimal("7.25"))
    )

    assert line.unit_price == Decimal("7.25") and line.quantity == Decimal(12)
    row = sandbox.tables["ContractServices"][8638]
    assert (row["unitPrice"], row["internalCurrencyAdjustedPrice"]) == (Decimal("7.25"), Decimal("7.25"))
    assert {u["price"] for u in sandbox.units_rows(8638)} == {Decimal("7.25")}
    fresh, _ = connector(sandbox)
    assert {x.id: x.unit_price for x in await fresh.lines(["290"])}["8638"] == Decimal("7.25")
    await at.aclose()
    await fresh.aclose()


async def test_paging_urls_are_served_to_get_only() -> None:
    sandbox = AutotaskSandbox.from_scenario(world(), page_size=1)
    first = await raw(sandbox, "POST", "ContractServices/query", {"Filter": [{"op": "exist", "field": "id"}]})
    next_url = first.json()["pageDetails"]["nextPageUrl"]

    assert (await raw(sandbox, "GET", next_url)).status_code == 200
    wrong = await raw(sandbox, "POST", next_url, {"Filter": [{"op": "exist", "field": "id"}]})
    assert wrong.status_code == 405 and wrong.json()["errors"]


def test_the_entity_table_names_a_source_for_every_rule() -> None:
    for entity in ENTITIES.values():
        assert entity.source
        for name, rule in entity.fields.items():
            assert rule.source, f"{entity.name}.{name}"
    assert ENTITIES["ContractServices"].fields["internalDescription"].max_length == 100
    assert ENTITIES["ContractCharges"].fields["status"].read_only


# --- the hourly threshold --------------------------------------------------------------------------------------


async def test_the_hourly_threshold_is_a_rolling_window_with_autotasks_429() -> None:
    now = {"t": 0.0}
    sandbox = AutotaskSandbox.from_scenario(
        world(), threshold=3, threshold_window=3600, clock=lambda: now["t"]
    )
    for _ in range(3):
        assert (await raw(sandbox, "GET", "Companies/19")).status_code == 200
    refused = await raw(sandbox, "GET", "Companies/19")
    info = await raw(sandbox, "GET", "ThresholdInformation")

    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert "threshold of 3 requests per 60 minutes" in refused.json()["errors"][0]
    assert info.json() == {
        "externalRequestThreshold": 3,
        "requestThresholdTimeframe": 60,
        "currentTimeframeRequestCount": 3,
    }
    now["t"] = 3599.0
    assert (await raw(sandbox, "GET", "Companies/19")).status_code == 429
    now["t"] = 3600.0
    assert (await raw(sandbox, "GET", "Companies/19")).status_code == 200


async def test_the_connector_waits_out_the_threshold_as_the_service_says() -> None:
    now = {"t": 0.0}
    sandbox = AutotaskSandbox.from_scenario(
        world(), threshold=2, threshold_window=150, clock=lambda: now["t"]
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now["t"] += seconds

    at = sandbox.connector(sleep=sleep)
    await at.get("Companies", 19)
    await at.get("Companies", 19)

    companies = await at.companies()

    assert [c.id for c in companies] == ["19"]
    assert 60.0 in slept and now["t"] >= 150  # waited until the window let a request through
    await at.aclose()


# --- dates in UTC with Z, read in the partner's zone ---------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "wire"),
    [
        ("Australia/Sydney", "2026-11-30T13:00:00Z"),
        ("America/Denver", "2026-12-01T07:00:00Z"),
        ("UTC", "2026-12-01T00:00:00Z"),
    ],
)
async def test_dates_round_trip_in_the_partners_zone(zone: str, wire: str) -> None:
    tz = ZoneInfo(zone)
    sandbox = AutotaskSandbox.from_scenario(world(), zone=tz)
    at, _ = connector(sandbox)

    line = await at.create_line(write("600:recurring", "recurring"))
    charge = await at.create_line(write("600:prorate:2026-11-20"))

    assert line.effective_date == date(2026, 12, 1) and charge.effective_date == date(2026, 12, 1)
    units = await raw(
        sandbox,
        "POST",
        "ContractServiceUnits/query",
        {"Filter": [{"op": "eq", "field": "contractServiceID", "value": int(line.id)}]},
    )
    assert units.json()["items"][0]["startDate"] == wire
    stored = sandbox.tables["ContractCharges"][int(charge.id)]["datePurchased"]
    assert stored == wire
    await at.aclose()


async def test_reading_a_zone_east_of_utc_as_utc_shifts_dates_a_day() -> None:
    sandbox = AutotaskSandbox.from_scenario(world(), zone=ZoneInfo("Australia/Sydney"))
    at, _ = connector(sandbox, zone=ZoneInfo("UTC"))  # the setting left at its default

    (agreement,) = await at.agreements()

    assert agreement.start_date == date(2024, 12, 31)  # why RULES.md §11 makes the zone a setting
    await at.aclose()


# --- the line key round-trips; the second match when it was edited by hand ---------------------------------


async def test_the_key_round_trips_on_services_and_charges_even_when_too_long() -> None:
    sandbox = AutotaskSandbox.from_scenario(world())
    at, _ = connector(sandbox)
    long_key = "0f8fad5b-d9cb-469f-a165-70867728950e:arrears:Advanced Threat Protection Plus for Email"
    created = [
        await at.create_line(write("700:recurring", "recurring")),
        await at.create_line(write(long_key)),
        await at.create_line(write(long_key + ":x" * 40, "recurring", product_id="701")),
    ]

    fresh, _ = connector(sandbox)  # a new process: only what Autotask stored
    by_id = {line.id: line for line in await fresh.lines(["290"])}
    assert by_id[created[0].id].source is not None and by_id[created[0].id].source.key == "700:recurring"
    assert (
        by_id[created[1].id].source is not None and by_id[created[1].id].source.key == long_key
    )  # from notes
    assert by_id[created[2].id].source is None  # a digest marker: found by lookup, not readable
    for line, key in zip(created, ["700:recurring", long_key, long_key + ":x" * 40], strict=True):
        found = await fresh.find_line("290", key)
        assert found is not None and found.id == line.id
    assert all(
        len(s["internalDescription"] or "") <= 100 for s in sandbox.tables["ContractServices"].values()
    )
    await at.aclose()
    await fresh.aclose()


async def test_a_key_edited_by_hand_is_matched_a_second_way_before_any_resend() -> None:
    sandbox = AutotaskSandbox.from_scenario(world())
    at, _ = connector(sandbox)
    recurring = write("800:recurring", "recurring")
    charge = write("800:prorate:2026-11-03")
    line = await at.create_line(recurring)
    one_time = await at.create_line(charge)
    sandbox.tables["ContractServices"][int(line.id)]["internalDescription"] = "edited by the operator"
    sandbox.tables["ContractCharges"][int(one_time.id)]["internalPurchaseOrderNumber"] = "PO 4471"

    again_service = await at.find_line("290", recurring.key)
    again_charge = await at.find_line("290", charge.key)
    fresh, _ = connector(sandbox)

    assert (
        again_service is not None and again_service.id == line.id
    )  # contract + service + date + description
    assert again_charge is not None and again_charge.id == one_time.id  # the key in the notes
    assert await fresh.find_line("290", recurring.key) is None  # after a crash only the key fields count
    assert (await fresh.find_line("290", charge.key)) is None
    await at.aclose()
    await fresh.aclose()


async def test_two_unkeyed_candidates_are_an_error_not_a_guess() -> None:
    sandbox = AutotaskSandbox.from_scenario(world())
    at, _ = connector(sandbox)
    recurring = write("900:recurring", "recurring")
    first = await at.create_line(recurring)
    sandbox.tables["ContractServices"][int(first.id)]["internalDescription"] = None
    sandbox.add_contract_service(
        5000, 290, 700, Decimal("6.00"), Decimal("5.00"), invoice_description=recurring.description
    )
    sandbox.add_adjustment(5000, date(2026, 12, 1), 2)

    with pytest.raises(ServiceError, match="resolve by hand"):
        await at.find_line("290", recurring.key)
    await at.aclose()


def test_key_markers_read_back_with_or_without_the_metered_tag() -> None:
    assert key_from_marker("[metered] trueup:5:usage") == "5:usage"
    assert key_from_marker("[METERED]trueup:5:usage") == "5:usage"
    assert key_from_marker("[metered] overage") is None


# --- the demo's quota overage lines are proposed on Autotask too ---------------------------------------------


async def test_the_demo_quota_overage_lines_are_proposed_on_autotask() -> None:
    from engine.reconcile import reconcile
    from engine.sandbox.demo import build_demo_scenario

    demo = build_demo_scenario(psa="autotask")
    sandbox = AutotaskSandbox.from_scenario(demo)
    at, _ = connector(sandbox)
    read = await at.lines([a.id for a in demo.psa.agreements])
    await at.aclose()

    metered_ids = {line.id for line in demo.psa.lines if line.metered}
    assert metered_ids and {line.id for line in read if line.metered} == metered_ids
    as_read = demo.model_copy(update={"psa": demo.psa.model_copy(update={"lines": read})})
    usage = [line for line in reconcile(as_read).lines if line.kind == "usage"]
    expected = [line for line in reconcile(demo).lines if line.kind == "usage"]
    assert usage and sorted((u.key, u.quantity) for u in usage) == sorted(
        (e.key, e.quantity) for e in expected
    )


async def test_the_demo_synced_to_autotask_lands_the_planned_dollars_and_leaves_nothing_to_plan() -> None:
    from engine.sandbox.demo import build_demo_scenario
    from engine.sync.executor import SyncExecutor
    from engine.workspace import Workspace

    demo = build_demo_scenario(psa="autotask")
    ws = Workspace.sandbox_from_scenario(demo)
    await ws.refresh()
    plan = ws.plan()
    kinds = {line.kind for line in plan.lines}

    report = await SyncExecutor(ws.store, ws.psa, today=demo.as_of).run(list(plan.lines))

    sandbox = ws.sandboxes["autotask"]
    assert sandbox.refused == [] and {o.outcome for o in report.outcomes} == {"written"}
    assert {"recurring", "prorate", "extra_months", "arrears", "usage_summary", "usage", "cancel"} <= kinds
    read = {line.source.key: line for line in await ws.psa.lines() if line.source}
    keyed = [line for line in plan.lines if line.action == "create"]
    assert keyed and all(
        read[line.key].quantity * read[line.key].unit_price == line.total_price for line in keyed
    )
    await ws.refresh()
    assert ws.plan().lines == []
