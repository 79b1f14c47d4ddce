"""Console tests: a fixed scenario (the demo MSP as of 2026-11-21), a fixed clock, no network."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest

from engine.sandbox.demo import build_demo_scenario
from engine.store import Store
from tui.app import TrueupApp
from tui.workspace import StoreWorkspace

AS_OF = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 9, 30)
FRESH = {"vendor": datetime(2026, 11, 21, 9, 0), "psa": datetime(2026, 11, 21, 9, 1)}


@pytest.fixture(scope="session")
def scenario() -> Any:
    return build_demo_scenario(as_of=AS_OF)


@pytest.fixture(autouse=True)
def _colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def store(scenario: Any) -> Store:
    s = Store.memory()
    s.import_scenario(scenario)
    return s


@dataclass
class Event:
    key: str
    outcome: str
    message: str = ""


@dataclass
class Report:
    outcomes: list[Event]
    cancelled: bool = False
    blocked: str | None = None
    halted: str | None = None


class FakeExecutor:
    """Same interface as `engine.sync.executor.SyncExecutor.run`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.delay = delay

    async def run(
        self, lines: list[Any], *, on_event: Any = None, cancel: asyncio.Event | None = None
    ) -> Report:
        self.calls.append([line.key for line in lines])
        outcomes = []
        for i, line in enumerate(lines):
            if cancel is not None and cancel.is_set():
                event = Event(line.key, "skipped", "cancelled before it ran")
            else:
                await asyncio.sleep(self.delay)
                event = Event(
                    line.key,
                    "conflict" if i == 1 else "written",
                    "the PSA line changed meanwhile" if i == 1 else "",
                )
            outcomes.append(event)
            if on_event:
                on_event(event)
        return Report(outcomes, cancelled=bool(cancel and cancel.is_set()))


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def make_app(store: Store, executor: FakeExecutor) -> Any:
    def make(**kwargs: Any) -> TrueupApp:
        workspace = StoreWorkspace(store, label="SANDBOX — test", sandbox=True, freshness=FRESH)
        return TrueupApp(
            workspace,
            clock=lambda: NOW,
            as_of=AS_OF,
            refresh_interval=None,
            save_delay=0,
            executor_factory=lambda ws: executor,
            **kwargs,
        )

    return make


async def _settle(app: TrueupApp, pilot: Any) -> None:
    """Wait for every worker (and the messages they post) — never a sleep."""
    for _ in range(4):
        await app.workers.wait_for_complete()
        await pilot.pause()


@pytest.fixture
def settle() -> Any:
    return _settle
