"""The leak rules (engine.rules.leaks): a vendor price change proposes a price by the policy, a
subscription gone or cancelled without a record proposes the cancel, a price below cost is an error."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from builders import build, psa_line, seat_sub

from engine.rules.findings import CODES
from engine.rules.leaks import leak_rules

D = Decimal


def test_a_vendor_price_rise_proposes_the_retail_price_by_default() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 10), price="23.10", cost="19.64")],
        lines=[psa_line("L1", 10, price="22.00", cost="18.70", sub="S1")],
    )
    (leak,) = leak_rules(scenario)
    assert leak.finding.code == "vendor_price_changed" and leak.finding.severity == "warning"
    assert leak.proposed_price == D("23.10") and leak.psa_line_id == "L1"
    assert "23.10/19.64" in leak.finding.message and "22.00/18.70" in leak.finding.message


@pytest.mark.parametrize(("policy", "proposed"), [("keep_and_warn", None), ("keep_margin", D("23.11"))])
def test_the_price_change_policy_chooses_the_proposal(policy: str, proposed: Decimal | None) -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 10), price="23.10", cost="19.64")],
        lines=[psa_line("L1", 10, price="22.00", cost="18.70", sub="S1")],
    )
    (leak,) = leak_rules(scenario, policy)  # type: ignore[arg-type]
    assert leak.proposed_price == proposed


def test_a_binding_price_is_the_operators_choice_not_a_change() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 10), price="23.10", cost="19.64")],
        lines=[psa_line("L1", 10, price="30.00", cost="19.64", sub="S1")],
        bindings=[{"vendor_product_id": "seat", "psa_product_id": "PP1", "unit_price": "30.00"}],
    )
    assert leak_rules(scenario) == []


def test_a_price_below_the_vendor_cost_is_an_error() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 10), price="22.00", cost="23.10")],
        lines=[psa_line("L1", 10, price="22.00", cost="23.10", sub="S1")],
    )
    (leak,) = leak_rules(scenario)
    assert leak.finding.code == "price_below_cost" and leak.finding.severity == "error"
    assert "22.00 a unit, below the vendor's cost 23.10" in leak.finding.message


def test_a_subscription_gone_from_the_vendor_proposes_the_cancel() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S2", ("2026-01-05", 1))],
        lines=[psa_line("L1", 12, sub="S1"), psa_line("L2", 1, sub="S2")],
    )
    (leak,) = leak_rules(scenario)
    assert leak.finding.code == "vendor_subscription_gone" and leak.subscription_id == "S1"
    assert leak.proposed_cancel == date(2026, 11, 30)
    assert "is gone from the vendor" in leak.finding.message and "still bills 12" in leak.finding.message


def test_cancelled_without_a_cancellation_record() -> None:
    scenario = build(
        "2026-11-21",
        subs=[
            seat_sub("S1", ("2026-01-05", 4), status="cancelled", cancelled_date="2026-11-02"),
            seat_sub(
                "S2",
                ("2026-01-05", 4),
                ("2026-11-02", 0, "cancel"),
                status="cancelled",
                cancelled_date="2026-11-02",
            ),
        ],
        lines=[psa_line("L1", 4, sub="S1"), psa_line("L2", 4, sub="S2")],
    )
    (leak,) = leak_rules(scenario)
    assert leak.subscription_id == "S1" and leak.finding.code == "vendor_subscription_gone"
    assert "no cancellation record" in leak.finding.message


def test_lines_already_ended_are_left_alone_and_the_codes_are_documented() -> None:
    scenario = build("2026-11-21", subs=[], lines=[psa_line("L1", 4, sub="S1", cancelled="2026-10-31")])
    assert leak_rules(scenario) == []
    assert {"vendor_subscription_gone", "price_below_cost", "vendor_price_changed"} <= set(CODES)
    with pytest.raises(ValueError, match="price_change_policy"):
        leak_rules(scenario, "sometimes")  # type: ignore[arg-type]
