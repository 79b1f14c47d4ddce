"""The leak rules' lines land on every PSA (issue 14 item 4): a vendor price change's `price` line
is written through the PSA's update route (ConnectWise PATCH unitPrice/unitCost, HaloPSA
/RecurringInvoice/updatelines unit_price/unit_cost, Autotask the service's price and a cost
adjustment), a gone subscription's `cancel` ends its line; read back, the PSA invoices exactly the
plan (engine.verify), a second sync writes nothing, and a second plan proposes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sync_builder import PSAS, make_rig

from engine.plan import LineKind
from engine.reconcile import reconcile
from engine.scenario import Psa, Scenario
from engine.store import Store
from engine.sync import Outcome, SyncExecutor
from engine.verify import verify_lines
from engine.workspace import _seedable

D = Decimal


def _scenario(psa: str) -> Scenario:
    def sub(sid: str, quantity: int, price: str, cost: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": sid,
            "company_id": "vc0",
            "product_id": f"vp-{sid}",
            "start_date": "2025-01-01",
            "unit_price": price,
            "unit_cost": cost,
            "history": [
                {
                    "id": f"{sid}-h0",
                    "action": "initial",
                    "quantity": str(quantity),
                    "effective_date": "2025-01-01",
                }
            ],
            **extra,
        }

    def line(lid: str, sid: str, product: str, quantity: int, price: str, cost: str) -> dict[str, Any]:
        return {
            "id": lid,
            "agreement_id": "200",
            "product_id": product,
            "quantity": str(quantity),
            "unit_price": price,
            "unit_cost": cost,
            "effective_date": "2025-01-01",
            "description": f"Seat {sid}",
            "source": {"subscription_id": sid, "key": f"{sid}:recurring"},
        }

    data = {
        "as_of": "2026-11-21",
        "settings": {"psa": psa},
        "vendor": {
            "companies": [{"id": "vc0", "name": "Tran Law Group"}],
            "products": [
                {"id": f"vp-{s}", "name": f"Seat {s}", "kind": "seat"} for s in ("rise", "cut", "gone")
            ],
            "subscriptions": [
                sub("rise", 10, "23.10", "19.64"),  # the vendor's price rose: price line at 10
                sub("cut", 8, "23.10", "19.64"),  # and the seats went 10 → 8
                sub("gone", 12, "6.00", "5.00", gone=True),  # deleted at the vendor: cancel
            ],
        },
        "psa": {
            "companies": [{"id": "100", "name": "Tran Law Group"}],
            "products": [
                {
                    "id": str(300 + i),
                    "name": f"Seat {s}",
                    "sku": f"S-{s}",
                    "unit_price": "6.00",
                    "unit_cost": "5.00",
                }
                for i, s in enumerate(("rise", "cut", "gone"))
            ],
            "agreements": [{"id": "200", "company_id": "100", "name": "Managed", "start_date": "2019-01-01"}],
            "lines": [
                line("8000", "rise", "300", 10, "22.00", "18.70"),
                line("8001", "cut", "301", 10, "22.00", "18.70"),
                line("8002", "gone", "302", 12, "6.00", "5.00"),
            ],
        },
        "mappings": {
            "companies": [{"vendor_id": "vc0", "psa_id": "100"}],
            "products": [
                {"vendor_product_id": f"vp-{s}", "psa_product_id": str(300 + i)}
                for i, s in enumerate(("rise", "cut", "gone"))
            ],
            "agreements": [{"vendor_company_id": "vc0", "psa_agreement_id": "200"}],
        },
        "synced": [{"key": f"{s}:prorate:2025-01-01", "synced_on": "2025-01-01"} for s in ("rise", "cut")],
    }
    return _seedable(Scenario.model_validate(data))


async def _read_psa(rig: Any) -> Psa:
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


@pytest.mark.parametrize("psa", PSAS)
async def test_price_updates_and_gone_cancels_land_as_planned(psa: str, store_url: str) -> None:
    scenario = _scenario(psa)
    rig = make_rig(psa, scenario)
    store = Store(store_url)
    try:
        store.import_scenario(scenario)
        store.replace_psa(await _read_psa(rig))
        plan = reconcile(store.snapshot())
        got = {(line.key, line.kind, line.quantity, line.unit_price, line.unit_cost) for line in plan.lines}
        assert got == {
            ("rise:price", LineKind.PRICE, D(10), D("23.10"), D("19.64")),
            ("cut:recurring", LineKind.RECURRING, D(8), D("22.00"), D("18.70")),  # quantity only
            ("cut:price", LineKind.PRICE, D(8), D("23.10"), D("19.64")),  # then the prices
            ("gone:cancel", LineKind.CANCEL, D(12), D("6.00"), D("5.00")),
        }
        connector = rig.connector()
        try:
            report = await SyncExecutor(store, connector, today=scenario.as_of).run(plan.lines)
        finally:
            await connector.aclose()
        assert [(o.key, o.outcome) for o in report.outcomes if o.outcome is not Outcome.WRITTEN] == []

        landed = await _read_psa(rig)
        result = verify_lines(plan.lines, landed.lines, psa=psa)
        assert [(c.key, c.status, c.message) for c in result.problems] == []
        assert result.landed_price == result.planned_price and result.landed_cost == result.planned_cost
        by_id = {line.id: line for line in landed.lines}
        assert (by_id["8000"].quantity, by_id["8000"].unit_price, by_id["8000"].unit_cost) == (
            D(10),
            D("23.10"),
            D("19.64"),
        )
        assert (by_id["8001"].quantity, by_id["8001"].unit_price) == (D(8), D("23.10"))
        assert str(by_id["8002"].cancelled_date) == "2026-11-30"

        # Syncing the same plan again sends nothing: every line is found in the PSA.
        writes = rig.writes_applied()
        connector = rig.connector()
        try:
            again = await SyncExecutor(store, connector, today=scenario.as_of).run(plan.lines)
        finally:
            await connector.aclose()
        assert {o.outcome for o in again.outcomes} == {Outcome.ALREADY_THERE}
        assert rig.writes_applied() == writes

        store.replace_psa(landed)
        assert reconcile(store.snapshot()).lines == []
    finally:
        store.close()
