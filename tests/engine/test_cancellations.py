"""RULES.md §4: a cancelled subscription's line ends on the last day of its cancellation month."""

from __future__ import annotations

from datetime import date

from builders import D, codes, findings, keys, money, plan_of, psa_line, seat_sub, synced, the_line


def cancelled_plan(
    as_of: str,
    cancelled_date: str | None,
    *,
    history_cancel: str | None = None,
    line: dict | None = None,
    **kwargs: object,
):  # type: ignore[no-untyped-def]
    changes: list[tuple[str, int] | tuple[str, int, str]] = [("2020-01-01", 4)]
    if history_cancel:
        changes.append((history_cancel, 0, "cancel"))
    sub = seat_sub(
        "S1", *changes, status="cancelled" if cancelled_date else "active", cancelled_date=cancelled_date
    )
    lines = [line] if line is not None else [psa_line("L1", 4, sub="S1", description="Essentials (Ace)")]
    return plan_of(as_of, subs=[sub], lines=lines, synced_keys=[synced("S1:prorate:2020-01-01")], **kwargs)


def test_cancelled_line_ends_on_the_last_day_of_the_cancellation_month() -> None:
    plan = cancelled_plan("2020-09-15", "2020-09-10")
    line = the_line(plan, "S1:cancel")
    assert (line.kind, line.action, line.psa_line_id) == ("cancel", "cancel", "L1")
    assert line.end_date == date(2020, 9, 30)  # the cancelled date it writes
    assert line.effective_date == date(2019, 2, 1)  # the PSA line's own
    assert (line.quantity, line.unit_price, line.unit_cost) == (D(4), D("6.00"), D("5.00"))
    assert line.description == "Essentials (Ace)"
    assert keys(plan) == ["S1:cancel"]  # no recurring line besides
    assert "credit_due" not in codes(plan)


def test_cancellation_in_a_leap_february_ends_on_the_29th() -> None:
    plan = cancelled_plan("2024-02-20", "2024-02-03")
    assert the_line(plan, "S1:cancel").end_date == date(2024, 2, 29)


def test_cancellation_from_a_history_row() -> None:
    plan = cancelled_plan("2020-09-15", None, history_cancel="2020-09-10")
    assert the_line(plan, "S1:cancel").end_date == date(2020, 9, 30)


def test_months_invoiced_after_the_cancellation_raise_credit_due() -> None:
    plan = cancelled_plan("2020-09-15", "2020-09-10", settings={"invoiced_through": "2020-11-30"})
    assert the_line(plan, "S1:cancel").end_date == date(2020, 9, 30)
    [credit] = findings(plan, "credit_due")
    assert credit.subject == {"subscription_id": "S1"}
    assert "4 × $6.00 × 2 month(s) = $48.00 to credit" in credit.message
    assert all(line.kind == "cancel" for line in plan.lines)  # the engine never writes the credit


def test_credit_due_across_the_new_year() -> None:
    plan = cancelled_plan("2020-12-15", "2020-12-02", settings={"invoiced_through": "2021-01-31"})
    assert the_line(plan, "S1:cancel").end_date == date(2020, 12, 31)
    [credit] = findings(plan, "credit_due")
    assert "4 × $6.00 × 1 month(s) = $24.00 to credit" in credit.message


def test_a_line_already_ending_in_time_is_left_alone() -> None:
    plan = cancelled_plan(
        "2020-09-15", "2020-09-10", line=psa_line("L1", 4, sub="S1", cancelled="2020-09-30")
    )
    assert plan.lines == []


def test_a_line_ending_too_late_is_moved_to_the_cancellation_month() -> None:
    plan = cancelled_plan(
        "2020-09-15", "2020-09-10", line=psa_line("L1", 4, sub="S1", cancelled="2020-12-31")
    )
    line = the_line(plan, "S1:cancel")
    assert (line.psa_line_id, line.end_date) == ("L1", date(2020, 9, 30))
    assert money(line) == (D("6.00"), D("5.00"), D("24.00"), D("20.00"))


def test_a_cancelled_subscription_without_a_psa_line_proposes_nothing() -> None:
    sub = seat_sub("S1", ("2020-01-01", 4), status="cancelled", cancelled_date="2020-09-10")
    plan = plan_of("2020-09-15", subs=[sub], synced_keys=[synced("S1:prorate:2020-01-01")])
    assert plan.lines == []
