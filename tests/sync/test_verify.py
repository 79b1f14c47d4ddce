"""engine.verify: what the PSA will invoice per plan line key, against the plan, to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from engine.plan import LineKind
from engine.rules.context import money_line
from engine.scenario import LineSource, PsaLine
from engine.verify import psa_amount, verify_lines

D = Decimal
E = date(2021, 4, 1)


def _plan(key: str, kind: LineKind, quantity: str, price: str, *, months: int | None = None, **extra):  # type: ignore[no-untyped-def]
    return money_line(
        key=key,
        kind=kind,
        action=extra.pop("action", "create"),
        subscription_id="s1",
        company_id="c1",
        psa_agreement_id="200",
        psa_product_id="300",
        description="Pax8 - Seats",
        quantity=D(quantity),
        unit_price=D(price),
        unit_cost=D(price) - 1,
        effective_date=E,
        end_date=date(2021, 4, 30) if kind.one_time else None,
        months=months,
        **extra,
    )


def _psa(line_id: str, key: str | None, quantity: str, price: str, *, one_time: bool = False, **extra):  # type: ignore[no-untyped-def]
    return PsaLine(
        id=line_id,
        agreement_id="200",
        product_id="300",
        kind="one_time" if one_time else "recurring",
        quantity=D(quantity),
        unit_price=D(price),
        unit_cost=D(price) - 1,
        effective_date=E,
        source=LineSource(subscription_id="s1", key=key) if key else None,
        **extra,
    )


def test_psa_amount_is_quantity_times_unit_price_rounded_to_cents() -> None:
    assert psa_amount(_psa("1", None, "3", "2.005")) == (D("6.02"), D("3.02"))


def test_extra_months_written_as_gap_times_months_lands_at_full_value() -> None:
    plan = [_plan("s1:extra_months:2021-02", LineKind.EXTRA_MONTHS, "1", "66.00", months=2)]
    assert plan[0].total_price == D("132.00")
    good = verify_lines(plan, [_psa("9", "s1:extra_months:2021-02", "2", "66.00", one_time=True)], psa="x")
    assert good.ok and good.landed_price == D("132.00") and good.difference == 0
    # The defect of issue 10: one addition worth one month.
    short = verify_lines(plan, [_psa("9", "s1:extra_months:2021-02", "1", "66.00", one_time=True)], psa="x")
    assert not short.ok
    assert short.difference == D("-66.00")
    assert short.problems[0].status == "differs" and "132.00 planned, 66.00" in short.problems[0].message
    assert "differs by $-66.00" in short.summary()


def test_missing_and_duplicate_lines_are_reported_by_key() -> None:
    plan = [
        _plan("s1:recurring", LineKind.RECURRING, "3", "6.00"),
        _plan("s1:prorate:2021-03-05", LineKind.PRORATE, "3", "5.03"),
    ]
    psa = [_psa("1", "s1:recurring", "3", "6.00"), _psa("2", "s1:recurring", "4", "6.00")]
    result = verify_lines(plan, psa, psa="ConnectWise Manage")
    by_key = {c.key: c for c in result.checks}
    assert by_key["s1:recurring"].status == "duplicate"
    assert by_key["s1:recurring"].psa_price == D("42.00")
    assert by_key["s1:prorate:2021-03-05"].status == "missing"
    assert result.duplicates == {"s1:recurring": ("1", "2")}
    assert result.difference == D("42.00") - D("18.00") - D("15.09")


def test_a_replaced_line_with_the_same_key_is_not_a_duplicate() -> None:
    plan = [
        _plan("s1:recurring", LineKind.RECURRING, "5", "6.00", replaces_line_id="1", previous_quantity=D(4))
    ]
    old = _psa("1", "s1:recurring", "4", "6.00", cancelled_date=date(2021, 3, 31))
    old = old.model_copy(update={"effective_date": date(2020, 1, 1)})
    result = verify_lines(plan, [old, _psa("2", "s1:recurring", "5", "6.00")], psa="x")
    assert result.ok, result.problems


def test_updates_and_cancels_are_read_by_line_id() -> None:
    update = _plan(
        "s1:recurring",
        LineKind.RECURRING,
        "5",
        "6.00",
        action="update",
        psa_line_id="1",
        previous_quantity=D(4),
    )
    cancel = money_line(
        key="s2:cancel",
        kind=LineKind.CANCEL,
        action="cancel",
        subscription_id="s2",
        company_id="c1",
        psa_agreement_id="200",
        psa_product_id="300",
        psa_line_id="7",
        description="x",
        quantity=D(2),
        unit_price=D(6),
        unit_cost=D(5),
        effective_date=E,
        end_date=date(2021, 3, 31),
        previous_quantity=D(2),
    )
    psa = [_psa("1", "s1:recurring", "4", "6.00"), _psa("7", "s2:recurring", "2", "6.00")]
    result = verify_lines([update, cancel], psa, psa="x")
    assert [c.status for c in result.checks] == ["differs", "differs"]
    psa = [
        _psa("1", "s1:recurring", "5", "6.00"),
        _psa("7", "s2:recurring", "2", "6.00", cancelled_date=date(2021, 3, 31)),
    ]
    assert verify_lines([update, cancel], psa, psa="x").ok
