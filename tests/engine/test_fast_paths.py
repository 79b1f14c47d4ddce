"""The shortcuts a month-end reconciliation takes stay invisible: the fast store read plans like the
full one, month arithmetic matches dateutil's, prorate units are exact, objects built without
validation behave like validated ones, and pausing the collector leaves nothing behind."""

from __future__ import annotations

import gc
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from builders import build, psa_line, seat_sub, synced
from dateutil.relativedelta import relativedelta

from engine import batch
from engine.batch import fast, freeze_long_lived, gc_paused
from engine.money import round_cents
from engine.months import add_months, days_in_month, last_of_month
from engine.reconcile import reconcile
from engine.rules.prorates import factor, prorate_unit
from engine.scenario import HistoryRow, Subscription
from engine.store import Store


def _plans(scenario_kwargs: dict, as_of: str = "2021-03-18") -> tuple[str, str, str]:
    scenario = build(as_of, **scenario_kwargs)
    store = Store.memory()
    try:
        store.import_scenario(scenario)
        return (
            reconcile(scenario).model_dump_json(),
            reconcile(store.snapshot()).model_dump_json(),
            reconcile(*store.plan_inputs()).model_dump_json(),
        )
    finally:
        store.close()


def test_a_cancel_row_dated_after_as_of_is_not_taken_for_a_quiet_subscription() -> None:
    # Every increase is synced and the PSA line holds the quantity: quiet, but for the cancel row
    # dated next month, which the cancellation rule reads (it sets the line's cancelled date).
    direct, full, fast_read = _plans(
        dict(
            subs=[seat_sub("S1", ("2021-01-04", 3), ("2021-04-10", 0, "cancel"))],
            lines=[psa_line("L1", 3, sub="S1")],
            synced_keys=[synced("S1:prorate:2021-01-04", 3)],
        )
    )
    assert '"kind":"cancel"' in direct
    assert full == direct
    assert fast_read == direct


@pytest.mark.parametrize("line_quantity", [4, 5])
def test_a_quiet_subscription_plans_the_same_read_fast_or_in_full(line_quantity: int) -> None:
    # 4: the PSA line differs, so the quiet subscription's history is loaded after all.
    direct, full, fast_read = _plans(
        dict(
            subs=[seat_sub("S1", ("2021-01-04", 3), ("2021-02-10", 5), ("2021-02-20", 4), ("2021-02-20", 5))],
            lines=[psa_line("L1", line_quantity, sub="S1")],
            synced_keys=[
                synced("S1:prorate:2021-01-04", 3),
                synced("S1:prorate:2021-02-10", 5),
                synced("S1:prorate:2021-02-20", 5),
            ],
        )
    )
    assert full == direct
    assert fast_read == direct


def test_add_months_is_dateutils_calendar_arithmetic() -> None:
    day = date(2019, 1, 1)
    while day < date(2025, 1, 1):
        assert days_in_month(day) == (last_of_month(day) - day.replace(day=1)).days + 1
        for months in (-25, -13, -12, -1, 0, 1, 2, 11, 12, 13, 36):
            assert add_months(day, months) == day + relativedelta(months=months), (day, months)
        day += timedelta(days=1)
    assert last_of_month(date(2024, 2, 3)) == date(2024, 2, 29)
    assert last_of_month(date(2100, 2, 3)) == date(2100, 2, 28)
    assert last_of_month(date(2000, 2, 3)) == date(2000, 2, 29)


@pytest.mark.parametrize("unit", ["6.00", "6", "6.0", "25.00", "0.01", "19.995", "1234.565", "-3.335", "0"])
def test_prorate_units_are_exact_whatever_was_asked_before(unit: str) -> None:
    # Prorate units are kept per (unit, factor); equal units written differently share an entry,
    # which is right because the rounded result depends on the number only.
    for day in (date(2020, 8, 5), date(2020, 8, 17), date(2020, 9, 9), date(2021, 2, 4), date(2024, 2, 29)):
        for counts in (False, True):
            share = factor(day, counts_change_day=counts)
            expected = round_cents(Fraction(Decimal(unit)) * share)
            assert prorate_unit(Decimal(unit), share) == expected
            assert str(prorate_unit(Decimal(unit), share)) == str(expected)


def test_objects_built_without_validation_behave_like_validated_ones() -> None:
    row = {"id": "S1-h1", "action": "initial", "quantity": Decimal(3), "effective_date": date(2021, 1, 4)}
    history = [fast(HistoryRow, dict(row))]
    data = {
        "id": "S1",
        "company_id": "acme",
        "product_id": "seat",
        "billing_term": "monthly",
        "start_date": date(2021, 1, 4),
        "end_date": None,
        "unit_price": Decimal("6.00"),
        "unit_cost": Decimal("5.00"),
        "status": "active",
        "cancelled_date": None,
        "gone": False,
    }
    built = fast(Subscription, {**data, "history": history})
    validated = Subscription.model_validate({**data, "history": [row]})
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set
    # A copy with an update leaves the original (and every other instance) as it was.
    other = fast(Subscription, {**data, "id": "S2", "history": []})
    copied = built.model_copy(update={"history": []})
    assert copied.history == [] and built.history == history
    assert built.model_fields_set == other.model_fields_set == set(Subscription.model_fields)


def test_pausing_the_collector_leaves_no_young_objects_and_keeps_what_was_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch, "_frozen", False)  # as in a process that froze nothing yet
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        built = [[index] for index in range(50_000)]
    assert gc.isenabled()
    assert gc.get_count()[0] < 1_000  # the 50,000 lists went to the oldest generation
    assert all(gc.is_tracked(item) for item in built[:10])
    freeze_long_lived()  # what the console does with its data
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            more = [[index] for index in range(1_000)]
        assert gc.get_freeze_count() == frozen  # someone else's frozen objects stay frozen
        assert len(more) == len(built) // 50
    finally:
        gc.unfreeze()
