"""The leak rules' proposals in the console's Unsynced pane (issue 14 item 4): a vendor price change
is a row the operator reviews and syncs, its change the price and its net (new − old) × quantity;
its finding has a fix (tui/screens/fixes.py)."""

from __future__ import annotations

from engine.reconcile import reconcile
from engine.scenario import Scenario
from tui.model import build
from tui.screens.fixes import FIXES, how_to_fix


def _price_world() -> Scenario:
    history = [{"id": "h1", "action": "initial", "quantity": "10", "effective_date": "2026-01-05"}]
    line = {
        "id": "L1",
        "agreement_id": "AG1",
        "product_id": "PP1",
        "quantity": "10",
        "unit_price": "22.00",
        "unit_cost": "18.70",
        "effective_date": "2019-02-01",
        "source": {"subscription_id": "S1", "key": "S1:recurring"},
    }
    return Scenario.model_validate(
        {
            "as_of": "2026-11-21",
            "vendor": {
                "companies": [{"id": "acme", "name": "Tran Law Group"}],
                "products": [{"id": "seat", "name": "Business Premium", "kind": "seat"}],
                "subscriptions": [
                    {
                        "id": "S1",
                        "company_id": "acme",
                        "product_id": "seat",
                        "start_date": "2026-01-05",
                        "unit_price": "23.10",
                        "unit_cost": "19.64",
                        "history": history,
                    }
                ],
            },
            "psa": {
                "companies": [{"id": "P1", "name": "Tran Law Group"}],
                "products": [{"id": "PP1", "name": "Business Premium"}],
                "agreements": [
                    {"id": "AG1", "company_id": "P1", "name": "Monthly", "start_date": "2015-01-01"}
                ],
                "lines": [line],
            },
            "mappings": {
                "companies": [{"vendor_id": "acme", "psa_id": "P1"}],
                "products": [{"vendor_product_id": "seat", "psa_product_id": "PP1"}],
            },
            "synced": [{"key": "S1:prorate:2026-01-05", "synced_on": "2026-01-05"}],
        }
    )


def test_a_price_line_is_an_unsynced_row_with_its_price_change_and_net() -> None:
    scenario = _price_world()
    plan = reconcile(scenario)
    data = build(scenario, plan, today=scenario.as_of)
    (row,) = data.rows["unsynced"]
    assert row.line_keys == ("S1:price",)
    assert row.cells[3] == "price $22.00 → $23.10"
    assert row.cells[4] == "+$11.00"
    assert "update price" in row.detail and "(vendor price change)" in row.detail


def test_each_leak_finding_says_which_keys_clear_it() -> None:
    for code in ("vendor_price_changed", "vendor_subscription_gone", "price_below_cost"):
        assert FIXES[code].commands
        assert "{" not in how_to_fix(code)
    assert FIXES["vendor_price_changed"].pane == "unsynced"
