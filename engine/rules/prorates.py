"""Prorate lines for increases (RULES.md §2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from engine.money import fmt_money, fmt_quantity, round_cents
from engine.months import days_in_month, last_of_month
from engine.rules.quantities import Change, Timeline


@lru_cache(maxsize=4096)
def factor(change_day: date, *, counts_change_day: bool = False) -> Fraction:
    """Share of the month left after `change_day`: (last day − d) / days in month; the change day
    itself counts only with `counts_change_day`. 8/5/2020 → 26/31."""
    days = (last_of_month(change_day) - change_day).days + (1 if counts_change_day else 0)
    return Fraction(days, days_in_month(change_day))


@lru_cache(maxsize=16384)
def prorate_unit(unit: Decimal, share: Fraction) -> Decimal:
    """round_half_up(unit × factor, 2), computed exactly. Kept per (unit, factor): a big plan asks for
    the same few prices on the same few days again and again (the result depends on the numbers
    only, so `6.0` and `6.00`, equal keys, share an entry rightly)."""
    return round_cents(Fraction(unit) * share)


@lru_cache(maxsize=4096)
def factor_text(change_day: date, *, counts_change_day: bool = False) -> str:
    days = (last_of_month(change_day) - change_day).days + (1 if counts_change_day else 0)
    return f"{days}/{days_in_month(change_day)}"


@dataclass(frozen=True, slots=True)
class ProratedIncrease:
    change: Change
    quantity: Decimal  # seats prorated (0 when the threshold absorbs the increase)


def prorated_increases(timeline: Timeline, *, thresholds: bool) -> list[ProratedIncrease]:
    """Every increase with the quantity to prorate. With thresholds, only quantity above the month's
    high-water mark is prorated; the mark starts at the quantity in force before the month's 1st and
    rises with each prorated increase. Without, each increase is prorated on its own."""
    out: list[ProratedIncrease] = []
    mark = Decimal(0)
    month: tuple[int, int] | None = None
    for change in timeline.changes:
        change_month = (change.on.year, change.on.month)
        if change_month != month:
            # Changes are in date order, so the quantity in force before the month's 1st is what the
            # month's first change started from.
            month = change_month
            mark = change.before
        if change.after <= change.before:
            continue
        if thresholds:
            quantity = max(Decimal(0), change.after - mark)
            mark = max(mark, change.after)
        else:
            quantity = change.after - change.before
        out.append(ProratedIncrease(change, quantity))
    return out


def formula(unit: Decimal, share_text: str, prorated_unit: Decimal, quantity: Decimal) -> str:
    """`$6.00 × 26/31 = $5.03 × 12`."""
    return f"{fmt_money(unit)} × {share_text} = {fmt_money(prorated_unit)} × {fmt_quantity(quantity)}"
