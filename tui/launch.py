"""The console's launch before the engine: what `trueup` reads and decodes to paint its first
frame while SQLAlchemy, SQLModel and pydantic are not loaded yet (issue 12 item 4).

The store, and the console's settings, are resolved from the configuration — which only pydantic
reads (`engine.settings`). So each launch, once its engine is loaded, leaves a *launch hint* in the
user data dir (`launch.json`): what it resolved (the store, the console's settings, how the
workspace dates its plan) and a fingerprint of everything that resolution read (the `--db` flag,
every `TRUEUP_*` variable, the configuration file's path, size and modification time, the code).
The next launch computes the fingerprint again — standard library only — and, when it matches,
takes the hint's store: a SQLite store's saved view is read with the bare `sqlite3` driver
(`engine.store.saved_state`), decoded once (`tui.saved_view`), and painted; the engine is imported
afterwards, in a thread, and checks the store's revision. Otherwise (the first launch, a changed
configuration, a PostgreSQL store) there is nothing to paint early: the console starts the normal
way and paints after the engine. Secrets never reach the hint (the variables are hashed)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from engine.config_file import ENV_PREFIX, config_path
from engine.store.resolve import data_dir, safe_url, sqlite_path
from engine.store.saved_state import SAVED_STATE, code_version, read_sqlite
from tui.rows import ConsoleData

log = logging.getLogger(__name__)
HINT_FILE = "launch.json"
HINT_FORMAT = 1
_TUI = Path(__file__).resolve().parent
VIEW_FILES = (_TUI / "model.py", _TUI / "rows.py", _TUI / "saved_view.py")  # what the rows are computed by


@dataclass(frozen=True)
class Hint:
    """What the last launch resolved from the same configuration (see the module's docstring)."""

    url: str
    label: str
    sandbox: bool
    as_of: date | None = None  # the workspace's fixed as-of (the sandbox's); None: today in `zone`
    zone: str = "UTC"
    theme: str | None = None
    mouse: bool = True
    keymap: dict[str, str] = field(default_factory=dict)
    refresh_interval: float | None = None

    def wanted(self, today: date, asked: date | None = None) -> tuple[date | None, date]:
        """The (as-of, day) the console will ask the engine for (ConsoleCore.wanted): the as-of
        asked for, else the workspace's."""
        if asked is not None:
            return asked, today
        if self.as_of is not None:
            return self.as_of, today
        from zoneinfo import ZoneInfo

        return datetime.now(ZoneInfo(self.zone)).date(), today


def fingerprint(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """A hash of everything the store's and the console's resolution reads."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    try:
        stat = path.stat()
        config: list[object] | None = [str(path), stat.st_size, stat.st_mtime_ns]
    except OSError:
        config = [str(path), None]
    facts = {
        "flag": flag,
        "env": sorted((k, v) for k, v in env.items() if k.upper().startswith(ENV_PREFIX)),
        "config": config,
        "code": code_version(*VIEW_FILES),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def hint_path() -> Path:
    return data_dir() / HINT_FILE


def recall(flag: str | None) -> Hint | None:
    """The last launch's hint, when it was resolved from the same configuration; else None."""
    try:
        stored = json.loads(hint_path().read_text(encoding="utf-8"))
        if stored.get("format") != HINT_FORMAT or stored.get("key") != fingerprint(flag):
            return None
        facts = dict(stored["hint"])
        facts["as_of"] = date.fromisoformat(facts["as_of"]) if facts.get("as_of") else None
        return Hint(**facts)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def remember(flag: str | None, hint: Hint) -> None:
    """Leave `hint` for the next launch (written whole, then renamed: never half a file)."""
    facts: dict[str, Any] = dict(hint.__dict__)
    facts["url"] = safe_url(
        hint.url
    )  # a PostgreSQL password never lands in the file (only SQLite paints early)
    facts["as_of"] = hint.as_of.isoformat() if hint.as_of else None
    body = json.dumps({"format": HINT_FORMAT, "key": fingerprint(flag), "hint": facts})
    path = hint_path()
    try:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(body, encoding="utf-8")
        partial.replace(path)
    except OSError:
        log.debug("the launch hint could not be written", exc_info=True)


def first_view(hint: Hint, today: date, asked: date | None = None) -> ConsoleData | None:
    """The saved view of the hint's store, decoded, stamped as the engine stamps it
    (engine.console_core.ConsoleCore._decoded) and marked stale unless it is current for the store's
    revision, the as-of and day wanted, and this code; None when there is nothing to paint (no
    saved view, not a SQLite file store, anything unreadable: the engine path then decides)."""
    path = sqlite_path(hint.url)
    if path is None:
        return None  # PostgreSQL (or in memory): painted after the engine, the normal way
    try:
        found = read_sqlite(path, SAVED_STATE)
        if found is None:
            return None
        saved, revision = found
        from tui.saved_view import decode_view

        data = decode_view(saved.view or b"")
    except Exception:  # a saved state is an optimisation: any doubt, and it is not shown early
        log.warning("the saved console state could not be read before the engine", exc_info=True)
        return None
    data.revision, data.computed_at, data.computed_for = (
        saved.revision,
        saved.computed_at,
        (saved.as_of, saved.today),
    )
    data.saved = True
    data.stale = not saved.current_for(revision, *hint.wanted(today, asked), code_version(*VIEW_FILES))
    return data
