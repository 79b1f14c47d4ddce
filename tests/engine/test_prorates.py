"""RULES.md §2: prorate lines for increases, with every (seed) figure and the calendar edge cases."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest
from builders import D, keys, money, psa_line, seat_plan, the_line

from engine.rules.prorates import factor, prorate_unit


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2020, 8, 5), Fraction(26, 31)),
        (date(2020, 8, 17), Fraction(14, 31)),
        (date(2020, 9, 9), Fraction(21, 30)),
        (date(2021, 2, 4), Fraction(24, 28)),
        (date(2024, 2, 4), Fraction(25, 29)),  # leap February
        (date(2021, 1, 17), Fraction(14, 31)),
        (date(2020, 8, 31), Fraction(0, 31)),  # last day: nothing left of the month
        (date(2020, 8, 1), Fraction(30, 31)),  # the change day itself is not counted
    ],
)
def test_factor_leaves_out_the_change_day(day: date, expected: Fraction) -> None:
    assert factor(day) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2020, 8, 5), Fraction(27, 31)),
        (date(2020, 8, 1), Fraction(31, 31)),
        (date(2020, 8, 31), Fraction(1, 31)),
        (date(2024, 2, 29), Fraction(1, 29)),
    ],
)
def test_factor_counting_the_change_day(day: date, expected: Fraction) -> None:
    assert factor(day, counts_change_day=True) == expected


@pytest.mark.parametrize(
    ("unit", "share", "expected"),
    [
        ("6.00", Fraction(26, 31), "5.03"),
        ("5.00", Fraction(26, 31), "4.19"),
        ("6.00", Fraction(14, 31), "2.71"),
        ("5.00", Fraction(14, 31), "2.26"),
        ("25.00", Fraction(21, 30), "17.50"),
        ("20.00", Fraction(21, 30), "14.00"),
        ("25.00", Fraction(24, 28), "21.43"),
        ("20.00", Fraction(24, 28), "17.14"),
        ("25.00", Fraction(11, 28), "9.82"),
        ("20.00", Fraction(11, 28), "7.86"),
        ("25.00", Fraction(14, 31), "11.29"),
        ("0.10", Fraction(1, 4), "0.03"),  # 0.025 rounds half-up, not to even
        ("0.30", Fraction(1, 4), "0.08"),  # 0.075 exactly: half-up
    ],
)
def test_prorate_unit_rounds_half_up_to_cents(unit: str, share: Fraction, expected: str) -> None:
    assert prorate_unit(D(unit), share) == D(expected)


# --- seed figures through the whole reconciliation ------------------------------------------------


def test_seed_12_seats_on_august_5th_and_1_seat_on_the_17th() -> None:
    plan = seat_plan("2020-09-20", ("2019-01-01", 270), ("2020-08-05", 282), ("2020-08-17", 283), billed=270)
    first = the_line(plan, "S1:prorate:2020-08-05")
    assert first.quantity == D(12)
    assert money(first) == (D("5.03"), D("4.19"), D("60.36"), D("50.28"))  # rounded unit first, then × 12
    second = the_line(plan, "S1:prorate:2020-08-17")
    assert second.quantity == D(1)
    assert money(second) == (D("2.71"), D("2.26"), D("2.71"), D("2.26"))


def test_seed_one_seat_on_september_9th() -> None:
    plan = seat_plan("2020-09-15", ("2020-07-01", 1), ("2020-09-09", 2), price="25.00", cost="20.00")
    line = the_line(plan, "S1:prorate:2020-09-09")
    assert line.quantity == D(1)
    assert money(line) == (D("17.50"), D("14.00"), D("17.50"), D("14.00"))


def test_seed_new_subscription_in_february_2021() -> None:
    plan = seat_plan(
        "2021-02-18", ("2021-02-04", 2), ("2021-02-17", 3), price="25.00", cost="20.00", sync_initial=False
    )
    initial = the_line(plan, "S1:prorate:2021-02-04")  # the initial order is an increase from 0
    assert initial.quantity == D(2)
    assert money(initial) == (D("21.43"), D("17.14"), D("42.86"), D("34.28"))
    added = the_line(plan, "S1:prorate:2021-02-17")
    assert added.quantity == D(1)
    assert money(added) == (D("9.82"), D("7.86"), D("9.82"), D("7.86"))
    assert plan.totals.price == D("127.68")  # 75.00 recurring + 42.86 + 9.82
    assert plan.totals.cost == D("102.14")


def test_seed_fourteen_of_thirty_one_days_of_25_dollars() -> None:
    plan = seat_plan(
        "2021-01-18",
        ("2020-12-01", 2),
        ("2021-01-17", 3),
        billed=2,
        price="25.00",
        cost="20.00",
        settings={"invoiced_through": "2021-02-28"},
    )
    line = the_line(plan, "S1:prorate:2021-01-17")
    assert money(line) == (D("11.29"), D("9.03"), D("11.29"), D("9.03"))
    assert line.effective_date == date(2021, 3, 1)


def test_prorate_line_dates_and_description() -> None:
    plan = seat_plan(
        "2020-09-20",
        ("2019-01-01", 270),
        ("2020-08-05", 282),
        billed=270,
        description="Office 365 Essentials (Ace)",
    )
    line = the_line(plan, "S1:prorate:2020-08-05")
    assert (line.kind, line.action) == ("prorate", "create")
    assert line.effective_date == date(2020, 10, 1)  # first day after invoiced_through (9/30)
    assert line.end_date == date(2020, 10, 31)
    assert (line.period_start, line.period_end) == (date(2020, 8, 5), date(2020, 8, 31))
    assert line.description == "Office 365 Essentials (Ace) - Prorated for 08/05/2020-08/31/2020"
    assert line.formula.startswith("$6.00 × 26/31 = $5.03 × 12")


def test_new_line_description_is_prefix_and_product_name() -> None:
    plan = seat_plan("2020-09-15", ("2020-07-01", 1), ("2020-09-09", 2))
    assert the_line(plan, "S1:recurring").description == "Pax8 - Microsoft 365 Business Basic"
    assert the_line(plan, "S1:prorate:2020-09-09").description == (
        "Pax8 - Microsoft 365 Business Basic - Prorated for 09/09/2020-09/30/2020"
    )


def test_counting_the_change_day_raises_the_prorate() -> None:
    plan = seat_plan(
        "2020-09-20",
        ("2019-01-01", 270),
        ("2020-08-05", 282),
        billed=270,
        settings={"prorate_counts_change_day": True},
    )
    line = the_line(plan, "S1:prorate:2020-08-05")
    # 27/31 × $6.00 = 5.2258 → $5.23; × $5.00 = 4.3548 → $4.35
    assert money(line) == (D("5.23"), D("4.35"), D("62.76"), D("52.20"))


# --- thresholds -----------------------------------------------------------------------------------


def test_threshold_prorates_only_seats_above_the_months_opening_quantity() -> None:
    plan = seat_plan("2021-03-25", ("2021-01-01", 10), ("2021-03-05", 8), ("2021-03-20", 11), billed=10)
    assert keys(plan, "prorate") == ["S1:prorate:2021-03-20"]
    line = the_line(plan, "S1:prorate:2021-03-20")
    assert line.quantity == D(1)  # 10 → 8 → 11: one seat above the mark of 10, not 3
    # 11/31 × $6.00 = 2.129 → $2.13; × $5.00 = 1.774 → $1.77
    assert money(line) == (D("2.13"), D("1.77"), D("2.13"), D("1.77"))


def test_without_thresholds_every_increase_is_prorated_on_its_own() -> None:
    plan = seat_plan(
        "2021-03-25",
        ("2021-01-01", 10),
        ("2021-03-05", 8),
        ("2021-03-20", 11),
        billed=10,
        settings={"threshold_prorates": False},
    )
    line = the_line(plan, "S1:prorate:2021-03-20")
    assert line.quantity == D(3)
    assert money(line) == (D("2.13"), D("1.77"), D("6.39"), D("5.31"))


def test_threshold_mark_rises_with_each_prorated_increase() -> None:
    plan = seat_plan(
        "2021-03-25",
        ("2021-01-01", 10),
        ("2021-03-05", 12),
        ("2021-03-10", 11),
        ("2021-03-20", 13),
        billed=10,
    )
    assert the_line(plan, "S1:prorate:2021-03-05").quantity == D(2)
    assert the_line(plan, "S1:prorate:2021-03-20").quantity == D(1)  # above the mark of 12


def test_threshold_absorbed_increase_writes_nothing() -> None:
    # RULES.md §2 (last bullet, changed from a record-only $0.00 line): a prorate worth $0.00 is not
    # a plan line. Here nothing else changes (the line holds 10 again), so the plan is empty.
    plan = seat_plan("2021-03-25", ("2021-01-01", 10), ("2021-03-05", 8), ("2021-03-20", 10), billed=10)
    assert plan.lines == []


def test_threshold_mark_starts_again_each_month() -> None:
    plan = seat_plan("2021-04-25", ("2021-01-01", 10), ("2021-03-05", 8), ("2021-04-20", 11), billed=8)
    line = the_line(plan, "S1:prorate:2021-04-20")
    assert line.quantity == D(3)  # April opened at 8
    # 10/30 × $6.00 = $2.00, × $5.00 = 1.666 → $1.67
    assert money(line) == (D("2.00"), D("1.67"), D("6.00"), D("5.01"))


# --- decreases, synced, after invoiced_through ------------------------------------------------------


def test_a_decrease_gives_no_prorate_only_a_lower_recurring_quantity() -> None:
    plan = seat_plan("2021-03-25", ("2021-01-01", 10), ("2021-03-05", 8), billed=10)
    assert keys(plan, "prorate") == []
    assert keys(plan, "extra_months") == []
    recurring = the_line(plan, "S1:recurring")
    assert (recurring.action, recurring.quantity, recurring.previous_quantity) == ("update", D(8), D(10))
    assert all(line.total_price >= 0 for line in plan.lines)  # no credit line is ever written


def test_a_change_after_invoiced_through_gets_no_prorate() -> None:
    plan = seat_plan(
        "2020-09-15", ("2020-07-01", 1), ("2020-09-09", 2), settings={"invoiced_through": "2020-08-31"}
    )
    assert keys(plan, "prorate") == []
    recurring = the_line(plan, "S1:recurring")
    assert (recurring.action, recurring.quantity, recurring.effective_date) == (
        "create",
        D(2),
        date(2020, 9, 1),
    )
    assert recurring.total_price == D("12.00")  # September is billed in full by the recurring line


def test_a_synced_prorate_is_never_proposed_again() -> None:
    changes = (("2019-01-01", 270), ("2020-08-05", 282), ("2020-08-17", 283))
    by_key = seat_plan(
        "2020-09-20",
        *changes,
        billed=282,
        synced_keys=[{"key": "S1:prorate:2020-08-05", "quantity": "12", "synced_on": "2020-09-01"}],
    )
    assert "S1:prorate:2020-08-05" not in keys(by_key)
    assert "S1:prorate:2020-08-17" in keys(by_key)
    on_the_psa = seat_plan(
        "2020-09-20",
        *changes,
        billed=282,
        lines=[psa_line("L7", 12, kind="one_time", sub="S1", key="S1:prorate:2020-08-05")],
    )
    assert "S1:prorate:2020-08-05" not in keys(on_the_psa)


# --- calendar edges -------------------------------------------------------------------------------


def test_increase_on_the_last_day_is_no_plan_line_its_key_rides_on_the_recurring_update() -> None:
    # RULES.md §2, last bullet (was: a record-only $0.00 plan line).
    plan = seat_plan("2020-09-20", ("2019-01-01", 5), ("2020-08-31", 7), billed=5)
    assert keys(plan, "prorate") == []
    recurring = the_line(plan, "S1:recurring")
    assert recurring.records == ("S1:prorate:2020-08-31",)
    assert not any(line.record_only for line in plan.lines)


def test_increase_on_the_first_leaves_out_the_first() -> None:
    plan = seat_plan("2021-03-25", ("2021-01-01", 10), ("2021-03-01", 12), billed=10)
    line = the_line(plan, "S1:prorate:2021-03-01")
    # 30/31 × $6.00 = 5.806 → $5.81; × $5.00 = 4.838 → $4.84
    assert money(line) == (D("5.81"), D("4.84"), D("11.62"), D("9.68"))


def test_increase_on_the_first_counting_the_change_day_is_a_full_month() -> None:
    plan = seat_plan(
        "2021-03-25",
        ("2021-01-01", 10),
        ("2021-03-01", 12),
        billed=10,
        settings={"prorate_counts_change_day": True},
    )
    assert money(the_line(plan, "S1:prorate:2021-03-01")) == (D("6.00"), D("5.00"), D("12.00"), D("10.00"))


def test_leap_day_increase_is_zero_value() -> None:
    plan = seat_plan(
        "2024-03-10", ("2024-01-01", 1), ("2024-02-29", 3), billed=1, price="25.00", cost="20.00"
    )
    # Not a plan line (RULES.md §2, last bullet); recorded with the recurring update.
    assert keys(plan, "prorate") == []
    assert the_line(plan, "S1:recurring").records == ("S1:prorate:2024-02-29",)


@pytest.mark.parametrize(
    ("day", "unit_price", "unit_cost"),
    [
        ("2024-02-28", "0.86", "0.69"),  # 1/29 of $25 / $20 in a leap year
        ("2023-02-28", "0.00", "0.00"),  # 0/28: the last day of a common February
        ("2024-02-04", "21.55", "17.24"),  # 25/29
        ("2021-02-04", "21.43", "17.14"),  # 24/28 (seed)
    ],
)
def test_february_in_leap_and_common_years(day: str, unit_price: str, unit_cost: str) -> None:
    year = day[:4]
    plan = seat_plan(
        f"{year}-02-28" if day.endswith("28") else f"{year}-02-20",
        (f"{year}-01-01", 1),
        (day, 2),
        billed=1,
        price="25.00",
        cost="20.00",
    )
    if unit_price == "0.00":  # not a plan line (RULES.md §2, last bullet)
        assert f"S1:prorate:{day}" in the_line(plan, "S1:recurring").records
        return
    line = the_line(plan, f"S1:prorate:{day}")
    assert (line.unit_price, line.unit_cost) == (D(unit_price), D(unit_cost))
    assert line.period_end == date(int(year), 2, 29 if year == "2024" else 28)


@pytest.mark.parametrize(
    ("day", "unit_price"),
    [
        ("2020-04-10", "4.00"),  # 30-day month: 20/30 × $6.00
        ("2020-05-10", "4.06"),  # 31-day month: 21/31 × $6.00 = 4.0645
    ],
)
def test_thirty_and_thirty_one_day_months(day: str, unit_price: str) -> None:
    plan = seat_plan(f"{day[:7]}-25", ("2020-01-01", 1), (day, 2), billed=1)
    assert the_line(plan, f"S1:prorate:{day}").unit_price == D(unit_price)


def test_several_history_rows_on_one_day_are_one_net_change() -> None:
    plan = seat_plan("2021-03-25", ("2021-01-01", 10), ("2021-03-05", 12), ("2021-03-05", 11), billed=10)
    assert keys(plan, "prorate") == ["S1:prorate:2021-03-05"]
    assert the_line(plan, "S1:prorate:2021-03-05").quantity == D(1)
    assert the_line(plan, "S1:recurring").quantity == D(11)


def test_same_day_down_then_up_is_prorated_on_the_net_rise() -> None:
    plan = seat_plan(
        "2021-03-25",
        ("2021-01-01", 10),
        ("2021-03-05", 8),
        ("2021-03-05", 13),
        billed=10,
        settings={"threshold_prorates": False},
    )
    assert the_line(plan, "S1:prorate:2021-03-05").quantity == D(3)
