"""RULES.md §10 (ignore / restore) and the effective-date overrides of seed 001."""

from __future__ import annotations

import json
from datetime import date

import pytest
from builders import D, codes, findings, keys, seat_plan, the_line

CHANGES = (("2019-01-01", 270), ("2020-08-05", 282), ("2020-08-17", 283))
ALL_KEYS = ["S1:recurring", "S1:prorate:2020-08-05", "S1:prorate:2020-08-17", "S1:extra_months:2020-09"]


def plan(*changes, **kwargs):  # type: ignore[no-untyped-def]
    return seat_plan("2020-09-20", *(changes or CHANGES), billed=270, **kwargs)


def ignore(key: str, mode: str = "until_restored", fingerprint: str | None = None) -> dict:
    return {
        "key": key,
        "mode": mode,
        "by": "ann",
        "on": "2020-09-20",
        "reason": "customer disputes",
        "fingerprint": fingerprint,
    }


def test_nothing_ignored() -> None:
    assert keys(plan()) == ALL_KEYS
    assert plan().totals.price == D("1839.07")


def test_ignore_until_restored_removes_the_line_and_its_money() -> None:
    p = plan(ignored=[ignore("S1:prorate:2020-08-05")])
    assert "S1:prorate:2020-08-05" not in keys(p)
    assert p.totals.price == D("1778.71")  # 1839.07 − 60.36
    assert p.totals.cost == D("1482.26")  # 1532.54 − 50.28
    assert p.totals.ignored == 1
    assert [line.key for line in p.ignored_lines] == ["S1:prorate:2020-08-05"]
    assert "ignored_lines" not in json.loads(p.model_dump_json())


def test_restoring_brings_the_line_back() -> None:
    assert keys(plan(ignored=[ignore("S1:prorate:2020-08-05")])) != ALL_KEYS
    assert keys(plan(ignored=[])) == ALL_KEYS


def test_ignoring_a_subscription_hides_all_its_lines_and_findings() -> None:
    credit = dict(settings={"invoiced_through": "2021-01-31"})
    visible = seat_plan("2020-11-20", ("2020-01-01", 2), ("2020-11-10", 3), billed=5, **credit)
    assert "credit_due" in codes(visible)
    hidden = seat_plan(
        "2020-11-20", ("2020-01-01", 2), ("2020-11-10", 3), billed=5, ignored=[ignore("S1")], **credit
    )
    assert hidden.lines == [] and hidden.findings == []
    assert hidden.totals.ignored == len(visible.lines)
    assert (hidden.totals.price, hidden.totals.cost) == (D("0.00"), D("0.00"))


def test_ignore_this_change_hides_the_line_while_it_is_the_same() -> None:
    fingerprint = the_line(plan(), "S1:recurring").fingerprint
    p = plan(ignored=[ignore("S1:recurring", "this_change", fingerprint)])
    assert "S1:recurring" not in keys(p)
    assert p.totals.ignored == 1


def test_ignore_this_change_comes_back_when_the_line_changes() -> None:
    fingerprint = the_line(plan(), "S1:recurring").fingerprint
    changed = plan(
        *CHANGES, ("2020-09-18", 285), ignored=[ignore("S1:recurring", "this_change", fingerprint)]
    )
    line = the_line(changed, "S1:recurring")
    assert line.quantity == D(285)
    assert changed.totals.ignored == 0


def test_ignore_until_restored_holds_when_the_line_changes() -> None:
    changed = plan(*CHANGES, ("2020-09-18", 285), ignored=[ignore("S1:recurring")])
    assert "S1:recurring" not in keys(changed)


def test_the_fingerprint_covers_the_values_an_operator_sees() -> None:
    base = the_line(plan(), "S1:prorate:2020-08-05").fingerprint
    moved = the_line(
        plan(overrides=[{"key": "S1:prorate:2020-08-05", "effective_date": "2020-12-01"}]),
        "S1:prorate:2020-08-05",
    ).fingerprint
    repriced = the_line(plan(price="6.50"), "S1:prorate:2020-08-05").fingerprint
    assert len({base, moved, repriced}) == 3


# --- effective-date overrides ------------------------------------------------------------------------


def test_a_prorate_can_be_moved_to_a_later_month() -> None:
    p = plan(overrides=[{"key": "S1:prorate:2020-08-05", "effective_date": "2020-12-01"}])
    line = the_line(p, "S1:prorate:2020-08-05")
    assert (line.effective_date, line.end_date) == (date(2020, 12, 1), date(2020, 12, 31))
    assert (line.period_start, line.period_end) == (date(2020, 8, 5), date(2020, 8, 31))
    assert the_line(p, "S1:prorate:2020-08-17").effective_date == date(2020, 10, 1)  # only the one moved
    assert p.findings == []


def test_a_new_recurring_line_can_start_later() -> None:
    p = seat_plan(
        "2020-09-15",
        ("2020-07-01", 1),
        ("2020-09-09", 2),
        overrides=[{"key": "S1:recurring", "effective_date": "2021-01-01"}],
    )
    assert the_line(p, "S1:recurring").effective_date == date(2021, 1, 1)


def test_an_update_keeps_its_effective_date_whatever_the_override() -> None:
    p = plan(overrides=[{"key": "S1:recurring", "effective_date": "2020-12-01"}])
    assert the_line(p, "S1:recurring").effective_date == date(2019, 2, 1)


@pytest.mark.parametrize("bad", ["2020-12-15", "2020-09-01", "2020-08-01"])
def test_an_override_no_longer_valid_falls_back_to_e_with_a_warning(bad: str) -> None:
    p = plan(overrides=[{"key": "S1:prorate:2020-08-05", "effective_date": bad}])
    line = the_line(p, "S1:prorate:2020-08-05")
    assert (line.effective_date, line.end_date) == (date(2020, 10, 1), date(2020, 10, 31))
    [f] = findings(p, "override_ignored")
    assert f.subject == {"key": "S1:prorate:2020-08-05"}
    assert f"The effective date {bad} set on S1:prorate:2020-08-05 is no longer valid" in f.message


def test_an_override_becomes_stale_when_invoicing_moves_past_it() -> None:
    moved = [{"key": "S1:prorate:2020-08-05", "effective_date": "2020-11-01"}]
    assert plan(overrides=moved).findings == []
    later = plan(overrides=moved, settings={"invoiced_through": "2020-11-30"})
    assert the_line(later, "S1:prorate:2020-08-05").effective_date == date(2020, 12, 1)
    assert "override_ignored" in codes(later)
