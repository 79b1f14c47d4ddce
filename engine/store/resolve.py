"""Which store: the one resolution every entry point uses (console, every CLI command, the bench).

Order (issue 13, "one store, one resolution"): the `--db` flag, else `TRUEUP_DATABASE_URL`, else
`database_url` in `trueup.toml`, else the default: the sandbox's own SQLite file `sandbox.db` in
the user data dir when the configuration names no connection, `trueup.db` there when it names one
(a real connection never lands in the sandbox's file, nor the sandbox in a real store).

This module is imported before the console's first paint: it must stay free of SQLAlchemy,
SQLModel and pydantic (only the standard library and platformdirs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

ENV_VAR = "TRUEUP_DATABASE_URL"
SANDBOX_FILE = "sandbox.db"
REAL_FILE = "trueup.db"

Source = Literal["flag", "env", "config", "sandbox-default", "default"]

SOURCE_WORDS: dict[Source, str] = {
    "flag": "from --db",
    "env": f"from {ENV_VAR}",
    "config": "from database_url in trueup.toml",
    "sandbox-default": "the sandbox's own store",
    "default": "the default store",
}


class ConfigLike(Protocol):
    """What the resolution reads of `engine.settings.TrueupConfig` (kept structural so that this
    module does not import pydantic)."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def is_sandbox(self) -> bool: ...


def data_dir() -> Path:
    from platformdirs import user_data_dir

    directory = Path(user_data_dir("trueup", appauthor=False))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def sandbox_url() -> str:
    return f"sqlite:///{data_dir() / SANDBOX_FILE}"


def real_default_url() -> str:
    return f"sqlite:///{data_dir() / REAL_FILE}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite file store, None for an in-memory or non-SQLite store."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def safe_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password:
        return url.replace(f":{password}@", ":***@", 1)
    return url


@dataclass(frozen=True)
class StoreChoice:
    url: str
    source: Source

    @property
    def is_sandbox_default(self) -> bool:
        return self.source == "sandbox-default"

    @property
    def path(self) -> Path | None:
        return sqlite_path(self.url)

    def short(self) -> str:
        """For the console header: the file name of a SQLite store, else the URL without password."""
        path = self.path
        return path.name if path is not None else safe_url(self.url)

    def describe(self) -> str:
        """One phrase for `--help`, the header's detail and messages: where, and why this one."""
        path = self.path
        where = str(path) if path is not None else safe_url(self.url)
        return f"{where} ({SOURCE_WORDS[self.source]})"


def resolve_store(
    flag: str | None,
    config: ConfigLike | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> StoreChoice:
    """The store to open: flag > env > config > default (see the module's docstring).

    `config` is the loaded configuration (None: none could be read, i.e. the sandbox). Its
    `database_url` may itself come from `TRUEUP_DATABASE_URL` (pydantic-settings reads the
    environment too); the environment is checked first, so the source named is the right one."""
    env = os.environ if environ is None else environ
    if flag:
        return StoreChoice(flag, "flag")
    if env.get(ENV_VAR):
        return StoreChoice(env[ENV_VAR], "env")
    if config is not None and config.database_url:
        return StoreChoice(config.database_url, "config")
    if config is None or config.is_sandbox:
        return StoreChoice(sandbox_url(), "sandbox-default")
    return StoreChoice(real_default_url(), "default")
