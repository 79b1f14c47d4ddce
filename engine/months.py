"""Calendar-month arithmetic for billing dates (no time zones: billing dates are calendar dates)."""

from __future__ import annotations

from datetime import date, timedelta

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ONE_DAY = timedelta(days=1)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_length(year: int, month: int) -> int:
    return 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]


def days_in_month(d: date) -> int:
    return _month_length(d.year, d.month)


def first_of_month(d: date) -> date:
    return d.replace(day=1)


def last_of_month(d: date) -> date:
    return d.replace(day=_month_length(d.year, d.month))


def add_months(d: date, n: int) -> date:
    """`n` calendar months later (earlier when negative); a day past the target month's end becomes
    its last day (1/31 + 1 month = 2/28 or 2/29), as `dateutil.relativedelta` does."""
    year, month_index = divmod(d.year * 12 + d.month - 1 + n, 12)
    month = month_index + 1
    return date(year, month, min(d.day, _month_length(year, month)))


def next_day(d: date) -> date:
    return d + _ONE_DAY


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
