"""`trueup sync` (dry run, confirmation, --yes, --only) and `trueup audit` on the sandbox workspace."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from engine.store import Store
from engine.sync import Journal
from tui.cli import main


def _run(db: str, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["--db", db, *args], input=stdin, catch_exceptions=False)


def test_dry_run_prints_requests_and_changes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ws.db'}"
    result = _run(db, "sync", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output
    assert "POST https://" in result.output and '"serialNumber":' in result.output
    store = Store(db)
    assert Journal(store).rows() == []
    with store.session() as s:
        from engine import audit

        assert [e for e in audit.events(s) if e.action.startswith("sync.")] == []


def test_sync_asks_first_then_writes_and_the_audit_shows_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ws.db'}"
    declined = _run(db, "sync", stdin="n\n")
    assert "into ConnectWise Manage" in declined.output and "Nothing was written" in declined.output
    assert Journal(Store(db)).rows() == []
    plan = _run(db, "sync", "--dry-run").output
    key = next(line.split()[1] for line in plan.splitlines() if line.startswith("# ") and ":prorate:" in line)
    only = _run(db, "sync", "--yes", "--only", key)
    assert only.exit_code == 0, only.output
    # --only writes the line's whole change set (issue 11: the subscription's recurring update,
    # prorates and extra months go together), so the prorate never lands without them.
    assert f"written       {key}" in only.output
    rows = Journal(Store(db)).rows()
    sub = key.split(":")[0]
    assert key in {r.key for r in rows} and all(r.state == "done" for r in rows)
    assert {r.key.split(":")[0] for r in rows} == {sub} and f"{len(rows)} written" in only.output
    audit = _run(db, "audit")
    assert "sync.written" in audit.output and key in audit.output and "@" in audit.output
    assert "→" in audit.output
    assert key not in _run(db, "audit", "--customer", "no such customer zzz").output
    assert key in _run(db, "audit", "--since", "2000-01-01").output


def test_only_refuses_unknown_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--db", f"sqlite:///{tmp_path / 'ws.db'}", "sync", "--only", "nope:recurring"]
    )
    assert result.exit_code == 2 and "not in the plan" in result.output


class _Kept:
    """The sandbox workspace kept open across commands (each CLI run would otherwise get a fresh
    sandbox PSA, forgetting what the previous command wrote)."""

    def __init__(self, ws):  # type: ignore[no-untyped-def]
        self.ws = ws

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.ws, name)

    async def aclose(self) -> None:
        return None


def test_verify_after_sync_says_the_psa_holds_the_plan_and_exits_1_when_it_differs(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import tui.cli_sync as cli_sync

    db = f"sqlite:///{tmp_path / 'ws.db'}"
    nothing = _run(db, "verify")
    assert nothing.exit_code == 0 and "Nothing to verify" in nothing.output
    kept = _Kept(cli_sync._open_workspace(db))
    monkeypatch.setattr(cli_sync, "_open_workspace", lambda _db: kept)
    synced = _run(db, "sync", "--yes")
    assert synced.exit_code == 0, synced.output
    result = _run(db, "verify")
    assert result.exit_code == 0, result.output
    assert "the PSA holds the plan" in result.output and "ConnectWise Manage" in result.output
    # An operator edits one extra-months addition in the PSA by hand.
    from engine.connectors.connectwise import SERIAL_MAX, KeyCodec

    codec = KeyCodec(SERIAL_MAX)
    sandbox = kept.ws.sandboxes["connectwise"]
    addition = next(
        a
        for a in sandbox.additions.values()
        if ":extra_months:" in (codec.decode(a.get("serialNumber")) or "")
    )
    addition["quantity"] = addition["quantity"] + 1
    differs = _run(db, "verify")
    assert differs.exit_code == 1, differs.output
    assert "differs " in differs.output and "differs by $" in differs.output and "1 differs" in differs.output


def test_zero_value_prorates_are_not_plan_lines_in_the_cli_nor_the_console(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The demo as of 2026-12-01 has increases on 2026-11-30 (change day not counted: $0.00).
    from datetime import date

    import tui.cli_sync as cli_sync
    from engine.sandbox.demo import build_demo_scenario
    from engine.workspace import Workspace

    db = f"sqlite:///{tmp_path / 'ws.db'}"
    ws = Workspace.sandbox_from_scenario(build_demo_scenario(as_of=date(2026, 12, 1)), store=Store(db))
    kept = _Kept(ws)
    monkeypatch.setattr(cli_sync, "_open_workspace", lambda _db: kept)
    dry = _run(db, "sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "record only" not in dry.output and ":prorate:2026-11-30" not in dry.output
    plan = ws.plan()  # the plan the console's review lists (tui.model reconciles the same store)
    carried = [key for line in plan.lines for key in line.records]
    assert len(carried) == 2 and all(key.endswith(":prorate:2026-11-30") for key in carried)
    assert not any(line.kind.one_time and line.total_price == 0 for line in plan.lines)
    synced = _run(db, "sync", "--yes")
    assert synced.exit_code == 0 and "record only" not in synced.output
    with Store(db).session() as s:
        from sqlalchemy import select

        from engine.store.tables import SyncedKeyRow

        keys = {r.key for r in s.execute(select(SyncedKeyRow)).scalars()}
    assert set(carried) <= keys
