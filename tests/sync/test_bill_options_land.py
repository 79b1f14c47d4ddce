"""Issue 13, landed = planned: a binding's taxable flag and bill option are written on every line it
produces and the read-back check compares them per line — on ConnectWise (Addition.billCustomer /
taxableFlag, APIS.md §2.8) through its sandbox; HaloPSA's recurring invoice lines have neither
([spec] InvoiceDetail), so such a line is refused before anything is sent."""

from __future__ import annotations

from pathlib import Path

from sync_builder import build_scenario, make_rig

from engine.actions import bind_product
from engine.reconcile import reconcile
from engine.scenario import Psa, Scenario
from engine.store import Store
from engine.sync import Outcome, SyncExecutor
from engine.verify import verify_lines


def scenario_with_bill_options(psa: str) -> Scenario:
    """Subscriptions on vp0 (new: recurring create + prorate) and vp3 (an increase: update + prorate)
    bound not-billed; the rest billable."""
    scenario = build_scenario(psa, new=3, updates=2, cancels=1, create_new=0, record_only=0, companies=1)
    options = {
        "vp0": {"taxable": False, "bill_option": "no_charge"},
        "vp3": {"taxable": True, "bill_option": "do_not_bill"},
    }
    bindings = [b.model_copy(update=options.get(b.vendor_product_id, {})) for b in scenario.mappings.products]
    return scenario.model_copy(
        update={"mappings": scenario.mappings.model_copy(update={"products": bindings})}
    )


async def _read(rig) -> Psa:  # type: ignore[no-untyped-def]
    connector = rig.connector()
    try:
        return Psa(
            companies=await connector.companies(),
            products=await connector.products(),
            agreements=await connector.agreements(),
            lines=await connector.lines(),
        )
    finally:
        await connector.aclose()


async def _sync(store: Store, rig, scenario: Scenario):  # type: ignore[no-untyped-def]
    plan = reconcile(store.snapshot())
    connector = rig.connector()
    try:
        report = await SyncExecutor(store, connector, today=scenario.as_of).run(plan.lines)
    finally:
        await connector.aclose()
    return plan, report


async def test_connectwise_lands_the_bill_options_and_the_check_sees_a_line_billed_otherwise(
    tmp_path: Path,
) -> None:
    scenario = scenario_with_bill_options("connectwise")
    rig = make_rig("connectwise", scenario)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        store.import_scenario(scenario)
        plan, report = await _sync(store, rig, scenario)
        by_product = {}
        for line in plan.lines:
            sub = next(s for s in scenario.vendor.subscriptions if s.id == line.subscription_id)
            by_product.setdefault(sub.product_id, []).append(line)
        assert {(x.kind.value, x.action, x.bill_option, x.taxable) for x in by_product["vp0"]} == {
            ("recurring", "create", "no_charge", False),
            ("prorate", "create", "no_charge", False),
        }
        assert {(x.action, x.bill_option) for x in by_product["vp3"]} == {
            ("update", "do_not_bill"),
            ("create", "do_not_bill"),
        }
        assert [o.key for o in report.outcomes if o.outcome is not Outcome.WRITTEN] == []

        landed = await _read(rig)
        result = verify_lines(plan.lines, landed.lines, psa="connectwise")
        assert [(c.key, c.message) for c in result.problems] == []
        held = {a["billCustomer"] for a in rig.sandbox.additions.values() if a.get("serialNumber")}
        assert {"NoCharge", "DoNotBill", "Billable"} <= held

        # someone sets a No charge line back to Billable in ConnectWise: the PSA will bill it
        recurring = next(x for x in by_product["vp0"] if x.kind.value == "recurring")
        line_id = next(x.id for x in landed.lines if x.source and x.source.key == recurring.key)
        rig.sandbox.additions[int(line_id)]["billCustomer"] = "Billable"
        rig.sandbox.additions[int(line_id)]["taxableFlag"] = True
        again = verify_lines(plan.lines, (await _read(rig)).lines, psa="connectwise")
        [problem] = again.problems
        assert (problem.key, problem.status) == (recurring.key, "differs")
        assert (
            problem.message
            == "bill option No charge planned, Billable in the PSA; not taxable planned, taxable in the PSA"
        )
    finally:
        store.close()


async def test_halopsa_refuses_a_not_billed_line_before_sending_it(tmp_path: Path) -> None:
    scenario = scenario_with_bill_options("halopsa")
    rig = make_rig("halopsa", scenario)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        store.import_scenario(scenario)
        before = rig.writes_applied()
        plan, report = await _sync(store, rig, scenario)
        stated = {x.key for x in plan.lines if x.bill_option != "billable"}
        assert stated
        refused = {o.key: o for o in report.outcomes if o.key in stated}
        assert all(o.outcome is not Outcome.WRITTEN for o in refused.values())
        assert all(
            "HaloPSA recurring invoice lines have no taxable flag" in o.message for o in refused.values()
        )
        written = [o for o in report.outcomes if o.key not in stated and o.outcome is Outcome.WRITTEN]
        assert written and rig.writes_applied() - before == len(written)
        assert not stated & set(rig.new_lines_by_key())  # no line of theirs was created
        updated = next(x for x in plan.lines if x.key in stated and x.action == "update")
        [kept] = [x for x in (await _read(rig)).lines if x.id == updated.psa_line_id]
        assert kept.quantity == updated.previous_quantity  # nor updated
    finally:
        store.close()


async def test_changing_a_bindings_option_updates_its_in_sync_lines_and_lands_both_ways(
    tmp_path: Path,
) -> None:
    """All lines written and in sync; the operator sets No charge on vp0's binding: the next plan
    updates vp0's line (nothing else), the sync lands it as NoCharge, the check is clean and the plan
    after it is empty. Then back to Billable: the same, and ConnectWise holds Billable again."""
    scenario = build_scenario(
        "connectwise", new=3, updates=2, cancels=1, create_new=0, record_only=0, companies=1
    )
    rig = make_rig("connectwise", scenario)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        store.import_scenario(scenario)
        _, report = await _sync(store, rig, scenario)
        assert [o.key for o in report.outcomes if o.outcome is not Outcome.WRITTEN] == []
        assert reconcile(store.snapshot()).lines == []
        vp0 = next(s.id for s in scenario.vendor.subscriptions if s.product_id == "vp0")
        [line_id] = [
            x.id for x in store.snapshot().psa.lines if x.source and x.source.key == f"{vp0}:recurring"
        ]

        for option, held, was in (
            ("no_charge", "NoCharge", "Billable"),
            ("billable", "Billable", "No charge"),
        ):
            bind_product(store, "vp0", "300", bill_option=option)  # type: ignore[arg-type]
            plan, report = await _sync(store, rig, scenario)
            [update] = plan.lines
            assert (update.key, update.action, update.psa_line_id, update.bill_option) == (
                f"{vp0}:recurring",
                "update",
                line_id,
                option,
            )
            assert update.formula.endswith(f"(was {was})")
            assert [o.outcome for o in report.outcomes] == [Outcome.WRITTEN]
            assert rig.sandbox.additions[int(line_id)]["billCustomer"] == held
            landed = await _read(rig)
            assert verify_lines(plan.lines, landed.lines, psa="connectwise").problems == []
            assert reconcile(store.snapshot()).lines == []
            assert reconcile(*store.plan_inputs()).lines == []  # the fast way too
    finally:
        store.close()
