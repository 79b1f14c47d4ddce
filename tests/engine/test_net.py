"""Net money (engine.net): the invoice change, not the lines' gross values. Figures checked by hand
against the demo MSP as of 2026-11-21 (the console tests' scenario)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from engine.net import by_company, fmt_net, line_net, old_line_of, summary, total_net
from engine.plan import LineKind, Plan
from engine.reconcile import reconcile
from engine.sandbox.demo import build_demo_scenario

D = Decimal


@pytest.fixture(scope="module")
def demo() -> tuple[Any, Plan, dict[str, Any]]:
    scenario = build_demo_scenario(as_of=date(2026, 11, 21))
    return scenario, reconcile(scenario), {line.id: line for line in scenario.psa.lines}


def _one(plan: Plan, kind: LineKind, **want: Any) -> Any:
    for line in plan.lines:
        if line.kind is kind and all(getattr(line, k) == v for k, v in want.items()):
            return line
    raise AssertionError(f"no {kind} line with {want}")


def test_a_decrease_is_the_seats_dropped_not_the_whole_line(demo: Any) -> None:
    _, plan, psa = demo
    line = _one(
        plan,
        LineKind.RECURRING,
        action="update",
        previous_quantity=D(12),
        quantity=D(10),
        unit_price=D("36.00"),
    )
    net = line_net(line, old_line_of(line, psa))
    # by hand: 12 → 10 at $36.00 → -$72.00 a month; the line as written is $360.00
    assert net.monthly == D("-72.00") and net.gross == D("360.00") and net.one_time == 0
    assert fmt_net(net.monthly) == "-$72.00"


def test_a_cancellation_removes_what_the_psa_billed(demo: Any) -> None:
    _, plan, psa = demo
    line = _one(plan, LineKind.CANCEL, previous_quantity=D(12), unit_price=D("4.00"))
    net = line_net(line, old_line_of(line, psa))
    assert net.monthly == D("-48.00")  # 12 × $4.00 no longer billed, not "+$48.00"
    assert net.gross == D("48.00")


def test_a_prorate_is_one_time_and_a_usage_summary_nets_against_the_old_charge(demo: Any) -> None:
    _, plan, psa = demo
    prorate = next(x for x in plan.lines if x.kind is LineKind.PRORATE and x.total_price > 0)
    net = line_net(prorate, old_line_of(prorate, psa))
    # a prorate changes no monthly billing: it is charged once, for what it is
    assert (net.monthly, net.one_time, net.one_time_cost) == (
        D("0.00"),
        prorate.total_price,
        prorate.total_cost,
    )
    summary_line = _one(plan, LineKind.USAGE_SUMMARY, unit_price=D("2927.79"))
    old = old_line_of(summary_line, psa)
    assert old is not None and old.unit_price == D("3148.75")
    # by hand: the PSA billed $3,148.75, it will bill $2,927.79 → -$220.96 a month
    assert line_net(summary_line, old).monthly == D("-220.96")


def test_totals_are_the_sum_of_lines_and_customers_and_carry_credits(demo: Any) -> None:
    _, plan, psa = demo
    total = total_net(plan.lines, psa, plan.findings)
    per_line = [line_net(x, old_line_of(x, psa)) for x in plan.lines]
    assert total.monthly == sum((n.monthly for n in per_line), D(0))
    assert sum((n.monthly for n in by_company(plan.lines, psa).values()), D(0)) == total.monthly
    assert total.gross == plan.totals.price  # gross stays what the plan writes
    assert total.monthly < total.gross  # the headline is no longer inflated by unchanged seats
    assert total.credits == D("48.00")  # Lakeside: 12 × $4.00 × 1 month to credit (credit_due)
    assert total.margin == (total.monthly + total.one_time) - (total.monthly_cost + total.one_time_cost)
    assert total.margin_pct is not None and D(0) < total.margin_pct < D(100)
    text = summary(total, "ConnectWise")
    assert text.startswith(f"net {fmt_net(total.monthly)}/month, one-time ") and text.endswith(
        ", to ConnectWise"
    )
