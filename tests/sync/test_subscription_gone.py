"""A subscription the vendor no longer lists stays in the store, marked gone, while a PSA line
bills it (migration 0009_subscription_gone), so the plan proposes ending that line
(vendor_subscription_gone); one no line bills is dropped as before. SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from engine.reconcile import reconcile
from engine.scenario import Scenario
from engine.store import Store
from engine.store.migrate import alembic_config


def _world() -> Scenario:
    def sub(sid: str, quantity: int) -> dict[str, object]:
        row = {
            "id": f"{sid}-h1",
            "action": "initial",
            "quantity": str(quantity),
            "effective_date": "2026-01-05",
        }
        return {
            "id": sid,
            "company_id": "acme",
            "product_id": "seat",
            "start_date": "2026-01-05",
            "unit_price": "6.00",
            "unit_cost": "5.00",
            "history": [row],
        }

    return Scenario.model_validate(
        {
            "as_of": "2026-11-21",
            "vendor": {
                "companies": [{"id": "acme", "name": "Acme Dental"}],
                "products": [{"id": "seat", "name": "Business Basic", "kind": "seat"}],
                "subscriptions": [sub("S1", 12), sub("S2", 3)],
            },
            "psa": {
                "companies": [{"id": "P1", "name": "Acme Dental"}],
                "products": [{"id": "PP1", "name": "Business Basic"}],
                "agreements": [
                    {"id": "AG1", "company_id": "P1", "name": "Monthly", "start_date": "2015-01-01"}
                ],
                "lines": [
                    {
                        "id": "L1",
                        "agreement_id": "AG1",
                        "product_id": "PP1",
                        "quantity": "12",
                        "unit_price": "6.00",
                        "unit_cost": "5.00",
                        "effective_date": "2019-02-01",
                        "source": {"subscription_id": "S1", "key": "S1:recurring"},
                    }
                ],
            },
            "mappings": {
                "companies": [{"vendor_id": "acme", "psa_id": "P1"}],
                "products": [{"vendor_product_id": "seat", "psa_product_id": "PP1"}],
            },
            "synced": [{"key": "S1:prorate:2026-01-05", "synced_on": "2026-01-05"}],
        }
    )


def _full_refresh_without(store: Store, scenario, gone: set[str]) -> None:  # type: ignore[no-untyped-def]
    store.write_vendor_refresh(
        companies=scenario.vendor.companies,
        products=scenario.vendor.products,
        subscriptions=[s for s in scenario.vendor.subscriptions if s.id not in gone],
        usage=[],
        usage_scope=set(),
        full=True,
    )


def test_a_full_refresh_keeps_a_vanished_subscription_a_line_bills_and_the_plan_cancels_it(
    store_url: str,
) -> None:
    scenario = _world()
    store = Store(store_url)
    try:
        store.import_scenario(scenario)
        _full_refresh_without(store, scenario, {"S1", "S2"})
        kept = {s.id: s for s in store.subscriptions_where()}
        assert set(kept) == {"S1"} and kept["S1"].gone  # S2: no PSA line bills it, dropped
        assert [h.quantity for h in kept["S1"].history] == [12]
        plan = reconcile(store.snapshot())
        assert [(line.key, str(line.end_date)) for line in plan.lines] == [("S1:cancel", "2026-11-30")]
        assert "vendor_subscription_gone" in {f.code for f in plan.findings}
        # The fast path the console plans with says the same.
        fast = reconcile(*store.plan_inputs(scenario.as_of))
        assert [line.key for line in fast.lines] == ["S1:cancel"]
        # Listed again by the vendor: no longer gone.
        _full_refresh_without(store, scenario, set())
        assert not {s.id: s for s in store.subscriptions_where()}["S1"].gone
    finally:
        store.close()


def test_the_gone_column_migration_goes_down_and_up_again(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.import_scenario(_world())
        config = alembic_config(store.engine)
        command.downgrade(config, "0008_binding_bill_options")
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("subscription")}
        assert "gone" not in columns
        command.upgrade(config, "head")
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("subscription")}
        assert "gone" in columns
        assert {s.id for s in store.subscriptions_where()} == {"S1", "S2"}
        assert not any(s.gone for s in store.subscriptions_where())
    finally:
        store.close()
