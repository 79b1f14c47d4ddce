"""The plan's figure ("should bill") in the three-way check reads the quantity in force on the
month's first day exactly as the rules' `Timeline` does — whatever order the vendor's history rows
come in (the check bisects a history ordered by date and sorts any other first), same-day rows in
the order given, a cancel counting 0 — and a row's "timing" reason names the latest change after
the 1st."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.margin import DistributorInvoice, InvoiceItem, three_way_check
from engine.money import round_cents
from engine.rules.quantities import Timeline
from engine.scenario import HistoryRow, Scenario

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


def _world(history: list[dict[str, str]], invoiced: int, billed: int) -> tuple[Scenario, DistributorInvoice]:
    item = InvoiceItem(
        id="i1",
        invoice_id="inv-nov",
        type="subscription",
        company_id="c1",
        subscription_id="s1",
        product_id="p1",
        product_name="Seat",
        start_period=FIRST,
        end_period=date(2026, 11, 30),
        quantity=D(invoiced),
        price=D("20.00"),
        cost=D("15.00"),
        cost_total=D(invoiced) * D("15.00"),
        sub_total=D(invoiced) * D("20.00"),
        currency="USD",
    )
    invoice = DistributorInvoice("inv-nov", date(2026, 11, 5), "Paid", item.cost_total, "USD", (item,))
    scenario = Scenario.model_validate(
        {
            "as_of": AS_OF.isoformat(),
            "vendor": {
                "companies": [{"id": "c1", "name": "One"}],
                "products": [{"id": "p1", "name": "Seat"}],
                "subscriptions": [
                    {
                        "id": "s1",
                        "company_id": "c1",
                        "product_id": "p1",
                        "start_date": "2026-01-01",
                        "unit_price": "20.00",
                        "unit_cost": "15.00",
                        "history": history,
                    }
                ],
            },
            "psa": {
                "companies": [{"id": "P1", "name": "One"}],
                "products": [{"id": "PP1", "name": "Seat"}],
                "agreements": [
                    {"id": "AG1", "company_id": "P1", "name": "Monthly", "start_date": "2015-01-01"}
                ],
                "lines": [
                    {
                        "id": "L1",
                        "agreement_id": "AG1",
                        "product_id": "PP1",
                        "kind": "recurring",
                        "quantity": str(billed),
                        "unit_price": "20.00",
                        "unit_cost": "15.00",
                        "effective_date": "2026-01-01",
                        "source": {"subscription_id": "s1"},
                    }
                ],
            },
            "mappings": {
                "companies": [{"vendor_id": "c1", "psa_id": "P1"}],
                "products": [{"vendor_product_id": "p1", "psa_product_id": "PP1"}],
            },
        }
    )
    return scenario, invoice


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
    scenario, invoice = _world(history, invoiced, int(now))
    (row,) = three_way_check(scenario, [invoice], "2026-11").rows
    assert row.should_bill == round_cents(timeline.at(FIRST) * D("20.00"))
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
    scenario, invoice = _world(history, 8, 12)
    (row,) = three_way_check(scenario, [invoice], "2026-11").rows
    assert row.should_bill == D("160.00")  # 8 in force on the 1st × $20.00
    assert row.cls == "timing"
    assert "it changed to 12 on 2026-11-10" in row.reason
