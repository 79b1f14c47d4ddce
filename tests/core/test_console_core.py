"""The console's headless core, without Textual: actions checked against the plan it holds (never a
fresh full plan) under one lock with an optimistic revision check, the per-customer recompute
giving exactly the figures of a full recompute, the change feed, and the targeted refresh queued
behind a sweep."""

from __future__ import annotations

import asyncio
import threading
from datetime import date, timedelta
from decimal import Decimal
from itertools import zip_longest
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine import actions
from engine.console_core import Act, Change, ConsoleCore, StalePlan
from engine.sandbox.demo import build_demo_scenario
from engine.scenario import HistoryRow
from engine.store import Store
from tui import model
from tui.model import VIEW
from tui.rows import PANES, ConsoleData
from tui.workspace import RefreshOutcome, StoreWorkspace

AS_OF = date(2026, 11, 21)


@pytest.fixture(scope="module")
def scenario() -> Any:
    return build_demo_scenario(as_of=AS_OF)


def new_store(scenario: Any) -> Store:
    store = Store.memory()
    store.import_scenario(scenario)
    return store


class Workspace(StoreWorkspace):
    """A store workspace whose refreshes run what a test hands them (vendor / PSA changes)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, label="test")
        self.sweep: Any = None
        self.customer: Any = None

    async def refresh(self, progress: Any = None, *, full: bool = False) -> RefreshOutcome:
        if self.sweep is not None:
            await self.sweep()
        return await super().refresh(progress, full=full)

    async def refresh_customer(self, company: str, progress: Any = None) -> RefreshOutcome:
        if self.customer is not None:
            self.customer(company)
        return await super().refresh_customer(company, progress)


def make_core(store: Store) -> tuple[ConsoleCore[ConsoleData], Workspace, list[Change[ConsoleData]]]:
    workspace = Workspace(store)
    core: ConsoleCore[ConsoleData] = ConsoleCore(workspace, VIEW, as_of=lambda: AS_OF, today=lambda: AS_OF)
    feed: list[Change[ConsoleData]] = []
    core.subscribe(feed.append)
    core.load()
    return core, workspace, feed


def full_figures(store: Store) -> ConsoleData:
    return model.load(store, AS_OF, today=AS_OF)


def assert_same_figures(held: ConsoleData, full: ConsoleData) -> None:
    """What the operator sees and what a sync would write: every pane's rows, every plan line."""
    for pane in PANES + ("products",):
        assert held.rows.get(pane) == full.rows.get(pane), pane
        assert held.ignored_rows.get(pane, []) == full.ignored_rows.get(pane, []), f"ignored {pane}"
    assert held.plan.lines == full.plan.lines
    assert held.plan.ignored_lines == full.plan.ignored_lines
    assert held.plan.findings == full.plan.findings
    assert held.plan.totals == full.plan.totals
    assert held.lines == full.lines
    assert held.ignored == full.ignored
    assert held.psa_lines == full.psa_lines
    # every pane's column widths hold its widest cell (wider after a patch is allowed, never narrower:
    # a narrower column would cut a figure on screen)
    for name, widths in full.widths.items():
        kept = held.widths.get(name)
        assert kept is not None and all(k >= w for k, w in zip_longest(kept, widths, fillvalue=0)), name


def test_an_ignore_is_checked_against_the_held_plan_and_recomputes_only_its_customer(
    scenario: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(scenario)
    core, _, feed = make_core(store)
    held = core.held
    assert held is not None
    line = next(x for x in held.plan.lines if x.kind == "recurring")
    monkeypatch.setattr(
        actions, "current_plan", lambda *a, **k: pytest.fail("a fresh full plan was computed")
    )
    monkeypatch.setattr(model, "load", lambda *a, **k: pytest.fail("a full recompute"))
    core.act(Act("ignore", keys=(line.subscription_id,), reason="customer pays direct"))
    assert feed and feed[-1].companies is not None and line.company_id in feed[-1].companies
    assert len(feed[-1].companies) < len({c.id for c in scenario.vendor.companies})
    new = core.held
    assert new is not None and new is feed[-1].data
    assert all(x.subscription_id != line.subscription_id for x in new.plan.lines)
    assert line.subscription_id in {x.subscription_id for x in new.plan.ignored_lines}
    monkeypatch.undo()
    assert_same_figures(new, full_figures(store))
    assert new.revision == core.revision()


def test_a_write_since_the_figures_refuses_the_action_and_recomputes(scenario: Any) -> None:
    store = new_store(scenario)
    core, _, feed = make_core(store)
    held = core.held
    assert held is not None
    line = next(x for x in held.plan.lines if x.kind == "recurring")
    actions.set_invoiced_through(store, date(2026, 11, 30))  # another operator, meanwhile
    with pytest.raises(StalePlan, match="changed since they were computed"):
        core.act(Act("ignore", keys=(line.subscription_id,)))
    assert not store.snapshot(AS_OF).ignored or all(
        i.key != line.subscription_id for i in store.snapshot().ignored
    )
    assert feed and feed[-1].companies is None  # everything recomputed from the store as it is
    assert core.held is not None and core.held.invoiced_through == date(2026, 11, 30)
    core.act(Act("ignore", keys=(line.subscription_id,)))  # against the current figures: made
    assert any(i.key == line.subscription_id for i in store.snapshot().ignored)


def test_an_effective_date_is_refused_by_the_held_plan_and_nothing_is_written(scenario: Any) -> None:
    store = new_store(scenario)
    core, _, feed = make_core(store)
    held = core.held
    assert held is not None
    line = next(x for x in held.plan.lines if x.action == "create" and x.kind == "recurring")
    before = store.snapshot().overrides
    with pytest.raises(actions.ActionError, match="not the first of a month"):
        core.act(Act("set_effective_date", keys=(line.key,), day=date(2026, 12, 15)))
    assert store.snapshot().overrides == before and not feed
    core.act(Act("set_effective_date", keys=(line.key,), day=date(2026, 12, 1)))
    assert core.held is not None and core.held.lines[line.key].effective_date == date(2026, 12, 1)
    assert_same_figures(core.held, full_figures(store))


def test_a_customer_refresh_waits_behind_a_running_sweep(scenario: Any) -> None:
    store = new_store(scenario)
    core, workspace, _ = make_core(store)
    order: list[str] = []
    release = threading.Event()

    async def slow_sweep() -> None:
        order.append("sweep started")
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        order.append("sweep done")

    workspace.sweep = slow_sweep
    workspace.customer = lambda company: order.append(f"customer {company}")
    sweep = threading.Thread(target=core.refresh)
    sweep.start()
    while not order:
        threading.Event().wait(0.01)
    company = scenario.vendor.companies[0].id
    customer = threading.Thread(target=core.refresh_customer, args=(company,))
    customer.start()
    customer.join(0.3)
    assert customer.is_alive() and order == ["sweep started"]  # queued
    release.set()
    sweep.join(5)
    customer.join(5)
    assert order == ["sweep started", "sweep done", f"customer {company}"]
    core.close()


def test_unmapping_a_customer_keeps_the_seats_its_psa_line_still_bills(scenario: Any) -> None:
    """The demo's committed subscription whose PSA line bills fewer seats than the vendor charges:
    unmapped, its customer's PSA line still names the subscription by its source, so the seats it
    bills — and the idle seats reducible at renewal — are what the full plan says (Hypothesis
    found the per-customer recompute dropping the warning: issue 12 item 2)."""
    store = new_store(scenario)
    core, _, feed = make_core(store)
    held = core.held
    assert held is not None
    [reducible] = [f for f in held.plan.findings if f.code == "seats_reducible_at_renewal"]
    sid = reducible.subject["subscription_id"]
    company = next(s.company_id for s in scenario.vendor.subscriptions if s.id == sid)
    core.act(Act("unmap_company", vendor_id=company))
    assert feed and feed[-1].companies is not None and company in feed[-1].companies  # incremental
    new = core.held
    assert new is not None
    assert store.psa_mapping(company)[0] == []  # unmapped indeed
    full = full_figures(store)
    reducible_now = [f.message for f in full.plan.findings if f.code == "seats_reducible_at_renewal"]
    assert reducible_now, "the PSA line still bills fewer seats than the vendor charges"
    assert [f.message for f in new.plan.findings if f.code == "seats_reducible_at_renewal"] == reducible_now
    assert new.rows["overview"] == full.rows["overview"]  # the open findings' count
    assert_same_figures(new, full)
    core.close()


def test_a_customer_mapped_to_the_psa_company_of_anothers_lines_is_recomputed_with_it(
    scenario: Any,
) -> None:
    """Unmapped, a customer's PSA company is free: mapped to another customer, its lines still
    name the first customer's subscriptions, so the two are recomputed together (else the second's
    part sees lines of subscriptions it does not hold, 'gone from the vendor')."""
    store = new_store(scenario)
    core, _, feed = make_core(store)
    held = core.held
    assert held is not None
    [reducible] = [f for f in held.plan.findings if f.code == "seats_reducible_at_renewal"]
    first = next(
        s.company_id for s in scenario.vendor.subscriptions if s.id == reducible.subject["subscription_id"]
    )
    [psa_id], _ = store.psa_mapping(first)
    core.act(Act("unmap_company", vendor_id=first))
    assert core.held is not None
    second = next(r.key for r in core.held.rows["customers"] if r.status == "not_mapped" and r.key != first)
    core.act(Act("map_company", vendor_id=second, psa_id=psa_id))
    new, full = core.held, full_figures(store)
    assert new is not None
    assert not [f for f in full.plan.findings if f.code == "vendor_subscription_gone"]
    assert [f for f in new.plan.findings if f.code == "vendor_subscription_gone"] == []
    assert_same_figures(new, full)
    assert feed[-1].companies is not None and {first, second} <= feed[-1].companies  # incremental
    core.close()


# --- the incremental plan equals a full plan, whatever happens --------------------------------------


def _vendor_change(store: Store, company: str, qty: int) -> None:
    """The vendor reports a seat increase this month on one of the company's subscriptions."""
    subs = [s for s in store.subscriptions_where(company_id=company) if s.status == "active" and s.history]
    if not subs:
        return
    sub = subs[qty % len(subs)]
    last = sub.history[-1]
    day = max(last.effective_date + timedelta(days=1), date(2026, 11, 2))
    row = HistoryRow(
        id=f"{sub.id}-h{len(sub.history) + 1}",
        action="increase",
        quantity=last.quantity + qty,
        effective_date=min(day, AS_OF),
    )
    store.upsert_subscriptions([sub.model_copy(update={"history": [*sub.history, row]})])


def _psa_change(store: Store, company: str, qty: int) -> None:
    """The PSA's line of one of the company's agreements now holds another quantity."""
    psa_ids, _ = store.psa_mapping(company)
    if not psa_ids:
        return
    psa = store.psa_data(company_ids=psa_ids)
    if not psa.lines:
        return
    target = psa.lines[qty % len(psa.lines)]
    lines = [
        x.model_copy(update={"quantity": x.quantity + Decimal(qty)}) if x.id == target.id else x
        for x in psa.lines
    ]
    store.write_psa_scope(
        company_ids=psa_ids,
        agreements=psa.agreements,
        lines=lines,
        line_agreement_ids=[a.id for a in psa.agreements],
    )


STEP = st.tuples(
    st.sampled_from(["ignore_sub", "ignore_line", "restore", "date", "map", "unmap", "vendor", "psa"]),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=1, max_value=5),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=6))
# Found by Hypothesis: two subscriptions of one customer ignored, its ignored extra-months line
# came before its ignored prorate in the patched Prorates pane (the full build puts it after).
@example(steps=[("ignore_sub", 118, 1), ("ignore_sub", 118, 1)])
def test_the_incremental_plan_is_the_full_plan_after_any_actions_and_changes(
    scenario: Any, steps: list[tuple[str, int, int]]
) -> None:
    store = new_store(scenario)
    core, workspace, _ = make_core(store)
    companies = sorted(c.id for c in scenario.vendor.companies)
    for kind, pick, qty in steps:
        held = core.held
        assert held is not None
        lines = held.plan.lines
        try:
            if kind in ("ignore_sub", "ignore_line") and lines:
                line = lines[pick % len(lines)]
                key = line.subscription_id if kind == "ignore_sub" else line.key
                core.act(
                    Act(
                        "ignore",
                        keys=(key,),
                        mode="until_restored"
                        if pick % 2
                        else "this_change"
                        if kind == "ignore_line"
                        else "until_restored",
                    )
                )
            elif kind == "restore" and held.ignored:
                keys = sorted(held.ignored)
                core.act(Act("restore", keys=(keys[pick % len(keys)],)))
            elif kind == "date":
                creates = [x for x in lines if x.action == "create"]
                if creates:
                    core.act(
                        Act(
                            "set_effective_date",
                            keys=(creates[pick % len(creates)].key,),
                            day=date(2026, 12, 1) if qty % 2 else date(2027, 1, 1),
                        )
                    )
            elif kind == "unmap":
                mapped = [r.key for r in held.rows["customers"] if r.status != "not_mapped"]
                if mapped:
                    core.act(Act("unmap_company", vendor_id=mapped[pick % len(mapped)]))
            elif kind == "map":
                unmapped = [r.key for r in held.rows["customers"] if r.status == "not_mapped"]
                taken = {m.psa_id for m in store.snapshot().mappings.companies}
                free = [p for p, _ in held.psa_companies if p not in taken] or [
                    p for p, _ in held.psa_companies
                ]
                if unmapped and free:
                    core.act(
                        Act(
                            "map_company",
                            vendor_id=unmapped[pick % len(unmapped)],
                            psa_id=free[qty % len(free)],
                        )
                    )
            elif kind in ("vendor", "psa"):
                company = companies[pick % len(companies)]
                change = _vendor_change if kind == "vendor" else _psa_change
                workspace.customer = lambda c, change=change, qty=qty: change(store, c, qty)
                core.refresh_customer(company)
        except actions.ActionError:
            pass  # refused (already mapped…): nothing written, the held figures stay what they were
        held = core.held
        assert held is not None
        assert_same_figures(held, full_figures(store))
    core.close()


# --- the Overview's invoice change, from the figures kept per customer (issue 12) --------------------


def test_an_actions_overview_invoice_change_is_the_full_recomputes_to_the_cent(
    scenario: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ignoring the subscription whose line changes the invoice most moves the Overview's net
    $/month (its Unsynced row and the total) by that line's change, exactly as a full recompute
    says — and the change is read from the figures kept per customer: only the customer's own
    lines are netted again, not every line of the plan."""
    from engine import net as engine_net
    from engine.net import line_net, old_line_of

    store = new_store(scenario)
    core, _, feed = make_core(store)
    core.prepare()
    held = core.held
    assert held is not None
    line = max(
        (x for x in held.plan.lines if x.kind == "recurring"),
        key=lambda x: abs(line_net(x, old_line_of(x, held.psa_lines)).monthly),
    )
    assert line_net(line, old_line_of(line, held.psa_lines)).monthly != 0
    before = {r.key: r.cells for r in held.rows["overview"]}
    netted: list[str] = []
    counted = engine_net.line_net

    def counting(x: Any, old: Any = None) -> Any:
        netted.append(x.company_id)
        return counted(x, old)

    monkeypatch.setattr(engine_net, "line_net", counting)
    monkeypatch.setattr(model, "line_net", counting)
    core.act(Act("ignore", keys=(line.subscription_id,), reason="customer pays direct"))
    monkeypatch.undo()
    assert feed and feed[-1].companies is not None
    assert set(netted) <= feed[-1].companies  # no pass over the other customers' lines
    new = core.held
    assert new is not None
    full = full_figures(store)
    assert new.rows["overview"] == full.rows["overview"]
    after = {r.key: r.cells for r in new.rows["overview"]}
    assert after["unsynced"][3] != before["unsynced"][3]  # the net $/month moved
    assert after["total"][3] != before["total"][3]


def test_a_replaced_part_drops_the_cached_figures_of_every_company_it_holds(scenario: Any) -> None:
    """A recompute's part may hold a customer besides the one asked for (grouped with it): that
    customer's lines and cached invoice change are replaced too — here its lines all became
    ignored, so nothing of it may stay in the Overview's money."""
    from engine.console_core import PlanParts
    from engine.net import nets_by_kind

    store = new_store(scenario)
    core, _, _ = make_core(store)
    core.prepare()
    held, parts, topology = core.held, core.parts, core.topology
    assert held is not None and parts is not None
    companies = sorted({x.company_id for x in held.plan.lines})
    asked, other = companies[0], companies[1]
    own = [x for x in held.plan.lines if x.company_id == asked]
    others = [x for x in held.plan.lines if x.company_id == other]
    assert own and others and nets_by_kind(others, held.psa_lines)
    part = held.plan.model_copy(
        update={
            "lines": own,
            "ignored_lines": [x for x in held.plan.ignored_lines if x.company_id in (asked, other)] + others,
            "findings": [],
        }
    )
    parts.replace({asked}, part, topology, held.psa_lines)
    kept = [x for x in held.plan.lines if x.company_id != other]
    assert parts.kind_net() == nets_by_kind(kept, held.psa_lines)
    assert (
        parts.kind_net()
        == PlanParts.of(held.plan.model_copy(update={"lines": kept}), topology, held.psa_lines).kind_net()
    )
    assert other not in parts.kind_nets and other not in parts.lines
    core.close()
