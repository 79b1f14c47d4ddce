"""Shared by every test: nothing may touch the real user's store, config or keyring dirs."""

from __future__ import annotations

from pathlib import Path

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
