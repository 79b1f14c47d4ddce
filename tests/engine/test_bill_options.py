"""Issue 13: a binding carries *taxable* and *bill option* (seed 001's review rows "Bill Options:
Billable / Taxable") and every line it produces carries them; a line that does not bill nets $0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from builders import D, build, plan_of, psa_line, seat_sub, synced, the_line, usage, world

from engine import actions
from engine.margin.check import _Index, _should_bill
from engine.net import line_net, total_net
from engine.reconcile import reconcile
from engine.scenario_io import dump_scenario, parse_scenario
from engine.store import Store
from engine.store import tables as t
from engine.store.migrate import alembic_config

NO_CHARGE = {
    "vendor_product_id": "seat",
    "psa_product_id": "PP1",
    "taxable": False,
    "bill_option": "no_charge",
}
IN_ADVANCE = {"invoiced_through": "2021-02-28"}


def increase_plan(binding: dict[str, Any]) -> Any:
    """2 → 3 seats on 2021-01-17, February invoiced: a recurring update, a prorate, extra months."""
    return plan_of(
        "2021-01-18",
        subs=[seat_sub("S1", ("2020-12-01", 2), ("2021-01-17", 3), price="25.00", cost="20.00")],
        lines=[psa_line("L1", 2, sub="S1", price="25.00", cost="20.00")],
        synced_keys=[synced("S1:prorate:2020-12-01", 0)],
        settings=IN_ADVANCE,
        bindings=[binding],
    )


# --- the scenario ----------------------------------------------------------------------------------


def test_an_old_scenario_loads_with_billable_product_default_bindings() -> None:
    scenario = build("2021-01-18")
    [binding] = scenario.mappings.products
    assert (binding.taxable, binding.bill_option) == (None, "billable")


def test_export_writes_the_bill_options_and_they_load_again() -> None:
    scenario = build("2021-01-18", bindings=[NO_CHARGE])
    text = dump_scenario(scenario)
    [written] = json.loads(text)["mappings"]["products"]
    assert (written["taxable"], written["bill_option"]) == (False, "no_charge")
    [back] = parse_scenario(json.loads(text)).mappings.products
    assert (back.taxable, back.bill_option) == (False, "no_charge")


def test_an_unknown_bill_option_is_refused_with_its_path() -> None:
    data = world("2021-01-18", bindings=[{**NO_CHARGE, "bill_option": "free"}])
    with pytest.raises(Exception, match=r"mappings\.products\[0\]\.bill_option"):
        parse_scenario(data, "x.json")


# --- plan lines ------------------------------------------------------------------------------------


def test_every_line_of_the_binding_carries_its_bill_options() -> None:
    plan = increase_plan(NO_CHARGE)
    kinds = {line.kind.value for line in plan.lines}
    assert kinds == {"recurring", "prorate", "extra_months"}
    assert {(line.taxable, line.bill_option) for line in plan.lines} == {(False, "no_charge")}
    as_json = json.loads(plan.model_dump_json())["lines"][0]
    assert (as_json["taxable"], as_json["bill_option"]) == (False, "no_charge")


def test_a_default_binding_writes_billable_lines_with_the_products_tax_default() -> None:
    plan = increase_plan({"vendor_product_id": "seat", "psa_product_id": "PP1"})
    assert {(line.taxable, line.bill_option) for line in plan.lines} == {(None, "billable")}


def test_an_arrears_sub_product_takes_its_own_binding_else_the_products() -> None:
    product = {
        "id": "pp",
        "sku": "PPT",
        "name": "Proofpoint",
        "kind": "endpoint_usage",
        "sub_products": ["Business", "Advanced"],
    }
    plan = plan_of(
        "2021-01-03",
        products=[product],
        subs=[seat_sub("A1", product="pp", start="2020-07-01", price="0", cost="0")],
        usage_rows=[
            usage("A1", "2020-12", 17, sub_product="Business", price="3.00", cost="2.44"),
            usage("A1", "2020-12", 4, sub_product="Advanced", price="4.50", cost="3.60"),
        ],
        bindings=[
            {"vendor_product_id": "pp", "psa_product_id": "PP1", "taxable": True},
            {
                "vendor_product_id": "pp",
                "sub_product": "Advanced",
                "psa_product_id": "PP1",
                "bill_option": "do_not_bill",
            },
        ],
    )
    business = the_line(plan, "A1:arrears:Business")
    advanced = the_line(plan, "A1:arrears:Advanced")
    assert (business.taxable, business.bill_option) == (True, "billable")
    assert (advanced.taxable, advanced.bill_option) == (None, "do_not_bill")


# --- money -----------------------------------------------------------------------------------------


def test_a_no_charge_line_nets_zero_but_its_cost_is_the_msps() -> None:
    plan = increase_plan(NO_CHARGE)
    recurring = the_line(plan, "S1:recurring")
    assert recurring.total_price == D("75.00")  # the line's own (gross) value is still written
    net = line_net(recurring)
    assert (net.monthly, net.monthly_cost, net.gross) == (D("0.00"), D("20.00"), D("75.00"))
    total = total_net(plan.lines)
    assert total.monthly + total.one_time == D("0.00")
    assert total.margin == -(total.monthly_cost + total.one_time_cost) < 0
    billable = total_net(increase_plan({"vendor_product_id": "seat", "psa_product_id": "PP1"}).lines)
    assert billable.one_time > 0 and billable.monthly == D("25.00")


def test_the_margin_check_expects_nothing_billed_for_a_no_charge_binding() -> None:
    scenario = build(
        "2021-01-18",
        subs=[seat_sub("S1", ("2020-12-01", 2), price="25.00", cost="20.00")],
        bindings=[NO_CHARGE],
    )
    from datetime import date

    index = _Index(scenario)
    assert _should_bill(scenario.vendor.subscriptions[0], index, date(2021, 1, 1), D(2)) == (D(2), Decimal(0))


# --- the bind action -------------------------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    s.import_scenario(
        build(
            "2021-01-18",
            subs=[seat_sub("S1", ("2020-12-01", 2))],
            psa_products=[{"id": "PP1", "name": "Basic"}, {"id": "PP2", "name": "Basic (new)"}],
        )
    )
    yield s
    s.close()


def binding(store: Store) -> t.ProductBindingRow:
    with store.session() as s:
        row = s.get(t.ProductBindingRow, ("seat", ""))
        assert row is not None
        return row


def test_rebinding_keeps_free_taxable_and_bill_option_unless_changed(store: Store) -> None:
    actions.bind_product(store, "seat", "PP1", taxable=False, bill_option="no_charge", free=True)
    actions.bind_product(store, "seat", "PP2")  # re-bind: nothing else said
    row = binding(store)
    assert (row.psa_product_id, row.free, row.taxable, row.bill_option) == ("PP2", True, False, "no_charge")
    actions.bind_product(store, "seat", "PP2", taxable=None, bill_option="do_not_bill")
    row = binding(store)
    assert (row.free, row.taxable, row.bill_option) == (True, None, "do_not_bill")
    assert {(line.bill_option, line.taxable) for line in reconcile(store.snapshot()).lines} <= {
        ("do_not_bill", None)
    }


def test_undoing_a_rebind_restores_the_bill_options(store: Store) -> None:
    actions.bind_product(store, "seat", "PP1", taxable=True, bill_option="no_charge")
    actions.bind_product(store, "seat", "PP2", taxable=False, bill_option="billable")
    event = max((e for e in actions.undoable(store) if e.action == "bind_product"), key=lambda e: e.id or 0)
    actions.undo(store, event_id=event.id)
    row = binding(store)
    assert (row.psa_product_id, row.taxable, row.bill_option) == ("PP1", True, "no_charge")


@pytest.mark.parametrize(("psa", "name"), [("autotask", "Autotask"), ("halopsa", "HaloPSA")])
def test_a_psa_whose_lines_have_no_bill_options_refuses_them_at_bind_time(psa: str, name: str) -> None:
    store = Store.memory()
    try:
        store.import_scenario(
            build("2021-01-18", subs=[seat_sub("S1", ("2020-12-01", 2))], settings={"psa": psa})
        )
        for asked in ({"bill_option": "no_charge"}, {"taxable": True}):
            with pytest.raises(actions.ActionError) as refused:
                actions.bind_product(store, "seat", "PP1", **asked)  # type: ignore[arg-type]
            message = str(refused.value)
            assert message.startswith("Microsoft 365 Business Basic: " + name) and message.count(". ") == 0
        assert (binding(store).taxable, binding(store).bill_option) == (None, "billable")
        actions.bind_product(
            store, "seat", "PP1", taxable=None, bill_option="billable"
        )  # the defaults are fine
    finally:
        store.close()


# --- the migration ---------------------------------------------------------------------------------


@pytest.fixture
def url(store_url: str) -> str:
    """One store database per test (tests/conftest.py `store_url`: SQLite, and PostgreSQL when set)."""
    return store_url


def columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(store.engine).get_columns(table)}


def test_the_migration_goes_down_and_up_and_old_bindings_come_back_billable(url: str) -> None:
    store = Store(url)
    try:
        store.import_scenario(build("2021-01-18", bindings=[NO_CHARGE]))
        [kept] = store.snapshot().mappings.products
        assert (kept.taxable, kept.bill_option) == (False, "no_charge")
        config = alembic_config(store.engine)
        command.downgrade(config, "0007_psa_invoiced")
        assert not {"taxable", "bill_option"} & columns(store, "product_binding")
        assert not {"taxable", "bill_option"} & columns(store, "psa_line")
        command.upgrade(config, "head")
        assert {"taxable", "bill_option"} <= columns(store, "product_binding") & columns(store, "psa_line")
        [back] = store.snapshot().mappings.products  # the binding outlived the way down, as billable
        assert (back.psa_product_id, back.taxable, back.bill_option) == ("PP1", None, "billable")
    finally:
        store.close()


def test_the_store_keeps_how_the_psa_bills_a_line_and_a_no_charge_line_billed_nothing_before() -> None:
    line = {
        **psa_line("L1", 2, sub="S1", price="25.00", cost="20.00"),
        "bill_option": "no_charge",
        "taxable": False,
    }
    scenario = build(
        "2021-01-18",
        subs=[seat_sub("S1", ("2020-12-01", 2), ("2021-01-17", 3), price="25.00", cost="20.00")],
        lines=[line],
        synced_keys=[synced("S1:prorate:2020-12-01", 0)],
    )
    store = Store.memory()
    try:
        store.import_scenario(scenario)
        [kept] = store.snapshot().psa.lines
        [lean] = store.plan_inputs()[0].psa.lines
    finally:
        store.close()
    assert (kept.bill_option, kept.taxable) == (lean.bill_option, lean.taxable) == ("no_charge", False)
    update = the_line(reconcile(scenario), "S1:recurring")
    net = line_net(update, kept)  # the binding bills now (billable): 3 × $25 from $0
    assert net.monthly == D("75.00") and net.monthly_cost == D("20.00")
