"""The sandbox workspace end to end: demo scenario -> sandbox services -> real connectors -> store
-> plan, incremental refresh, errors that leave the store as it was, and `trueup doctor`/`refresh`."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner

from engine.reconcile import reconcile
from engine.refresh import PSA_STAGES, VENDOR_STAGES
from engine.sandbox.demo import DEMO_CUSTOMERS, build_demo_scenario
from engine.workspace import Workspace

# ConnectWise additions carry no meter flag, so the quota billing modes (metered lines) cannot
# round-trip through it; HaloPSA keeps `is_meter` and is compared on every story customer.
NOT_ON_CONNECTWISE = {"billing_modes"}


def line_key(line):
    return (
        line.key,
        line.kind,
        line.action,
        line.quantity,
        line.unit_price,
        line.total_price,
        line.total_cost,
        line.effective_date,
        line.psa_line_id,
    )


def lines_of(plan, company_ids):
    return sorted((line_key(line) for line in plan.lines if line.company_id in company_ids), key=str)


@pytest.fixture(scope="module")
def demo():
    return build_demo_scenario()


@pytest.mark.parametrize("psa", ["connectwise", "halopsa"])
async def test_sandbox_plan_equals_reconcile_of_the_scenario(psa):
    scenario = build_demo_scenario(psa=psa)
    workspace = Workspace.sandbox_from_scenario(scenario)
    stages = []
    result = await workspace.refresh(stages.append)
    assert result.errors == []
    assert result.full
    assert {p.stage for p in stages} == set(VENDOR_STAGES) | set(PSA_STAGES)
    assert set(workspace.freshness) == {"vendor", "psa"} and all(workspace.freshness.values())
    got, want = workspace.plan(), reconcile(scenario)
    by_name = {c.name: c.id for c in scenario.vendor.companies}
    compared = 0
    for role, name in DEMO_CUSTOMERS.items():
        if psa == "connectwise" and role in NOT_ON_CONNECTWISE:
            continue
        ids = {by_name[name]}
        assert lines_of(got, ids) == lines_of(want, ids), f"{role}: {name}"
        compared += len(lines_of(want, ids))
    assert compared > 20
    if psa == "halopsa":  # every line and finding, not only the story customers'
        assert sorted(map(line_key, got.lines), key=str) == sorted(map(line_key, want.lines), key=str)
        assert (got.totals.price, got.totals.cost) == (want.totals.price, want.totals.cost)
        assert sorted((f.code, sorted(f.subject.items())) for f in got.findings) == sorted(
            (f.code, sorted(f.subject.items())) for f in want.findings
        )
    await workspace.aclose()


async def test_incremental_refresh_picks_up_exactly_the_change(demo):
    workspace = Workspace.sandbox_from_scenario(demo)
    await workspace.refresh()
    before = workspace.store.snapshot()
    pax8 = workspace.sandboxes["pax8"]
    sub = next(
        s
        for s in demo.vendor.subscriptions
        if s.status == "active"
        and s.history
        and demo.vendor.products
        and next(p for p in demo.vendor.products if p.id == s.product_id).kind == "seat"
    )
    new_quantity = sub.history[-1].quantity + 3
    pax8.requests.clear()
    pax8.change_quantity(sub.id, new_quantity, on=demo.as_of + timedelta(days=1))

    result = await workspace.refresh()
    assert result.errors == [] and not result.full
    assert result.vendor_changed == 1
    history_calls = [r.url.path for r in pax8.requests if r.url.path.endswith("/history")]
    assert history_calls == [f"/v1/subscriptions/{sub.id}/history"]  # only the changed one is read in full
    after = workspace.store.snapshot()
    changed = {s.id: s for s in after.vendor.subscriptions}[sub.id]
    assert changed.history[-1].action == "increase" and changed.history[-1].quantity == new_quantity
    old = {s.id: s.model_dump() for s in before.vendor.subscriptions}
    new = {s.id: s.model_dump() for s in after.vendor.subscriptions}
    assert {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} == {sub.id}

    again = await workspace.refresh()
    assert again.vendor_changed == 0 and again.psa_changed == 0
    await workspace.aclose()


def _failing(handler, path_part: str, status: int, body: dict):
    async def handle(request: httpx.Request) -> httpx.Response:
        if path_part in request.url.path:
            return httpx.Response(status, json=body, request=request)
        return await handler(request)

    return handle


async def test_service_error_leaves_the_store_as_it_was(demo, monkeypatch):
    workspace = Workspace.sandbox_from_scenario(demo)
    await workspace.refresh()
    before = workspace.store.snapshot().model_dump(mode="json")
    freshness = workspace.freshness
    pax8, cw = workspace.sandboxes["pax8"], workspace.sandboxes["connectwise"]
    sub = next(s for s in demo.vendor.subscriptions if s.status == "active" and s.history)
    pax8.change_quantity(sub.id, sub.history[-1].quantity + 1, on=demo.as_of + timedelta(days=1))
    # Pax8 fails once subscriptions have been listed (mid-way through the vendor side), ConnectWise
    # refuses the additions (after companies and agreements were read).
    monkeypatch.setattr(
        pax8,
        "handle",
        _failing(
            pax8.handle,
            "/history",
            400,
            {"type": "BAD_REQUEST", "message": "History is unavailable", "status": 400},
        ),
    )
    monkeypatch.setattr(
        cw,
        "handle",
        _failing(
            cw.handle, "/additions", 403, {"code": "Forbidden", "message": "Member lacks Agreement Additions"}
        ),
    )
    result = await workspace.refresh()
    assert len(result.errors) == 2
    assert any("History is unavailable" in e and "400" in e for e in result.errors), result.errors
    assert any("Member lacks Agreement Additions" in e and "403" in e for e in result.errors), result.errors
    assert workspace.store.snapshot().model_dump(mode="json") == before
    assert workspace.freshness == freshness
    await workspace.aclose()


async def test_one_side_failing_does_not_stop_the_other(demo, monkeypatch):
    workspace = Workspace.sandbox_from_scenario(demo)
    cw = workspace.sandboxes["connectwise"]
    monkeypatch.setattr(
        cw,
        "handle",
        _failing(
            cw.handle, "/company/companies", 401, {"code": "Unauthorized", "message": "Bad credentials"}
        ),
    )
    result = await workspace.refresh()
    assert len(result.errors) == 1 and "Bad credentials" in result.errors[0]
    snapshot = workspace.store.snapshot()
    assert len(snapshot.vendor.subscriptions) == len(demo.vendor.subscriptions)
    assert snapshot.psa.lines == []
    assert workspace.freshness["psa"] is None and workspace.freshness["vendor"] is not None
    await workspace.aclose()


def test_refresh_keeps_usage_of_periods_not_read(demo):
    from engine.refresh import usage_periods

    periods = usage_periods(demo.vendor.subscriptions, demo.vendor.products, demo.as_of)
    assert list(periods) == ["2026-09", "2026-10", "2026-11"]
    kinds = {p.id: p.kind for p in demo.vendor.products}
    assert {kinds[s.product_id] for s in periods["2026-09"]} == {"endpoint_usage"}
    assert {kinds[s.product_id] for s in periods["2026-11"]} == {"quota"}


def test_doctor_and_refresh_commands_in_sandbox_mode(tmp_path, monkeypatch):
    from tui.cli import main

    monkeypatch.setenv("TRUEUP_CONFIG", str(tmp_path / "absent.toml"))
    runner = CliRunner()
    result = runner.invoke(main, ["config", "path"])
    assert result.exit_code == 0 and str(tmp_path / "absent.toml") in result.output
    assert "does not exist" in result.output

    result = runner.invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "checking the built-in sandbox services" in result.output
    assert "ok    Pax8: signed in" in result.output
    assert "ok    ConnectWise: signed in" in result.output

    result = runner.invoke(main, ["refresh"])
    assert result.exit_code == 0, result.output
    for stage in (*VENDOR_STAGES, *PSA_STAGES):
        assert f"  {stage}: " in result.output
    assert "(full)" in result.output


def test_doctor_reports_a_refused_login(monkeypatch, tmp_path):
    """A real configuration whose secret is wrong: the doctor says so in a sentence and exits 1."""
    from tui.cli import main

    config = tmp_path / "trueup.toml"
    config.write_text(
        "[vendor.pax8]\nclient_id='id'\nbase_url='http://127.0.0.1:9/v1'\n[psa]\nkind='halopsa'\n"
        "[psa.halopsa]\nbase_url='http://127.0.0.1:9'\nclient_id='x'\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TRUEUP_CONFIG", str(config))
    monkeypatch.setenv("TRUEUP_DATABASE_URL", f"sqlite:///{tmp_path / 'real.db'}")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert "Pax8: no client secret; set TRUEUP_PAX8_CLIENT_SECRET" in result.output
    assert "Traceback" not in result.output


def test_config_error_is_one_sentence(tmp_path, monkeypatch):
    from tui.cli import main

    config = tmp_path / "trueup.toml"
    config.write_text("[psa.connectwise]\nprivate_key = 'x'\n", encoding="utf-8")
    monkeypatch.setenv("TRUEUP_CONFIG", str(config))
    result = CliRunner().invoke(main, ["refresh"])
    assert result.exit_code == 2
    assert "psa.connectwise.private_key: secrets are not read from the config file" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
