"""The store's revision, and the last computed state saved with the revision it was computed from.

**Revision.** `store_revision` holds one number. A hook on the store's SQLAlchemy engine
(`track_revision`) notes every INSERT, UPDATE or DELETE on a table of the store's schema — all
but the audit trail and this module's own tables — and, when that transaction commits, raises the
revision in the same transaction, just before the COMMIT. So every committed write that can change
the plan (imports, refresh writes, operator actions, sync journal and synced records, settings such
as invoiced_through), whichever code path or process made it — another operator's console on the
shared PostgreSQL database included — moves the revision, and a rolled-back write does not. It is
taken last in a transaction and held only for the COMMIT, so writers never deadlock on it.

**Saved state.** `plan_cache` holds what a console needs to paint and act, opaque to the engine
(two byte strings, stored zlib-compressed: JSON written by the console, never pickle — a team
shares one database, and unpickling what is in it would run whatever someone put there), with the
revision, the as-of asked for, the day and the code it was computed with. It is *current* when all
four match (`SavedState.current_for`); otherwise it is only a picture of the past, and whoever
shows it must say so."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, delete, event, insert, select, text
from sqlmodel import SQLModel, col

from engine.store import tables as t
from engine.store.saved_state import (  # re-exported: the saved state's record and code version
    META_COLUMNS,
    PLAN_COLUMN,
    VIEW_COLUMN,
    SavedState,
    code_version,
    saved_state,
)

__all__ = ["SavedState", "code_version", "discard_state", "load_state", "save_state", "store_revision"]

UNTRACKED = frozenset({"audit_event", "plan_cache", "store_revision", "alembic_version"})
_DIRTY = "trueup_store_written"
_WRITE = re.compile(
    r"\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+"
    r'(?:"?\w+"?\.)?"?(\w+)"?',
    re.IGNORECASE,
)
_BUMP = "UPDATE store_revision SET revision = revision + 1 WHERE id = 1"


# --- the revision ------------------------------------------------------------------------------------


def _note_write(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    info = conn.info
    if info.get(_DIRTY):
        return
    match = _WRITE.match(statement)
    if match is not None:
        table = match.group(1).lower()
        if table in SQLModel.metadata.tables and table not in UNTRACKED:
            info[_DIRTY] = True


def _bump_on_commit(conn: Any) -> None:
    if conn.info.pop(_DIRTY, False):
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(_BUMP)  # same transaction: if it fails, the COMMIT does not happen
        finally:
            cursor.close()


def _forget(conn: Any, *args: Any) -> None:
    conn.info.pop(_DIRTY, None)


def mark_written(session: Any) -> None:
    """The open transaction of `session` changes what the figures show though it writes only
    untracked tables (an acknowledged warning lives in the audit trail and shows in the Errors
    pane): its commit raises the revision all the same, so no saved state is taken as current."""
    session.connection().info[_DIRTY] = True


def track_revision(engine: Engine) -> bool:
    """Make every committed write through `engine` raise the store revision (idempotent). False,
    and no hook, when the database has no revision table (a store opened without migrating)."""
    if event.contains(engine, "commit", _bump_on_commit):
        return True
    try:
        with engine.begin() as conn:
            row = t.StoreRevisionRow
            found = conn.execute(select(col(row.revision)).where(col(row.id) == 1)).first()
            if found is None:
                conn.execute(insert(t.StoreRevisionRow).values(id=1, revision=0))
    except Exception:  # no such table: revisions unknown, so nothing saved is ever taken as current
        return False
    event.listen(engine, "before_cursor_execute", _note_write)
    event.listen(engine, "commit", _bump_on_commit)
    event.listen(engine, "rollback", _forget)
    event.listen(engine, "begin", _forget)
    return True


def store_revision(store: Any) -> int | None:
    """The store's revision now; None when the store does not track one."""
    if not event.contains(store.engine, "commit", _bump_on_commit):
        return None
    with store.engine.connect() as conn:
        value = conn.execute(text("SELECT revision FROM store_revision WHERE id = 1")).scalar()
    return None if value is None else int(value)


# --- the saved state -----------------------------------------------------------------------------------


def load_state(store: Any, name: str, *, view: bool = True, plan: bool = True) -> SavedState | None:
    """The state saved under `name` (with the parts asked for), or None."""
    row_type = t.PlanCacheRow
    names = [*META_COLUMNS, *([VIEW_COLUMN] if view else []), *([PLAN_COLUMN] if plan else [])]
    columns = [col(getattr(row_type, n)) for n in names]
    try:
        with store.engine.connect() as conn:
            row = conn.execute(select(*columns).where(col(row_type.name) == name)).first()
    except Exception:  # no such table (a store not migrated): nothing saved
        return None
    if row is None:
        return None
    values = dict(row._mapping)
    return saved_state(
        values,
        view=values[VIEW_COLUMN] if view else None,
        plan=values[PLAN_COLUMN] if plan else None,
    )


def save_state(
    store: Any,
    name: str,
    *,
    revision: int | None,
    as_of: date | None,
    today: date,
    code: str,
    view: bytes,
    plan: bytes,
    computed_at: datetime | None = None,
) -> bool:
    """Save the state computed from `revision` under `name`, unless the store does not track a
    revision or a state computed from a later revision is already there. True when saved."""
    if revision is None:
        return False
    packed = {"view": zlib.compress(view, 1), "plan": zlib.compress(plan, 1)}
    with store.engine.begin() as conn:
        existing = conn.execute(
            select(col(t.PlanCacheRow.revision)).where(col(t.PlanCacheRow.name) == name)
        ).scalar()
        if existing is not None and int(existing) > revision:
            return False
        conn.execute(delete(t.PlanCacheRow).where(col(t.PlanCacheRow.name) == name))
        conn.execute(
            insert(t.PlanCacheRow).values(
                name=name,
                revision=revision,
                as_of=as_of,
                today=today,
                code=code,
                computed_at=computed_at or datetime.now(UTC),
                **packed,
            )
        )
    return True


def discard_state(store: Any, name: str | None = None) -> None:
    """Forget the saved state (`name`, or all)."""
    with store.engine.begin() as conn:
        statement = delete(t.PlanCacheRow)
        conn.execute(statement if name is None else statement.where(col(t.PlanCacheRow.name) == name))
