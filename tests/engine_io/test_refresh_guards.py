"""Refresh guards (issue 11): a failed side leaves every one of its tables and settings exactly as
they were; an empty listing where the store holds rows is held until the operator accepts it (the
engine, `trueup refresh` and the console say "Pax8 returned 0 subscriptions (was N) — keep the
store?"); `trueup sync` does not plan on a failed refresh unless told to use the stored data."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlmodel import SQLModel

from engine.refresh import SETTING_PSA_AT, SETTING_VENDOR_AT
from engine.sandbox.demo import build_demo_scenario
from engine.store.database import PSA_TABLES, VENDOR_TABLES
from engine.workspace import Workspace

PAX8_ERROR_200 = {
    "type": "INTERNAL_SERVER_ERROR",
    "message": "Subscriptions are temporarily unavailable",
    "instance": "/public/v1/subscriptions",
    "status": 500,
    "details": [],
}
EMPTY_PAGE = {"content": [], "page": {"size": 200, "totalElements": 0, "totalPages": 0, "number": 0}}


@pytest.fixture(scope="module")
def demo():
    return build_demo_scenario()


def dump(store: Any, tables: Any = None) -> dict[str, list[str]]:
    """Every row of every table (or of `tables`), as sorted JSON text: "exactly as it was"."""
    names = {table.__tablename__ for table in tables} if tables is not None else None
    out: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if names is not None and table.name not in names:
                continue
            rows = conn.execute(select(table)).mappings().all()
            out[table.name] = sorted(json.dumps(dict(r), default=str, sort_keys=True) for r in rows)
    return out


def settings_of(store: Any, *names: str) -> dict[str, Any]:
    return {name: store.get_setting(name) for name in names}


def answering(handler: Any, path: str, status: int, body: Any, *, method: str = "GET") -> Any:
    """The service answers a `method` request whose path ends with `path` with `body`; everything
    else as before."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.method == method and request.url.path.endswith(path):
            return httpx.Response(status, json=body, request=request)
        return await handler(request)

    return handle


async def refreshed(demo: Any) -> Workspace:
    workspace = Workspace.sandbox_from_scenario(demo)
    result = await workspace.refresh()
    assert result.ok, result.errors
    return workspace


async def test_a_200_error_body_from_pax8_leaves_every_vendor_table_as_it_was(demo, monkeypatch):
    workspace = await refreshed(demo)
    vendor_before = dump(workspace.store, VENDOR_TABLES)
    stamps = settings_of(
        workspace.store, SETTING_VENDOR_AT, "refresh.vendor.changed_since", "refresh.vendor.full_at"
    )
    pax8 = workspace.sandboxes["pax8"]
    monkeypatch.setattr(pax8, "handle", answering(pax8.handle, "/subscriptions", 200, PAX8_ERROR_200))

    result = await workspace.refresh(full=True)

    assert len(result.errors) == 1 and "Subscriptions are temporarily unavailable" in result.errors[0]
    assert "answered 200 with an error body" in result.errors[0]
    assert dump(workspace.store, VENDOR_TABLES) == vendor_before
    assert settings_of(workspace.store, *stamps) == stamps
    plan = workspace.plan()
    assert plan.lines, "the plan still has its lines: nothing was wiped"
    await workspace.aclose()


async def test_both_sides_failing_leaves_every_table_as_it_was(demo, monkeypatch):
    workspace = await refreshed(demo)
    before = dump(workspace.store)
    pax8, cw = workspace.sandboxes["pax8"], workspace.sandboxes["connectwise"]
    monkeypatch.setattr(pax8, "handle", answering(pax8.handle, "/companies", 200, None))
    monkeypatch.setattr(
        cw,
        "handle",
        answering(
            cw.handle, "/finance/agreements", 401, {"code": "Unauthorized", "message": "Bad credentials"}
        ),
    )
    result = await workspace.refresh(full=True)
    assert len(result.errors) == 2, result.errors
    assert dump(workspace.store) == before
    await workspace.aclose()


def assert_only_gone_billed(store) -> None:  # type: ignore[no-untyped-def]
    left = store.subscriptions_where(with_history=False)
    billed = {
        line.source.subscription_id
        for line in store.psa_data().lines
        if line.source is not None and line.cancelled_date is None
    }
    assert left and all(sub.gone for sub in left)
    assert {sub.id for sub in left} <= billed  # one no line bills is dropped


async def test_zero_subscriptions_where_the_store_has_them_is_held(demo, monkeypatch):
    workspace = await refreshed(demo)
    stored = len(workspace.store.subscriptions_where(with_history=False))
    vendor_before = dump(workspace.store, VENDOR_TABLES)
    pax8 = workspace.sandboxes["pax8"]
    monkeypatch.setattr(pax8, "handle", answering(pax8.handle, "/subscriptions", 200, EMPTY_PAGE))
    lines_before = len(workspace.plan().lines)

    result = await workspace.refresh(full=True)

    assert [h.message for h in result.held] == [
        f"Pax8 returned 0 subscriptions (was {stored}) — keep the store?"
    ]
    assert any("Pax8 returned 0 subscriptions" in e and "--accept-empty" in e for e in result.errors)
    assert dump(workspace.store, VENDOR_TABLES) == vendor_before
    assert len(workspace.plan().lines) == lines_before

    accepted = await workspace.refresh(full=True, accept_empty=True)
    assert accepted.ok and not accepted.held, accepted.errors
    # Accepted: the vendor lists none. Those a PSA line still bills stay, marked gone
    # (vendor_subscription_gone proposes ending those lines); the rest are dropped.
    assert_only_gone_billed(workspace.store)
    await workspace.aclose()


@pytest.mark.parametrize("psa", ["connectwise", "halopsa"])
async def test_zero_psa_lines_where_the_store_has_them_is_held(psa, monkeypatch):
    demo = build_demo_scenario(psa=psa)
    workspace = await refreshed(demo)
    psa_before = dump(workspace.store, PSA_TABLES)
    stored_lines = len(workspace.store.psa_data().lines)
    assert stored_lines > 0

    async def no_lines(agreement_ids: Any = None) -> list:
        return []

    monkeypatch.setattr(workspace.psa, "lines", no_lines)
    result = await workspace.refresh()
    title = {"connectwise": "ConnectWise", "halopsa": "HaloPSA"}[psa]
    assert [h.message for h in result.held] == [
        f"{title} returned 0 lines (was {stored_lines}) — keep the store?"
    ]
    assert dump(workspace.store, PSA_TABLES) == psa_before
    assert workspace.store.get_setting(SETTING_PSA_AT) is not None
    await workspace.aclose()


async def test_one_customer_returning_no_subscriptions_is_held(demo, monkeypatch):
    workspace = await refreshed(demo)
    company = next(
        c
        for c in demo.vendor.companies
        if sum(1 for s in demo.vendor.subscriptions if s.company_id == c.id) >= 2
    )
    stored = len(workspace.store.subscriptions_where(company_id=company.id, with_history=False))
    before = dump(workspace.store, VENDOR_TABLES)
    pax8 = workspace.sandboxes["pax8"]
    monkeypatch.setattr(pax8, "handle", answering(pax8.handle, "/subscriptions", 200, EMPTY_PAGE))
    result = await workspace.refresh_customer(company.id)
    assert [h.message for h in result.held] == [
        f"Pax8 returned 0 subscriptions for company {company.id} (was {stored}) — keep the store?"
    ]
    assert dump(workspace.store, VENDOR_TABLES) == before
    await workspace.aclose()


# --- the command line --------------------------------------------------------------------------------


@pytest.fixture
def cli_workspace(demo, monkeypatch, tmp_path):
    """`trueup …` on a refreshed sandbox workspace whose Pax8 then lists no subscriptions."""
    import asyncio

    import engine.workspace as ws_module

    workspace = asyncio.run(refreshed(demo))
    pax8 = workspace.sandboxes["pax8"]
    monkeypatch.setattr(pax8, "handle", answering(pax8.handle, "/subscriptions", 200, EMPTY_PAGE))

    async def keep_open() -> None:
        return None

    monkeypatch.setattr(workspace, "aclose", keep_open)
    monkeypatch.setattr(ws_module, "open_workspace", lambda *a, **k: workspace)
    monkeypatch.setenv("TRUEUP_CONFIG", str(tmp_path / "absent.toml"))
    return workspace


def test_trueup_refresh_refuses_an_empty_listing_without_accept_empty(cli_workspace):
    from tui.cli import main

    stored = len(cli_workspace.store.subscriptions_where(with_history=False))
    result = CliRunner().invoke(main, ["refresh", "--full"])
    assert result.exit_code == 1
    assert f"Pax8 returned 0 subscriptions (was {stored}) — keep the store?" in result.output
    assert "trueup refresh --accept-empty" in result.output
    assert len(cli_workspace.store.subscriptions_where(with_history=False)) == stored

    result = CliRunner().invoke(main, ["refresh", "--full", "--accept-empty"])
    assert result.exit_code == 0, result.output
    assert_only_gone_billed(cli_workspace.store)


def test_trueup_sync_does_not_plan_on_a_failed_refresh(cli_workspace, monkeypatch):
    from tui.cli import main

    cw = cli_workspace.sandboxes["connectwise"]
    monkeypatch.setattr(
        cw,
        "handle",
        answering(
            cw.handle, "/company/companies", 401, {"code": "Unauthorized", "message": "Bad credentials"}
        ),
    )
    pax8 = cli_workspace.sandboxes["pax8"]
    monkeypatch.setattr(
        pax8,
        "handle",
        answering(
            pax8.handle,
            "/token",
            401,
            {"error": "access_denied", "error_description": "Unauthorized"},
            method="POST",
        ),
    )
    result = CliRunner().invoke(main, ["sync", "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "Nothing to write" not in result.output
    assert "Bad credentials" in result.output and "Unauthorized" in result.output
    assert "--use-stored" in result.output

    result = CliRunner().invoke(main, ["sync", "--dry-run", "--use-stored"])
    assert result.exit_code == 0, result.output
    assert "the data the store already holds" in result.output
    assert "Dry run:" in result.output
