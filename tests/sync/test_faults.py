"""Fault injection at every step of a write, for each PSA sandbox, on SQLite and PostgreSQL.

Each test syncs ≥ 50 plan lines (creates, prorates, updates, cancels, a create-new, a record-only
line) through a real connector and its sandbox with faults at:
- before send: the PSA refuses (503, 429 with Retry-After);
- after send, before the response: the write is applied, then the connection drops or a 500 comes;
- after the response, before the journal commit: `Journal.mark_done` raises once;
- the process is killed (before a write, after a write was applied, before the journal commit) and
  a fresh executor on the same database resumes;
- a seeded 429 storm and seeded random 5xx/lost responses on reads and writes.
Then: every line is in the PSA exactly once (counted in the sandbox's own state), the journal agrees
with the PSA, synced keys are recorded, and a re-plan after refreshing from the PSA proposes none
of those lines again. Fault points and executor runs are counted and printed in the summary.
"""

from __future__ import annotations

import itertools

import pytest
from sync_builder import PSAS, SleepLog, build_scenario, load_store, make_rig, plan_lines
from sync_checks import Killed, KillingConnector, assert_all_consistent, finished, run_once, run_until_done

from engine.sandbox.faults import Fault, Faults
from engine.sync import journal as journal_module

pytestmark = pytest.mark.parametrize("psa", PSAS)


def _setup(psa: str, store_url: str, faults: Faults | None = None):  # type: ignore[no-untyped-def]
    scenario = build_scenario(psa)
    store = load_store(store_url, scenario)
    lines = plan_lines(store)
    store.close()
    assert len(lines) >= 50
    return make_rig(psa, scenario, faults), lines


async def test_scripted_faults_around_every_write(
    psa: str, store_url: str, fault_counter: dict[str, int]
) -> None:
    """Refusals before the send and failures after the write was applied, on every 2nd write."""
    rig, lines = _setup(psa, store_url)
    kinds = itertools.cycle([Fault.UNAVAILABLE, Fault.LOST_RESPONSE, Fault.RATE_LIMITED, Fault.SERVER_ERROR])
    rig.writes.plan = {n: next(kinds) for n in range(1, 400, 2)}
    rig.faults.retry_after = 2.5
    sleeps = SleepLog()
    rig.sleep = sleeps
    await run_until_done(store_url, rig, lines, fault_counter)
    injected = {fault for _, fault in rig.writes.injected}
    assert injected == {Fault.UNAVAILABLE, Fault.LOST_RESPONSE, Fault.RATE_LIMITED, Fault.SERVER_ERROR}
    assert 2.5 in sleeps.calls  # Retry-After honoured before re-sending a write refused with 429
    fault_counter["fault_points"] += len(rig.writes.injected)
    await assert_all_consistent(store_url, rig, lines, fault_counter)


async def test_journal_commit_fails_after_the_psa_answered(
    psa: str, store_url: str, fault_counter: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write went through, recording it failed: the run stops, the row stays pending, and the
    next executor confirms it by lookup instead of writing it again."""
    rig, lines = _setup(psa, store_url)
    original = journal_module.Journal.mark_done
    calls = {"n": 0}
    fail_at = {3, 21, 45}

    def flaky(self, row, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] in fail_at:
            fault_counter["fault_points"] += 1
            raise RuntimeError("database is locked (injected)")
        return original(self, row, **kwargs)

    monkeypatch.setattr(journal_module.Journal, "mark_done", flaky)
    reports = await run_until_done(store_url, rig, lines, fault_counter)
    assert len(reports) >= 2
    first = reports[0]
    assert first.halted and "journal" in first.halted
    stuck = [o for o in first.outcomes if o.journal_state == "pending"]
    assert len(stuck) == 1 and "next sync" in stuck[0].message
    assert any(o.recovered and o.key == stuck[0].key for r in reports[1:] for o in r.recovered)
    await assert_all_consistent(store_url, rig, lines, fault_counter)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_process_killed_around_a_write_then_resumed(
    psa: str, when: str, store_url: str, fault_counter: dict[str, int]
) -> None:
    """Killed with the journal row pending — before the request left, or after the PSA applied
    it — at several points of the batch; each time a fresh executor resolves and resumes."""
    rig, lines = _setup(psa, store_url)
    for at in (1, 6, 11, 16):
        killer = KillingConnector(rig.connector(), at=at, when=when)
        with pytest.raises(Killed):
            await run_once(store_url, rig, lines, connector=killer)
        fault_counter["fault_points"] += 1
        fault_counter["runs"] += 1
    reports = await run_until_done(store_url, rig, lines, fault_counter)
    assert finished(reports[-1])
    await assert_all_consistent(store_url, rig, lines, fault_counter)


async def test_process_killed_before_the_journal_commit(
    psa: str, store_url: str, fault_counter: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, lines = _setup(psa, store_url)
    original = journal_module.Journal.mark_done
    state = {"n": 0, "kill_at": 0}

    def dying(self, row, **kwargs):  # type: ignore[no-untyped-def]
        state["n"] += 1
        if state["n"] == state["kill_at"]:
            raise Killed("killed between the PSA's answer and the journal commit")
        return original(self, row, **kwargs)

    monkeypatch.setattr(journal_module.Journal, "mark_done", dying)
    for kill_at in (2, 7, 12):
        state.update(n=0, kill_at=kill_at)
        with pytest.raises(Killed):
            await run_once(store_url, rig, lines)
        fault_counter["fault_points"] += 1
        fault_counter["runs"] += 1
    state["kill_at"] = 0
    await run_until_done(store_url, rig, lines, fault_counter)
    await assert_all_consistent(store_url, rig, lines, fault_counter)


async def test_seeded_429_storm(psa: str, store_url: str, fault_counter: dict[str, int]) -> None:
    faults = Faults(seed=429, rate_429=0.45, retry_after=0.5)
    rig, lines = _setup(psa, store_url, faults)
    sleeps = SleepLog()
    rig.sleep = sleeps
    await run_until_done(store_url, rig, lines, fault_counter, max_runs=20)
    faults.rate_429 = 0
    assert len(faults.injected) > 20
    assert sleeps.calls and all(s == 0.5 for s in sleeps.calls)  # every wait was the PSA's Retry-After
    fault_counter["fault_points"] += len(faults.injected)
    await assert_all_consistent(store_url, rig, lines, fault_counter)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_seeded_random_server_errors(
    psa: str, seed: int, store_url: str, fault_counter: dict[str, int]
) -> None:
    """503 before, 500 after applying, and lost responses, on reads and writes alike."""
    faults = Faults(seed=seed, rate_503=0.06, rate_500_after_apply=0.06, rate_lost_response=0.06)
    rig, lines = _setup(psa, store_url, faults)
    await run_until_done(store_url, rig, lines, fault_counter, max_runs=25)
    kinds = {fault for _, _, fault in faults.injected}
    faults.rate_503 = faults.rate_500_after_apply = faults.rate_lost_response = 0
    assert {Fault.SERVER_ERROR, Fault.LOST_RESPONSE} <= kinds
    fault_counter["fault_points"] += len(faults.injected)
    await assert_all_consistent(store_url, rig, lines, fault_counter)
