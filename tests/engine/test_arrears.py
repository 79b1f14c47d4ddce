"""RULES.md §5: multi-product endpoint counts billed in arrears (seed 003), with the day-3 rule."""

from __future__ import annotations

from datetime import date

import pytest
from builders import D, codes, findings, keys, money, plan_of, psa_line, seat_sub, the_line, usage

from engine.rules.arrears import latest_endpoint_period

PROOFPOINT = {
    "id": "pp",
    "sku": "PPT-ESS",
    "name": "Proofpoint Essentials",
    "kind": "endpoint_usage",
    "sub_products": ["Business", "Advanced"],
}
NOVEMBER = [
    usage("A1", "2020-11", 15, sub_product="Business", price="3.00", cost="2.44", snapshot_date="2020-11-19")
]
DECEMBER = [
    usage("A1", "2020-12", 17, sub_product="Business", price="3.00", cost="2.44", snapshot_date="2020-12-19"),
    usage("A1", "2020-12", 4, sub_product="Advanced", price="4.50", cost="3.60", snapshot_date="2020-12-19"),
]
BUSINESS_LINE = psa_line(
    "4001", 15, price="3.00", cost="2.44", effective="2020-07-01", sub="A1", sub_product="Business"
)


def arrears_plan(as_of: str, *, lines=(BUSINESS_LINE,), rows=NOVEMBER + DECEMBER, bindings=None):  # type: ignore[no-untyped-def]
    return plan_of(
        as_of,
        products=[PROOFPOINT],
        subs=[seat_sub("A1", product="pp", start="2020-07-01", price="0", cost="0")],
        usage_rows=list(rows),
        lines=list(lines),
        bindings=bindings or [{"vendor_product_id": "pp", "psa_product_id": "PP1"}],
    )


@pytest.mark.parametrize(
    ("as_of", "period"),
    [
        (date(2021, 1, 2), date(2020, 11, 1)),  # December's counts are not available before the 3rd
        (date(2021, 1, 3), date(2020, 12, 1)),
        (date(2021, 1, 31), date(2020, 12, 1)),
        (date(2021, 3, 1), date(2021, 1, 1)),
        (date(2021, 3, 3), date(2021, 2, 1)),
    ],
)
def test_billable_counts_of_a_month_are_available_on_day_3_of_the_next(as_of: date, period: date) -> None:
    assert latest_endpoint_period(as_of) == period


def test_seed_003_one_line_per_sub_product() -> None:
    plan = arrears_plan("2021-01-04")
    assert keys(plan) == ["A1:arrears:Advanced", "A1:arrears:Business"]
    advanced = the_line(plan, "A1:arrears:Advanced")  # Creating: no line yet
    assert (advanced.action, advanced.quantity, advanced.psa_line_id) == ("create", D(4), None)
    assert money(advanced) == (D("4.50"), D("3.60"), D("18.00"), D("14.40"))
    assert advanced.effective_date == date(2020, 7, 1)  # the subscription's start date
    assert advanced.description == "Pax8 - Proofpoint Essentials Advanced"
    business = the_line(plan, "A1:arrears:Business")  # Updating: only the quantity is pushed
    assert (business.action, business.psa_line_id, business.quantity, business.previous_quantity) == (
        "update",
        "4001",
        D(17),
        D(15),
    )
    assert money(business) == (D("3.00"), D("2.44"), D("51.00"), D("41.48"))
    assert business.effective_date == date(2020, 7, 1)
    assert (business.period_start, business.period_end) == (date(2020, 12, 1), date(2020, 12, 31))
    assert (plan.totals.price, plan.totals.cost) == (D("69.00"), D("55.88"))


def test_on_the_2nd_the_previous_month_is_billed_and_is_in_sync() -> None:
    plan = arrears_plan("2021-01-02")  # November: Business 15, which the PSA line already holds
    assert plan.lines == []
    assert plan.findings == []


def test_on_the_3rd_the_new_counts_are_billed() -> None:
    plan = arrears_plan("2021-01-03")
    assert the_line(plan, "A1:arrears:Business").quantity == D(17)


def test_a_line_holding_the_latest_count_is_in_sync() -> None:
    line = psa_line("4001", 17, price="3.00", cost="2.44", sub="A1", sub_product="Business")
    plan = arrears_plan("2021-01-04", lines=[line])
    assert keys(plan) == ["A1:arrears:Advanced"]


def test_a_sub_product_with_no_count_drops_to_zero() -> None:
    advanced = psa_line("4002", 4, price="4.50", cost="3.60", sub="A1", sub_product="Advanced")
    january = [usage("A1", "2021-01", 17, sub_product="Business", price="3.00", cost="2.44")]
    plan = arrears_plan("2021-02-03", lines=[BUSINESS_LINE, advanced], rows=january)
    line = the_line(plan, "A1:arrears:Advanced")
    assert (line.action, line.psa_line_id, line.quantity, line.previous_quantity) == (
        "update",
        "4002",
        D(0),
        D(4),
    )
    assert line.total_price == D("0.00")


def test_no_counts_for_the_period_is_usage_pending() -> None:
    plan = arrears_plan("2021-02-03")  # January has no counts
    assert plan.lines == []
    [pending] = findings(plan, "usage_pending")
    assert (pending.severity, pending.subject) == ("warning", {"subscription_id": "A1"})
    assert "2021-01" in pending.message


def test_a_sub_product_binding_sets_product_and_prices() -> None:
    bindings = [
        {"vendor_product_id": "pp", "psa_product_id": "PP1"},
        {
            "vendor_product_id": "pp",
            "sub_product": "Advanced",
            "psa_product_id": "PP2",
            "unit_price": "5.00",
            "unit_cost": "3.90",
        },
    ]
    plan = arrears_plan("2021-01-04", bindings=bindings)
    advanced = the_line(plan, "A1:arrears:Advanced")
    assert advanced.psa_product_id == "PP2"
    assert money(advanced) == (D("5.00"), D("3.90"), D("20.00"), D("15.60"))


def test_an_unbound_endpoint_product_is_product_not_bound() -> None:
    plan = arrears_plan("2021-01-04", bindings=[{"vendor_product_id": "other", "psa_product_id": "PP1"}])
    assert plan.lines == []
    assert "product_not_bound" in codes(plan)
