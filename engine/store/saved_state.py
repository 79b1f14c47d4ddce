"""The saved state's record, its table and columns, and the code version: the part of
`engine.store.plan_cache` a launch needs before its first paint, so standard library only (no
SQLAlchemy, SQLModel or pydantic). `read_sqlite` reads the saved view of a SQLite store with the
bare `sqlite3` driver, read-only; the engine's own reads and writes (`plan_cache.load_state`,
`save_state`) name the same table and columns from here, so the two readers cannot drift."""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

SAVED_STATE = "console"  # the name the console saves its state under (engine.console_core)
PLAN_CACHE = "plan_cache"  # engine.store.tables.PlanCacheRow.__tablename__
REVISION_TABLE = "store_revision"  # engine.store.tables.StoreRevisionRow.__tablename__
# PlanCacheRow's columns, in the order read; `view` and `plan` are zlib-compressed.
META_COLUMNS = ("name", "revision", "as_of", "today", "code", "computed_at")
VIEW_COLUMN, PLAN_COLUMN = "view", "plan"
_ENGINE_ROOT = Path(__file__).resolve().parents[1]
_COMPUTING = ("*.py", "rules/**/*.py", "store/**/*.py")  # what the figures are computed by (not connectors,
# the sandbox or the sync executor, which never change a figure)


@lru_cache(maxsize=8)
def code_version(*extra: Path) -> str:
    """A hash of the sources the figures are computed by (the engine's modules, rules and store,
    and `extra` files): a state computed by other code is never current."""
    digest = hashlib.sha256()
    try:
        sources = {p for pattern in _COMPUTING for p in _ENGINE_ROOT.glob(pattern)}
        for path in sorted((*sources, *extra)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:  # sources not readable (an odd install): the version stands in
        from importlib.metadata import PackageNotFoundError, version

        try:
            digest.update(version("trueup").encode())
        except PackageNotFoundError:
            digest.update(b"unknown")
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class SavedState:
    name: str
    revision: int
    as_of: date | None
    today: date
    code: str
    computed_at: datetime
    view: bytes | None = None  # decompressed; None when not asked for
    plan: bytes | None = None

    def current_for(self, revision: int | None, as_of: date | None, today: date, code: str) -> bool:
        """Computed from the store as it is now, for the same as-of and day, by the same code."""
        return (
            revision is not None
            and self.revision == revision
            and self.as_of == as_of
            and self.today == today
            and self.code == code
        )


def _day(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _moment(value: object) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def saved_state(values: dict[str, object], *, view: bytes | None, plan: bytes | None) -> SavedState:
    """A SavedState from a plan_cache row's values (dates as the driver gives them: objects from
    SQLAlchemy, ISO text from bare sqlite3, which stores SQLAlchemy's Date and DateTime as text)."""
    today = _day(values["today"])
    if today is None:
        raise ValueError("saved state without a day")
    return SavedState(
        name=str(values["name"]),
        revision=int(str(values["revision"])),
        as_of=_day(values["as_of"]),
        today=today,
        code=str(values["code"]),
        computed_at=_moment(values["computed_at"]),
        view=zlib.decompress(view) if view is not None else None,
        plan=zlib.decompress(plan) if plan is not None else None,
    )


def read_sqlite(path: Path, name: str) -> tuple[SavedState, int | None] | None:
    """The state saved under `name` in the SQLite store at `path` (its view, not its plan) and the
    store's revision now, read with the bare driver from a read-only connection; None when there is
    no file, no such table or no such state. Raises sqlite3.Error on a file that is not a store."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if PLAN_CACHE not in tables:
            return None
        columns = ", ".join((*META_COLUMNS, VIEW_COLUMN))
        row = conn.execute(f"SELECT {columns} FROM {PLAN_CACHE} WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        revision = None
        if REVISION_TABLE in tables:
            found = conn.execute(f"SELECT revision FROM {REVISION_TABLE} WHERE id = 1").fetchone()
            revision = None if found is None else int(found[0])
    finally:
        conn.close()
    values = dict(zip((*META_COLUMNS, VIEW_COLUMN), row, strict=True))
    return saved_state(values, view=bytes(row[-1]), plan=None), revision
