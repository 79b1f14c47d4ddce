"""The plan's figure ("should bill") in the three-way check reads the quantity in force on the
month's first day exactly as the rules' `Timeline` does — whatever order the vendor's history rows
come in (the check bisects a history ordered by date and sorts any other first), same-day rows in
the order given, a cancel counting 0 — and a row's "timing" reason names the latest change after
the 1st."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from builders import build, invoice_item, invoice_of, psa_line, seat_sub
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.margin import MarginRow, three_way_check
from engine.money import round_cents
from engine.rules.quantities import Timeline
from engine.scenario import HistoryRow

D = Decimal
FIRST = date(2026, 11, 1)
AS_OF = date(2026, 11, 21)

rows = st.lists(
    st.tuples(
        st.sampled_from(["initial", "increase", "decrease", "cancel"]),
        st.integers(min_value=1, max_value=30),
        # around the 1st and as_of: before, on and after each, and same-day rows
        st.sampled_from([-40, -1, 0, 0, 1, 10, 20, 20, 21, 25]).map(lambda d: FIRST + timedelta(days=d)),
    ),
    min_size=1,
    max_size=8,
)


def _check(history: list[dict[str, Any]], invoiced: int, billed: int) -> MarginRow:
    """One seat subscription with this history, invoiced at `invoiced`, its PSA line at `billed`."""
    scenario = build(
        AS_OF.isoformat(),
        subs=[seat_sub("S1", start="2026-01-01", history=history)],
        lines=[psa_line("L1", billed, sub="S1", effective="2026-01-01")],
    )
    (row,) = three_way_check(scenario, [invoice_of(invoice_item(1, "S1", invoiced))], "2026-11").rows
    return row


@settings(max_examples=200, deadline=None)
@given(rows, st.randoms(use_true_random=False), st.integers(min_value=0, max_value=30))
def test_should_bill_is_the_timeline_quantity_on_the_first(
    drawn: list[tuple[str, int, date]], shuffle: random.Random, invoiced: int
) -> None:
    history = [
        {
            "id": f"h{n}",
            "action": action,
            "quantity": "0" if action == "cancel" else str(q),
            "effective_date": on.isoformat(),
        }
        for n, (action, q, on) in enumerate(drawn)
    ]
    shuffle.shuffle(history)
    timeline = Timeline([HistoryRow.model_validate(h) for h in history])
    now = timeline.at(AS_OF)
    row = _check(history, invoiced, int(now))
    assert row.should_bill == round_cents(timeline.at(FIRST) * D("6.00"))
    if row.cls == "timing":  # the PSA holds today's quantity, the invoice the 1st's
        changes = [on for _, _, on in drawn if FIRST < on <= AS_OF]
        assert f"it changed to {int(now)} on {max(changes)}" in row.reason


def test_an_unordered_history_bills_the_quantity_in_force_on_the_first() -> None:
    """Listed newest first, as some exports do: the check must not take the first or last row."""
    history = [
        {"id": "h3", "action": "increase", "quantity": "12", "effective_date": "2026-11-10"},
        {"id": "h1", "action": "initial", "quantity": "5", "effective_date": "2026-01-01"},
        {"id": "h2", "action": "increase", "quantity": "8", "effective_date": "2026-10-01"},
    ]
    row = _check(history, 8, 12)
    assert row.should_bill == D("48.00")  # 8 in force on the 1st × $6.00
    assert row.cls == "timing"
    assert "it changed to 12 on 2026-11-10" in row.reason
