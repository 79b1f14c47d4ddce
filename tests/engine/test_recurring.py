"""RULES.md §1: one recurring seat line per (subscription, agreement): create, update or in sync."""

from __future__ import annotations

from datetime import date

from builders import AGREEMENT, D, keys, money, plan_of, psa_line, seat_plan, seat_sub, synced, the_line

LONG_NAME = "Microsoft Office 365 Enterprise E3 - Includes Exchange Email and Desktop Office Suite"


def test_create_when_the_agreement_has_no_line() -> None:
    plan = seat_plan("2020-09-15", ("2020-07-01", 1), ("2020-09-09", 2), price="25.00", cost="20.00")
    line = the_line(plan, "S1:recurring")
    assert (line.kind, line.action, line.psa_line_id) == ("recurring", "create", None)
    assert (line.psa_agreement_id, line.psa_product_id, line.company_id) == ("AG1", "PP1", "acme")
    assert line.quantity == D(2)
    assert money(line) == (D("25.00"), D("20.00"), D("50.00"), D("40.00"))
    assert (line.effective_date, line.end_date) == (date(2020, 10, 1), None)


def test_binding_prices_override_the_vendors() -> None:
    plan = seat_plan(
        "2020-09-15",
        ("2020-07-01", 1),
        ("2020-09-09", 2),
        price="25.00",
        cost="20.00",
        bindings=[
            {
                "vendor_product_id": "seat",
                "psa_product_id": "PP1",
                "unit_price": "30.00",
                "unit_cost": "19.00",
            }
        ],
    )
    assert money(the_line(plan, "S1:recurring")) == (D("30.00"), D("19.00"), D("60.00"), D("38.00"))
    # the prorate follows: 21/30 × $30 = $21.00, × $19 = $13.30
    assert money(the_line(plan, "S1:prorate:2020-09-09")) == (D("21.00"), D("13.30"), D("21.00"), D("13.30"))


def test_update_changes_only_the_quantity() -> None:
    plan = seat_plan(
        "2020-09-20",
        ("2019-01-01", 270),
        ("2020-08-05", 283),
        billed=270,
        line_price="5.50",
        line_cost="4.75",
        description="Essentials for Ace",
    )
    line = the_line(plan, "S1:recurring")
    assert (line.action, line.psa_line_id, line.quantity, line.previous_quantity) == (
        "update",
        "L1",
        D(283),
        D(270),
    )
    assert money(line) == (D("5.50"), D("4.75"), D("1556.50"), D("1344.25"))  # the PSA line's prices stay
    assert line.effective_date == date(2019, 2, 1)  # an update keeps the line's effective date
    assert line.description == "Essentials for Ace"


def test_a_line_already_holding_the_quantity_is_in_sync_and_left_out() -> None:
    plan = seat_plan("2020-09-20", ("2019-01-01", 270), billed=270)
    assert plan.lines == []
    assert plan.totals.price == D("0.00")


def test_a_line_cancelled_within_this_month_is_not_updated_a_new_one_is_created() -> None:
    ending = psa_line("L1", 5, sub="S1", cancelled="2020-09-30")
    plan = seat_plan("2020-09-20", ("2019-01-01", 5), lines=[ending])
    line = the_line(plan, "S1:recurring")
    assert (line.action, line.psa_line_id, line.effective_date) == ("create", None, date(2020, 10, 1))
    assert line.quantity == D(5)


def test_a_line_cancelled_after_this_month_is_updated() -> None:
    ending = psa_line("L1", 5, sub="S1", cancelled="2020-12-31")
    plan = seat_plan("2020-09-20", ("2019-01-01", 5), ("2020-09-10", 6), lines=[ending])
    line = the_line(plan, "S1:recurring")
    assert (line.action, line.psa_line_id, line.quantity) == ("update", "L1", D(6))


def test_create_new_cancels_the_old_line_the_day_before() -> None:
    plan = seat_plan(
        "2020-09-20",
        ("2019-01-01", 270),
        ("2020-09-10", 280),
        billed=270,
        overrides=[{"key": "S1:recurring", "create_new": True}],
    )
    line = the_line(plan, "S1:recurring")
    assert (line.action, line.psa_line_id, line.replaces_line_id) == ("create", None, "L1")
    assert (line.quantity, line.previous_quantity, line.effective_date) == (D(280), D(270), date(2020, 10, 1))
    assert line.total_price == D("1680.00")


def test_connectwise_description_is_cut_to_50_characters() -> None:
    product = {"id": "seat", "name": LONG_NAME, "kind": "seat"}
    plan = seat_plan("2020-09-15", ("2020-07-01", 1), ("2020-09-09", 2), products=[product])
    description = the_line(plan, "S1:recurring").description
    assert description == ("Pax8 - " + LONG_NAME)[:50] == "Pax8 - Microsoft Office 365 Enterprise E3 - Includ"
    assert the_line(plan, "S1:prorate:2020-09-09").description == (
        "Pax8 - Microsoft Office 365 Enterprise E3 - Includ - Prorated for 09/09/2020-09/30/2020"
    )


def test_halopsa_keeps_the_whole_description() -> None:
    product = {"id": "seat", "name": LONG_NAME, "kind": "seat"}
    plan = seat_plan(
        "2020-09-15", ("2020-07-01", 1), ("2020-09-09", 2), products=[product], settings={"psa": "halopsa"}
    )
    assert the_line(plan, "S1:recurring").description == "Pax8 - " + LONG_NAME


def test_an_annual_subscription_gets_its_recurring_line_but_no_prorates() -> None:
    annual_agreement = {
        "id": "AGY",
        "company_id": "P1",
        "name": "Acme Annual",
        "start_date": "2015-01-01",
        "billing_period": "annual",
    }
    sub = seat_sub("S1", ("2020-01-01", 2), ("2020-09-09", 4), price="120.00", cost="96.00", term="annual")
    plan = plan_of(
        "2020-09-15", subs=[sub], agreements=[annual_agreement], synced_keys=[synced("S1:prorate:2020-01-01")]
    )
    line = the_line(plan, "S1:recurring")
    assert (line.psa_agreement_id, line.quantity, line.total_price) == ("AGY", D(4), D("480.00"))
    assert keys(plan, "prorate") == keys(plan, "extra_months") == []


def test_a_subscription_without_history_proposes_nothing() -> None:
    plan = plan_of("2020-09-15", subs=[seat_sub("S1")])
    assert plan.lines == [] and plan.findings == []


def test_a_line_on_an_older_agreement_is_updated_where_it_is_not_billed_twice() -> None:
    """The customer's newer agreement is where new lines go, but the subscription's own line lives on
    the older one: that line is updated in place — a second recurring line on the newer agreement
    would bill every seat twice."""
    newer = {
        "id": "AG2",
        "company_id": "P1",
        "name": "Acme 2026",
        "start_date": "2020-01-01",
        "billing_period": "monthly",
    }
    plan = plan_of(
        "2020-09-20",
        subs=[seat_sub("S1", ("2019-01-01", 270), ("2020-08-05", 283))],
        lines=[psa_line("L1", 270, sub="S1", agreement="AG1")],
        agreements=[AGREEMENT, newer],
        synced_keys=[synced("S1:prorate:2019-01-01")],
    )
    recurring = the_line(plan, "S1:recurring")
    assert (recurring.action, recurring.psa_line_id, recurring.psa_agreement_id) == ("update", "L1", "AG1")
    assert recurring.quantity == D(283)
    extra = [line for line in plan.lines if line.kind == "extra_months"]
    assert [(line.quantity, line.psa_agreement_id) for line in extra] == [(D(13), "AG1")]
    assert {line.psa_agreement_id for line in plan.lines} == {"AG1"}
