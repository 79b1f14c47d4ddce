"""The targeted refresh of one customer (`Workspace.refresh_customer`, `engine.refresh.refresh_customer`)
through the sandbox services and the real connectors: the store ends up exactly as a full refresh
would leave that customer, every other customer is untouched, errors leave a side as it was, an
unknown company is refused, and `trueup refresh --company`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from engine.connectors.base import LineWrite
from engine.refresh import UnknownCompany, refresh_customer
from engine.sandbox.demo import DEMO_CUSTOMERS, build_demo_scenario
from engine.scenario import HistoryRow, Scenario, Subscription
from engine.workspace import Workspace


@pytest.fixture(scope="module")
def demos() -> dict[str, Scenario]:
    return {psa: build_demo_scenario(psa=psa) for psa in ("connectwise", "halopsa", "autotask")}


def _kinds(scenario: Scenario) -> dict[str, str]:
    return {p.id: p.kind for p in scenario.vendor.products}


def _pick(scenario: Scenario, *, skip: str | None = None) -> str:
    """A mapped customer with at least three active seat subscriptions and an active usage one."""
    kinds = _kinds(scenario)
    mapped = {m.vendor_id for m in scenario.mappings.companies}
    best = []
    for company in scenario.vendor.companies:
        if company.id == skip or company.id not in mapped:
            continue
        subs = [
            s for s in scenario.vendor.subscriptions if s.company_id == company.id and s.status == "active"
        ]
        seats = [s for s in subs if kinds[s.product_id] == "seat" and s.history]
        usage = [s for s in subs if kinds[s.product_id] != "seat"]
        if len(seats) >= 3:
            best.append((bool(usage), len(seats), company.id))
    return max(best)[2]


def _psa_ids(scenario: Scenario, vendor_id: str) -> set[str]:
    return {m.psa_id for m in scenario.mappings.companies if m.vendor_id == vendor_id}


def scope(snapshot: Scenario, vendor_id: str, psa_ids: set[str]) -> dict[str, Any]:
    """Everything the targeted refresh of `vendor_id` owns, comparable."""
    subs = sorted((s for s in snapshot.vendor.subscriptions if s.company_id == vendor_id), key=lambda s: s.id)
    sub_ids = {s.id for s in subs}
    agreements = sorted((a for a in snapshot.psa.agreements if a.company_id in psa_ids), key=lambda a: a.id)
    agreement_ids = {a.id for a in agreements}
    return {
        "company": [c.model_dump() for c in snapshot.vendor.companies if c.id == vendor_id],
        "subscriptions": [s.model_dump() for s in subs],
        "usage": sorted(
            (u.model_dump() for u in snapshot.vendor.usage if u.subscription_id in sub_ids), key=str
        ),
        "agreements": [a.model_dump() for a in agreements],
        "lines": sorted(
            (line.model_dump() for line in snapshot.psa.lines if line.agreement_id in agreement_ids),
            key=lambda d: d["id"],
        ),
    }


def rest(
    snapshot: Scenario, vendor_id: str, psa_ids: set[str], gone: set[str] = frozenset()
) -> dict[str, Any]:
    """Everything else in the store (`gone`: subscription ids that left the customer)."""
    mine = {s.id for s in snapshot.vendor.subscriptions if s.company_id == vendor_id} | gone
    agreements = {a.id for a in snapshot.psa.agreements if a.company_id in psa_ids}
    dump = snapshot.model_dump(mode="json")
    dump["vendor"]["companies"] = [c for c in dump["vendor"]["companies"] if c["id"] != vendor_id]
    dump["vendor"]["subscriptions"] = [s for s in dump["vendor"]["subscriptions"] if s["id"] not in mine]
    dump["vendor"]["usage"] = [u for u in dump["vendor"]["usage"] if u["subscription_id"] not in mine]
    dump["psa"]["agreements"] = [a for a in dump["psa"]["agreements"] if a["id"] not in agreements]
    dump["psa"]["lines"] = [line for line in dump["psa"]["lines"] if line["agreement_id"] not in agreements]
    return dump


async def _new_line(workspace: Workspace, snapshot: Scenario, psa_company: str, key: str) -> None:
    agreement = next(a for a in snapshot.psa.agreements if a.company_id == psa_company)
    product = snapshot.psa.products[0]
    await workspace.psa.create_line(
        LineWrite(
            key=key,
            agreement_id=agreement.id,
            product_id=product.id,
            kind="recurring",
            quantity=Decimal("4"),
            unit_price=Decimal("12.34"),
            unit_cost=Decimal("9.87"),
            effective_date=snapshot.as_of.replace(day=1),
            end_date=None,
            description="added in the PSA meanwhile",
        )
    )


@pytest.mark.parametrize("psa", ["connectwise", "halopsa", "autotask"])
async def test_targeted_refresh_equals_a_full_refresh_for_that_customer_and_touches_no_other(demos, psa):
    demo = demos[psa]
    workspace = Workspace.sandbox_from_scenario(demo)
    assert (await workspace.refresh()).ok
    x = _pick(demo)
    y = _pick(demo, skip=x)
    x_psa, y_psa = _psa_ids(demo, x), _psa_ids(demo, y)
    kinds = _kinds(demo)
    pax8 = workspace.sandboxes["pax8"]
    on = demo.as_of + timedelta(days=1)
    seats = [
        s
        for s in demo.vendor.subscriptions
        if s.company_id == x and s.status == "active" and kinds[s.product_id] == "seat" and s.history
    ]
    bumped, cancelled, dropped = seats[0], seats[1], seats[2]
    pax8.change_quantity(bumped.id, bumped.history[-1].quantity + 3, on=on)
    pax8.cancel(cancelled.id, on=on)
    del pax8.subscriptions[dropped.id]  # Pax8 no longer lists it
    new = Subscription(
        id="0d6f5a4e-1111-4222-8333-444455556666",
        company_id=x,
        product_id=bumped.product_id,
        start_date=on,
        unit_price=bumped.unit_price,
        unit_cost=bumped.unit_cost,
        history=[HistoryRow(id="n-h1", action="initial", quantity=Decimal("2"), effective_date=on)],
    )
    pax8.add_subscription(new)
    other = next(
        s
        for s in demo.vendor.subscriptions
        if s.company_id == y and s.status == "active" and kinds[s.product_id] == "seat" and s.history
    )
    pax8.change_quantity(other.id, other.history[-1].quantity + 1, on=on)  # another customer: not read now
    before = workspace.store.snapshot()
    await _new_line(workspace, before, next(iter(x_psa)), f"{bumped.id}:recurring-x")
    await _new_line(workspace, before, next(iter(y_psa)), f"{other.id}:recurring-y")
    pax8.requests.clear()
    fresh_before = workspace.freshness

    name = next(c.name for c in demo.vendor.companies if c.id == x)
    result = await workspace.refresh_customer(name)

    assert result.ok, result.errors
    assert result.company_id == x and not result.full
    assert result.vendor_changed == 4 and result.psa_changed == 1  # bumped, cancelled, dropped, new; one line
    history = sorted(r.url.path.split("/")[-2] for r in pax8.requests if r.url.path.endswith("/history"))
    assert history == sorted([bumped.id, cancelled.id, new.id])  # only what changed is read in full
    listed = [r.url for r in pax8.requests if r.url.path == "/v1/subscriptions"]
    assert [u.params["companyId"] for u in listed] == [x]
    after = workspace.store.snapshot()
    assert rest(after, x, x_psa, {dropped.id}) == rest(before, x, x_psa, {dropped.id})  # nothing else moved
    assert workspace.freshness == fresh_before  # the sweep's freshness is not claimed
    got = scope(after, x, x_psa)

    again = await workspace.refresh_customer(x)  # nothing new: nothing read in full, nothing changes
    assert (again.vendor_changed, again.psa_changed) == (0, 0)
    assert scope(workspace.store.snapshot(), x, x_psa) == got

    assert (await workspace.refresh(full=True)).ok
    full = workspace.store.snapshot()
    assert got == scope(full, x, x_psa)
    subs = {s["id"]: s for s in got["subscriptions"]}
    # dropped at the vendor: kept marked gone while a PSA line bills it (vendor_subscription_gone)
    billed = any(
        line.source is not None and line.source.subscription_id == dropped.id and line.cancelled_date is None
        for line in full.psa.lines
    )
    assert (subs[dropped.id]["gone"] if billed else dropped.id not in subs) is True
    assert subs[new.id]["history"][0]["quantity"] == Decimal("2")
    assert subs[cancelled.id]["status"] == "cancelled"
    assert subs[bumped.id]["history"][-1]["quantity"] == bumped.history[-1].quantity + 3
    assert any(line["description"] == "added in the PSA meanwhile" for line in got["lines"])
    await workspace.aclose()


def _failing(handler, path_part: str, status: int, body: dict):
    async def handle(request: httpx.Request) -> httpx.Response:
        if path_part in request.url.path:
            return httpx.Response(status, json=body, request=request)
        return await handler(request)

    return handle


async def test_a_psa_error_leaves_the_psa_side_as_it_was_and_the_vendor_side_still_refreshes(
    demos, monkeypatch
):
    demo = demos["connectwise"]
    workspace = Workspace.sandbox_from_scenario(demo)
    await workspace.refresh()
    x = _pick(demo)
    x_psa = _psa_ids(demo, x)
    sub = next(
        s
        for s in demo.vendor.subscriptions
        if s.company_id == x and s.status == "active" and s.history and _kinds(demo)[s.product_id] == "seat"
    )
    workspace.sandboxes["pax8"].change_quantity(
        sub.id, sub.history[-1].quantity + 5, on=demo.as_of + timedelta(days=1)
    )
    before = workspace.store.snapshot()
    await _new_line(workspace, before, next(iter(x_psa)), f"{sub.id}:recurring-x")
    cw = workspace.sandboxes["connectwise"]
    monkeypatch.setattr(
        cw,
        "handle",
        _failing(
            cw.handle, "/additions", 403, {"code": "Forbidden", "message": "Member lacks Agreement Additions"}
        ),
    )

    result = await workspace.refresh_customer(x)

    assert len(result.errors) == 1 and "Member lacks Agreement Additions" in result.errors[0], result.errors
    assert "403" in result.errors[0]
    after = workspace.store.snapshot()
    assert scope(after, x, x_psa)["lines"] == scope(before, x, x_psa)["lines"]  # the PSA side as it was
    changed = {s.id: s for s in after.vendor.subscriptions}[sub.id]
    assert changed.history[-1].quantity == sub.history[-1].quantity + 5  # the vendor side refreshed
    await workspace.aclose()


async def test_a_vendor_error_leaves_the_customer_as_it_was(demos, monkeypatch):
    demo = demos["halopsa"]
    workspace = Workspace.sandbox_from_scenario(demo)
    await workspace.refresh()
    x = _pick(demo)
    x_psa = _psa_ids(demo, x)
    pax8 = workspace.sandboxes["pax8"]
    sub = next(
        s for s in demo.vendor.subscriptions if s.company_id == x and s.status == "active" and s.history
    )
    pax8.change_quantity(sub.id, sub.history[-1].quantity + 1, on=demo.as_of + timedelta(days=1))
    before = workspace.store.snapshot()
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
    result = await workspace.refresh_customer(x)
    assert len(result.errors) == 1 and "History is unavailable" in result.errors[0]
    after = workspace.store.snapshot()
    assert scope(after, x, x_psa)["subscriptions"] == scope(before, x, x_psa)["subscriptions"]
    assert after.vendor.usage == before.vendor.usage
    assert workspace.store.get_setting("refresh.vendor.company." + x) is None
    await workspace.aclose()


async def test_an_unknown_company_is_refused_and_nothing_is_written(demos, monkeypatch):
    demo = demos["connectwise"]
    workspace = Workspace.sandbox_from_scenario(demo)
    await workspace.refresh()
    before = workspace.store.snapshot().model_dump(mode="json")
    with pytest.raises(UnknownCompany, match="no vendor company has the id or exact name 'Nobody Ltd'"):
        await workspace.refresh_customer("Nobody Ltd")

    # A company the store knows but Pax8 no longer does: refused, and the PSA side (read meanwhile)
    # is not written either.
    x = _pick(demo)
    await _new_line(workspace, workspace.store.snapshot(), next(iter(_psa_ids(demo, x))), "k:recurring-x")
    pax8 = workspace.sandboxes["pax8"]
    monkeypatch.setattr(
        pax8,
        "handle",
        _failing(
            pax8.handle,
            f"/companies/{x}",
            404,
            {"type": "NOT_FOUND", "message": f"Company Not Found: {x}", "status": 404},
        ),
    )
    with pytest.raises(UnknownCompany, match=f"pax8 has no company '{x}'"):
        await refresh_customer(workspace.store, workspace.vendor, workspace.psa, x, today=demo.as_of)
    assert workspace.store.snapshot().model_dump(mode="json") == before
    await workspace.aclose()


async def test_a_store_never_swept_gets_the_customer_in_full(demos):
    demo = demos["halopsa"]
    workspace = Workspace.sandbox_from_scenario(demo)
    x = _pick(demo)
    x_psa = _psa_ids(demo, x)
    name = next(c.name for c in demo.vendor.companies if c.id == x)
    result = await workspace.refresh_customer(name)  # not in the store yet: found in Pax8's list
    assert result.ok and result.vendor_changed > 3
    got = scope(workspace.store.snapshot(), x, x_psa)
    assert workspace.freshness == {"vendor": None, "psa": None}  # only that customer is fresh
    await workspace.refresh(full=True)
    assert got == scope(workspace.store.snapshot(), x, x_psa)
    await workspace.aclose()


def test_refresh_company_command(tmp_path, monkeypatch):
    from tui.cli import main

    monkeypatch.setenv("TRUEUP_CONFIG", str(tmp_path / "absent.toml"))
    runner = CliRunner()
    name = DEMO_CUSTOMERS["prorate_story"]  # the CLI's sandbox is the demo as of today: a story customer
    result = runner.invoke(main, ["refresh", "--company", name])
    assert result.exit_code == 0, result.output
    assert f"Refreshing {name}" in result.output and "(one customer)" in result.output
    assert "vendor records and" in result.output

    result = runner.invoke(main, ["refresh", "--company", name, "--full"])
    assert result.exit_code == 2 and "--full and --company do not go together" in result.output

    result = runner.invoke(main, ["refresh", "--company", "Nobody Ltd"])
    assert result.exit_code == 1
    assert "no vendor company has the id or exact name 'Nobody Ltd'" in result.output


async def test_the_periodic_sweep_lists_subscriptions_once_and_never_reads_the_whole_store(
    demos, monkeypatch
):
    demo = demos["connectwise"]
    workspace = Workspace.sandbox_from_scenario(demo)
    assert (await workspace.refresh()).ok
    pax8 = workspace.sandboxes["pax8"]
    sub = next(s for s in demo.vendor.subscriptions if s.status == "active" and s.history)
    pax8.change_quantity(sub.id, sub.history[-1].quantity + 2, on=demo.as_of + timedelta(days=1))
    pax8.requests.clear()

    def no_snapshot(*_args: Any, **_kwargs: Any) -> Scenario:
        raise AssertionError("the refresh read the whole store")

    monkeypatch.setattr(type(workspace.store), "snapshot", no_snapshot)
    result = await workspace.refresh()
    monkeypatch.undo()

    assert result.ok and not result.full and result.vendor_changed == 1 and result.psa_changed == 0
    pages = [str(r.url) for r in pax8.requests if r.url.path == "/v1/subscriptions"]
    assert pages and len(pages) == len(set(pages))  # every page once: products() did not list them again
    changed = {s.id: s for s in workspace.store.snapshot().vendor.subscriptions}[sub.id]
    assert changed.history[-1].quantity == sub.history[-1].quantity + 2
    await workspace.aclose()
