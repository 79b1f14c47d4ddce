"""Shared by every test: nothing may touch the real user's store, config or keyring dirs."""

from __future__ import annotations

import sys
from collections.abc import Callable
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
