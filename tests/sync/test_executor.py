"""The executor's behaviour line by line: outcomes, conflicts, refusals, cancelling, recovery, two
executors racing on one database (SQLite file and PostgreSQL), and the dry run."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from sqlalchemy import select
from sync_builder import AS_OF, PSAS, build_scenario, load_store, make_rig, plan_lines
from sync_checks import assert_all_consistent, run_once

from engine import audit
from engine.store import Store
from engine.store.tables import SyncedKeyRow
from engine.sync import Journal, Outcome, SyncExecutor, dry_run_requests


def _setup(psa: str, store_url: str, **sizes: int):  # type: ignore[no-untyped-def]
    scenario = build_scenario(psa, **sizes)
    store = load_store(store_url, scenario)
    lines = plan_lines(store)
    store.close()
    return make_rig(psa, scenario), lines


@pytest.mark.parametrize("psa", PSAS)
async def test_sync_writes_each_line_once_then_reports_already_there(psa: str, store_url: str) -> None:
    rig, lines = _setup(psa, store_url)
    seen = []
    first = await run_once(store_url, rig, lines)
    assert first.counts()["written"] == len(lines), [
        o for o in first.outcomes if o.outcome is not Outcome.WRITTEN
    ]
    await assert_all_consistent(store_url, rig, lines)
    store = Store(store_url)
    connector = rig.connector()
    second = await SyncExecutor(store, connector, today=AS_OF).run(lines, on_event=seen.append)
    await connector.aclose()
    assert second.counts()["already_there"] == len(lines) and len(seen) == len(lines)
    with store.session() as s:
        events = audit.events(s)
        synced = {r.key for r in s.execute(select(SyncedKeyRow)).scalars()}
    assert {line.key for line in lines} <= synced
    written = [e for e in events if e.action == "sync.written"]
    assert len(written) == len(lines)
    assert all(e.after and e.after["psa"] == psa for e in written)
    store.close()


async def test_a_zero_value_prorate_is_no_plan_line_and_is_recorded_with_its_recurring_line(
    store_url: str,
) -> None:
    # RULES.md §2 (last bullet): a zero-value prorate is not a plan line; its key is recorded as
    # synced when the change's recurring line is written. (Before, it was a record-only plan line.)
    rig, lines = _setup("connectwise", store_url, new=2, updates=0, cancels=0, create_new=0, record_only=1)
    free = [line for line in lines if line.psa_product_id == "399"]
    assert [line.kind.value for line in free] == ["recurring"] and not any(line.record_only for line in lines)
    (carried,) = free[0].records
    assert ":prorate:" in carried
    report = await run_once(store_url, rig, free)
    assert [o.outcome for o in report.outcomes] == [Outcome.WRITTEN]
    assert rig.new_lines_by_key() == {free[0].key: 1}  # the prorate itself was never sent
    store = Store(store_url)
    with store.session() as s:
        synced = {r.key for r in s.execute(select(SyncedKeyRow)).scalars()}
    assert {free[0].key, carried} <= synced
    assert carried not in {line.key for line in plan_lines(store)}
    store.close()


@pytest.mark.parametrize("psa", PSAS)
async def test_a_line_edited_by_hand_is_a_conflict_and_is_not_overwritten(psa: str, store_url: str) -> None:
    rig, lines = _setup(psa, store_url, new=1, updates=1, cancels=0, create_new=0, record_only=0)
    update = next(line for line in lines if line.action == "update")
    assert update.psa_line_id and update.previous_quantity == Decimal(10)
    # Someone sets 11 seats by hand in the PSA after the plan was made.
    if psa == "connectwise":
        rig.sandbox.additions[int(update.psa_line_id)]["quantity"] = Decimal(11)
    elif psa == "halopsa":
        rig.sandbox.lines[int(update.psa_line_id)]["qty_order"] = Decimal(11)
    else:
        rig.sandbox.add_adjustment(int(update.psa_line_id), AS_OF, 1)
    report = await run_once(store_url, rig, lines)
    outcome = next(o for o in report.outcomes if o.key == update.key)
    assert outcome.outcome is Outcome.CONFLICT
    assert outcome.expected and outcome.expected["quantity"] == "10"
    assert outcome.found and Decimal(outcome.found["quantity"]) == 11
    assert "10 → 11" in outcome.message
    others = [o for o in report.outcomes if o.key != update.key]
    assert all(o.outcome is Outcome.WRITTEN for o in others)  # the batch went on
    connector = rig.connector()
    current = {line.id: line for line in await connector.lines([update.psa_agreement_id])}
    await connector.aclose()
    assert current[update.psa_line_id].quantity == 11  # not overwritten
    store = Store(store_url)
    rows = Journal(store).rows(state="conflict")
    store.close()
    assert [r.key for r in rows] == [update.key] and rows[0].found


@pytest.mark.parametrize("psa", PSAS)
async def test_a_refused_line_fails_with_the_psa_message_and_the_batch_goes_on(
    psa: str, store_url: str
) -> None:
    rig, lines = _setup(psa, store_url, new=3, updates=0, cancels=0, create_new=0, record_only=0)
    bad = lines[0].model_copy(update={"psa_product_id": "777777"})  # no such product in the PSA
    report = await run_once(store_url, rig, [bad, *lines[1:]])
    first = report.outcomes[0]
    assert first.outcome is Outcome.FAILED and first.journal_state == "failed"
    assert (
        "777777" in first.message or "product" in first.message.lower() or "service" in first.message.lower()
    )
    assert all(o.outcome is Outcome.WRITTEN for o in report.outcomes[1:])
    assert rig.new_lines_by_key().get(bad.key, 0) == 0


async def test_the_cancel_event_stops_after_the_line_in_flight(store_url: str) -> None:
    rig, lines = _setup("halopsa", store_url)
    cancel = asyncio.Event()
    done: list[str] = []

    def on_event(outcome) -> None:  # type: ignore[no-untyped-def]
        done.append(outcome.key)
        if len(done) == 5:
            cancel.set()

    store = Store(store_url)
    connector = rig.connector()
    report = await SyncExecutor(store, connector, today=AS_OF).run(lines, on_event=on_event, cancel=cancel)
    assert report.cancelled
    # The cancel stops after the change set in flight (issue 11: a change's recurring line, its
    # prorates and extra months are written together), never half-way through one.
    written = report.counts()["written"]
    assert written >= 5 and written + report.counts()["skipped"] == len(lines)
    by_set: dict[str, set[str]] = {}
    outcome_of = {o.key: o.outcome.value for o in report.outcomes}
    for line in lines:
        by_set.setdefault(line.change_set, set()).add(outcome_of[line.key])
    assert all(len(states) == 1 for states in by_set.values()), by_set
    assert Journal(store).pending() == []  # consistent: nothing left half-way
    again = await SyncExecutor(store, connector, today=AS_OF).run(lines)
    assert again.counts() == {**again.counts(), "written": len(lines) - written, "already_there": written}
    await connector.aclose()
    store.close()
    await assert_all_consistent(store_url, rig, lines)


async def test_cancelling_the_task_finishes_the_line_in_flight(store_url: str) -> None:
    rig, lines = _setup("connectwise", store_url)
    rig.faults.latency = 0.01
    store = Store(store_url)
    connector = rig.connector()
    executor = SyncExecutor(store, connector, today=AS_OF)
    task = asyncio.create_task(executor.run(lines))
    await asyncio.sleep(0.25)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    report = executor.report
    assert report is not None and report.cancelled
    assert 0 < report.counts()["written"] < len(lines)
    assert report.counts()["written"] + report.counts()["skipped"] == len(lines)
    assert Journal(store).pending() == []
    rig.faults.latency = 0
    await SyncExecutor(store, connector, today=AS_OF).run(lines)
    await connector.aclose()
    store.close()
    await assert_all_consistent(store_url, rig, lines)


@pytest.mark.parametrize("psa", PSAS)
@pytest.mark.parametrize("order", ["same", "reversed"])
async def test_two_executors_racing_on_one_database_write_each_line_once(
    psa: str, order: str, store_url: str
) -> None:
    rig, lines = _setup(psa, store_url)
    rig.faults.latency = 0.002  # let the two interleave at every request
    store_a, store_b = Store(store_url), Store(store_url)
    psa_a, psa_b = rig.connector(), rig.connector()
    other = list(reversed(lines)) if order == "reversed" else lines
    a, b = await asyncio.gather(
        SyncExecutor(store_a, psa_a, operator="alice", today=AS_OF).run(lines),
        SyncExecutor(store_b, psa_b, operator="bob", today=AS_OF).run(other),
    )
    for c in (psa_a, psa_b):
        await c.aclose()
    store_a.close()
    store_b.close()
    written = [o.key for o in (*a.outcomes, *b.outcomes) if o.outcome is Outcome.WRITTEN]
    assert sorted(written) == sorted(line.key for line in lines)  # each line written by exactly one
    assert all(
        o.outcome in (Outcome.WRITTEN, Outcome.ALREADY_THERE, Outcome.SKIPPED)
        for o in (*a.outcomes, *b.outcomes)
    )
    assert a.counts()["written"] > 0 and (order == "same" or b.counts()["written"] > 0)
    await assert_all_consistent(store_url, rig, lines)


async def test_recovery_resolves_pending_rows_before_sending(store_url: str) -> None:
    """A row left pending by a dead executor whose write never landed becomes `failed` (nothing
    written) on start, and the line is then sent once."""
    rig, lines = _setup("autotask", store_url, new=2, updates=0, cancels=0, create_new=0, record_only=0)
    store = Store(store_url)
    journal = Journal(store)
    line = lines[0]
    from engine.sync.executor import line_fingerprint, planned_request

    journal.claim(
        key=line.key,
        fingerprint=line_fingerprint(line),
        batch="dead",
        psa="autotask",
        action="create",
        kind=line.kind.value,
        agreement_id=line.psa_agreement_id,
        company_id=line.company_id,
        company=None,
        record_only=False,
        line=line.model_dump(mode="json"),
        request=planned_request(line, AS_OF),
        owner="some-host|1|gone",
        user="carol",
    )
    store.close()
    report = await run_once(store_url, rig, lines, lease_seconds=0)
    assert [(o.key, o.outcome, o.recovered) for o in report.recovered] == [(line.key, Outcome.FAILED, True)]
    assert "nothing was written" in report.recovered[0].message
    assert report.counts()["written"] == len(lines)
    await assert_all_consistent(store_url, rig, lines)


async def test_a_live_executors_pending_row_is_left_alone(store_url: str) -> None:
    rig, lines = _setup("connectwise", store_url, new=1, updates=0, cancels=0, create_new=0, record_only=0)
    store = Store(store_url)
    from engine.sync.executor import line_fingerprint, planned_request

    line = lines[0]
    Journal(store).claim(
        key=line.key,
        fingerprint=line_fingerprint(line),
        batch="live",
        psa="connectwise",
        action="create",
        kind=line.kind.value,
        agreement_id=line.psa_agreement_id,
        company_id=line.company_id,
        company=None,
        record_only=False,
        line=line.model_dump(mode="json"),
        request=planned_request(line, AS_OF),
        owner="other-host|1|busy",
        user="dave",
    )
    store.close()
    report = await run_once(store_url, rig, lines)  # default lease: 15 minutes
    outcome = next(o for o in report.outcomes if o.key == line.key)
    assert outcome.outcome is Outcome.SKIPPED and "another sync" in outcome.message
    assert rig.new_lines_by_key().get(line.key, 0) == 0


@pytest.mark.parametrize("psa", PSAS)
async def test_dry_run_lists_the_exact_requests_and_sends_nothing(psa: str, store_url: str) -> None:
    rig, lines = _setup(psa, store_url)
    connector = rig.connector()
    before = rig.writes.writes
    planned = await dry_run_requests(connector, lines, effective_from=AS_OF)
    await connector.aclose()
    assert rig.writes.writes == before
    requests = [r for _, rs in planned for r in rs]
    assert len(requests) >= len(lines) - 1
    for request in requests:
        assert request.method in ("POST", "PATCH") and request.url.host
        json.loads(request.content)
    assert all(not rs for line, rs in planned if line.record_only)
