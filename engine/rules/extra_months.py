"""Months already invoiced at the old quantity (RULES.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from engine.months import add_months, months_between
from engine.rules.quantities import Timeline


@dataclass(frozen=True, slots=True)
class GapRun:
    """Consecutive months with the same gap between what was owed and what was billed."""

    first_month: date
    months: int
    gap: Decimal

    @property
    def last_month(self) -> date:
        return add_months(self.first_month, self.months - 1)


def gap_runs(
    timeline: Timeline,
    *,
    earliest_change: date,
    first_unbilled: date,
    billed: Decimal,
    until: date | None = None,
) -> list[GapRun]:
    """For each month strictly between the earliest unsynced change's month and the month of
    `first_unbilled` (E): gap = q(m) − billed, where q(m) is the quantity in force before m's first
    day. Consecutive months with the same gap form one run. `until` caps the months considered
    (a cancelled subscription owes nothing after its cancellation month)."""
    runs: list[GapRun] = []
    for month in months_between(earliest_change, first_unbilled):
        if until is not None and month > until:
            break
        gap = timeline.at(month - timedelta(days=1)) - billed
        if gap == 0:
            continue
        last = runs[-1] if runs else None
        if last is not None and last.gap == gap and add_months(last.last_month, 1) == month:
            runs[-1] = GapRun(last.first_month, last.months + 1, gap)
        else:
            runs.append(GapRun(month, 1, gap))
    return runs
