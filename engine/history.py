"""A subscription's quantity history, the way seed 001's History table shows it: date, change,
quantity before → after, who/source, synced? — read from the store (its `subscription_history`
rows in their order and the `synced_key` rows of the subscription).

Synced? is read from what a sync recorded (RULES.md: a synced key per plan key, with the quantity
written):
* a change whose prorate line (`<subscription>:prorate:<its date>`) was synced is synced then;
* the recurring line's synced key carries the quantity written: the latest change to that quantity,
  and every change before it, is in the PSA (ASSUMED: a later change back to an earlier quantity
  counts as not synced until the next sync records it);
* a subscription with no synced key was never synced.
Who/source: the store keeps no author per change; every row comes from the vendor's subscription
history (ASSUMED: seed 001's table names the distributor as the source of such changes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlmodel import col, select

from engine.keys import PlanKey
from engine.store import tables as t
from engine.store.database import Store

SOURCE = "vendor"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of a subscription's quantity."""

    effective_date: date
    change: str  # initial, increase, decrease, cancel
    before: Decimal | None  # None for the first row
    after: Decimal
    source: str
    synced_on: date | None  # when a sync wrote it to the PSA; None: not synced


def subscription_history(store: Store, subscription_id: str) -> list[HistoryEntry]:
    """The subscription's changes, oldest first; [] for an unknown subscription or no history."""
    h = t.HistoryRowRecord
    with store.session() as s:
        rows = s.exec(select(h).where(col(h.subscription_id) == subscription_id).order_by(col(h.seq))).all()
        synced = s.exec(
            select(t.SyncedKeyRow).where(col(t.SyncedKeyRow.key).startswith(subscription_id + ":"))
        ).all()
    prorates: dict[str, date] = {}
    recurring: t.SyncedKeyRow | None = None
    for mark in synced:
        key = PlanKey.parse(mark.key)
        if key is None or key.subject != subscription_id:
            continue
        if key.kind == "prorate" and key.argument:
            prorates[key.argument] = mark.synced_on
        elif key.kind == "recurring":
            recurring = mark
    # the last change to the quantity the recurring line was written with: it and all before it
    through = -1
    if recurring is not None and recurring.quantity is not None:
        for i, row in enumerate(rows):
            if row.quantity == recurring.quantity:
                through = i
    entries: list[HistoryEntry] = []
    before: Decimal | None = None
    for i, row in enumerate(rows):
        on = prorates.get(row.effective_date.isoformat())
        if on is None and recurring is not None and i <= through:
            on = recurring.synced_on
        entries.append(HistoryEntry(row.effective_date, row.action, before, row.quantity, SOURCE, on))
        before = row.quantity
    return entries


__all__ = ["HistoryEntry", "subscription_history"]
