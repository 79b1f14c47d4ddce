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
from builders import D, build, keys, plan_of, seat_sub, usage
from sqlmodel import SQLModel

import engine.store.tables  # noqa: F401  (the store's tables, as the migration environment registers them)
import engine.sync.journal  # noqa: F401
from engine.reconcile import reconcile
from engine.scenario_io import load_scenario
from engine.store import Store

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "contract" / "examples"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".plan.json")) \
    if EXAMPLES.is_dir() else []


def normalized(value: Any) -> Any:
    """The same data whatever order its lists come in (the store returns rows ordered by id)."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalized(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True)) if all(isinstance(v, dict) for v in items) \
            else items
    return value


@pytest.mark.skipif(not EXAMPLE_FILES, reason=f"shared contract examples absent ({EXAMPLES})")
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_survives_the_store_round_trip(path: Path) -> None:
    scenario = load_scenario(path)
    store = Store.memory()
    store.import_scenario(scenario)
    snapshot = store.snapshot()
    assert snapshot.as_of == scenario.as_of
    assert normalized(json.loads(snapshot.model_dump_json())) == normalized(json.loads(scenario.model_dump_json()))
    assert reconcile(snapshot).model_dump_json() == reconcile(scenario).model_dump_json()


def test_a_migrated_file_store_has_exactly_the_tables_schema(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'trueup.db'}")
    try:
        with store.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                    SQLModel.metadata)
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
    assert sub.unit_price + sub.unit_cost == Decimal("0.30")  # 0.1 + 0.2 as floats would be 0.30000000000000004
    assert (str(sub.unit_price), str(sub.unit_cost)) == ("0.10", "0.20")  # the cents are kept too
    assert sub.history[0].quantity == Decimal("1.5")


def test_a_store_holds_one_scenario_at_a_time() -> None:
    store = Store.memory()
    store.import_scenario(build("2020-09-15", subs=[seat_sub("S1", ("2020-07-01", 1))]))
    store.import_scenario(build("2021-02-18", subs=[seat_sub("S2", ("2021-02-04", 2))]))
    snapshot = store.snapshot()
    assert [s.id for s in snapshot.vendor.subscriptions] == ["S2"]
    assert str(snapshot.as_of) == "2021-02-18"


PROOFPOINT = {"id": "pp", "name": "Proofpoint Essentials", "kind": "endpoint_usage", "sub_products": ["Business"]}


@pytest.mark.xfail(strict=True, reason=(
    "engine/store/database.py Store.import_scenario(): two usage rows of one (subscription, sub_product, "
    "period) — valid in a scenario, and engine/rules/arrears.py arrears_lines() says the last one wins — "
    "violate the unique constraint uq_usage_period and raise sqlite3.IntegrityError, so `trueup plan` on "
    "such a file crashes with a traceback instead of planning 17 (or refusing the file with a path message)"))
def test_a_corrected_usage_post_for_the_same_period_survives_the_store() -> None:
    kwargs = dict(products=[PROOFPOINT], bindings=[{"vendor_product_id": "pp", "psa_product_id": "PP1"}],
                  subs=[seat_sub("A1", product="pp", start="2020-07-01")],
                  usage_rows=[usage("A1", "2020-12", 15, sub_product="Business", price="3.00", cost="2.44"),
                              usage("A1", "2020-12", 17, sub_product="Business", price="3.00", cost="2.44")])
    direct = plan_of("2021-01-04", **kwargs)
    assert keys(direct) == ["A1:arrears:Business"] and direct.lines[0].quantity == D(17)
    store = Store.memory()
    store.import_scenario(build("2021-01-04", **kwargs))
    assert reconcile(store.snapshot()).model_dump_json() == direct.model_dump_json()
