"""`trueup sync` holds provisional usage out unless `--include-provisional` (issue 13): the demo
as of 2026-11-04 (before day 5, RULES.md §5) has provisional usage summaries."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.store import Store
from engine.sync import Journal
from tui.cli import main

EARLY = date(2026, 11, 4)


class _Kept:
    """The sandbox workspace kept open across commands (a CLI run would otherwise get a fresh
    sandbox PSA and forget what the previous one wrote)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ws, name)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any, set[str]]:
    import tui.cli_sync as cli_sync
    from engine.sandbox.demo import build_demo_scenario
    from engine.workspace import Workspace

    db = f"sqlite:///{tmp_path / 'ws.db'}"
    ws = Workspace.sandbox_from_scenario(build_demo_scenario(as_of=EARLY), store=Store(db))
    kept = _Kept(ws)
    monkeypatch.setattr(cli_sync, "_open_workspace", lambda _db: kept)
    asyncio.run(ws.refresh())  # the store holds the sandbox's data once refreshed
    provisional = {x.key for x in ws.plan().lines if x.provisional}
    assert provisional  # the demo's usage summaries before day 5
    return db, ws, provisional


def _run(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", db, *args], catch_exceptions=False)


def _listed(output: str) -> set[str]:
    return {line.split()[1] for line in output.splitlines() if line.startswith("# ")}


def test_dry_run_holds_provisional_usage_and_says_why(early: tuple[str, Any, set[str]]) -> None:
    db, _ws, provisional = early
    held = _run(db, "sync", "--dry-run")
    assert held.exit_code == 0, held.output
    assert f"Held {len(provisional)} provisional usage line(s)" in held.output
    assert "not final" in held.output and "--include-provisional" in held.output
    listed = _listed(held.output)
    assert listed and provisional.isdisjoint(listed)
    included = _run(db, "sync", "--dry-run", "--include-provisional")
    assert included.exit_code == 0, included.output
    assert "Held " not in included.output
    assert f"Including {len(provisional)} provisional usage line(s)" in included.output
    assert provisional <= _listed(included.output)
    assert _listed(included.output) - provisional == listed


def test_sync_writes_the_final_lines_and_the_provisional_ones_only_when_included(
    early: tuple[str, Any, set[str]],
) -> None:
    db, ws, provisional = early
    first = _run(db, "sync", "--yes")
    assert first.exit_code == 0, first.output
    assert f"Held {len(provisional)} provisional usage line(s)" in first.output
    written = {r.key for r in Journal(Store(db)).rows() if r.state == "done"}
    assert written and provisional.isdisjoint(written)
    # The held lines are still owed: the next plan proposes them, and they land when included.
    assert provisional <= {x.key for x in ws.plan().lines}
    again = _run(db, "sync", "--yes")
    assert "Nothing to write" in again.output and "held provisional usage" in again.output
    assert provisional.isdisjoint(r.key for r in Journal(Store(db)).rows())
    included = _run(db, "sync", "--yes", "--include-provisional")
    assert included.exit_code == 0, included.output
    assert provisional <= {r.key for r in Journal(Store(db)).rows() if r.state == "done"}
    for key in provisional:
        assert f"written       {key}" in included.output


def test_only_a_provisional_key_is_still_held_without_the_flag(early: tuple[str, Any, set[str]]) -> None:
    db, _ws, provisional = early
    key = sorted(provisional)[0]
    result = _run(db, "sync", "--yes", "--only", key)
    assert result.exit_code == 0, result.output
    assert "Held " in result.output and key not in {r.key for r in Journal(Store(db)).rows()}
