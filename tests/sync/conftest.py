"""Sync tests: a `store_url` (tests/conftest.py) on SQLite always, and on PostgreSQL when
TRUEUP_TEST_POSTGRES_URL is set (a database of its own per test, dropped afterwards). The fault tests' counts are collected in
the pytest cache and printed in the terminal summary (also under xdist)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# --- fault counts ---------------------------------------------------------------------------------


def _counts_dir(config: pytest.Config) -> Path:
    return Path(config.cache.mkdir("trueup_sync_faults"))  # type: ignore[union-attr]


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput") and session.config.cache is not None:
        for old in _counts_dir(session.config).glob("*.json"):
            old.unlink()


@pytest.fixture
def fault_counter(request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    counts = {"fault_points": 0, "runs": 0, "lines": 0, "duplicates": 0}
    yield counts
    if request.config.cache is not None:
        name = uuid.uuid4().hex
        (_counts_dir(request.config) / f"{name}.json").write_text(
            json.dumps({"test": request.node.nodeid, **counts})
        )


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if hasattr(config, "workerinput") or config.cache is None:
        return
    rows = [json.loads(p.read_text()) for p in sorted(_counts_dir(config).glob("*.json"))]
    if not rows:
        return
    tr = terminalreporter
    tr.section("sync fault injection")
    by_db: dict[str, dict[str, int]] = {}
    for row in sorted(rows, key=lambda r: r["test"]):
        db = "postgres" if "postgres" in row["test"] else "sqlite"
        total = by_db.setdefault(db, {"tests": 0, "fault_points": 0, "runs": 0, "lines": 0, "duplicates": 0})
        total["tests"] += 1
        for k in ("fault_points", "runs", "lines", "duplicates"):
            total[k] += row.get(k, 0)
        tr.write_line(
            f"{row['test']}: {row['fault_points']} fault points, {row['runs']} executor runs, "
            f"{row['lines']} lines"
        )
    for db, total in by_db.items():
        tr.write_line(
            f"TOTAL {db}: {total['tests']} tests, {total['fault_points']} fault points, "
            f"{total['runs']} executor runs, {total['lines']} lines checked, "
            f"{total['duplicates']} duplicate lines found in the PSA"
        )
