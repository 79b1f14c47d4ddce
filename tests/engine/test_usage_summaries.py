"""RULES.md §5: usage summaries (Azure) — one line of quantity 1, final from day 5 of the next month."""

from __future__ import annotations

from datetime import date

from builders import D, findings, keys, money, plan_of, psa_line, seat_sub, the_line, usage

AZURE = {"id": "az", "sku": "AZ-PLAN", "name": "Azure plan", "kind": "usage_summary"}
JANUARY = usage("Z1", "2021-01", 1, charges="1234.56", partner_total="987.65")


def summary_plan(as_of: str, *, rows=(JANUARY,), lines=()):  # type: ignore[no-untyped-def]
    return plan_of(
        as_of,
        products=[AZURE],
        subs=[seat_sub("Z1", product="az", start="2020-07-01")],
        bindings=[{"vendor_product_id": "az", "psa_product_id": "PP1"}],
        usage_rows=list(rows),
        lines=list(lines),
    )


def test_final_from_day_5() -> None:
    plan = summary_plan("2021-02-05")
    line = the_line(plan, "Z1:usage_summary")
    assert (line.kind, line.action, line.quantity) == ("usage_summary", "create", D(1))
    assert money(line) == (D("1234.56"), D("987.65"), D("1234.56"), D("987.65"))
    assert line.provisional is False
    assert line.description == "Pax8 - Azure plan (Usage Summary)"
    assert (line.period_start, line.period_end) == (date(2021, 1, 1), date(2021, 1, 31))
    assert line.effective_date == date(2020, 7, 1)
    assert plan.findings == []


def test_provisional_before_day_5() -> None:
    plan = summary_plan("2021-02-04")
    line = the_line(plan, "Z1:usage_summary")
    assert line.provisional is True
    assert money(line) == (D("1234.56"), D("987.65"), D("1234.56"), D("987.65"))
    [pending] = findings(plan, "usage_pending")
    assert pending.subject == {"subscription_id": "Z1"}
    assert "provisional" in pending.message


def test_december_is_billed_in_january() -> None:
    december = usage("Z1", "2020-12", 1, charges="99.99", partner_total="80.00")
    plan = summary_plan("2021-01-05", rows=[december, JANUARY])
    line = the_line(plan, "Z1:usage_summary")
    assert (line.period_start, line.unit_price, line.unit_cost) == (date(2020, 12, 1), D("99.99"), D("80.00"))


def test_without_charges_the_price_is_quantity_times_unit() -> None:
    row = usage("Z1", "2021-01", "12.5", price="2.10", cost="1.60")
    plan = summary_plan("2021-02-06", rows=[row])
    line = the_line(plan, "Z1:usage_summary")
    assert (line.quantity, line.unit_price, line.unit_cost) == (D(1), D("26.25"), D("20.00"))


def test_a_line_holding_the_figures_is_in_sync() -> None:
    line = psa_line("L9", 1, price="1234.56", cost="987.65", sub="Z1")
    assert summary_plan("2021-02-05", lines=[line]).lines == []


def test_a_line_with_last_months_figures_is_updated() -> None:
    line = psa_line("L9", 1, price="1000.00", cost="800.00", sub="Z1", effective="2020-08-01")
    plan = summary_plan("2021-02-05", lines=[line])
    update = the_line(plan, "Z1:usage_summary")
    assert (update.action, update.psa_line_id, update.effective_date) == ("update", "L9", date(2020, 8, 1))
    assert (update.unit_price, update.unit_cost) == (D("1234.56"), D("987.65"))


def test_no_summary_yet_is_usage_pending() -> None:
    plan = summary_plan("2021-03-06")  # February has no summary
    assert keys(plan) == []
    [pending] = findings(plan, "usage_pending")
    assert "2021-02" in pending.message
