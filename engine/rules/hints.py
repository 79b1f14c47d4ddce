"""Hints a store-backed reconciliation passes along with the scenario it reads the fast way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from engine.scenario import HistoryRow


@dataclass
class PlanHints:
    """What a store-backed reconciliation knows beyond the scenario it is handed.

    `quiet`: seat subscriptions whose history was not loaded, with their current quantity; they need
    no line unless their PSA line's quantity differs (then `load_history` fetches their history).
    `synced_keys`: every synced key (the scenario's `synced` list is left empty to save memory)."""

    quiet: dict[str, Decimal] = field(default_factory=dict)
    synced_keys: set[str] | None = None
    load_history: Callable[[str], list[HistoryRow]] | None = None
