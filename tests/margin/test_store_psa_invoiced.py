"""What the PSA invoiced, in the store: migration 0007 up and down (SQLite, and PostgreSQL when
configured), the exact round trip per PSA, and the refresh that reads only the months not final."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from engine.connectors.halopsa import HaloConnector
from engine.margin.psa_invoices import PsaInvoiceLine
from engine.margin.store import (
    load_psa_invoiced,
    psa_invoiced_for_check,
    psa_months_to_refresh,
    refresh_psa_invoiced,
    save_psa_invoiced,
)
from engine.sandbox.demo import build_demo_psa_invoices, build_demo_scenario
from engine.sandbox.halopsa import HaloSandbox
from engine.store import Store
from engine.store.migrate import alembic_config

D = Decimal


@pytest.fixture
def url(store_url: str) -> str:
    """One store database per test (tests/conftest.py `store_url`: SQLite, and PostgreSQL when set)."""
    return store_url


def line(invoice: str, month: int, amount: str = "100.10", **change: object) -> PsaInvoiceLine:
    values: dict[str, object] = {
        "invoice_id": invoice,
        "invoice_number": f"INV{invoice}",
        "invoice_date": date(2026, month, 1),
        "company_id": "19",
        "agreement_id": "290",
        "line_id": "8638",
        "product_id": "301",
        "description": "M365 Business Basic",
        "quantity": D("10.5"),
        "unit_price": D("9.5333"),
        "amount": D(amount),
        "currency": "USD",
    }
    values.update(change)
    return PsaInvoiceLine(**values)  # type: ignore[arg-type]


def test_migration_0007_up_and_down(url: str) -> None:
    engine = create_engine(url)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007_psa_invoiced")
    assert "psa_invoice_line" in inspect(engine).get_table_names()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006_commitment_terms")
    tables = set(inspect(engine).get_table_names())
    assert "psa_invoice_line" not in tables and "commitment_term" in tables
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


def test_round_trip_is_exact_and_kept_per_psa(url: str) -> None:
    store = Store(url)
    try:
        cw = [line("1", 10), line("1", 10, "0.01", line_id=None, agreement_id=None), line("2", 11)]
        save_psa_invoiced(store, "connectwise", cw, ["2026-10", "2026-11"])
        save_psa_invoiced(store, "halopsa", [line("7", 11, "5.00")], ["2026-11"])
        assert load_psa_invoiced(store, "connectwise") == cw
        assert load_psa_invoiced(store, "connectwise", ["2026-11"]) == [cw[2]]
        assert [x.amount for x in load_psa_invoiced(store, "halopsa")] == [D("5.00")]
        # a month read again replaces what was kept for it, of that PSA only
        save_psa_invoiced(store, "connectwise", [line("3", 11, "1.00")], ["2026-11"])
        assert [x.invoice_id for x in load_psa_invoiced(store, "connectwise")] == ["1", "1", "3"]
        assert len(load_psa_invoiced(store, "halopsa")) == 1
        with pytest.raises(ValueError, match="2026-09 outside the months read"):
            save_psa_invoiced(store, "connectwise", [line("4", 9)], ["2026-10"])
    finally:
        store.close()


def test_a_psa_that_cannot_say_gives_the_check_nothing() -> None:
    store = Store.memory()
    save_psa_invoiced(store, "halopsa", [line("7", 11)], ["2026-11"])
    assert psa_invoiced_for_check(store, "halopsa") == [line("7", 11)]
    assert psa_invoiced_for_check(store, "kaseya") is None


async def test_refresh_reads_twelve_months_then_from_the_latest(tmp_path: Path) -> None:
    demo = build_demo_scenario(psa="halopsa")
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    sandbox = HaloSandbox.from_scenario(demo)
    halo = HaloConnector(
        sandbox.base_url,
        sandbox.client_id,
        sandbox.client_secret,
        tenant=sandbox.tenant,
        transport=httpx.MockTransport(sandbox.handle),
    )
    today = date(2026, 11, 21)
    try:
        months = await refresh_psa_invoiced(store, "halopsa", halo, today)
        assert months[0] == "2025-12" and months[-1] == "2026-11" and len(months) == 12
        expected = build_demo_psa_invoices(demo)
        key = lambda x: (x.invoice_id, x.line_id or "")  # noqa: E731
        assert sorted(load_psa_invoiced(store, "halopsa"), key=key) == sorted(expected, key=key)
        # the latest month stored may still change; the months before are final
        assert psa_months_to_refresh(store, "halopsa", today) == ["2026-11"]
        assert psa_months_to_refresh(store, "halopsa", date(2027, 1, 3)) == ["2026-11", "2026-12", "2027-01"]
        assert await refresh_psa_invoiced(store, "halopsa", halo, today) == ["2026-11"]
        assert len(load_psa_invoiced(store, "halopsa")) == len(expected)  # replaced, not doubled
    finally:
        await halo.aclose()
        store.close()
