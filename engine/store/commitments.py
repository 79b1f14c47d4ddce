"""Commitment terms in the store (issue 15): `engine.scenario.Commitment` in and out of the
`commitment_term` and `seat_addition` tables (engine.store.tables, migration 0006_commitment_terms).

Seat-addition instants are written in UTC; a database that drops the offset (SQLite) gives them
back naive, and they are read as UTC."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.orm import Session

from engine.batch import fast
from engine.scenario import (
    Commitment,
    HistoryRow,
    Scenario,
    SeatAddition,
    Subscription,
    Vendor,
    VendorCompany,
    VendorProduct,
)
from engine.store import tables as t

TABLES = (t.CommitmentTermRow, t.SeatAdditionRow)
_PRODUCT_DEFAULTS: dict[str, Any] = {
    "kind": "seat",
    "sub_products": [],
    "edition": None,
    "service": None,
    "storage_location": None,
    "parent_product_id": None,
}
_TERM_FIELDS = tuple(c.name for c in t.CommitmentTermRow.__table__.columns)  # type: ignore[attr-defined]


def write_commitments(s: Session, commitments: Sequence[Commitment]) -> None:
    if not commitments:
        return
    terms: list[dict[str, Any]] = []
    additions: list[dict[str, Any]] = []
    for c in commitments:
        terms.append(c.model_dump(exclude={"seat_additions"}))
        for seq, addition in enumerate(c.seat_additions):
            additions.append(
                {
                    "subscription_id": c.subscription_id,
                    "seq": seq,
                    "at": addition.at.astimezone(UTC),
                    "quantity": addition.quantity,
                }
            )
    s.execute(insert(t.CommitmentTermRow), terms)
    if additions:
        s.execute(insert(t.SeatAdditionRow), additions)


def delete_commitments(s: Session, subscription_ids: Iterable[str] | None = None) -> None:
    """Every commitment row, or those of `subscription_ids`."""
    for table in TABLES:
        if subscription_ids is None:
            s.execute(delete(table))
        else:
            ids = list(subscription_ids)
            for start in range(0, len(ids), 400):
                chunk = ids[start : start + 400]
                s.execute(delete(table).where(table.subscription_id.in_(chunk)))  # type: ignore[attr-defined]


def replace_commitments(s: Session, commitments: Sequence[Commitment]) -> None:
    """The commitments of these subscriptions, instead of what the store held for them."""
    delete_commitments(s, [c.subscription_id for c in commitments])
    write_commitments(s, commitments)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_commitments(conn: Connection, subscription_ids: set[str] | None = None) -> list[Commitment]:
    """The stored commitments (of `subscription_ids` only, when given), by subscription id."""
    a = t.SeatAdditionRow.__table__  # type: ignore[attr-defined]
    additions: dict[str, list[SeatAddition]] = defaultdict(list)
    for sub_id, at, quantity in conn.execute(
        select(a.c.subscription_id, a.c.at, a.c.quantity).order_by(a.c.subscription_id, a.c.seq)
    ):
        if subscription_ids is None or sub_id in subscription_ids:
            additions[sub_id].append(fast(SeatAddition, {"at": _utc(at), "quantity": Decimal(quantity)}))
    c = t.CommitmentTermRow.__table__  # type: ignore[attr-defined]
    out: list[Commitment] = []
    for row in conn.execute(select(*(c.c[name] for name in _TERM_FIELDS)).order_by(c.c.subscription_id)):
        data = dict(zip(_TERM_FIELDS, row, strict=True))
        if subscription_ids is not None and data["subscription_id"] not in subscription_ids:
            continue
        data["seat_additions"] = additions.get(data["subscription_id"], [])
        out.append(fast(Commitment, data))
    return out


def renewal_scenario(store: Any, as_of: date) -> Scenario:
    """What `engine.rules.commitments.renewals` needs, read without the rest of the store: the
    committed subscriptions (with their last history row: the current quantity), their companies and
    products, and the commitments. A few indexed reads however large the store is."""
    with store.engine.connect() as conn:
        commitments = read_commitments(conn)
        ids = sorted({c.subscription_id for c in commitments})
        s, h = t.SubscriptionRow.__table__, t.HistoryRowRecord.__table__  # type: ignore[attr-defined]
        subs: list[dict[str, Any]] = []
        last: dict[str, HistoryRow] = {}
        for start in range(0, len(ids), 400):
            chunk = ids[start : start + 400]
            subs += [dict(r._mapping) for r in conn.execute(select(s).where(s.c.id.in_(chunk)))]
            for row in conn.execute(
                select(h.c.subscription_id, h.c.id, h.c.action, h.c.quantity, h.c.effective_date)
                .where(h.c.subscription_id.in_(chunk))
                .order_by(h.c.subscription_id, h.c.seq)
            ):
                last[row.subscription_id] = fast(
                    HistoryRow,
                    {
                        "id": row.id,
                        "action": row.action,
                        "quantity": row.quantity,
                        "effective_date": row.effective_date,
                    },
                )
        company_ids = sorted({r["company_id"] for r in subs})
        product_ids = sorted({r["product_id"] for r in subs})
        c, p = t.VendorCompanyRow.__table__, t.VendorProductRow.__table__  # type: ignore[attr-defined]
        companies = [
            fast(VendorCompany, {"id": r.id, "name": r.name, "status": r.status})
            for start in range(0, len(company_ids), 400)
            for r in conn.execute(select(c).where(c.c.id.in_(company_ids[start : start + 400])))
        ]
        products = [
            fast(VendorProduct, {**_PRODUCT_DEFAULTS, "id": r.id, "name": r.name, "sku": r.sku})
            for start in range(0, len(product_ids), 400)
            for r in conn.execute(select(p).where(p.c.id.in_(product_ids[start : start + 400])))
        ]
    subscriptions = [
        fast(Subscription, {**r, "history": [last[r["id"]]] if r["id"] in last else []}) for r in subs
    ]
    known = {sub.id for sub in subscriptions}
    # Rows were validated on the way in (as Store._read does): rebuilt without validating again, so a
    # name that needs scrubbing reaches the screen's own cleaning, not a validation error.
    vendor = Vendor.model_construct(
        companies=companies,
        products=products,
        subscriptions=subscriptions,
        commitments=[x for x in commitments if x.subscription_id in known],
    )
    return Scenario.model_construct(as_of=as_of, vendor=vendor)
