"""Round trips of the real ConnectWise and Halo connectors against their sandboxes (MockTransport)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import httpx
import pytest

from engine.connectors.base import LineUpdate, LineWrite, ServiceError
from engine.connectors.connectwise import ConnectWiseConnector
from engine.connectors.halopsa import HaloConnector
from engine.sandbox.connectwise import ConnectWiseSandbox, parse_conditions
from engine.sandbox.faults import Fault, Faults
from engine.sandbox.halopsa import HaloSandbox
from engine.scenario import Scenario

SUB = "8c1b6c3e-1d2a-4c55-9a77-0e2a5b3c4d5e"


def scenario(**settings) -> Scenario:
    return Scenario.model_validate(
        {
            "as_of": "2026-03-10",
            "settings": settings,
            "psa": {
                "companies": [
                    {"id": "19", "name": "Ace Chemical"},
                    {"id": "20", "name": "Wayne Enterprises"},
                ],
                "products": [
                    {
                        "id": "301",
                        "name": "M365 Business Basic",
                        "sku": "M365-BB",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                    },
                    {"id": "302", "name": "Backup per GB", "sku": "BK-GB"},
                ],
                "agreements": [
                    {"id": "290", "company_id": "19", "name": "Ace Managed", "start_date": "2019-01-01"},
                    {
                        "id": "291",
                        "company_id": "20",
                        "name": "Wayne Annual",
                        "start_date": "2020-01-01",
                        "billing_period": "annual",
                    },
                    {
                        "id": "292",
                        "company_id": "20",
                        "name": "Wayne Old",
                        "start_date": "2018-01-01",
                        "end_date": "2019-12-31",
                    },
                ],
                "lines": [
                    {
                        "id": "8638",
                        "agreement_id": "290",
                        "product_id": "301",
                        "quantity": "270",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                        "effective_date": "2019-01-01",
                        "description": "Pax8 - M365 Business Basic",
                        "source": {"subscription_id": SUB, "key": f"{SUB}:recurring"},
                    },
                    {
                        "id": "8639",
                        "agreement_id": "290",
                        "product_id": "302",
                        "quantity": "12.5",
                        "unit_price": "0.10",
                        "unit_cost": "0.05",
                        "effective_date": "2020-02-01",
                        "cancelled_date": "2020-06-30",
                        "description": "Operator's own line",
                        "metered": True,
                    },
                ],
            },
        }
    )


def write(key: str = f"{SUB}:prorate:2026-03-05", **changes) -> LineWrite:
    values = dict(
        key=key,
        agreement_id="290",
        product_id="301",
        kind="one_time",
        quantity=Decimal("12"),
        unit_price=Decimal("5.03"),
        unit_cost=Decimal("4.19"),
        effective_date=date(2026, 3, 5),
        end_date=date(2026, 3, 31),
        description="Pax8 - M365 Business Basic (prorate 3/5-3/31)",
        subscription_id=SUB,
    )
    values.update(changes)
    return LineWrite(**values)


async def no_sleep(_: float) -> None:
    return None


# --- ConnectWise -------------------------------------------------------------------------------------


def cw(sandbox: ConnectWiseSandbox, **kw) -> ConnectWiseConnector:
    return ConnectWiseConnector(
        sandbox.site,
        sandbox.company_id,
        sandbox.public_key,
        sandbox.private_key,
        sandbox.client_id,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
        **kw,
    )


async def test_cw_reads_the_scenario_back():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    client = cw(sandbox)
    assert [c.name for c in await client.companies()] == ["Ace Chemical", "Wayne Enterprises"]
    products = await client.products()
    assert products[0].sku == "M365-BB" and products[0].unit_price == Decimal("6.00")
    agreements = await client.agreements()
    assert [(a.id, a.billing_period) for a in agreements] == [
        ("290", "monthly"),
        ("291", "annual"),
    ]  # 292 expired
    lines = await client.lines()
    by_id = {line.id: line for line in lines}
    assert by_id["8638"].source.key == f"{SUB}:recurring"
    assert by_id["8638"].source.subscription_id == SUB
    assert by_id["8638"].quantity == Decimal("270")
    assert by_id["8639"].source is None and by_id["8639"].cancelled_date == date(2020, 6, 30)
    assert by_id["8639"].unit_price == Decimal("0.10")
    assert client.codebase == "v4_6_release"
    await client.aclose()


async def test_cw_create_then_find_then_update_and_cancel():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    client = cw(sandbox)
    created = await client.create_line(write())
    assert created.kind == "one_time" and created.source.key == f"{SUB}:prorate:2026-03-05"
    stored = sandbox.lines_for("290")[-1]
    assert len(stored["serialNumber"]) <= 50 and stored["serialNumber"].startswith("~")
    assert stored["unitPrice"] == Decimal("5.03") and stored["cancelledDate"] == "2026-03-31T00:00:00Z"
    found = await client.find_line("290", f"{SUB}:prorate:2026-03-05")
    assert found is not None and found.id == created.id
    assert await client.find_line("290", f"{SUB}:prorate:2026-03-06") is None
    assert await client.find_line("291", f"{SUB}:prorate:2026-03-05") is None

    updated = await client.update_line(
        LineUpdate(key=f"{SUB}:recurring", line_id="8638", agreement_id="290", quantity=Decimal("283"))
    )
    assert updated.quantity == Decimal("283") and updated.effective_date == date(2019, 1, 1)
    cancelled = await client.update_line(
        LineUpdate(key=f"{SUB}:cancel", line_id="8638", agreement_id="290", cancelled_date=date(2026, 3, 31))
    )
    assert cancelled.cancelled_date == date(2026, 3, 31)
    assert sandbox.writes == 3
    # a fresh connector (after a crash) reads the same state back
    again = {line.id: line for line in await cw(sandbox).lines(["290"])}
    assert again["8638"].quantity == Decimal("283") and again[created.id].source.key.endswith(
        ":prorate:2026-03-05"
    )
    await client.aclose()


async def test_cw_digest_keys_are_found_after_a_crash():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    key = f"{SUB}:arrears:Microsoft 365 Business Premium Extra"
    await cw(sandbox).create_line(write(key=key, kind="recurring", end_date=None))
    stored = sandbox.lines_for("290")[-1]["serialNumber"]
    assert stored.startswith("#") and len(stored) <= 50
    fresh = cw(sandbox)
    assert (await fresh.find_line("290", key)) is not None
    fresh_lines = {line.id: line for line in await fresh.lines(["290"])}
    new_id = str(sandbox.lines_for("290")[-1]["id"])
    assert fresh_lines[new_id].source.key == key  # find_line taught it the digest
    unknown = {line.id: line for line in await cw(sandbox).lines(["290"])}
    assert unknown[new_id].source is None


async def test_cw_sandbox_rejects_bad_writes_with_cw_errors():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    client = cw(sandbox)
    with pytest.raises(ServiceError) as bad_product:
        await client.create_line(write(product_id="999"))
    assert bad_product.value.status == 400 and bad_product.value.rejected
    assert "Product recID 999 not found" in bad_product.value.details[0]
    with pytest.raises(ServiceError) as bad_agreement:
        await client.create_line(write(agreement_id="999"))
    assert bad_agreement.value.status == 404
    assert sandbox.writes == 0

    async def post(body):
        return await client._client.http.post(
            "/v4_6_release/apis/3.0/finance/agreements/290/additions", json=body
        )

    response = await post({"billCustomer": "Billable"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "product"
    response = await post({"product": {"id": 301}, "billCustomer": "Billable", "serialNumber": "x" * 51})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "MaxLength"
    response = await client._client.http.patch(
        "/v4_6_release/apis/3.0/finance/agreements/290/additions/8638",
        json=[{"op": "replace", "path": "nonsense", "value": 1}],
    )
    assert response.status_code == 400
    assert sandbox.writes == 0
    await client.aclose()


async def test_cw_sandbox_checks_credentials():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    wrong_key = ConnectWiseConnector(
        sandbox.site,
        sandbox.company_id,
        sandbox.public_key,
        "wrong",
        sandbox.client_id,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
    )
    with pytest.raises(ServiceError) as denied:
        await wrong_key.companies()
    assert denied.value.status == 401 and denied.value.rejected
    wrong_client = ConnectWiseConnector(
        sandbox.site,
        sandbox.company_id,
        sandbox.public_key,
        sandbox.private_key,
        "not-the-client",
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
    )
    with pytest.raises(ServiceError) as forbidden:
        await wrong_client.agreements()
    assert forbidden.value.status == 403


async def test_cw_sandbox_pages_with_link_headers():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    for n in range(2500):
        lid = sandbox.new_id()
        sandbox.additions[lid] = sandbox._addition_record(
            lid, 291, {"product": {"id": 301}, "quantity": Decimal(n)}
        )
    client = cw(sandbox)
    lines = await client.lines(["291"])
    assert len(lines) == 2500 and len({line.id for line in lines}) == 2500
    pages = [r for r in sandbox.requests if r.url.path.endswith("/291/additions")]
    assert [r.url.params["page"] for r in pages] == ["1", "2", "3"]
    assert all(r.url.params["pageSize"] == "1000" for r in pages)


def test_cw_sandbox_conditions():
    assert parse_conditions('agreementStatus="Active" and company/id = 19') == [
        ("agreementStatus", "=", "Active"),
        ("company/id", "=", Decimal("19")),
    ]
    with pytest.raises(ValueError):
        parse_conditions("agreementStatus ~ 3")


async def test_cw_faults_after_apply_are_not_resent_and_found_by_lookup():
    faults = Faults()
    sandbox = ConnectWiseSandbox.from_scenario(scenario(), faults=faults)
    client = cw(sandbox)
    await client.discover_codebase()
    faults.push(Fault.LOST_RESPONSE)
    with pytest.raises(ServiceError) as lost:
        await client.create_line(write())
    assert lost.value.sent and lost.value.status is None
    assert sandbox.writes == 1  # applied once, not re-sent
    assert (await client.find_line("290", write().key)) is not None

    faults.push(Fault.SERVER_ERROR)
    with pytest.raises(ServiceError) as server:
        await client.update_line(
            LineUpdate(key="k", line_id="8638", agreement_id="290", quantity=Decimal("1"))
        )
    assert server.value.status == 500 and server.value.sent
    assert sandbox.writes == 2 and sandbox.lines_for("290")[0]["quantity"] == Decimal("1")


async def test_cw_refusals_are_retried_and_not_applied_twice():
    faults = Faults(retry_after=0)
    sandbox = ConnectWiseSandbox.from_scenario(scenario(), faults=faults)
    client = cw(sandbox)
    await client.discover_codebase()
    faults.push(Fault.RATE_LIMITED)
    await client.create_line(write())  # a 429 is re-sent: the service did nothing
    assert sandbox.writes == 1
    faults.push(Fault.UNAVAILABLE, Fault.RATE_LIMITED)
    assert len(await client.agreements()) == 2


async def test_cw_random_faults_never_duplicate_a_line():
    faults = Faults(seed=7, rate_429=0.2, rate_503=0.1, rate_500_after_apply=0.15, rate_lost_response=0.15)
    sandbox = ConnectWiseSandbox.from_scenario(scenario(), faults=faults)
    client = cw(sandbox)
    keys = [f"{SUB}:prorate:2026-03-{day:02d}" for day in range(1, 16)]
    for key in keys:
        try:
            await client.create_line(write(key=key))
        except ServiceError as exc:
            if not exc.sent:
                raise
            for _ in range(10):  # the engine's recovery: look it up, create only when absent
                try:
                    if await client.find_line("290", key) is None:
                        await client.create_line(write(key=key))
                    break
                except ServiceError:
                    continue
    serials = [a["serialNumber"] for a in sandbox.lines_for("290") if a["serialNumber"]]
    assert len(serials) == len(set(serials)) == len(keys) + 1
    assert faults.injected  # the run did see faults


# --- Halo --------------------------------------------------------------------------------------------


def halo(sandbox: HaloSandbox, **kw) -> HaloConnector:
    return HaloConnector(
        sandbox.base_url,
        sandbox.client_id,
        sandbox.client_secret,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
        **kw,
    )


async def test_halo_reads_the_scenario_back():
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    client.page_size = 2
    assert [c.id for c in await client.companies()] == ["19", "20"]
    assert [p.sku for p in await client.products()] == ["M365-BB", "BK-GB"]
    agreements = await client.agreements()
    assert [(a.id, a.billing_period) for a in agreements] == [
        ("290", "monthly"),
        ("291", "annual"),
        ("292", "monthly"),
    ]
    lines = {line.id: line for line in await client.lines()}
    assert lines["8638"].source.key == f"{SUB}:recurring" and lines["8638"].agreement_id == "290"
    assert lines["8639"].metered and lines["8639"].source is None
    assert lines["8639"].quantity == Decimal("12.5") and lines["8639"].unit_cost == Decimal("0.05")
    assert sandbox.tokens_issued == 1
    listing = [r for r in sandbox.requests if r.url.path == "/api/Item"]
    assert [r.url.params["page_no"] for r in listing] == ["1"]  # 2 of record_count 2: done
    await client.aclose()


async def test_halo_create_find_update_cancel():
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    created = await client.create_line(write())
    assert created.kind == "one_time" and created.source.key == write().key
    stored = sandbox.lines_for("290")[-1]
    assert stored["comment_1"] == write().key and stored["onetimecharge"] is True
    assert stored["unit_price"] == Decimal("5.03") and stored["enddate"] == "2026-03-31T00:00:00"
    assert (await client.find_line("290", write().key)).id == created.id
    assert await client.find_line("291", write().key) is None
    updated = await client.update_line(
        LineUpdate(
            key="k", line_id="8638", agreement_id="290", quantity=Decimal("283"), unit_price=Decimal("6.50")
        )
    )
    assert updated.quantity == Decimal("283") and updated.unit_price == Decimal("6.50")
    cancelled = await client.update_line(
        LineUpdate(key="k", line_id="8638", agreement_id="290", cancelled_date=date(2026, 3, 31))
    )
    assert cancelled.cancelled_date == date(2026, 3, 31)
    assert sandbox.writes == 3
    company = await client.create_company("Gotham Clinic")
    assert sandbox.clients[int(company.id)]["name"] == "Gotham Clinic"
    await client.aclose()


async def test_halo_rejects_unknown_item_and_header():
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    with pytest.raises(ServiceError) as bad_item:
        await client.create_line(write(product_id="999"))
    assert bad_item.value.status == 400 and "Item 999 not found" in bad_item.value.message
    with pytest.raises(ServiceError) as bad_header:
        await client.create_line(write(agreement_id="999"))
    assert bad_header.value.status == 400 and "999" in bad_header.value.message
    with pytest.raises(ServiceError) as bad_line:
        await client.update_line(LineUpdate(key="k", line_id="1", agreement_id="290", quantity=Decimal("1")))
    assert bad_line.value.status == 400
    assert sandbox.writes == 0


async def test_halo_token_refresh_and_bad_credentials():
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    await client.companies()
    sandbox.expire_tokens()
    await client.companies()  # 401 → new token → once more
    assert sandbox.tokens_issued == 2
    wrong = HaloConnector(
        sandbox.base_url,
        sandbox.client_id,
        "nope",
        transport=httpx.MockTransport(sandbox.handle),
        sleep=no_sleep,
    )
    with pytest.raises(ServiceError) as denied:
        await wrong.companies()
    assert denied.value.status == 401 and denied.value.message == "invalid_client"


async def test_halo_lost_write_is_not_resent():
    faults = Faults()
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"), faults=faults)
    client = halo(sandbox)
    await client.token()
    faults.push(Fault.LOST_RESPONSE)
    with pytest.raises(ServiceError) as lost:
        await client.create_line(write())
    assert lost.value.sent
    assert sandbox.writes == 1 and (await client.find_line("290", write().key)) is not None
    faults.push(Fault.SERVER_ERROR)
    with pytest.raises(ServiceError) as server:
        await client.update_line(
            LineUpdate(key="k", line_id="8638", agreement_id="290", quantity=Decimal("2"))
        )
    assert server.value.status == 500
    assert sandbox.writes == 2 and sandbox.lines[8638]["qty_order"] == Decimal("2")
    faults.push(Fault.RATE_LIMITED)
    await client.create_line(write(key=f"{SUB}:prorate:2026-03-09"))
    assert sandbox.writes == 3


# --- ConnectWise: as strict as the real service ---------------------------------------------------

CW_ADDITIONS = "/v4_6_release/apis/3.0/finance/agreements/290/additions"


async def test_cw_unknown_routes_are_404_and_wrong_methods_405_in_cw_shape():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    http = cw(sandbox)._client.http
    unknown = await http.get("/v4_6_release/apis/3.0/finance/agreementz")
    assert unknown.status_code == 404 and set(unknown.json()) == {"code", "message"}
    wrong = await http.delete(CW_ADDITIONS)
    assert wrong.status_code == 405 and wrong.json()["code"] == "MethodNotAllowed"
    put = await http.put(f"{CW_ADDITIONS}/8638", json={})
    assert put.status_code == 405


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({"billCustomer": "Billable"}, "product", "NullValue"),
        ({"product": {"id": 301}}, "billCustomer", "NullValue"),
        ({"product": {"id": 301}, "billCustomer": "Billable", "extPrice": 10}, "extPrice", "ReadOnly"),
        ({"product": {"id": 301}, "billCustomer": "Billable", "margin": 1}, "margin", "ReadOnly"),
        ({"product": {"id": 301}, "billCustomer": "Billable", "_info": {}}, "_info", "ReadOnly"),
        ({"product": {"id": 301}, "billCustomer": "Billable", "qty": 1}, "qty", "InvalidField"),
        (
            {"product": {"id": 301}, "billCustomer": "Billable", "serialNumber": "x" * 51},
            "serialNumber",
            "MaxLength",
        ),
        (
            {"product": {"id": 301}, "billCustomer": "Billable", "invoiceDescription": "x" * 6001},
            "invoiceDescription",
            "MaxLength",
        ),
        (
            {"product": {"id": 301}, "billCustomer": "Billable", "effectiveDate": "2026-03-05"},
            "effectiveDate",
            "InvalidValue",
        ),
        ({"product": {"id": 301}, "billCustomer": "Billable", "quantity": "12"}, "quantity", "InvalidValue"),
        ({"product": {"id": 301}, "billCustomer": "Maybe"}, "billCustomer", "InvalidValue"),
    ],
)
async def test_cw_refuses_what_connectwise_refuses(body, field, code):
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    response = await cw(sandbox)._client.http.post(CW_ADDITIONS, json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "InvalidObject" and error["errors"][0]["field"] == field
    assert error["errors"][0]["code"] == code
    assert sandbox.writes == 0


async def test_cw_patch_of_a_computed_field_is_refused():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    response = await cw(sandbox)._client.http.patch(
        f"{CW_ADDITIONS}/8638", json=[{"op": "replace", "path": "extPrice", "value": 1}]
    )
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "ReadOnly"


async def test_cw_paging_params_are_checked_and_page_size_is_capped_at_1000():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    for _ in range(1200):
        lid = sandbox.new_id()
        sandbox.additions[lid] = sandbox._addition_record(lid, 291, {"product": {"id": 301}})
    http = cw(sandbox)._client.http
    additions = "/v4_6_release/apis/3.0/finance/agreements/291/additions"
    big = await http.get(additions, params={"pageSize": "5000"})
    assert len(big.json()) == 1000 and 'rel="next"' in big.headers["Link"]
    assert "pageSize=1000" in big.headers["Link"]
    for params in ({"page": "0"}, {"pageSize": "0"}, {"pageSize": "many"}):
        bad = await http.get(additions, params=params)
        assert bad.status_code == 400 and bad.json()["code"] == "InvalidRequest"


async def test_cw_the_connector_turns_prorating_off_and_connectwise_would_prorate_otherwise():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    client = cw(sandbox)
    recurring = await client.create_line(write(key=f"{SUB}:recurring", kind="recurring", end_date=None))
    assert sandbox.additions[int(recurring.id)]["prorateCurrentPeriodFlag"] is False
    assert sandbox.invoiced(int(recurring.id)) == (Decimal("60.36"), Decimal("0"))  # 12 × 5.03, no prorate
    # what ConnectWise does with an addition that does not say (ASSUMED default: prorate on)
    response = await client._client.http.post(
        CW_ADDITIONS,
        json={
            "product": {"id": 301},
            "billCustomer": "Billable",
            "quantity": 12,
            "unitPrice": 5.03,
            "effectiveDate": "2026-03-05T00:00:00Z",
        },
    )
    assert response.status_code == 201
    assert sandbox.invoiced(response.json()["id"]) == (Decimal("60.36"), Decimal("52.56"))  # 4.38 × 12
    await client.aclose()


async def test_cw_less_included_and_bill_customer_change_what_is_invoiced():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    sandbox.additions[8638].update({"lessIncluded": Decimal("20")})
    sandbox._compute(sandbox.additions[8638])
    client = cw(sandbox)
    line = next(line for line in await client.lines(["290"]) if line.id == "8638")
    assert line.quantity == Decimal("250")  # 270 − 20 invoiced
    assert sandbox.invoiced(8638)[0] == line.quantity * line.unit_price
    await client.update_line(
        LineUpdate(
            key=f"{SUB}:recurring",
            line_id="8638",
            agreement_id="290",
            quantity=Decimal("260"),
            previous_quantity=Decimal("250"),
        )
    )
    assert sandbox.additions[8638]["quantity"] == Decimal("280")
    assert sandbox.invoiced(8638)[0] == Decimal("260") * Decimal("6.00")
    sandbox.additions[8638]["billCustomer"] = "DoNotBill"
    sandbox._compute(sandbox.additions[8638])
    assert sandbox.invoiced(8638)[0] == 0
    await client.aclose()


async def test_cw_the_metered_flag_round_trips_through_the_custom_field():
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    client = cw(sandbox)
    lines = {line.id: line.metered for line in await client.lines(["290"])}
    assert lines == {"8638": False, "8639": True}
    created = await client.create_line(
        write(key=f"{SUB}:usage", kind="recurring", end_date=None, metered=True)
    )
    assert created.metered is True
    assert sandbox.additions[int(created.id)]["customFields"][0]["value"] is True
    await client.aclose()


async def test_cw_rate_limit_answers_429_with_retry_after_and_the_connector_waits_it_out():
    now = [0.0]
    sandbox = ConnectWiseSandbox.from_scenario(scenario(), rate_limit=(3, 60.0), clock=lambda: now[0])
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    client = ConnectWiseConnector(
        sandbox.site,
        sandbox.company_id,
        sandbox.public_key,
        sandbox.private_key,
        sandbox.client_id,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=sleep,
    )
    for _ in range(2):
        await client.companies()  # 1 codebase lookup + 2 reads fill the window
    response = await client._client.http.get("/v4_6_release/apis/3.0/company/companies")
    assert response.status_code == 429 and response.headers["Retry-After"].isdigit()
    assert response.json()["code"] == "TooManyRequests"
    assert len(await client.companies()) == 2
    assert sum(waits) >= 60.0  # Retry-After honoured (each wait capped at the client's 30 s)
    await client.aclose()


# --- HaloPSA: as strict as the real service (where known) ------------------------------------------


async def test_halo_writes_answer_200_unknown_routes_404_wrong_methods_405():
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    await client.connect()
    http = client._client.http
    auth = client._auth_headers()
    created = await http.post(
        "/RecurringInvoice/Lines", headers=auth, json=[{"ihid": 290, "_itemid": 301, "qty_order": 1}]
    )
    assert created.status_code == 200  # [spec] the only response of every POST
    assert (await http.get("/RecurringInvoiceLines", headers=auth)).status_code == 404
    wrong = await http.get("/RecurringInvoice/Lines", headers=auth)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert (await http.delete("/Item", headers=auth)).status_code == 405
    read_only = await http.post(
        "/RecurringInvoice/Lines",
        headers=auth,
        json=[{"ihid": 290, "_itemid": 301, "total_price_converted": 5}],
    )
    assert read_only.status_code == 400 and "read only" in read_only.json()
    for params in ({"pageinate": "true", "page_size": "0"}, {"pageinate": "true", "page_no": "two"}):
        assert (await http.get("/Client", headers=auth, params=params)).status_code == 400
    await client.aclose()


async def test_halo_rolling_window_is_shared_with_other_integrations_and_the_connector_outlasts_it():
    now = [0.0]
    sandbox = HaloSandbox.from_scenario(
        scenario(psa="halopsa"), rate_limit=(300, 300.0), clock=lambda: now[0]
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    client = HaloConnector(
        sandbox.base_url,
        sandbox.client_id,
        sandbox.client_secret,
        transport=httpx.MockTransport(sandbox.handle),
        sleep=sleep,
    )
    await client.companies()  # authinfo, token, one page: 3 of the tenant's 300
    sandbox.other_integrations = 297  # the tenant's other integrations used the rest
    refused = await client._client.http.get("/Client", headers=client._auth_headers())
    assert (
        refused.status_code == 429
        and refused.text == "Rate Limit Reached - 300 Requests per rolling 5 minute window"
    )
    assert "Retry-After" not in refused.headers

    def drained() -> None:  # the other integrations' requests age out of the window too
        if now[0] >= 300:
            sandbox.other_integrations = 0

    original = sandbox._rate_limited
    sandbox._rate_limited = lambda: (drained(), original())[1]
    assert len(await client.companies()) == 2
    assert set(waits) == {30.0} and sum(waits) >= 300  # 30 s a try until the window drained
    await client.aclose()


async def test_halo_the_connector_turns_pro_rata_off_and_halo_would_add_one_otherwise():
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    line = await client.create_line(write(key=f"{SUB}:recurring", kind="recurring", end_date=None))
    assert sandbox.lines[int(line.id)]["prorata_next_invoice"] is False
    assert sandbox.invoiced(int(line.id)) == (Decimal("60.36"), Decimal("0"))  # 12 × 5.03 a month
    prorate = await client.create_line(write())
    assert sandbox.invoiced(int(prorate.id)) == (Decimal("0"), Decimal("60.36"))  # a one-time charge, once
    await client.connect()
    raw = await client._client.http.post(
        "/RecurringInvoice/Lines",
        headers=client._auth_headers(),
        json=[
            {
                "ihid": 290,
                "_itemid": 301,
                "qty_order": 12,
                "unit_price": 5.03,
                "startdate": "2026-03-05T00:00:00",
            }
        ],
    )
    assert sandbox.invoiced(raw.json()["id"]) == (Decimal("60.36"), Decimal("52.56"))  # 12 × 4.38 pro-rata
    await client.aclose()


@pytest.mark.parametrize("sandbox_kw", [{"keeps_comment_1": False}, {"comment_limit": 10}])
async def test_halo_a_lost_response_is_not_written_twice_even_when_comment_1_is_not_kept(sandbox_kw):
    faults = Faults()
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"), faults=faults, **sandbox_kw)
    client = halo(sandbox)
    await client.token()
    faults.push(Fault.LOST_RESPONSE)
    with pytest.raises(ServiceError) as lost:
        await client.create_line(write())
    assert lost.value.sent and sandbox.writes == 1
    found = await client.find_line("290", write().key)  # the second match: item, start date, description
    assert found is not None and found.source.key == write().key
    fresh = halo(sandbox)  # another process, told what the line was
    assert (await fresh.find_line("290", write().key, expect=write())).id == found.id
    assert sandbox.writes == 1


# --- the idempotency key round trip (issue 10 item 4) ----------------------------------------------


async def test_cw_serial_number_round_trips_on_create_and_update_and_an_operator_edit_unlinks_the_line():
    """`serialNumber` is an Addition property (≤ 50) that is sent on create, returned on every read
    and writable by PATCH [spec]; a value an operator types is not a trueup key."""
    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    client = cw(sandbox)
    key = f"{SUB}:prorate:2026-03-05"
    created = await client.create_line(write(key=key))
    raw = sandbox.additions[int(created.id)]["serialNumber"]
    assert len(raw) <= 50 and (await client.find_line("290", key)).id == created.id
    response = await client._client.http.patch(
        f"{CW_ADDITIONS}/{created.id}", json=[{"op": "replace", "path": "serialNumber", "value": raw}]
    )
    assert response.status_code == 200 and response.json()["serialNumber"] == raw
    sandbox.additions[int(created.id)]["serialNumber"] = "SN-FROM-THE-OPERATOR"
    fresh = cw(sandbox)
    assert await fresh.find_line("290", key) is None
    line = next(line for line in await fresh.lines(["290"]) if line.id == created.id)
    assert line.source is None
    await client.aclose()


async def test_halo_comment_1_round_trips_on_create_and_update_in_the_sandbox():
    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    created = await client.create_line(write())
    assert sandbox.lines[int(created.id)]["comment_1"] == write().key
    await client.connect()
    response = await client._client.http.post(
        "/RecurringInvoice/updatelines",
        headers=client._auth_headers(),
        json=[{"id": int(created.id), "ihid": 290, "comment_1": "edited by the operator"}],
    )
    assert response.status_code == 200
    fresh = halo(sandbox)
    assert await fresh.find_line("290", write().key) is None  # no key and nothing to match by
    found = await fresh.find_line("290", write().key, expect=write())
    assert found is not None and found.id == created.id  # the second match still finds it
    await client.aclose()


async def test_halo_sandbox_creates_items_strictly():
    """Issue 13: POST /Item as Halo takes it (an array), refusing what Halo refuses."""
    from engine.connectors.base import ProductSpec

    sandbox = HaloSandbox.from_scenario(scenario(psa="halopsa"))
    client = halo(sandbox)
    item = await client.create_product(
        ProductSpec("Backup per TB", "BK-TB", Decimal("9.00"), Decimal("4.00"))
    )
    assert sandbox.items[int(item.id)]["internalreference"] == "BK-TB"
    assert {p.id: p.sku for p in await client.products()}[item.id] == "BK-TB"
    with pytest.raises(ServiceError) as unnamed:
        await client.create_product(ProductSpec("  ", None, Decimal("1"), Decimal("0")))
    assert unnamed.value.status == 400 and "Please enter a Name" in unnamed.value.message
    token = await client.token()
    bad = await httpx.AsyncClient(transport=httpx.MockTransport(sandbox.handle)).post(
        f"{sandbox.base_url}/api/Item",
        json=[{"name": "X", "baseprice": "9.00", "colour": "red"}],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad.status_code == 400 and "colour" in bad.text
    await client.aclose()


async def test_cw_sandbox_creates_catalog_items_strictly():
    """Issue 13: POST /procurement/catalog refuses what ConnectWise refuses (required fields, lengths,
    unknown subcategory, a taken identifier)."""
    from engine.connectors.base import ProductSpec

    sandbox = ConnectWiseSandbox.from_scenario(scenario())
    client = cw(sandbox)
    item = await client.create_product(
        ProductSpec("Backup per TB", "BK-TB", Decimal("9.00"), Decimal("4.00"), category="Backup")
    )
    assert sandbox.catalog[int(item.id)]["subcategory"]["name"] == "Backup"
    assert {p.id: p.sku for p in await client.products()}[item.id] == "BK-TB"
    with pytest.raises(ServiceError) as taken:
        await client.create_product(
            ProductSpec("Again", "bk-tb", Decimal("1"), Decimal("0"), category="Cloud")
        )
    assert taken.value.status == 400 and "identifier is already in use" in str(taken.value)
    body = await client.catalog_body(
        ProductSpec("Y" * 61, "Y1", Decimal("1"), Decimal("0"), category="Cloud")
    )
    long_description = {**body, "description": "Y" * 61}
    for bad, field in (
        ({k: v for k, v in body.items() if k != "type"}, "type"),
        (long_description, "description"),
        ({**body, "subcategory": {"id": 99}}, "subcategory"),
    ):
        response = await sandbox.handle(
            client._client.build(
                "POST",
                client._url("/procurement/catalog"),
                content=json.dumps(bad, default=str).encode(),
                headers={"Content-Type": "application/json"},
            )
        )
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == field
    await client.aclose()
