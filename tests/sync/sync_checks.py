"""Shared by the sync tests: running executors until a batch is through, killing them at chosen
points, and checking that the journal, the synced keys and the PSA agree."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sync_builder import AS_OF, Rig, psa_problems, refreshed_plan_keys

from engine.plan import PlanLine
from engine.store import Store
from engine.store.tables import SyncedKeyRow
from engine.sync import Journal, Outcome, SyncExecutor, SyncReport
from engine.sync.executor import line_fingerprint


class Killed(BaseException):  # noqa: N818 — stands for the process being killed
    """The process dies here (not an Exception: nothing may catch it on the way out)."""


class KillingConnector:
    """A connector that 'kills the process' at its N-th write call, before or after delegating."""

    def __init__(self, inner: Any, *, at: int, when: str) -> None:
        self.inner = inner
        self.at = at
        self.when = when
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _write(self, method: Any, arg: Any) -> Any:
        self.calls += 1
        if self.calls == self.at and self.when == "before":
            raise Killed(f"killed before write {self.at}")
        result = await method(arg)
        if self.calls == self.at and self.when == "after":
            raise Killed(f"killed after write {self.at} was applied")
        return result

    async def create_line(self, write: Any) -> Any:
        return await self._write(self.inner.create_line, write)

    async def update_line(self, update: Any) -> Any:
        return await self._write(self.inner.update_line, update)


def finished(report: SyncReport) -> bool:
    return not report.blocked and all(
        o.outcome in (Outcome.WRITTEN, Outcome.ALREADY_THERE) for o in report.outcomes
    )


async def run_once(
    store_url: str, rig: Rig, lines: list[PlanLine], *, connector: Any = None, **kwargs: Any
) -> SyncReport:
    """One executor on a fresh Store object (as a new process would open it)."""
    store = Store(store_url)
    psa = connector or rig.connector()
    try:
        return await SyncExecutor(store, psa, today=AS_OF, **kwargs).run(lines)
    finally:
        await (psa.inner if isinstance(psa, KillingConnector) else psa).aclose()
        store.close()


async def run_until_done(
    store_url: str, rig: Rig, lines: list[PlanLine], counter: dict[str, int], *, max_runs: int = 12
) -> list[SyncReport]:
    """Run executors until every line's journal row is `done` (a run may leave lines failed or
    unchecked when the PSA keeps failing; the next one picks them up)."""
    reports = []
    for _ in range(max_runs):
        report = await run_once(store_url, rig, lines)
        counter["runs"] += 1
        reports.append(report)
        if finished(report) or (not report.blocked and await journal_done(store_url, lines)):
            return reports
    raise AssertionError(
        f"not through after {max_runs} runs: {reports[-1].counts()} "
        f"{[o.message for o in reports[-1].outcomes if o.outcome is Outcome.FAILED][:3]}"
    )


async def journal_done(store_url: str, lines: Iterable[PlanLine]) -> bool:
    store = Store(store_url)
    try:
        journal = Journal(store)
        for line in lines:
            row = journal.get_by_key(line.key, line_fingerprint(line))
            if row is None or row.state != "done":
                return False
        return not journal.pending()
    finally:
        store.close()


async def journal_problems(store_url: str, rig: Rig, lines: Iterable[PlanLine]) -> list[str]:
    """Every line has a `done` journal row that names the PSA line the sandbox holds for it, and a
    synced key; no row is left pending."""
    store = Store(store_url)
    try:
        journal = Journal(store)
        problems = [
            f"{r.key}: journal row left {r.state}" for r in journal.rows(psa=rig.psa, state="pending")
        ]
        ids_by_key: dict[str, list[str]] = {}
        for lid, key in rig.keyed_lines():
            if key and lid not in rig.initial_ids:
                ids_by_key.setdefault(key, []).append(lid)
        with store.session() as s:
            synced = {r.key: r for r in s.execute(select(SyncedKeyRow)).scalars()}
        for line in lines:
            row = journal.get_by_key(line.key, line_fingerprint(line))
            if row is None or row.state != "done":
                problems.append(f"{line.key}: journal {row.state if row else 'has no row'}")
                continue
            if (
                line.action == "create"
                and not line.record_only
                and row.psa_line_id not in ids_by_key.get(line.key, [])
            ):
                problems.append(
                    f"{line.key}: journal says line {row.psa_line_id}, PSA has {ids_by_key.get(line.key)}"
                )
            if line.key not in synced:
                problems.append(f"{line.key}: no synced key")
            elif synced[line.key].quantity != line.quantity:
                problems.append(f"{line.key}: synced quantity {synced[line.key].quantity} != {line.quantity}")
        return problems
    finally:
        store.close()


async def assert_all_consistent(
    store_url: str, rig: Rig, lines: list[PlanLine], counter: dict[str, int] | None = None
) -> None:
    problems = await psa_problems(rig, lines)
    if counter is not None:
        counter["lines"] += len(lines)
        counter["duplicates"] = counter.get("duplicates", 0) + sum(
            1 for p in problems if "expected exactly 1" in p
        )
    assert problems == [], problems
    assert await journal_problems(store_url, rig, lines) == []
    store = Store(store_url)
    try:
        again = await refreshed_plan_keys(store, rig)
    finally:
        store.close()
    assert again & {line.key for line in lines} == set(), sorted(again)[:5]
