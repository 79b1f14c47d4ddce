"""Hypothesis: for random worlds — subscriptions with histories, PSA lines linked or not, one-time
lines, invoice items of other currencies, items of no or unknown subscriptions, invoices whose
total differs from their items, credited invoices, ignores and marks — the classified cost sums to
the counted invoices' total and the classified price to the PSA total, per currency, to the cent."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.margin import DistributorInvoice, InvoiceItem, Mark, three_way_check
from engine.margin.psa_invoices import PsaInvoiceLine
from engine.money import round_cents
from engine.scenario import Scenario

D = Decimal
cents = st.integers(min_value=0, max_value=500_000).map(lambda n: D(n) / 100)
quantities = st.integers(min_value=0, max_value=40).map(D)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Scenario, list[DistributorInvoice], dict[str, Mark], D]:
    n_subs = draw(st.integers(min_value=0, max_value=8))
    subs, lines, items_by_invoice = [], [], defaultdict(list)
    for n in range(n_subs):
        sid = f"s{n}"
        start = draw(st.sampled_from([date(2026, 1, 1), date(2026, 10, 3), date(2026, 11, 15)]))
        cancelled = draw(st.booleans())
        history = [
            {
                "id": f"{sid}-h1",
                "action": "initial",
                "quantity": str(draw(quantities)),
                "effective_date": start.isoformat(),
            }
        ]
        if cancelled:
            history.append(
                {"id": f"{sid}-h2", "action": "cancel", "quantity": "0", "effective_date": "2026-11-10"}
            )
        subs.append(
            {
                "id": sid,
                "company_id": draw(st.sampled_from(["c1", "c2"])),
                "product_id": draw(st.sampled_from(["p1", "p2"])),
                "start_date": start.isoformat(),
                "unit_price": str(draw(cents)),
                "unit_cost": str(draw(cents)),
                "status": "cancelled" if cancelled else "active",
                "cancelled_date": "2026-11-10" if cancelled else None,
                "end_date": "2026-11-10" if cancelled else None,
                "history": history,
            }
        )
        for k in range(draw(st.integers(min_value=0, max_value=2))):
            one_time = draw(st.booleans())
            lines.append(
                {
                    "id": f"L{n}-{k}",
                    "agreement_id": "AG1",
                    "product_id": draw(st.sampled_from(["PP1", "PP2", "PPX"])),
                    "kind": "one_time" if one_time else "recurring",
                    "quantity": str(draw(quantities)),
                    "unit_price": str(draw(cents)),
                    "unit_cost": "0",
                    "effective_date": "2026-11-01" if one_time else "2026-01-01",
                    "source": {"subscription_id": sid} if draw(st.booleans()) else None,
                }
            )
        for k in range(draw(st.integers(min_value=0, max_value=3))):
            invoice = draw(st.sampled_from(["inv-nov", "inv-nov-2", "inv-oct", "inv-credited"]))
            items_by_invoice[invoice].append(
                InvoiceItem(
                    id=f"{invoice}-{sid}-{k}",
                    invoice_id=invoice,
                    type=draw(st.sampled_from(["subscription", "prorate", "one-time"])),
                    company_id="c1",
                    subscription_id=draw(st.sampled_from([sid, sid, "gone", None])),
                    product_id="p1",
                    product_name="Seat",
                    start_period=date(2026, 10, 12),
                    end_period=date(2026, 11, 30),
                    quantity=draw(quantities),
                    price=draw(cents),
                    cost=draw(cents),
                    cost_total=draw(cents),
                    sub_total=draw(cents),
                    currency=draw(st.sampled_from(["USD", "USD", "EUR"])),
                    term=draw(st.sampled_from(["Monthly", "Arrears"])),
                )
            )
    invoices = []
    for invoice_id, day, status in (
        ("inv-nov", date(2026, 11, 5), "Unpaid"),
        ("inv-nov-2", date(2026, 11, 20), "Paid"),
        ("inv-oct", date(2026, 10, 5), "Paid"),
        ("inv-credited", date(2026, 11, 4), "Credited"),
    ):
        items = tuple(items_by_invoice[invoice_id])
        total = sum((i.cost_total for i in items), D(0))
        if draw(st.booleans()):
            total += draw(cents)  # tax, or a total that does not add up
        invoices.append(DistributorInvoice(invoice_id, day, status, total, "USD", items))
    scenario = Scenario.model_validate(
        {
            "as_of": "2026-11-21",
            "vendor": {
                "companies": [{"id": "c1", "name": "One"}, {"id": "c2", "name": "Two"}],
                "products": [{"id": "p1", "name": "Seat"}, {"id": "p2", "name": "Other"}],
                "subscriptions": subs,
            },
            "psa": {
                "companies": [{"id": "P1", "name": "One"}],
                "products": [
                    {"id": "PP1", "name": "Seat"},
                    {"id": "PP2", "name": "Other"},
                    {"id": "PPX", "name": "Labour"},
                ],
                "agreements": [
                    {"id": "AG1", "company_id": "P1", "name": "Monthly", "start_date": "2015-01-01"}
                ],
                "lines": lines,
            },
            "mappings": {
                "companies": [{"vendor_id": "c1", "psa_id": "P1"}],
                "products": [
                    {"vendor_product_id": "p1", "psa_product_id": "PP1"},
                    {"vendor_product_id": "p2", "psa_product_id": "PP2"},
                ],
            },
            "ignored": [{"key": "s0", "by": "dana", "on": "2026-11-20", "reason": "bundle"}]
            if draw(st.booleans())
            else [],
        }
    )
    marks = {"s1": Mark("s1", "lee", date(2026, 11, 20))} if draw(st.booleans()) else {}
    vendor_backed = sum(
        (
            round_cents(D(line["quantity"]) * D(line["unit_price"]))
            for line in lines
            if line["product_id"] != "PPX" or line["source"]
        ),
        D(0),
    )
    return scenario, invoices, marks, vendor_backed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_classified_sums_tie_out(
    world: tuple[Scenario, list[DistributorInvoice], dict[str, Mark], D],
) -> None:
    scenario, invoices, marks, vendor_backed = world
    report = three_way_check(scenario, invoices, "2026-11", marks=marks)
    assert report.status == "audited"
    counted = [inv for inv in invoices if inv.month == "2026-11" and inv.status != "Credited"]
    for t in report.totals:
        rows = [r for r in report.rows if r.currency == t.currency]
        assert sum((r.cost for r in rows), D(0)) == t.invoice_total
        assert sum((r.price for r in rows), D(0)) == t.psa_total
        assert t.ties_out
    # The invoice side: every counted invoice's total, in its own currency only.
    assert sum((t.invoice_total for t in report.totals), D(0)) == sum((i.total for i in counted), D(0))
    # The PSA side: every vendor-backed line in force (all are, in these worlds), never a labour line.
    assert sum((r.price for r in report.rows), D(0)) == vendor_backed
    # Every row has a reason; each class is one of the documented ones.
    assert all(r.reason for r in report.rows)


@st.composite
def invoiced_worlds(
    draw: st.DrawFn,
) -> tuple[Scenario, list[DistributorInvoice], dict[str, Mark], list[PsaInvoiceLine], D]:
    """A world and what its PSA invoiced: lines naming a PSA line, lines found by agreement and
    product, lines no PSA line stands behind, lines of another month; amounts as the invoice
    rounds them (not always quantity × price)."""
    scenario, invoices, marks, _ = draw(worlds())
    by_id = {line.id: line for line in scenario.psa.lines}
    invoiced: list[PsaInvoiceLine] = []
    counted = D(0)
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        how = draw(st.sampled_from(["named", "by product", "stray", "stray labour"]))
        month = draw(st.sampled_from([11, 11, 10]))
        quantity, price, amount = draw(quantities), draw(cents), draw(cents)
        line_id: str | None = None
        agreement, product = "AG1", draw(st.sampled_from(["PP1", "PP2"]))
        if how == "named" and by_id:
            line_id = draw(st.sampled_from(sorted(by_id)))
            product = by_id[line_id].product_id
            backed = product != "PPX" or by_id[line_id].source is not None
        elif how == "stray labour":
            agreement, product, backed = "AG9", "PPX", False
        else:
            agreement = "AG1" if how == "by product" else "AG9"
            backed = True
        invoiced.append(
            PsaInvoiceLine(
                invoice_id=f"pi{month}",
                invoice_number=f"PI{month}",
                invoice_date=date(2026, month, 1),
                company_id="P1",
                agreement_id=agreement,
                line_id=line_id,
                product_id=product,
                description="invoiced",
                quantity=quantity,
                unit_price=price,
                amount=amount,
                currency="USD",
            )
        )
        if month == 11 and backed:
            counted += amount
    return scenario, invoices, marks, invoiced, counted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invoiced_worlds())
def test_classified_sums_tie_out_with_invoiced_reads(
    world: tuple[Scenario, list[DistributorInvoice], dict[str, Mark], list[PsaInvoiceLine], D],
) -> None:
    scenario, invoices, marks, invoiced, counted = world
    report = three_way_check(scenario, invoices, "2026-11", marks=marks, psa_invoiced=invoiced)
    for t in report.totals:
        rows = [r for r in report.rows if r.currency == t.currency]
        assert sum((r.cost for r in rows), D(0)) == t.invoice_total
        assert sum((r.price for r in rows), D(0)) == t.psa_total
        assert t.ties_out
    if any(line.month == "2026-11" for line in invoiced):
        # the PSA invoiced P1 in November: PSA billed is exactly what its invoice says (the vendor-
        # backed part), never its lines in force
        assert sum((r.price for r in report.rows), D(0)) == counted
        assert {c.psa_billed_from for c in report.customers if c.company_id == "c1"} <= {"invoices"}
    else:
        assert {c.psa_billed_from for c in report.customers} <= {"lines in force"}
    assert all(r.reason for r in report.rows)
