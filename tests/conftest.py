"""Shared by every test: nothing may touch the real user's store, config or keyring dirs; a
throwaway store database (`store_url`); the work a call does, counted (`python_lines`)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME, the XDG dirs and the store URL at a fresh temporary folder (subprocesses inherit it)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.setenv("TRUEUP_DATABASE_URL", f"sqlite:///{home / 'trueup-test.db'}")
    return home


SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# --- a throwaway store database -------------------------------------------------------------------

POSTGRES_URL = os.environ.get("TRUEUP_TEST_POSTGRES_URL")
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="TRUEUP_TEST_POSTGRES_URL is not set"),
        ],
    ),
]


@contextmanager
def throwaway_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty store database: a SQLite file in `folder`, or a PostgreSQL database
    of its own (`trueup_t_<random>`) on the server of TRUEUP_TEST_POSTGRES_URL, created from the
    server's maintenance database and dropped afterwards (WITH (FORCE): a test's leftover
    connection cannot keep it). The database the variable names is never opened."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    assert POSTGRES_URL, "the postgres leg runs only with TRUEUP_TEST_POSTGRES_URL set"
    shared = make_url(POSTGRES_URL)
    name = f"trueup_t_{uuid.uuid4().hex[:16]}"
    assert name != shared.database
    admin = shared.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield shared.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=DATABASES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty store database per test: SQLite always, PostgreSQL too when
    TRUEUP_TEST_POSTGRES_URL is set (the leg is skipped, with the reason, when it is not)."""
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def pytest_sessionstart(session: pytest.Session) -> None:
    """On CI the contract, the seed figures and the vendors' specs must be checked, not skipped:
    a missing ../shared is an error there (developers without it get skips with the reason)."""
    import os

    if os.environ.get("CI") and not (SHARED / "contract" / "check_plan.py").is_file():
        raise pytest.UsageError(f"CI: {SHARED} is missing, so the contract tests would be skipped")


@pytest.fixture
def python_lines() -> Callable[[Callable[[], object]], int]:
    """How many lines of Python a call runs (every frame's line events, `sys.settrace`): the work
    it does, counted — the same on a busy machine as on an idle one, so a test can hold it linear
    where a timed assertion would flake (times are bench figures: bench/RESULTS.md)."""

    def count(call: Callable[[], object]) -> int:
        lines = 0

        def trace(frame: FrameType, event: str, arg: object) -> Any:
            nonlocal lines
            lines += 1
            return trace

        previous = sys.gettrace()
        sys.settrace(trace)
        try:
            call()
        finally:
            sys.settrace(previous)
        return lines

    return count
