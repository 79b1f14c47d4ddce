"""The invariant of issue 10: what lands in the PSA is exactly the plan.

For every contract example (../shared/contract/examples, scenarios with expected plans) and the demo
MSP at two dates, on each PSA sandbox through its real connector, on SQLite and PostgreSQL: the
PSA's side is read through the connector into the store, the plan is made from it (it holds the
expected plan's lines), the whole plan is confirmed with the real `SyncExecutor`, the PSA is read
back through the connector, and `engine.verify` says: per line, what the PSA will invoice equals
`total_price` and `total_cost` to the cent; no key is held twice; and a second plan proposes
nothing but provisional lines.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sync_builder import PSAS, make_rig

from engine.reconcile import reconcile
from engine.sandbox.demo import build_demo_scenario
from engine.scenario import Psa, Scenario
from engine.store import Store
from engine.sync import Outcome, SyncExecutor
from engine.verify import verify_lines
from engine.workspace import _seedable

EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "contract" / "examples"
EXAMPLE_NAMES = sorted(p.name.removesuffix(".plan.json") for p in EXAMPLES.glob("*.plan.json"))
DEMO_DATES = (date(2026, 11, 21), date(2026, 12, 1))
WORLDS = [f"example:{name}" for name in EXAMPLE_NAMES] + [f"demo:{d.isoformat()}" for d in DEMO_DATES]


def numeric_psa_ids(data: dict, expected: dict) -> None:  # type: ignore[type-arg]
    """Every PSA here numbers its records: give the example's non-numeric PSA ids numbers (in the
    scenario, its mappings and the expected plan alike)."""
    psa = data.get("psa", {})
    ids: dict[str, str] = {}
    for section in ("companies", "products", "agreements", "lines"):
        for item in psa.get(section, []):
            if not str(item["id"]).isdigit():
                ids[item["id"]] = str(90000 + len(ids))

    def fix(value):  # type: ignore[no-untyped-def]
        return ids.get(value, value) if isinstance(value, str) else value

    for section in ("companies", "products", "agreements", "lines"):
        for item in psa.get(section, []):
            for name in ("id", "company_id", "agreement_id", "product_id"):
                if name in item:
                    item[name] = fix(item[name])
    maps = data.get("mappings", {})
    for item in maps.get("companies", []):
        item["psa_id"] = fix(item["psa_id"])
    for item in maps.get("products", []):
        item["psa_product_id"] = fix(item["psa_product_id"])
    for item in maps.get("agreements", []):
        item["psa_agreement_id"] = fix(item["psa_agreement_id"])
    for item in data.get("synced", []):
        item["psa_line_id"] = fix(item.get("psa_line_id"))
    for line in expected["lines"]:
        for name in ("psa_line_id", "psa_agreement_id", "psa_product_id"):
            if name in line:
                line[name] = fix(line[name])


def _world(world: str, psa: str) -> tuple[Scenario, dict | None]:  # type: ignore[type-arg]
    kind, _, name = world.partition(":")
    if kind == "demo":
        scenario = build_demo_scenario(as_of=date.fromisoformat(name), psa=psa)
        expected = None
    else:
        data = json.loads((EXAMPLES / f"{name}.json").read_text())
        data.setdefault("settings", {})["psa"] = psa
        expected = json.loads((EXAMPLES / f"{name}.plan.json").read_text())
        numeric_psa_ids(data, expected)
        scenario = Scenario.model_validate(data)
    return _seedable(scenario), expected


def _cases() -> list[object]:
    out = []
    for world in WORLDS:
        for psa in PSAS:
            out.append(pytest.param(world, psa, id=f"{world}-{psa}"))
    return out


async def _read_psa(rig) -> Psa:  # type: ignore[no-untyped-def]
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


@pytest.mark.parametrize(("world", "psa"), _cases())
async def test_what_lands_in_the_psa_is_the_plan(world: str, psa: str, store_url: str) -> None:
    scenario, expected = _world(world, psa)
    rig = make_rig(psa, scenario)
    store = Store(store_url)
    try:
        store.import_scenario(scenario)
        world_keys = {line.key for line in reconcile(store.snapshot()).lines}
        store.replace_psa(await _read_psa(rig))  # the plan is made from the PSA as the connector reads it
        plan = reconcile(store.snapshot())
        # Reading the PSA through its connector loses nothing the world's plan bills.
        lost = world_keys - {line.key for line in plan.lines}
        assert not lost, f"the plan from the PSA as read lacks lines of the world's plan: {sorted(lost)[:5]}"
        if expected is not None:
            missing = {e["key"] for e in expected["lines"]} - {line.key for line in plan.lines}
            assert not missing, f"the plan from the PSA as read lacks expected lines: {sorted(missing)}"
        if expected is not None and not expected["lines"]:
            assert plan.lines == []  # findings only (mapping errors): nothing may land
            return
        assert plan.lines, "nothing to write: the case would prove nothing"
        connector = rig.connector()
        try:
            report = await SyncExecutor(store, connector, today=scenario.as_of).run(plan.lines)
        finally:
            await connector.aclose()
        not_written = [
            (o.key, o.outcome.value, o.message) for o in report.outcomes if o.outcome is not Outcome.WRITTEN
        ]
        assert not not_written and not report.blocked, not_written[:5]

        landed = await _read_psa(rig)
        result = verify_lines(plan.lines, landed.lines, psa=psa)
        assert [(c.key, c.status, c.message) for c in result.problems] == []
        assert result.duplicates == {}
        assert result.landed_price == result.planned_price and result.landed_cost == result.planned_cost

        store.replace_psa(landed)
        again = reconcile(store.snapshot())
        assert [line.key for line in again.lines if not line.provisional] == []
    finally:
        store.close()
