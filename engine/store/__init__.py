"""The local store: SQLite by default (in the user data dir), any SQLAlchemy URL for a team
database (PostgreSQL). Schema migrations with Alembic."""

from engine.store.database import Store, default_database_url

__all__ = ["Store", "default_database_url"]
