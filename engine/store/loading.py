"""Reading the store for a reconciliation, fast. One streamed pass over the history (plain driver
tuples) decides which seat subscriptions are quiet — no cancel row and no unsynced increase — so
their history is never turned into objects; everything else is rebuilt into the engine's types
without validating again (rows were validated on the way in)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlmodel import col

from engine.batch import fast
from engine.keys import PlanKey
from engine.scenario import HistoryRow
from engine.store import tables as t


def raw_rows(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the driver's cursor (no per-row result processing):
    for the big reads, where SQLAlchemy's row-by-row fetching costs more than the query."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # an open connection always has its DBAPI connection (typed Optional)
    try:
        cursor.execute(sql)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows
    finally:
        cursor.close()


class HistoryLoader:
    """Loads one subscription's history on demand over one raw connection (a quiet subscription
    whose PSA line turns out to differ needs its history after all)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._connection: Any = None
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = (
            "SELECT id, action, quantity, effective_date FROM subscription_history "
            f"WHERE subscription_id = {marker} ORDER BY seq"
        )

    def __call__(self, subscription_id: str) -> list[HistoryRow]:
        if self._connection is None:
            self._connection = self.engine.raw_connection()
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._sql, (subscription_id,))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return [
            fast(
                HistoryRow,
                {
                    "id": hid,
                    "action": action,
                    "quantity": Decimal(str(q)),
                    "effective_date": day if isinstance(day, date) else date.fromisoformat(day),
                },
            )
            for hid, action, q, day in rows
        ]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _iso(value: object) -> str:
    return value if isinstance(value, str) else value.isoformat()  # type: ignore[attr-defined]  # not a str, so a date or datetime read by the driver


def scan_history(
    conn: Connection,
    *,
    as_of: date,
    invoiced_through: date,
    monthly: set[str],
    synced_keys: set[str],
    line_keys: set[str],
    unlined: set[str] | None = None,
) -> tuple[dict[str, Decimal], dict[str, list[HistoryRow]]]:
    """One streamed pass over every history row (plain tuples, in subscription order).

    Returns (quiet, busy): `quiet` maps a subscription with no cancel row and no unsynced increase
    on or before invoiced_through to its current quantity (the last row in force on as_of, by date
    then sequence — as `Timeline` reads it); every other subscription's rows come back in `busy` as
    `HistoryRow`s. An increase is judged row by row, which flags a superset of the day-level
    changes the rules prorate, so a quiet subscription never hides a line; a cancel row makes the
    subscription busy whatever its date (`cancellation_date` reads every row, not only those in force).
    A subscription of `unlined` (a seat subscription no PSA line is tied to) is busy too: its plan
    is a line to create, which needs its history — quiet, it would be read again one subscription
    at a time (issue 12: 43,939 such reads on a cold start).

    Hot path at scale (≈10 rows per subscription): the rows are fetched in large batches straight
    from the cursor, and the few distinct quantity texts and dates become `Decimal`s and `date`s
    once each (both immutable, so shared)."""
    as_of_text, through_text = as_of.isoformat(), invoiced_through.isoformat()
    quiet: dict[str, Decimal] = {}
    busy: dict[str, list[HistoryRow]] = {}
    decimals: dict[str, Decimal] = {}
    dates: dict[str, date] = {}
    by_day = itemgetter(3)

    def decimal(text: str) -> Decimal:
        value = decimals.get(text)
        if value is None:
            value = decimals[text] = Decimal(text)
        return value

    def day_of(text: str) -> date:
        value = dates.get(text)
        if value is None:
            value = dates[text] = date.fromisoformat(text)
        return value

    def settle(sid: str, group: list[tuple[str, str, str, str]]) -> None:
        ordered = sorted(group, key=by_day) if len(group) > 1 else group  # by date; stable keeps the sequence
        needs_look = False
        previous = _ZERO
        current: Decimal | None = None
        is_monthly = sid in monthly
        for _hid, action, quantity_text, day in ordered:
            if action == "cancel":  # whatever its date: the cancellation rule reads every row
                needs_look = True
                break
            if day > as_of_text:
                continue
            quantity = decimal(quantity_text)
            if is_monthly and quantity > previous and day <= through_text:
                key = PlanKey.prorate(sid, day).format()
                if key not in synced_keys and key not in line_keys:
                    needs_look = True
                    break
            previous = current = quantity
        if needs_look or current is None or (unlined is not None and sid in unlined):
            busy[sid] = [
                fast(
                    HistoryRow,
                    {"id": hid, "action": action, "quantity": decimal(q), "effective_date": day_of(day)},
                )
                for hid, action, q, day in group
            ]
        else:
            quiet[sid] = current

    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]  # an open connection always has its DBAPI connection (typed Optional)
    try:
        cursor.execute(
            "SELECT subscription_id, id, action, quantity, effective_date "
            "FROM subscription_history ORDER BY subscription_id, seq"
        )
        group: list[tuple[str, str, str, str]] = []
        append = group.append
        current_sid: str | None = None
        while chunk := cursor.fetchmany(_BATCH):
            plain = all(type(r[3]) is str and type(r[4]) is str for r in chunk)  # SQLite: text as stored
            for sid, hid, action, quantity, day in chunk:
                if sid != current_sid:
                    if current_sid is not None:
                        settle(current_sid, group)
                    current_sid, group = sid, []
                    append = group.append
                append((hid, action, quantity, day) if plain else (hid, action, str(quantity), _iso(day)))
        if current_sid is not None:
            settle(current_sid, group)
    finally:
        cursor.close()
    return quiet, busy


_ZERO = Decimal(0)
_BATCH = 50_000


def history_rows(
    conn: Connection, subscription_ids: Iterable[str] | None = None
) -> dict[str, list[HistoryRow]]:
    """History grouped by subscription, in seq order (all subscriptions when ids is None)."""
    h = t.HistoryRowRecord
    query = select(
        col(h.subscription_id), col(h.id), col(h.action), col(h.quantity), col(h.effective_date)
    ).order_by(col(h.subscription_id), col(h.seq))
    out: dict[str, list[HistoryRow]] = defaultdict(list)
    if subscription_ids is None:
        chunks: list[list[str] | None] = [None]
    else:
        ids = sorted(subscription_ids)
        chunks = [ids[i : i + 400] for i in range(0, len(ids), 400)]
    for chunk in chunks:
        q = query if chunk is None else query.where(col(h.subscription_id).in_(chunk))
        for sid, hid, action, quantity, effective in conn.execute(q):
            out[sid].append(
                fast(
                    HistoryRow,
                    {"id": hid, "action": action, "quantity": quantity, "effective_date": effective},
                )
            )
    return out
