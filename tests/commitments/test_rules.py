"""Commitment terms and cancellation windows (issue 15): the rules of engine.rules.commitments as an
operator reads them in the plan's findings. as_of 2026-11-21, invoiced through 2026-11-30: every
line this sync writes takes effect on 2026-12-01."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from builders import build, psa_line, seat_sub, world

from engine.reconcile import reconcile
from engine.rules.commitments import remaining_periods, renewals
from engine.scenario import Commitment

AS_OF = "2026-11-21"
ANNUAL_AGREEMENT = {
    "id": "AG2",
    "company_id": "P1",
    "name": "Acme Annual",
    "start_date": "2015-01-01",
    "billing_period": "annual",
}


def commitment(
    sub_id: str = "S1", term: str = "annual", end: str | None = "2027-06-30", **extra: Any
) -> dict[str, Any]:
    return {"subscription_id": sub_id, "term": term, "end_date": end, **extra}


def plan_for(subs: list[dict[str, Any]], commitments: list[dict[str, Any]], **kwargs: Any):  # type: ignore[no-untyped-def]
    data = world(AS_OF, subs=subs, **kwargs)
    data["vendor"]["commitments"] = commitments
    return reconcile(build_from(data))


def build_from(data: dict[str, Any]):  # type: ignore[no-untyped-def]
    from engine.scenario import Scenario

    return Scenario.model_validate(data, context={"source": "file"})


def codes(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in plan.findings]


def decrease_on_annual(term: str = "annual", billing: str = "monthly", **extra: Any):  # type: ignore[no-untyped-def]
    """10 seats since July, 8 since 2026-11-10; the PSA still bills 10 at $22.00 (vendor cost $18.00)."""
    price, cost = ("22.00", "18.00") if billing == "monthly" else ("264.00", "216.00")
    agreement = "AG1" if billing == "monthly" else "AG2"
    return plan_for(
        [seat_sub("S1", ("2026-07-01", 10), ("2026-11-10", 8), price=price, cost=cost, term=billing)],
        [commitment(term=term, **extra)],
        lines=[
            psa_line("L1", 10, price=price, cost=cost, effective="2026-07-01", sub="S1", agreement=agreement)
        ],
        agreements=[world(AS_OF)["psa"]["agreements"][0], ANNUAL_AGREEMENT],
    )


def test_a_seat_added_three_days_ago_shows_reducible_until_its_instant() -> None:
    plan = plan_for(
        [seat_sub("S1", ("2026-07-01", 10), ("2026-11-18", 12), price="22.00", cost="18.00")],
        [
            commitment(
                seat_additions=[
                    {"at": "2026-07-01T14:00:00Z", "quantity": "10"},
                    {"at": "2026-11-18T09:30:00Z", "quantity": "2"},
                ]
            )
        ],
        lines=[psa_line("L1", 10, price="22.00", cost="18.00", effective="2026-07-01", sub="S1")],
    )
    [found] = [f for f in plan.findings if f.code == "seats_reducible_until"]
    assert "2 seat(s) added 2026-11-18 09:30 UTC are reducible until 2026-11-25 09:30 UTC" in found.message
    assert found.subject == {"subscription_id": "S1", "added_at": "2026-11-18 09:30 UTC"}


def test_an_offset_instant_is_reported_in_utc_and_an_addition_older_than_168_hours_is_not() -> None:
    plan = plan_for(
        [seat_sub("S1", ("2026-07-01", 10), ("2026-11-14", 11), ("2026-11-19", 12))],
        [
            commitment(
                seat_additions=[
                    {"at": "2026-11-14T01:00:00+01:00", "quantity": "1"},  # 168 h end 11-21 00:00 UTC
                    {"at": "2026-11-19T20:15:00-05:00", "quantity": "1"},
                ]
            )
        ],
        lines=[psa_line("L1", 10, effective="2026-07-01", sub="S1")],
    )
    found = [f.message for f in plan.findings if f.code == "seats_reducible_until"]
    assert len(found) == 1
    assert "reducible until 2026-11-27 01:15 UTC" in found[0]


def test_a_decrease_on_an_annual_term_outside_its_window_raises_the_cost_that_continues() -> None:
    plan = decrease_on_annual()
    [line] = [line for line in plan.lines if line.key == "S1:recurring"]
    assert (line.previous_quantity, line.quantity) == (Decimal(10), Decimal(8))
    [found] = [f for f in plan.findings if f.code == "commitment_cost_continues"]
    # Periods of the term starting on or after 2026-12-01: Dec … Jun = 7; 2 seats.
    assert "the MSP still pays $252.00 over 7 month(s)" in found.message  # 2 × $18.00 × 7
    assert "the customer will no longer be billed $308.00" in found.message  # 2 × $22.00 × 7
    assert found.severity == "warning"
    assert found.subject == {"subscription_id": "S1", "key": "S1:recurring"}


def test_an_annual_term_paid_up_front_counts_its_yearly_cost_by_the_month() -> None:
    plan = decrease_on_annual(billing="annual")
    [found] = [f for f in plan.findings if f.code == "commitment_cost_continues"]
    assert "the MSP still pays $252.00 over 7 month(s)" in found.message  # 2 × $216.00 / 12 × 7
    assert "no longer be billed $308.00" in found.message


def test_a_three_year_term_counts_every_remaining_month() -> None:
    plan = decrease_on_annual(term="three_year", end="2028-06-30")
    [found] = [f for f in plan.findings if f.code == "commitment_cost_continues"]
    assert "$684.00 over 19 month(s)" in found.message  # Dec 2026 … Jun 2028: 2 × $18.00 × 19


def test_a_decrease_inside_the_renewal_window_or_allowed_by_the_product_costs_nothing_more() -> None:
    inside = decrease_on_annual(end="2026-11-18", window_days_after=7)  # window 11-18 … 11-25
    assert "commitment_cost_continues" not in codes(inside)
    assert "renewal_window_open" in codes(inside)
    allowed = decrease_on_annual(allow_decrease=True)
    assert "commitment_cost_continues" not in codes(allowed)


def test_a_cancellation_outside_the_window_raises_the_cost_of_every_seat() -> None:
    plan = plan_for(
        [
            seat_sub(
                "S1",
                ("2026-07-01", 10),
                ("2026-11-10", 0, "cancel"),
                price="22.00",
                cost="18.00",
                status="cancelled",
                cancelled_date="2026-11-10",
            )
        ],
        [commitment(cancellation_fee=True)],
        lines=[psa_line("L1", 10, price="22.00", cost="18.00", effective="2026-07-01", sub="S1")],
    )
    [found] = [f for f in plan.findings if f.code == "commitment_cost_continues"]
    # The line ends 2026-11-30; periods from 2026-12-01 to the term's end: 7, all 10 seats.
    assert "cancels billing by 10 seat(s)" in found.message
    assert "$1,260.00 over 7 month(s)" in found.message
    assert "A cancellation fee applies." in found.message


def test_seats_inside_their_168_hours_are_not_counted_in_the_cost() -> None:
    plan = plan_for(
        [
            seat_sub(
                "S1", ("2026-07-01", 10), ("2026-11-18", 12), ("2026-11-20", 9), price="22.00", cost="18.00"
            )
        ],
        [commitment(seat_additions=[{"at": "2026-11-18T09:30:00Z", "quantity": "2"}])],
        lines=[psa_line("L1", 10, price="22.00", cost="18.00", effective="2026-07-01", sub="S1")],
    )
    [found] = [f for f in plan.findings if f.code == "commitment_cost_continues"]
    # The term binds 10 (12 held, 2 still inside their 168 hours); the PSA goes 10 → 9: 1 seat.
    assert "reduces billing by 1 seat(s)" in found.message
    assert "$126.00 over 7 month(s)" in found.message


def test_a_renewal_ten_days_away_is_listed_with_its_window_and_warned() -> None:
    subs = [seat_sub("S1", ("2025-12-01", 10), price="22.00", cost="18.00")]
    commitments = [commitment(end="2026-12-01", window_days_before=0, window_days_after=7)]
    plan = plan_for(subs, commitments, lines=[psa_line("L1", 10, price="22.00", cost="18.00", sub="S1")])
    [found] = [f for f in plan.findings if f.code == "renewal_in_n_days"]
    assert "renews automatically in 10 day(s)" in found.message
    assert "2026-12-01–2026-12-08, closing in 17 day(s)" in found.message
    data = world(AS_OF, subs=subs)
    data["vendor"]["commitments"] = commitments
    [row] = renewals(build_from(data), today=date(2026, 11, 21), within_days=14)
    assert (row.window.opens, row.window.closes, row.state) == (
        date(2026, 12, 1),
        date(2026, 12, 8),
        "upcoming",
    )
    assert row.monthly_cost == Decimal("180.00")
    assert renewals(build_from(data), today=date(2026, 11, 21), within_days=9) == []


def test_the_notice_days_are_a_setting() -> None:
    subs = [seat_sub("S1", ("2025-12-01", 10))]
    commitments = [commitment(end="2026-12-01")]
    lines = [psa_line("L1", 10, sub="S1")]
    assert "renewal_in_n_days" in codes(plan_for(subs, commitments, lines=lines))
    quiet = plan_for(subs, commitments, lines=lines, settings={"renewal_notice_days": 5})
    assert "renewal_in_n_days" not in codes(quiet)


def test_an_open_window_gives_the_days_left_counting_the_closing_day() -> None:
    plan = plan_for(
        [seat_sub("S1", ("2025-11-15", 10))],
        [commitment(end="2026-11-14", window_days_after=7)],  # window 11-14 … 11-21: today is the last day
        lines=[psa_line("L1", 10, sub="S1")],
    )
    [found] = [f for f in plan.findings if f.code == "renewal_window_open"]
    assert "open (2026-11-14–2026-11-21): 1 day(s) left" in found.message
    assert "renewal_in_n_days" not in codes(plan)


def test_idle_seats_on_a_committed_term_are_reducible_at_renewal() -> None:
    """The customer dropped to 8; the MSP cut the PSA line by hand; the vendor still charges 10."""
    plan = plan_for(
        [seat_sub("S1", ("2026-07-01", 10), price="22.00", cost="18.00")],
        [commitment(window_days_before=0, window_days_after=7)],
        lines=[psa_line("L1", 8, price="22.00", cost="18.00", effective="2026-07-01", sub="S1")],
        ignored=[{"key": "S1:recurring", "by": "ops", "on": "2026-11-20"}],
    )
    [found] = [f for f in plan.findings if f.code == "seats_reducible_at_renewal"]
    assert "2 seat(s) more than the customer is billed ($36.00 a month)" in found.message
    assert "reducible at renewal on 2026-06-30 (window 2026-06-30–2026-07-07)" not in found.message
    assert "reducible at renewal on 2027-06-30 (window 2027-06-30–2027-07-07)" in found.message


@pytest.mark.parametrize("term", ["monthly", "trial"])
def test_monthly_terms_and_trials_raise_none_of_these(term: str) -> None:
    plan = plan_for(
        [seat_sub("S1", ("2026-07-01", 10), ("2026-11-18", 12), ("2026-11-20", 8))],
        [
            commitment(
                term=term,
                end="2026-12-01",
                seat_additions=[{"at": "2026-11-18T09:30:00Z", "quantity": "2"}],
            )
        ],
        lines=[psa_line("L1", 10, effective="2026-07-01", sub="S1")],
    )
    assert codes(plan) == []
    assert any(line.key == "S1:recurring" for line in plan.lines)


def test_without_commitment_data_the_plan_is_unchanged() -> None:
    subs = [seat_sub("S1", ("2026-07-01", 10), ("2026-11-10", 8))]
    lines = [psa_line("L1", 10, effective="2026-07-01", sub="S1")]
    assert reconcile(build(AS_OF, subs=subs, lines=lines)) == plan_for(subs, [], lines=lines)


def test_remaining_periods_follow_the_terms_anniversary() -> None:
    term = Commitment(subscription_id="S1", term="annual", end_date=date(2027, 4, 14))
    # Periods start on the 15th (the day after the end, a month at a time back): 12-15 … 3-15.
    assert remaining_periods(term, date(2026, 12, 1)) == 4
    assert remaining_periods(term, date(2026, 12, 16)) == 3


def test_a_seat_addition_needs_an_instant_with_its_offset() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="timezone"):
        Commitment(
            subscription_id="S1", term="annual", seat_additions=[{"at": "2026-11-18T09:30:00", "quantity": 1}]
        )
    assert (
        Commitment(
            subscription_id="S1",
            term="annual",
            seat_additions=[{"at": datetime(2026, 11, 18, tzinfo=UTC), "quantity": 1}],
        )
        .seat_additions[0]
        .quantity
        == 1
    )
