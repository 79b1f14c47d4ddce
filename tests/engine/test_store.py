"""The store: scenarios survive a round trip, the migrations build exactly the tables' schema, money
stays exact decimal text."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from builders import build, seat_sub, usage, world
from sqlmodel import SQLModel

import engine.store.tables  # noqa: F401  (the store's tables, as the migration environment registers them)
import engine.sync.journal  # noqa: F401
from engine.reconcile import reconcile
from engine.scenario_io import ScenarioError, load_scenario, parse_scenario
from engine.store import Store

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "contract" / "examples"
EXAMPLE_FILES = (
    sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".plan.json"))
    if EXAMPLES.is_dir()
    else []
)


def normalized(value: Any) -> Any:
    """The same data whatever order its lists come in (the store returns rows ordered by id)."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalized(v) for v in value]
        return (
            sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
            if all(isinstance(v, dict) for v in items)
            else items
        )
    return value


@pytest.mark.skipif(not EXAMPLE_FILES, reason=f"shared contract examples absent ({EXAMPLES})")
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_survives_the_store_round_trip(path: Path) -> None:
    scenario = load_scenario(path)
    store = Store.memory()
    store.import_scenario(scenario)
    snapshot = store.snapshot()
    assert snapshot.as_of == scenario.as_of
    assert normalized(json.loads(snapshot.model_dump_json())) == normalized(
        json.loads(scenario.model_dump_json())
    )
    assert reconcile(snapshot).model_dump_json() == reconcile(scenario).model_dump_json()


def test_a_migrated_file_store_has_exactly_the_tables_schema(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'trueup.db'}")
    try:
        with store.engine.connect() as connection:
            diff = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), SQLModel.metadata
            )
        assert diff == []
        Store(store.url).close()  # opening an up-to-date store again migrates nothing and fails on nothing
    finally:
        store.close()


@pytest.mark.parametrize("url", ["memory", "file"])
def test_money_survives_exactly(tmp_path: Path, url: str) -> None:
    scenario = build("2020-09-15", subs=[seat_sub("S1", ("2020-07-01", "1.5"), price="0.10", cost="0.20")])
    store = Store.memory() if url == "memory" else Store(f"sqlite:///{tmp_path / 'money.db'}")
    try:
        store.import_scenario(scenario)
        sub = store.snapshot().vendor.subscriptions[0]
    finally:
        store.close()
    assert isinstance(sub.unit_price, Decimal) and isinstance(sub.unit_cost, Decimal)
    assert sub.unit_price + sub.unit_cost == Decimal(
        "0.30"
    )  # 0.1 + 0.2 as floats would be 0.30000000000000004
    assert (str(sub.unit_price), str(sub.unit_cost)) == ("0.10", "0.20")  # the cents are kept too
    assert sub.history[0].quantity == Decimal("1.5")


def test_a_store_holds_one_scenario_at_a_time() -> None:
    store = Store.memory()
    store.import_scenario(build("2020-09-15", subs=[seat_sub("S1", ("2020-07-01", 1))]))
    store.import_scenario(build("2021-02-18", subs=[seat_sub("S2", ("2021-02-04", 2))]))
    snapshot = store.snapshot()
    assert [s.id for s in snapshot.vendor.subscriptions] == ["S2"]
    assert str(snapshot.as_of) == "2021-02-18"


PROOFPOINT = {
    "id": "pp",
    "name": "Proofpoint Essentials",
    "kind": "endpoint_usage",
    "sub_products": ["Business"],
}


def test_two_usage_posts_for_one_period_are_refused_with_their_path() -> None:
    """Two rows for one (subscription, sub_product, period) would make the billed count depend on row
    order; the scenario is refused, naming both rows, before anything reaches the store."""
    data = world(
        "2021-01-04",
        products=[PROOFPOINT],
        bindings=[{"vendor_product_id": "pp", "psa_product_id": "PP1"}],
        subs=[seat_sub("A1", product="pp", start="2020-07-01")],
        usage_rows=[
            usage("A1", "2020-12", 15, sub_product="Business", price="3.00", cost="2.44"),
            usage("A1", "2020-12", 17, sub_product="Business", price="3.00", cost="2.44"),
        ],
    )
    with pytest.raises(ScenarioError) as refused:
        parse_scenario(data)
    assert refused.value.problems == [
        "vendor: usage[1] repeats usage[0] (same subscription_id, sub_product and period)"
    ]
