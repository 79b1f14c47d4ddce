"""`trueup renewals` over a store holding the demo MSP (as of 2026-11-21)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.sandbox.demo import build_demo_scenario
from engine.store import Store
from tui.cli import main


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('renewals') / 'store.db'}"
    store = Store(url)
    store.import_scenario(build_demo_scenario())
    store.close()
    return url


def run(db: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["--db", db, "renewals", "--as-of", "2026-11-21", *args])


def test_renewals_lists_the_windows_soonest_closing_first(db: str) -> None:
    result = run(db, "--within", "14")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["Window", "closes", "Left"]
    assert lines[1].split()[:4] == ["2026-11-25", "5", "open", "2026-10-26"]
    assert "Microsoft Teams Phone Standard" in lines[1]
    assert lines[2].split()[:4] == ["2026-12-08", "18", "upcoming", "2026-12-01"]
    assert "Exchange Online (Plan 1)" in lines[2] and "up front" in lines[2]
    assert lines[-1] == "2 renewal(s)"


def test_renewals_without_within_lists_every_committed_term(db: str) -> None:
    result = run(db, "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["product"] for r in rows] == [
        "Microsoft Teams Phone Standard",
        "Exchange Online (Plan 1)",
        "Microsoft 365 E3",
        "Microsoft 365 Business Premium",
        "Microsoft Defender for Business",
    ]
    assert rows[1]["monthly_cost"] == "42.50"  # 15 × $34.00 a year / 12
    assert rows[4]["term"] == "3-Year" and rows[4]["seats"] == "25"
    assert {r["company"] for r in rows} == {"Zephyr Cove Marine Supply"}


def test_no_renewal_in_range_says_so(db: str) -> None:
    result = CliRunner().invoke(main, ["--db", db, "renewals", "--as-of", "2026-12-20", "--within", "3"])
    assert result.exit_code == 0
    assert result.output.strip() == "No renewal window open or ahead within 3 days (as of 2026-12-20)."


def test_a_bad_within_is_refused_in_one_sentence(db: str) -> None:
    result = run(db, "--within", "soon")
    assert result.exit_code == 2
    assert "Invalid value for '--within'" in result.output
    assert "Traceback" not in result.output


def test_an_empty_store_has_no_renewals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(main, ["--db", url, "renewals", "--as-of", "2026-11-21"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("No renewal window open or ahead")
