"""The console's view of a workspace. `engine.workspace` provides the real one (store + PSA
connector + refresh); `StoreWorkspace` wraps a bare store with the same interface (tests, and the
in-memory sandbox when `engine.workspace` is not part of the build)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from engine.actions import current_plan
from engine.plan import Plan


@dataclass
class RefreshOutcome:
    errors: list[str] = field(default_factory=list)


class StoreWorkspace:
    def __init__(
        self,
        store: Any,
        *,
        label: str = "SANDBOX",
        sandbox: bool = True,
        psa: Any = None,
        freshness: dict[str, datetime | None] | None = None,
    ) -> None:
        self.store = store
        self.psa = psa
        self.sandbox = sandbox
        self.label = label
        self.freshness: dict[str, datetime | None] = dict(freshness or {})
        self.refreshes = 0
        self.customer_refreshes: list[str] = []

    def today(self) -> date | None:
        return None  # the store's own as-of

    async def refresh(self, progress: Any = None, *, full: bool = False) -> RefreshOutcome:
        self.refreshes += 1
        return RefreshOutcome()

    async def refresh_customer(self, company: str, progress: Any = None) -> RefreshOutcome:
        """Nothing to fetch from: the store is all there is (tests replace this to write to it)."""
        self.customer_refreshes.append(company)
        return RefreshOutcome()

    def plan(self, as_of: date | None = None) -> Plan:
        return current_plan(self.store, as_of)

    async def aclose(self) -> None:
        return None
