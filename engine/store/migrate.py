"""Alembic migrations, run programmatically when a persistent store is opened. A store already at
the head revision is recognised with one query, without importing Alembic (a third of a second at
every console launch)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r'^(down_revision|revision)\s*(?::[^=]*)?=\s*["\']([^"\']+)["\']', re.MULTILINE)


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.attributes["engine"] = engine
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def script_heads() -> set[str]:
    """The head revisions of the migration scripts, read from their source (Alembic's own answer is
    checked against this in the tests)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions.add(found["revision"])
        if "down_revision" in found:
            parents.add(found["down_revision"])
    return revisions - parents


def at_head(engine: Engine) -> bool:
    """Is the database already migrated to the scripts' head? (False when unsure.)"""
    try:
        heads = script_heads()
        with engine.connect() as connection:
            current = {v for (v,) in connection.execute(text("SELECT version_num FROM alembic_version"))}
    except Exception:
        return False
    return bool(heads) and current == heads


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and at_head(engine):
        return
    from alembic import command

    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
