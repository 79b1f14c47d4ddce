"""Calendar-month arithmetic for billing dates (no time zones: billing dates are calendar dates)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta


def days_in_month(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def first_of_month(d: date) -> date:
    return d.replace(day=1)


def last_of_month(d: date) -> date:
    return d.replace(day=days_in_month(d))


def add_months(d: date, n: int) -> date:
    return d + relativedelta(months=n)


def next_day(d: date) -> date:
    return d + timedelta(days=1)


def month_key(d: date) -> str:
    """`YYYY-MM`."""
    return f"{d.year:04d}-{d.month:02d}"


def parse_month(text: str) -> date:
    """`YYYY-MM` -> the first day of that month."""
    year, month = text.split("-")
    return date(int(year), int(month), 1)


def months_between(start: date, end: date) -> list[date]:
    """First days of the months strictly after `start`'s month and strictly before `end`'s month."""
    out: list[date] = []
    cursor = add_months(first_of_month(start), 1)
    stop = first_of_month(end)
    while cursor < stop:
        out.append(cursor)
        cursor = add_months(cursor, 1)
    return out


def us_date(d: date) -> str:
    """MM/DD/YYYY, as the PSA descriptions in seed 001 print it."""
    return f"{d.month:02d}/{d.day:02d}/{d.year:04d}"
