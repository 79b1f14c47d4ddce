"""Invoices in the store: migration 0006 up and down (SQLite, and PostgreSQL when configured),
exact money round trip, and the refresh that reads only the months not yet final."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from engine.connectors.pax8 import Pax8Connector
from engine.margin.check import Mark
from engine.margin.store import load_invoices, marks, months_to_refresh, refresh_invoices, set_mark
from engine.sandbox.demo import build_demo_invoices, build_demo_scenario
from engine.sandbox.pax8 import Pax8Sandbox
from engine.store import Store
from engine.store.migrate import alembic_config

TABLES = {"distributor_invoice", "distributor_invoice_item", "margin_mark"}


def test_migration_0005_up_and_down(store_url: str) -> None:
    from alembic import command

    engine = create_engine(store_url)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005_distributor_invoices")
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004_journal_by_key")
    assert not TABLES & set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    return build_demo_scenario()


async def test_refresh_reads_twelve_months_then_only_the_open_one(tmp_path: Path, demo) -> None:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    sandbox = Pax8Sandbox.from_scenario(demo, rate_limit=None)
    pax8 = Pax8Connector("sandbox", "sandbox", transport=httpx.MockTransport(sandbox.handle))
    today = date(2026, 11, 21)
    try:
        first = await refresh_invoices(store, pax8, today)
        assert first[0] == "2025-12" and first[-1] == "2026-11" and len(first) == 12
        stored = load_invoices(store)
        assert sorted(stored, key=lambda i: i.id) == sorted(build_demo_invoices(demo), key=lambda i: i.id)
        assert isinstance(stored[0].total, Decimal)
        # November is Unpaid (not final): the next refresh reads November only.
        assert months_to_refresh(store, today) == ["2026-11"]
        sandbox.requests.clear()
        assert await refresh_invoices(store, pax8, today) == ["2026-11"]
        listing = [r for r in sandbox.requests if r.url.path.endswith("/invoices")]
        assert listing[0].url.params["invoiceDateRangeStart"] == "2026-11-01"
        assert len(load_invoices(store)) == 13  # replaced, not duplicated
        # December: November still open, December new.
        assert months_to_refresh(store, date(2026, 12, 6)) == ["2026-11", "2026-12"]
    finally:
        await pax8.aclose()
        store.close()


def test_marks_round_trip() -> None:
    store = Store.memory()
    set_mark(store, Mark("s1", "lee", date(2026, 11, 20), "our own seats"), "s1")
    assert marks(store) == {"s1": Mark("s1", "lee", date(2026, 11, 20), "our own seats")}
    set_mark(store, None, "s1")
    assert marks(store) == {}
