"""RULES.md §3: months already invoiced at the old quantity become extra-months lines."""

from __future__ import annotations

from datetime import date

from builders import D, codes, findings, keys, money, seat_plan, synced, the_line

IN_ADVANCE = {"invoiced_through": "2021-02-28"}


def test_seed_february_invoiced_in_advance() -> None:
    plan = seat_plan(
        "2021-01-18",
        ("2020-12-01", 2),
        ("2021-01-17", 3),
        billed=2,
        price="25.00",
        cost="20.00",
        settings=IN_ADVANCE,
    )
    assert keys(plan, "extra_months") == ["S1:extra_months:2021-02"]
    line = the_line(plan, "S1:extra_months:2021-02")
    assert (line.action, line.quantity, line.months) == ("create", D(1), 1)
    assert money(line) == (D("25.00"), D("20.00"), D("25.00"), D("20.00"))  # full unit price, 1 × $25 × 1
    assert (line.period_start, line.period_end) == (date(2021, 2, 1), date(2021, 2, 28))
    assert (line.effective_date, line.end_date) == (date(2021, 3, 1), date(2021, 3, 31))
    prorate = the_line(plan, "S1:prorate:2021-01-17")
    assert (prorate.effective_date, prorate.total_price) == (date(2021, 3, 1), D("11.29"))
    assert plan.totals.price == D("111.29")  # 75.00 recurring update + 11.29 + 25.00
    assert plan.totals.cost == D("89.03")


def test_seed_september_already_invoiced_at_270_instead_of_283() -> None:
    plan = seat_plan("2020-09-20", ("2019-01-01", 270), ("2020-08-05", 282), ("2020-08-17", 283), billed=270)
    line = the_line(plan, "S1:extra_months:2020-09")
    assert (line.quantity, line.months) == (D(13), 1)
    assert money(line) == (D("6.00"), D("5.00"), D("78.00"), D("65.00"))
    assert plan.totals.price == D("1839.07")
    assert plan.totals.cost == D("1532.54")


def test_no_extra_months_when_the_next_month_is_not_invoiced_yet() -> None:
    plan = seat_plan("2020-09-15", ("2020-07-01", 1), ("2020-09-09", 2))
    assert keys(plan, "extra_months") == []


def test_equal_consecutive_gaps_across_the_new_year_make_one_line() -> None:
    plan = seat_plan(
        "2020-11-20",
        ("2020-01-01", 2),
        ("2020-11-10", 3),
        billed=2,
        price="25.00",
        cost="20.00",
        settings={"invoiced_through": "2021-01-31"},
    )
    assert keys(plan, "extra_months") == ["S1:extra_months:2020-12"]
    line = the_line(plan, "S1:extra_months:2020-12")
    assert (line.quantity, line.months) == (D(1), 2)
    assert money(line) == (D("25.00"), D("20.00"), D("50.00"), D("40.00"))  # 1 × $25 × 2 months
    assert (line.period_start, line.period_end) == (date(2020, 12, 1), date(2021, 1, 31))
    assert (line.effective_date, line.end_date) == (date(2021, 2, 1), date(2021, 2, 28))
    assert line.description == "Pax8 - Microsoft 365 Business Basic - Extra months 12/01/2020-01/31/2021"


def test_different_gaps_make_separate_lines() -> None:
    plan = seat_plan(
        "2020-12-15",
        ("2020-01-01", 2),
        ("2020-11-10", 3),
        ("2020-12-10", 5),
        billed=2,
        price="25.00",
        cost="20.00",
        settings={"invoiced_through": "2021-01-31"},
    )
    assert keys(plan, "extra_months") == ["S1:extra_months:2020-12", "S1:extra_months:2021-01"]
    december = the_line(plan, "S1:extra_months:2020-12")
    assert (december.quantity, december.months, december.total_price) == (D(1), 1, D("25.00"))
    january = the_line(plan, "S1:extra_months:2021-01")
    assert (january.quantity, january.months, january.total_price, january.total_cost) == (
        D(3),
        1,
        D("75.00"),
        D("60.00"),
    )


def test_equal_gaps_that_are_not_consecutive_stay_separate() -> None:
    plan = seat_plan(
        "2020-12-15",
        ("2020-01-01", 2),
        ("2020-10-10", 3),
        ("2020-11-10", 2),
        ("2020-12-10", 3),
        billed=2,
        price="25.00",
        cost="20.00",
        settings={"invoiced_through": "2021-01-31"},
    )
    assert keys(plan, "extra_months") == ["S1:extra_months:2020-11", "S1:extra_months:2021-01"]
    for key in keys(plan, "extra_months"):
        assert (the_line(plan, key).months, the_line(plan, key).total_price) == (1, D("25.00"))


def test_a_negative_gap_raises_credit_due_and_writes_no_credit() -> None:
    plan = seat_plan(
        "2020-11-20",
        ("2020-01-01", 2),
        ("2020-11-10", 3),
        billed=5,
        price="25.00",
        cost="20.00",
        settings={"invoiced_through": "2021-01-31"},
    )
    assert keys(plan, "extra_months") == []
    assert all(line.total_price >= 0 and line.quantity >= 0 for line in plan.lines)
    [credit] = findings(plan, "credit_due")
    assert credit.severity == "warning"
    assert credit.subject == {"subscription_id": "S1"}
    assert "$100.00 to credit" in credit.message  # 2 seats × $25 × 2 months (Dec, Jan)


def test_a_net_new_subscription_is_owed_its_whole_quantity() -> None:
    plan = seat_plan(
        "2021-01-18", ("2021-01-10", 3), price="25.00", cost="20.00", sync_initial=False, settings=IN_ADVANCE
    )
    line = the_line(plan, "S1:extra_months:2021-02")
    assert (line.quantity, line.months, line.total_price, line.total_cost) == (
        D(3),
        1,
        D("75.00"),
        D("60.00"),
    )
    recurring = the_line(plan, "S1:recurring")
    assert (recurring.action, recurring.effective_date) == ("create", date(2021, 3, 1))
    # 21/31 × $25 = 16.935 → $16.94 a seat
    assert the_line(plan, "S1:prorate:2021-01-10").total_price == D("50.82")


def test_a_synced_change_gives_no_extra_months() -> None:
    plan = seat_plan(
        "2021-01-18",
        ("2020-12-01", 2),
        ("2021-01-17", 3),
        billed=2,
        price="25.00",
        cost="20.00",
        settings=IN_ADVANCE,
        synced_keys=[synced("S1:prorate:2021-01-17", 1)],
    )
    assert keys(plan, "prorate") == []
    assert keys(plan, "extra_months") == []


def test_a_synced_extra_months_line_is_not_proposed_again() -> None:
    plan = seat_plan(
        "2021-01-18",
        ("2020-12-01", 2),
        ("2021-01-17", 3),
        billed=2,
        price="25.00",
        cost="20.00",
        settings=IN_ADVANCE,
        synced_keys=[synced("S1:extra_months:2021-02", 1)],
    )
    assert keys(plan, "extra_months") == []
    assert keys(plan, "prorate") == ["S1:prorate:2021-01-17"]


def test_extra_months_take_an_effective_date_override() -> None:
    plan = seat_plan(
        "2021-01-18",
        ("2020-12-01", 2),
        ("2021-01-17", 3),
        billed=2,
        price="25.00",
        cost="20.00",
        settings=IN_ADVANCE,
        overrides=[{"key": "S1:extra_months:2021-02", "effective_date": "2021-05-01"}],
    )
    line = the_line(plan, "S1:extra_months:2021-02")
    assert (line.effective_date, line.end_date) == (date(2021, 5, 1), date(2021, 5, 31))
    assert (line.period_start, line.period_end) == (date(2021, 2, 1), date(2021, 2, 28))  # the months billed
    assert "override_ignored" not in codes(plan)
