"""Issue 13: a binding's bill option or taxable flag changed while its PSA line already holds the
right quantity — the plan proposes updating that line (on a PSA whose lines carry them, as read
back), the full way and through the store's quiet-subscription fast path alike."""

from __future__ import annotations

from typing import Any

from builders import D, build, psa_line, seat_sub, synced, usage

from engine.net import line_net
from engine.plan import Plan
from engine.reconcile import reconcile
from engine.scenario import Scenario
from engine.store import Store

SEAT = {"vendor_product_id": "seat", "psa_product_id": "PP1"}
NO_CHARGE = {**SEAT, "bill_option": "no_charge"}


def in_sync(
    binding: dict[str, Any], *, held: str | None, taxable: bool | None = None, psa: str = "connectwise"
) -> Scenario:
    """10 seats at $20.00 since December, the PSA line holds 10 and bills as `held` (None: not read)."""
    line = {
        **psa_line("L1", 10, sub="S1", price="20.00", cost="15.00"),
        "bill_option": held,
        "taxable": taxable,
    }
    return build(
        "2021-01-18",
        subs=[seat_sub("S1", ("2020-12-01", 10), price="20.00", cost="15.00")],
        lines=[line],
        synced_keys=[synced("S1:prorate:2020-12-01", 10)],  # December's increase was written
        bindings=[binding],
        settings={"psa": psa},
    )


def only_update(plan: Plan) -> Any:
    [line] = plan.lines
    assert (line.key, line.action, line.psa_line_id, line.quantity) == (
        "S1:recurring",
        "update",
        "L1",
        D("10"),
    )
    return line


def test_a_no_charge_binding_updates_its_in_sync_line_and_nets_the_billed_difference() -> None:
    line = only_update(reconcile(in_sync(NO_CHARGE, held="billable")))
    assert (line.bill_option, line.previous_bill_option, line.previous_quantity) == (
        "no_charge",
        "billable",
        D("10"),
    )
    assert line.formula.endswith("bill option No charge (was Billable)")
    net = line_net(line)
    assert (net.monthly, net.monthly_cost) == (D("-200.00"), D("0.00"))


def test_going_back_to_billable_updates_the_no_charge_line() -> None:
    line = only_update(reconcile(in_sync(SEAT, held="no_charge")))
    assert (line.bill_option, line.previous_bill_option) == ("billable", "no_charge")
    assert line.formula.endswith("bill option Billable (was No charge)")
    assert line_net(line).monthly == D("200.00")


def test_a_taxable_flag_is_compared_only_when_the_binding_sets_one() -> None:
    line = only_update(reconcile(in_sync({**SEAT, "taxable": True}, held="billable", taxable=False)))
    assert (line.taxable, line.previous_taxable, line.previous_bill_option) == (True, False, None)
    assert line.formula.endswith("taxable (was not taxable)")
    assert line_net(line).monthly == D("0.00")  # still billed: nothing changes on the invoice
    assert reconcile(in_sync(SEAT, held="billable", taxable=False)).lines == []  # None: the product's default


def test_a_line_whose_option_was_not_read_proposes_nothing() -> None:
    assert reconcile(in_sync(NO_CHARGE, held=None)).lines == []


def test_a_line_already_billed_as_bound_proposes_nothing() -> None:
    assert reconcile(in_sync(NO_CHARGE, held="no_charge")).lines == []


def test_only_a_psa_whose_lines_carry_a_bill_option_is_compared() -> None:
    assert reconcile(in_sync(SEAT, held="no_charge", psa="halopsa")).lines == []
    assert reconcile(in_sync(SEAT, held="no_charge", psa="autotask")).lines == []


def test_an_arrears_line_with_the_right_count_is_updated_to_its_bill_option() -> None:
    product = {"id": "pp", "sku": "PPT", "name": "Proofpoint", "kind": "endpoint_usage"}
    line = {**psa_line("L1", 17, sub="A1", price="3.00", cost="2.44"), "bill_option": "billable"}
    scenario = build(
        "2021-01-03",
        products=[product],
        subs=[seat_sub("A1", product="pp", start="2020-07-01", price="0", cost="0")],
        usage_rows=[usage("A1", "2020-12", 17, price="3.00", cost="2.44")],
        lines=[line],
        bindings=[{"vendor_product_id": "pp", "psa_product_id": "PP1", "bill_option": "do_not_bill"}],
    )
    [update] = reconcile(scenario).lines
    assert (update.action, update.psa_line_id, update.quantity, update.bill_option) == (
        "update",
        "L1",
        D("17"),
        "do_not_bill",
    )
    assert update.formula.endswith("bill option Do not bill (was Billable)")
    assert line_net(update).monthly == D("-51.00")


def test_the_stores_quiet_fast_path_does_not_hide_a_line_billed_otherwise() -> None:
    store = Store.memory()
    try:
        store.import_scenario(in_sync(NO_CHARGE, held="billable"))
        scenario, hints = store.plan_inputs()
        assert "S1" in hints.quiet  # read the fast way: its history stays in the database
        line = only_update(reconcile(scenario, hints))
        assert (line.bill_option, line.previous_bill_option) == ("no_charge", "billable")

        store.import_scenario(in_sync(NO_CHARGE, held="no_charge"))
        scenario, hints = store.plan_inputs()
        assert "S1" in hints.quiet and reconcile(scenario, hints).lines == []
    finally:
        store.close()
