"""Properties of the reconciliation over generated seat histories (Hypothesis)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from builders import build, psa_line, seat_sub, synced
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.months import last_of_month
from engine.reconcile import reconcile
from engine.scenario import Scenario
from engine.store import Store

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIRST = date(2023, 11, 1)  # the window crosses a new year and a leap February
LAST = date(2024, 3, 31)

cents = st.integers(min_value=1, max_value=99_99).map(lambda c: Decimal(c) / 100)
days = st.integers(min_value=0, max_value=(LAST - FIRST).days).map(lambda n: FIRST + timedelta(days=n))


@st.composite
def seat_histories(draw: st.DrawFn) -> list[tuple[str, int]]:
    rows = draw(st.lists(st.tuples(days, st.integers(min_value=0, max_value=25)), min_size=1, max_size=7))
    rows.sort(key=lambda r: r[0])  # several rows may share a day: kept in the order drawn
    return [(d.isoformat(), q) for d, q in rows]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    subs, lines, synced_keys = [], [], []
    latest = FIRST
    for n in range(draw(st.integers(min_value=1, max_value=2))):
        sub_id = f"S{n + 1}"
        changes = draw(seat_histories())
        latest = max(latest, date.fromisoformat(changes[-1][0]))
        price = draw(cents)
        cost = draw(cents)
        subs.append(seat_sub(sub_id, *changes, price=str(price), cost=str(cost)))
        billed = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=25)))
        if billed is not None:
            lines.append(psa_line(f"L{n + 1}", billed, sub=sub_id, price=str(price), cost=str(cost)))
        if draw(st.booleans()):
            synced_keys.append(synced(f"{sub_id}:prorate:{changes[0][0]}", changes[0][1]))
    as_of = latest + timedelta(days=draw(st.integers(min_value=0, max_value=20)))
    invoiced_through = draw(
        st.sampled_from([None, last_of_month(as_of), last_of_month(last_of_month(as_of) + timedelta(days=1))])
    )
    return build(
        as_of.isoformat(),
        subs=subs,
        lines=lines,
        synced_keys=synced_keys,
        settings={
            "invoiced_through": invoiced_through.isoformat() if invoiced_through else None,
            "threshold_prorates": draw(st.booleans()),
            "prorate_counts_change_day": draw(st.booleans()),
        },
    )


@PROPERTY_SETTINGS
@given(scenarios())
def test_plan_totals_are_the_sums_of_the_lines(scenario: Scenario) -> None:
    plan = reconcile(scenario)
    assert plan.totals.price == sum((line.total_price for line in plan.lines), Decimal(0))
    assert plan.totals.cost == sum((line.total_cost for line in plan.lines), Decimal(0))
    for line in plan.lines:
        assert line.total_price == line.total_price.quantize(Decimal("0.01"))
        assert line.total_cost == line.total_cost.quantize(Decimal("0.01"))


@PROPERTY_SETTINGS
@given(scenarios())
def test_a_prorated_unit_never_exceeds_the_full_unit(scenario: Scenario) -> None:
    plan = reconcile(scenario)
    subs = {s.id: s for s in scenario.vendor.subscriptions}
    for line in plan.lines:
        if line.kind == "prorate":
            sub = subs[line.subscription_id]
            assert Decimal(0) <= line.unit_price <= sub.unit_price
            assert Decimal(0) <= line.unit_cost <= sub.unit_cost
            assert line.quantity >= 0


def _quantity_at_end_of_each_day(scenario: Scenario, sub_id: str) -> dict[date, Decimal]:
    """An independent replay of the history: the last row of a day wins."""
    sub = next(s for s in scenario.vendor.subscriptions if s.id == sub_id)
    out: dict[date, Decimal] = {}
    for row in sorted(sub.history, key=lambda r: r.effective_date):
        if row.effective_date <= scenario.as_of:
            out[row.effective_date] = Decimal(0) if row.action == "cancel" else row.quantity
    return out


@PROPERTY_SETTINGS
@given(scenarios().filter(lambda s: s.settings.threshold_prorates and not s.synced))
def test_with_thresholds_a_months_prorated_seats_equal_its_rise_above_the_opening_quantity(
    scenario: Scenario,
) -> None:
    plan = reconcile(scenario)
    for sub in scenario.vendor.subscriptions:
        by_day = _quantity_at_end_of_each_day(scenario, sub.id)
        prorated: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
        # A prorate worth $0.00 is no plan line (RULES.md §2): its month's seats are not counted.
        zero = {
            (int(key.rsplit(":", 1)[1][:4]), int(key.rsplit(":", 1)[1][5:7]))
            for line in plan.lines
            if line.subscription_id == sub.id
            for key in line.records
        }
        for line in plan.lines:
            if line.kind == "prorate" and line.subscription_id == sub.id:
                assert line.period_start is not None
                prorated[(line.period_start.year, line.period_start.month)] += line.quantity
        for month in {(d.year, d.month) for d in by_day}:
            before = [q for d, q in sorted(by_day.items()) if (d.year, d.month) < month]
            opening = before[-1] if before else Decimal(0)
            peak = max(q for d, q in by_day.items() if (d.year, d.month) == month)
            rise = max(Decimal(0), peak - opening)
            assert prorated.get(month, Decimal(0)) <= rise
            peak_days = [d for d, q in by_day.items() if (d.year, d.month) == month and q == peak]
            if (
                month in zero
                or sub.unit_price == 0
                or (peak_days and min(peak_days) == last_of_month(min(peak_days)))
            ):
                continue  # worth $0.00: no plan line, whether or not a line carries its key
            assert (
                prorated.get(month, Decimal(0)) == rise
            )  # every change is before invoiced_through, none synced


@PROPERTY_SETTINGS
@given(scenarios())
def test_replaying_a_scenario_gives_the_same_plan_byte_for_byte(scenario: Scenario) -> None:
    first = reconcile(scenario).model_dump_json()
    assert reconcile(scenario).model_dump_json() == first
    assert reconcile(Scenario.model_validate_json(scenario.model_dump_json())).model_dump_json() == first


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a store each
@given(scenarios())
def test_the_store_round_trip_gives_the_same_plan_byte_for_byte(scenario: Scenario) -> None:
    store = Store.memory()
    try:
        store.import_scenario(scenario)
        direct = reconcile(scenario).model_dump_json()
        assert reconcile(store.snapshot()).model_dump_json() == direct
        # The fast read (quiet subscriptions keep their history in the database) plans the same.
        assert reconcile(*store.plan_inputs()).model_dump_json() == direct
    finally:
        store.close()
