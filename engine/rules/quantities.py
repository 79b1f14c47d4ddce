"""A subscription's quantity over time, from its history rows."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import attrgetter

from engine.scenario import HistoryRow

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Change:
    """The net change of one day: several history rows on the same date merge into one."""

    on: date
    before: Decimal
    after: Decimal

    @property
    def is_decrease(self) -> bool:
        return self.after < self.before


_effective = attrgetter("effective_date")


class Timeline:
    """Quantity in force on any date. Rows are ordered by effective date, then as given."""

    def __init__(self, history: list[HistoryRow] | tuple[HistoryRow, ...], *, until: date | None = None):
        if until is not None:
            history = [r for r in history if r.effective_date <= until]
        rows = sorted(history, key=_effective)  # stable: same-day rows keep their order
        dates: list[date] = []
        quantities: list[Decimal] = []
        for row in rows:
            quantity = ZERO if row.action == "cancel" else row.quantity
            if dates and dates[-1] == row.effective_date:
                quantities[-1] = quantity
            else:
                dates.append(row.effective_date)
                quantities.append(quantity)
        changes: list[Change] = []
        previous = ZERO
        for on, quantity in zip(dates, quantities, strict=True):
            if quantity != previous:
                changes.append(Change(on, previous, quantity))
            previous = quantity
        self.dates, self.quantities, self.changes = dates, quantities, changes

    def at(self, day: date) -> Decimal:
        """The quantity in force at the end of `day` (changes on `day` included)."""
        index = bisect.bisect_right(self.dates, day)
        return self.quantities[index - 1] if index else ZERO

    @property
    def current(self) -> Decimal:
        return self.quantities[-1] if self.quantities else ZERO
