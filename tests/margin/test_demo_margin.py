"""The three-way check on the demo MSP: it ties out to the cent against the sandbox's invoices, and
every planted leak (engine.sandbox.demo.DEMO_MARGIN_LEAKS) is found with its reason."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from engine.margin import MarginReport, Mark, three_way_check
from engine.reconcile import reconcile
from engine.sandbox.demo import DEMO_MARGIN_LEAKS, build_demo_invoices, build_demo_scenario
from engine.scenario import Ignore

D = Decimal
MONTH = "2026-11"


@pytest.fixture(scope="module")
def demo() -> tuple[object, list[object]]:
    scenario = build_demo_scenario()
    return scenario, build_demo_invoices(scenario)


@pytest.fixture(scope="module")
def report(demo: tuple[object, list[object]]) -> MarginReport:
    scenario, invoices = demo
    return three_way_check(scenario, invoices, MONTH, plan=reconcile(scenario))  # type: ignore[arg-type]


def rows_of(report: MarginReport, company: str, product: str | None = None, cls: str | None = None) -> list:
    return [
        r
        for r in report.rows
        if r.company_name == company
        and (product is None or r.product == product)
        and (cls is None or r.cls == cls)
    ]


def test_ties_out_to_the_cent(report: MarginReport) -> None:
    assert report.status == "audited"
    (usd,) = report.totals
    assert usd.currency == "USD"
    assert usd.cost == usd.invoice_total == sum(i.total for i in report.invoices)
    assert usd.price == usd.psa_total
    assert usd.invoice_total > D("50000") and usd.psa_total > D("50000")
    assert report.ties_out
    assert not [r for r in report.rows if r.cls == "unexplained"]


def test_credited_invoice_is_listed_not_summed(report: MarginReport) -> None:
    assert [i.status for i in report.replaced] == ["Credited"]
    assert [i.status for i in report.invoices] == ["Unpaid"]
    assert report.replaced[0].total != report.invoices[0].total


def test_every_planted_class_is_there(report: MarginReport) -> None:
    found = {r.cls for r in report.rows}
    assert set(DEMO_MARGIN_LEAKS) <= found


def test_not_billed_onward(report: MarginReport) -> None:
    (row,) = rows_of(report, "Riverside Montessori School", "Microsoft 365 Business Basic")
    assert row.cls == "not_billed_onward" and row.price == 0 and row.cost == D("107.10")
    assert "no PSA line bills it" in row.reason


def test_billed_without_cost(report: MarginReport) -> None:
    (row,) = rows_of(report, "Lakeside Community Food Bank", "Exchange Online (Plan 1)")
    assert row.cls == "billed_without_cost" and row.cost == 0 and row.price == D("48.00")
    assert "cancelled at the distributor on 2026-10-15" in row.reason


def test_quantity_differs(report: MarginReport) -> None:
    (row,) = rows_of(report, "Harborview Family Dental", "Microsoft 365 Business Premium")
    assert row.cls == "quantity_differs"
    assert (row.vendor_quantity, row.psa_quantity) == (D(18), D(15))
    assert row.cost == D("336.60") and row.price == D("330.00")
    assert "the plan bills 18" in row.reason


def test_price_below_cost_and_margin_floor(report: MarginReport) -> None:
    (below,) = [r for r in report.rows if r.cls == "price_below_cost"]
    assert "$22.00 a unit" in below.reason and "$23.10" in below.reason
    assert below.margin < 0
    floors = [
        r
        for r in report.rows
        if r.cls == "margin_below_floor" and r.product == "Microsoft 365 Business Premium"
    ]
    assert len(floors) == 1 and "5.0 %" in floors[0].reason


def test_timing_for_a_synced_prorate(report: MarginReport) -> None:
    timing = [r for r in report.rows if r.cls == "timing" and "synced" in r.reason]
    assert timing and all(r.price == 0 and r.cost > 0 for r in timing)


def test_partner_charge(report: MarginReport) -> None:
    (fee,) = [r for r in report.rows if r.cls == "partner_charge"]
    assert fee.cost == D("25.00") and fee.subscription_id is None


def test_ignored_and_internal_use(demo: tuple[object, list[object]]) -> None:
    scenario, invoices = demo
    target = rows_of(three_way_check(scenario, invoices, MONTH), "Harborview Family Dental")[0]  # type: ignore[arg-type]
    other = rows_of(three_way_check(scenario, invoices, MONTH), "Riverside Montessori School")[0]  # type: ignore[arg-type]
    ignored = scenario.model_copy(  # type: ignore[attr-defined]
        update={
            "ignored": [
                *scenario.ignored,  # type: ignore[attr-defined]
                Ignore(key=target.subscription_id, by="dana", on=date(2026, 11, 20), reason="bundle"),
            ]
        }
    )
    marks = {other.subscription_id: Mark(other.subscription_id, "lee", date(2026, 11, 20), "our own seats")}
    report = three_way_check(ignored, invoices, MONTH, marks=marks)  # type: ignore[arg-type]
    (row,) = rows_of(report, "Harborview Family Dental", target.product)
    assert row.cls == "ignored" and row.reason == "ignored by dana on 2026-11-20: bundle"
    mine = rows_of(report, "Riverside Montessori School", other.product)
    assert [r.cls for r in mine] == ["internal_use"] and "lee" in mine[0].reason
    assert report.ties_out


def test_a_month_with_no_invoice_is_not_audited(demo: tuple[object, list[object]]) -> None:
    scenario, invoices = demo
    report = three_way_check(scenario, invoices, "2026-12")  # type: ignore[arg-type]
    assert report.status == "not_audited" and report.rows == ()
    assert report.totals[0].psa_total > 0 and report.totals[0].invoice_total == 0


def test_customers_carry_margin(report: MarginReport) -> None:
    customers = {c.company_name: c for c in report.customers}
    harbor = customers["Harborview Family Dental"]
    assert harbor.price - harbor.cost == harbor.margin
    assert sum(c.cost for c in report.customers) == report.totals[0].cost
    assert sum(c.price for c in report.customers) == report.totals[0].price
