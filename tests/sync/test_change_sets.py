"""Atomic change sets and one writer per key (issue 11).

- A change's recurring update, its prorates and its extra months are one change set: claimed
  together, resumed together. Killing the executor at every write index, then syncing again from
  a freshly refreshed plan, leaves the PSA holding exactly the first plan (engine.verify).
- The journal claims by key: a second operator with a different plan for a key is refused with
  "changed since your review — refresh"; one write, one refusal.
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sync_builder import AS_OF, PSAS, build_scenario, load_store, make_rig, refreshed_plan_keys
from sync_checks import Killed, KillingConnector, run_once

from engine.plan import LineKind
from engine.reconcile import reconcile
from engine.scenario import Psa
from engine.store import Store
from engine.sync import Outcome, SyncExecutor
from engine.sync.executor import REFUSED_MESSAGE
from engine.verify import verify_lines


def _with_extra_months(psa: str):  # type: ignore[no-untyped-def]
    """Increases on 2026-03-05 with April already invoiced: recurring update/create + prorate +
    extra months (April) per subscription — three-line change sets."""
    scenario = build_scenario(psa, new=1, updates=1, cancels=1, create_new=1, record_only=0, companies=2)
    settings = scenario.settings.model_copy(update={"invoiced_through": date(2026, 4, 30)})
    return scenario.model_copy(update={"settings": settings})


async def _read(rig) -> Psa:  # type: ignore[no-untyped-def]
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


def _first_plan(psa: str, store_url: str):  # type: ignore[no-untyped-def]
    scenario = _with_extra_months(psa)
    store = load_store(store_url, scenario)
    lines = reconcile(store.snapshot()).lines
    store.close()
    kinds = {line.kind for line in lines}
    assert LineKind.EXTRA_MONTHS in kinds and LineKind.PRORATE in kinds, kinds
    return scenario, lines


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("psa", PSAS)
async def test_killed_at_every_write_then_resumed_the_psa_holds_the_plan(
    psa: str, when: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    scenario, lines = _first_plan(psa, f"sqlite:///{tmp_path / 'plan.db'}")
    count_store = Store("sqlite://")
    count_store.import_scenario(scenario)
    counting_rig = make_rig(psa, scenario)
    counting = KillingConnector(counting_rig.connector(), at=10**6, when="before")
    await SyncExecutor(count_store, counting, today=AS_OF).run(lines)
    await counting.inner.aclose()
    writes = counting.calls
    assert writes >= len(lines)
    for at in range(1, writes + 1):
        rig = make_rig(psa, scenario)
        url = f"sqlite:///{tmp_path / f'kill{at}.db'}"  # a fresh store per kill point
        store = Store(url)
        store.import_scenario(scenario)
        store.close()
        killer = KillingConnector(rig.connector(), at=at, when=when)
        with pytest.raises(Killed):
            await run_once(url, rig, lines, connector=killer)
        # The operator runs `trueup sync` again: refresh the PSA side, plan, sync — until nothing
        # is left to write.
        for _ in range(4):
            store = Store(url)
            try:
                store.replace_psa(await _read(rig))
                again = reconcile(store.snapshot()).lines
            finally:
                store.close()
            report = await run_once(url, rig, again)
            assert not report.blocked
            if not report.outcomes:
                break
        landed = await _read(rig)
        result = verify_lines(lines, landed.lines, psa=psa)
        assert [(c.key, c.status, c.message) for c in result.problems] == [], f"killed {when} write {at}"
        assert result.duplicates == {}, f"killed {when} write {at}"
        store = Store(url)
        try:
            assert await refreshed_plan_keys(store, rig) == set(), f"killed {when} write {at}"
        finally:
            store.close()


async def test_only_the_recurring_line_then_sync_loses_nothing(store_url: str) -> None:
    """`trueup sync --only <sub>:recurring` then `trueup sync` (issue 11: lost $78 on the demo)."""
    scenario, lines = _first_plan("connectwise", store_url)
    rig = make_rig("connectwise", scenario)
    store = load_store(store_url, scenario)
    store.close()
    update = next(line for line in lines if line.kind is LineKind.RECURRING and line.action == "update")
    from engine.sync.executor import change_sets

    chosen = next(s for s in change_sets(lines) if update in s)  # --only works on change sets
    assert {line.kind for line in chosen} == {LineKind.RECURRING, LineKind.PRORATE, LineKind.EXTRA_MONTHS}
    first = await run_once(store_url, rig, chosen)
    assert first.counts()["written"] == len(chosen)
    store = Store(store_url)
    store.replace_psa(await _read(rig))
    rest = reconcile(store.snapshot()).lines
    store.close()
    await run_once(store_url, rig, rest)
    result = verify_lines(lines, (await _read(rig)).lines, psa="connectwise")
    assert result.ok, result.problems


async def test_a_half_written_change_set_is_resumed_though_the_plan_forgets_it(store_url: str) -> None:
    """The recurring update lands, the process dies before the prorate and extra months: the next
    plan (from the refreshed PSA) no longer proposes the extra months, the journal resumes them."""
    scenario, lines = _first_plan("halopsa", store_url)
    rig = make_rig("halopsa", scenario)
    load_store(store_url, scenario).close()
    update = next(line for line in lines if line.kind is LineKind.RECURRING and line.action == "update")
    members = [line for line in lines if line.change_set == update.change_set]
    killer = KillingConnector(rig.connector(), at=1, when="after")
    with pytest.raises(Killed):
        await run_once(store_url, rig, members, connector=killer)
    store = Store(store_url)
    store.replace_psa(await _read(rig))
    again = reconcile(store.snapshot()).lines
    store.close()
    extra = next(line for line in members if line.kind is LineKind.EXTRA_MONTHS)
    assert extra.key not in {line.key for line in again}  # the plan alone would lose it
    report = await run_once(store_url, rig, again)
    assert extra.key in {o.key for o in report.outcomes if o.outcome is Outcome.WRITTEN}
    assert verify_lines(members, (await _read(rig)).lines, psa="halopsa").ok


@pytest.mark.parametrize("psa", PSAS)
async def test_two_operators_with_different_plans_for_one_key_one_write_one_refusal(
    psa: str, store_url: str
) -> None:
    scenario = build_scenario(psa, new=1, updates=0, cancels=0, create_new=0, record_only=0, companies=1)
    load_store(store_url, scenario).close()
    rig = make_rig(psa, scenario)
    rig.faults.latency = 0.002
    store = Store(store_url)
    (alice_line,) = [line for line in reconcile(store.snapshot()).lines if line.kind is LineKind.RECURRING]
    store.close()
    # Bob refreshed after the vendor quantity changed: the same key, another quantity.
    bob_line = alice_line.model_copy(
        update={
            "quantity": alice_line.quantity + 1,
            "total_price": (alice_line.quantity + 1) * alice_line.unit_price,
            "total_cost": (alice_line.quantity + 1) * alice_line.unit_cost,
        }
    )
    store_a, store_b = Store(store_url), Store(store_url)
    psa_a, psa_b = rig.connector(), rig.connector()
    a, b = await asyncio.gather(
        SyncExecutor(store_a, psa_a, operator="alice", today=AS_OF).run([alice_line]),
        SyncExecutor(store_b, psa_b, operator="bob", today=AS_OF).run([bob_line]),
    )
    for c in (psa_a, psa_b):
        await c.aclose()
    store_a.close()
    store_b.close()
    outcomes = sorted(o.outcome.value for o in (*a.outcomes, *b.outcomes))
    assert outcomes == ["refused", "written"], [(o.outcome, o.message) for o in (*a.outcomes, *b.outcomes)]
    refused = next(o for o in (*a.outcomes, *b.outcomes) if o.outcome is Outcome.REFUSED)
    assert REFUSED_MESSAGE in refused.message
    assert rig.new_lines_by_key() == {alice_line.key: 1}
    # The refused operator, later and alone, with the same stale plan: refused again, nothing written.
    stale = alice_line if a.outcomes[0].outcome is Outcome.REFUSED else bob_line
    late = await run_once(store_url, rig, [stale])
    assert [o.outcome for o in late.outcomes] == [Outcome.REFUSED], late.outcomes
    assert rig.new_lines_by_key() == {alice_line.key: 1}


def test_a_key_held_by_two_psa_lines_is_a_duplicate_line_finding_and_nothing_more_is_written() -> None:
    scenario = build_scenario(
        "connectwise", new=0, updates=1, cancels=0, create_new=0, record_only=0, companies=1
    )
    (line,) = scenario.psa.lines
    twin = line.model_copy(update={"id": "8999"})
    scenario = scenario.model_copy(update={"psa": scenario.psa.model_copy(update={"lines": [line, twin]})})
    store = Store("sqlite://")
    store.import_scenario(scenario)
    plan = reconcile(store.snapshot())
    sub = line.source.subscription_id if line.source else ""
    assert [ln.key for ln in plan.lines if ln.subscription_id == sub] == []  # no update of one, no third line
    (finding,) = [f for f in plan.findings if f.code == "duplicate_line"]
    assert finding.severity == "error" and finding.subject == {
        "subscription_id": sub,
        "key": f"{sub}:recurring",
    }
    assert "8001" in finding.message and "8999" in finding.message
    # One of the two ended before the other starts (a create-new) is no duplicate.
    ended = line.model_copy(update={"cancelled_date": date(2026, 3, 31)})
    later = twin.model_copy(update={"effective_date": date(2026, 4, 1)})
    scenario = scenario.model_copy(update={"psa": scenario.psa.model_copy(update={"lines": [ended, later]})})
    store = Store("sqlite://")
    store.import_scenario(scenario)
    assert not [f for f in reconcile(store.snapshot()).findings if f.code == "duplicate_line"]
