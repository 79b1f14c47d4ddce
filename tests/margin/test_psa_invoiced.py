"""What the PSA invoiced (issue 14 item 2): on the demo MSP, for each of the three PSAs, the real
connector reads the sandbox's invoices through `trueup margin`'s refresh, the check uses them for
every customer the PSA invoiced, ties out to the cent, still finds every planted leak, and finds the
one only the invoiced read can catch (an invoice 2 seats short of the line in force). The rules of
engine.margin.check for invoiced lines, one by one."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from engine.margin import MarginReport, three_way_check
from engine.margin.psa_invoices import PsaInvoiceLine, invoice_lines_in_force
from engine.margin.store import (
    load_invoices,
    marks,
    psa_invoiced_for_check,
    refresh_invoices,
    refresh_psa_invoiced_if_able,
)
from engine.reconcile import reconcile
from engine.sandbox.demo import (
    DEMO_MARGIN_LEAKS,
    DEMO_PSA_SHORT_SEATS,
    build_demo_invoices,
    build_demo_scenario,
    planted_short_invoice_line,
)
from engine.scenario import Scenario
from engine.workspace import Workspace

D = Decimal
MONTH = "2026-11"
TODAY = date(2026, 11, 21)


async def _checked(psa: str) -> tuple[Scenario, MarginReport, list[str] | None]:
    ws = Workspace.sandbox_from_scenario(build_demo_scenario(psa=psa))
    try:
        await ws.refresh()
        await refresh_invoices(ws.store, ws.vendor, TODAY)  # type: ignore[arg-type]
        months = await refresh_psa_invoiced_if_able(ws.store, ws.psa, TODAY)
        scenario = ws.store.snapshot(TODAY)
        report = three_way_check(
            scenario,
            load_invoices(ws.store),
            MONTH,
            marks=marks(ws.store),
            plan=ws.plan(),
            psa_invoiced=psa_invoiced_for_check(ws.store, psa),
        )
    finally:
        await ws.aclose()
    return scenario, report, months


@pytest.fixture(scope="module", params=["connectwise", "halopsa", "autotask"])
def checked(request: pytest.FixtureRequest) -> tuple[str, Scenario, MarginReport, list[str] | None]:
    import asyncio

    return (request.param, *asyncio.run(_checked(request.param)))


def test_read_twelve_months_and_every_invoiced_customer_says_so(checked) -> None:  # type: ignore[no-untyped-def]
    psa, _, report, months = checked
    assert months is not None and months[0] == "2025-12" and months[-1] == "2026-11"
    assert report.psa_source.startswith(f"the PSA's invoices of {MONTH} for ")
    sources = {c.company_name: c.psa_billed_from for c in report.customers}
    assert "invoices" in sources.values()
    # a customer the PSA issued nothing to (no line in force: its only agreement ended) says so
    assert sources["Riverside Montessori School"] == "lines in force"


def test_ties_out_to_the_cent_with_invoiced_reads(checked) -> None:  # type: ignore[no-untyped-def]
    _, _, report, _ = checked
    assert report.status == "audited" and report.ties_out
    (usd,) = report.totals
    assert usd.cost == usd.invoice_total and usd.price == usd.psa_total
    assert not [r for r in report.rows if r.cls == "unexplained"]


def test_every_planted_leak_is_still_found(checked) -> None:  # type: ignore[no-untyped-def]
    _, _, report, _ = checked
    assert set(DEMO_MARGIN_LEAKS) <= {r.cls for r in report.rows}
    (row,) = [
        r for r in report.rows if r.company_name == "Harborview Family Dental" and r.cls == "quantity_differs"
    ]
    assert (row.vendor_quantity, row.psa_quantity) == (D(18), D(15))


def test_the_short_invoice_only_the_invoiced_read_catches(checked) -> None:  # type: ignore[no-untyped-def]
    psa, scenario, report, _ = checked
    line_id = planted_short_invoice_line(scenario)
    assert line_id is not None
    line = next(x for x in scenario.psa.lines if x.id == line_id)
    sid = line.source.subscription_id  # type: ignore[union-attr]
    (row,) = [r for r in report.rows if r.subscription_id == sid]
    assert row.cls == "quantity_differs", (psa, row)
    assert row.psa_quantity == line.quantity - DEMO_PSA_SHORT_SEATS
    assert row.vendor_quantity == line.quantity
    assert row.price == (line.quantity - DEMO_PSA_SHORT_SEATS) * line.unit_price
    assert f"the PSA bills {line.quantity - DEMO_PSA_SHORT_SEATS}" in row.reason
    # from the lines in force the same subscription looks matched: the leak is invisible there
    plain = three_way_check(scenario, build_demo_invoices(scenario), MONTH, plan=reconcile(scenario))
    (before,) = [r for r in plain.rows if r.subscription_id == sid]
    assert before.cls == "matched" and before.psa_quantity == line.quantity
    assert plain.psa_source == "lines in force (the PSA's own invoices are not read)"
    assert {c.psa_billed_from for c in plain.customers} == {"lines in force"}


# --- the rules, on small worlds ------------------------------------------------------------------


def _world() -> Scenario:
    return Scenario.model_validate(
        {
            "as_of": "2026-11-21",
            "vendor": {
                "companies": [{"id": "c1", "name": "Acme"}, {"id": "c2", "name": "Bolt"}],
                "products": [{"id": "p1", "name": "M365 Basic"}],
                "subscriptions": [
                    {
                        "id": sid,
                        "company_id": company,
                        "product_id": "p1",
                        "start_date": "2026-01-01",
                        "unit_price": "10.00",
                        "unit_cost": "7.00",
                        "history": [
                            {
                                "id": f"{sid}-h",
                                "action": "initial",
                                "quantity": "10",
                                "effective_date": "2026-01-01",
                            }
                        ],
                    }
                    for sid, company in (("s1", "c1"), ("s2", "c2"))
                ],
            },
            "psa": {
                "companies": [{"id": "P1", "name": "Acme"}, {"id": "P2", "name": "Bolt"}],
                "products": [{"id": "PP1", "name": "M365 Basic"}],
                "agreements": [
                    {"id": "A1", "company_id": "P1", "name": "Acme", "start_date": "2020-01-01"},
                    {"id": "A2", "company_id": "P2", "name": "Bolt", "start_date": "2020-01-01"},
                ],
                "lines": [
                    {
                        "id": lid,
                        "agreement_id": agreement,
                        "product_id": "PP1",
                        "quantity": "10",
                        "unit_price": "10.00",
                        "unit_cost": "7.00",
                        "effective_date": "2026-01-01",
                        "source": {"subscription_id": sid, "key": f"{sid}:recurring"},
                    }
                    for lid, agreement, sid in (("L1", "A1", "s1"), ("L2", "A2", "s2"))
                ],
            },
            "mappings": {
                "companies": [{"vendor_id": "c1", "psa_id": "P1"}, {"vendor_id": "c2", "psa_id": "P2"}],
                "products": [{"vendor_product_id": "p1", "psa_product_id": "PP1"}],
            },
        }
    )


def _distributor(scenario: Scenario) -> list[object]:
    from engine.margin import DistributorInvoice, InvoiceItem

    items = tuple(
        InvoiceItem(
            id=f"i{n}",
            invoice_id="X",
            type="subscription",
            company_id=sub.company_id,
            subscription_id=sub.id,
            product_id="p1",
            product_name="M365 Basic",
            start_period=date(2026, 11, 1),
            end_period=date(2026, 11, 30),
            quantity=D(10),
            price=D("10.00"),
            cost=D("7.00"),
            cost_total=D("70.00"),
            sub_total=D("100.00"),
            currency="USD",
            term="Monthly",
        )
        for n, sub in enumerate(scenario.vendor.subscriptions)
    )
    return [DistributorInvoice("X", date(2026, 11, 5), "Unpaid", D("140.00"), "USD", items)]


def _invoiced(**change: object) -> PsaInvoiceLine:
    base: dict[str, object] = {
        "invoice_id": "9001",
        "invoice_number": "INV9001",
        "invoice_date": date(2026, 11, 1),
        "company_id": "P1",
        "agreement_id": "A1",
        "line_id": "L1",
        "product_id": "PP1",
        "description": "M365 Basic",
        "quantity": D(10),
        "unit_price": D("10.00"),
        "amount": D("100.00"),
        "currency": "USD",
    }
    base.update(change)
    return PsaInvoiceLine(**base)  # type: ignore[arg-type]


def test_the_invoice_replaces_the_line_only_for_the_customer_it_invoiced() -> None:
    world = _world()
    report = three_way_check(
        world,
        _distributor(world),  # type: ignore[arg-type]
        "2026-11",
        psa_invoiced=[_invoiced(quantity=D(8), amount=D("80.00"))],
    )
    by_sub = {r.subscription_id: r for r in report.rows}
    assert by_sub["s1"].cls == "quantity_differs" and by_sub["s1"].price == D("80.00")
    assert by_sub["s2"].cls == "matched" and by_sub["s2"].price == D("100.00")  # its line in force
    sources = {c.company_id: c.psa_billed_from for c in report.customers}
    assert sources == {"c1": "invoices", "c2": "lines in force"}
    assert report.ties_out and report.totals[0].psa_total == D("180.00")


def test_the_invoice_amount_is_taken_as_written() -> None:
    world = _world()
    # an invoice that rounds its own way (a credit of 0.01): PSA billed is what it says
    report = three_way_check(
        world,
        _distributor(world),  # type: ignore[arg-type]
        "2026-11",
        psa_invoiced=[_invoiced(amount=D("99.99"))],
    )
    (row,) = [r for r in report.rows if r.subscription_id == "s1"]
    assert row.price == D("99.99") and report.ties_out


def test_a_line_by_agreement_and_product_when_the_psa_names_no_line() -> None:
    world = _world()
    report = three_way_check(
        world,
        _distributor(world),  # type: ignore[arg-type]
        "2026-11",
        psa_invoiced=[_invoiced(line_id=None)],
    )
    (row,) = [r for r in report.rows if r.subscription_id == "s1"]
    assert row.cls == "matched" and row.price == D("100.00")


def test_an_invoiced_vendor_product_no_line_stands_behind_is_billed_without_cost() -> None:
    world = _world()
    extra = _invoiced(line_id=None, agreement_id="A9", description="stray seats", amount=D("30.00"))
    report = three_way_check(
        world,
        _distributor(world),  # type: ignore[arg-type]
        "2026-11",
        psa_invoiced=[_invoiced(), extra],
    )
    (stray,) = [r for r in report.rows if r.subscription_id is None]
    assert stray.cls == "billed_without_cost" and stray.price == D("30.00") and stray.company_id == "c1"
    assert report.ties_out


def test_invoices_of_another_month_change_nothing() -> None:
    world = _world()
    report = three_way_check(
        world,
        _distributor(world),  # type: ignore[arg-type]
        "2026-11",
        psa_invoiced=[_invoiced(invoice_date=date(2026, 10, 1), quantity=D(1), amount=D("10.00"))],
    )
    assert {r.cls for r in report.rows} == {"matched"}
    assert report.psa_source == "lines in force (the PSA issued no invoice for 2026-11)"


def test_the_reference_biller_invoices_each_line_in_force_once_a_month() -> None:
    world = _world()
    lines = invoice_lines_in_force(world, ["2026-10", "2026-11"])
    assert [(x.month, x.company_id, x.line_id, x.amount) for x in lines] == [
        ("2026-10", "P1", "L1", D("100.00")),
        ("2026-10", "P2", "L2", D("100.00")),
        ("2026-11", "P1", "L1", D("100.00")),
        ("2026-11", "P2", "L2", D("100.00")),
    ]
    assert len({x.invoice_id for x in lines}) == 4


def test_an_invoice_billing_one_line_twice_counts_both() -> None:
    world = _world()
    report = three_way_check(
        world,
        _distributor(world),  # type: ignore[arg-type]
        "2026-11",
        psa_invoiced=[_invoiced(), _invoiced(quantity=D(-2), amount=D("-20.00"))],  # a correction line
    )
    (row,) = [r for r in report.rows if r.subscription_id == "s1"]
    assert row.price == D("80.00") and row.psa_quantity == D(8) and row.cls == "quantity_differs"
    assert report.ties_out
