"""The local store: SQLite by default (in the user data dir), any SQLAlchemy URL for a team
database (PostgreSQL). Schema migrations with Alembic.

`Store` is imported on first use (PEP 562), so that `engine.store.resolve` — which the console
reads before its first paint — does not load SQLAlchemy with the package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.store.database import Store, default_database_url

__all__ = ["Store", "default_database_url"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from engine.store import database

        return getattr(database, name)
    raise AttributeError(f"module 'engine.store' has no attribute {name!r}")
