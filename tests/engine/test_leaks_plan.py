"""The leak rules in the plan (issue 14 item 4, engine.rules.leaks): a vendor price change is a
`price` line the operator reviews and syncs (per the price_change_policy setting), a subscription
gone from the vendor a `cancel` line, a price below cost an error finding; the net money of a price
update is (new − old) × quantity."""

from __future__ import annotations

from decimal import Decimal

from builders import build, psa_line, seat_sub, synced

from engine.keys import PlanKey
from engine.net import line_net
from engine.plan import LineKind
from engine.reconcile import reconcile

D = Decimal
SYNCED = synced("S1:prorate:2026-01-05", 10)  # the purchase was billed long ago


def _price_world(policy: str | None = None, **line: str):  # type: ignore[no-untyped-def]
    return build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 10), price="23.10", cost="19.64")],
        lines=[
            psa_line("L1", 10, price=line.get("price", "22.00"), cost=line.get("cost", "18.70"), sub="S1")
        ],
        settings={"price_change_policy": policy} if policy else None,
        synced_keys=[SYNCED],
    )


def test_a_vendor_price_rise_is_a_price_line_at_the_retail_price_and_cost() -> None:
    plan = reconcile(_price_world())
    (line,) = plan.lines
    assert line.key == PlanKey.price("S1").format() == "S1:price"
    assert (line.kind, line.action, line.psa_line_id) == (LineKind.PRICE, "update", "L1")
    assert (line.quantity, line.unit_price, line.unit_cost) == (D(10), D("23.10"), D("19.64"))
    assert (line.previous_unit_price, line.previous_unit_cost) == (D("22.00"), D("18.70"))
    assert (line.total_price, line.total_cost) == (D("231.00"), D("196.40"))
    assert [f.code for f in plan.findings] == ["vendor_price_changed"]
    net = line_net(line)
    assert (net.monthly, net.monthly_cost) == (D("11.00"), D("9.40"))


def test_keep_margin_proposes_the_price_that_keeps_the_margin_and_keep_and_warn_only_warns() -> None:
    (line,) = reconcile(_price_world("keep_margin")).lines
    assert (line.unit_price, line.unit_cost) == (D("23.11"), D("19.64"))
    warned = reconcile(_price_world("keep_and_warn"))
    assert warned.lines == [] and [f.code for f in warned.findings] == ["vendor_price_changed"]


def test_a_line_that_holds_the_proposal_is_in_sync() -> None:
    assert reconcile(_price_world(price="23.10", cost="19.64")).lines == []
    kept = reconcile(_price_world("keep_margin", price="23.11", cost="19.64"))
    assert kept.lines == [] and kept.findings == []  # the kept margin: not a change any more


def test_a_quantity_change_keeps_its_recurring_update_and_the_price_line_follows_it() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 10), ("2026-11-10", 8), price="23.10", cost="19.64")],
        lines=[psa_line("L1", 10, price="22.00", cost="18.70", sub="S1")],
        synced_keys=[SYNCED],
    )
    plan = reconcile(scenario)
    updates = [line for line in plan.lines if line.psa_line_id == "L1"]
    # RULES §1: the recurring update changes the quantity only; the price line comes after it, in
    # the same change set, at the updated quantity
    assert [(u.key, u.quantity, u.previous_quantity, u.unit_price) for u in updates] == [
        ("S1:recurring", D(8), D(10), D("22.00")),
        ("S1:price", D(8), D(8), D("23.10")),
    ]
    assert updates[0].change_set == updates[1].change_set
    # the nets add up to new − old billing: 8 × 23.10 − 10 × 22.00
    total = line_net(updates[0]) + line_net(updates[1])
    assert total.monthly == D("184.80") - D("220.00")
    assert line_net(updates[1]).monthly == D("8.80")  # (23.10 − 22.00) × 8


def test_a_subscription_gone_from_the_vendor_proposes_ending_its_line_this_month() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 12), gone=True)],
        lines=[psa_line("L1", 12, sub="S1")],
    )
    plan = reconcile(scenario)
    (line,) = plan.lines
    assert (line.key, line.kind, line.action, line.psa_line_id) == (
        "S1:cancel",
        LineKind.CANCEL,
        "cancel",
        "L1",
    )
    assert str(line.end_date) == "2026-11-30" and line.company_id == "acme"
    assert [f.code for f in plan.findings] == ["vendor_subscription_gone"]
    assert line_net(line).monthly == D("-72.00")


def test_a_subscription_the_vendor_does_not_list_at_all_is_gone_too() -> None:
    plan = reconcile(build("2026-11-21", subs=[], lines=[psa_line("L1", 3, sub="S9")]))
    assert [(line.key, str(line.end_date)) for line in plan.lines] == [("S9:cancel", "2026-11-30")]
    assert plan.findings[0].code == "vendor_subscription_gone"
    assert plan.findings[0].subject == {"subscription_id": "S9", "psa_line_id": "L1"}


def test_cancelled_without_a_record_keeps_the_seat_rules_cancel_and_says_why() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 12), status="cancelled", cancelled_date="2026-10-15")],
        lines=[psa_line("L1", 12, sub="S1")],
    )
    plan = reconcile(scenario)
    cancels = [line for line in plan.lines if line.kind is LineKind.CANCEL]
    assert [(c.key, str(c.end_date)) for c in cancels] == [("S1:cancel", "2026-10-31")]
    assert "vendor_subscription_gone" in {f.code for f in plan.findings}


def test_a_price_below_cost_is_an_error_and_proposes_no_line_of_its_own() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 10), price="22.00", cost="23.10")],
        lines=[psa_line("L1", 10, price="22.00", cost="23.10", sub="S1")],
        synced_keys=[SYNCED],
    )
    plan = reconcile(scenario)
    assert plan.lines == []
    (error,) = plan.findings
    assert (error.code, error.severity) == ("price_below_cost", "error")


def test_a_line_already_ending_with_the_vendors_cancellation_next_month_is_left_alone() -> None:
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-01-05", 12), status="cancelled", cancelled_date="2026-12-15")],
        lines=[psa_line("L1", 12, sub="S1", cancelled="2026-12-31")],
        synced_keys=[SYNCED],
    )
    plan = reconcile(scenario)
    assert plan.lines == [] and "vendor_subscription_gone" not in {f.code for f in plan.findings}
