"""Issue 13, "one store, one resolution": the console, every CLI command and the bench open the store
`engine.store.resolve.resolve_store` names (flag > env > config > sandbox default); the sandbox
persists across launches; `trueup sandbox reset` starts it over; nothing deletes a store another
process has open."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from engine.store.resolve import resolve_store, sandbox_url

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_env_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TRUEUP_DATABASE_URL, no trueup.toml: what a new user has. Returns the sandbox's file."""
    monkeypatch.delenv("TRUEUP_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRUEUP_CONFIG", str(tmp_path / "absent.toml"))
    return Path(sandbox_url().removeprefix("sqlite:///"))


def test_resolution_order_flag_env_config_default(tmp_path: Path) -> None:
    sandbox = SimpleNamespace(database_url=None, is_sandbox=True)
    configured = SimpleNamespace(database_url="sqlite:///cfg.db", is_sandbox=False)
    real_no_url = SimpleNamespace(database_url=None, is_sandbox=False)
    env = {"TRUEUP_DATABASE_URL": "sqlite:///env.db"}

    assert resolve_store("sqlite:///flag.db", configured, environ=env).url == "sqlite:///flag.db"
    assert resolve_store(None, configured, environ=env).source == "env"
    assert resolve_store(None, configured, environ={}).url == "sqlite:///cfg.db"
    assert (
        resolve_store(None, configured, environ={}).describe() == "cfg.db (from database_url in trueup.toml)"
    )
    chosen = resolve_store(None, sandbox, environ={})
    assert chosen.source == "sandbox-default" and chosen.url.endswith("/trueup/sandbox.db")
    assert resolve_store(None, None, environ={}).url == chosen.url
    # a real connection without a URL never lands in the sandbox's file
    assert resolve_store(None, real_no_url, environ={}).url.endswith("/trueup/trueup.db")
    secret = resolve_store("postgresql://u:hunter2@db/trueup", None, environ={})
    assert "hunter2" not in secret.describe() and "***" in secret.describe()


def _work_in_console_store() -> str:
    """What the console does at launch (open_workspace + refresh), then one operator action."""
    from engine import actions
    from engine.settings import load_config
    from engine.workspace import open_workspace

    ws = open_workspace(load_config())

    async def go() -> str:
        await ws.refresh()
        key = ws.plan().lines[0].key
        actions.ignore(ws.store, key, reason="resolution test", user="tester")
        await ws.aclose()
        return key

    key = asyncio.run(go())
    ws.store.close()
    return key


def test_cli_commands_see_what_the_console_did(no_env_store: Path) -> None:
    from tui.cli import main

    key = _work_in_console_store()
    assert no_env_store.is_file()
    runner = CliRunner()
    audit = runner.invoke(main, ["audit"])
    assert audit.exit_code == 0, audit.output
    assert "No audit events" not in audit.output and key.split(":")[0] in audit.output
    exported = runner.invoke(main, ["export-scenario"])
    assert exported.exit_code == 0, exported.output
    assert "resolution test" in exported.output  # the ignore is in the world the command exports


def test_sandbox_persists_across_launches(no_env_store: Path) -> None:
    from engine.settings import load_config
    from engine.workspace import open_workspace

    key = _work_in_console_store()
    inode = no_env_store.stat().st_ino
    ws = open_workspace(load_config())  # the second launch
    try:
        assert no_env_store.stat().st_ino == inode  # not deleted and recreated
        ignored = {row.key for row in ws.store.snapshot().ignored}
        assert key in ignored
        asyncio.run(ws.refresh())
        assert key not in {line.key for line in ws.plan().lines}  # still ignored after the refresh
        assert ws.label.endswith("· sandbox.db")  # the header says which store
    finally:
        asyncio.run(ws.aclose())
        ws.store.close()


def _hold_open(url: str, ready: Path) -> subprocess.Popen[bytes]:
    """Another process (a console, say) with the store open until killed."""
    code = textwrap.dedent(
        f"""
        import time, pathlib
        from engine.store import Store
        store = Store({url!r})
        pathlib.Path({str(ready)!r}).write_text("open")
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ))
    for _ in range(600):
        if ready.exists():
            return proc
        if proc.poll() is not None:
            raise AssertionError("the holder process ended early")
        import time

        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the holder process never opened the store")


def test_dry_run_beside_an_open_console_keeps_its_store_and_reset_waits_for_it(
    no_env_store: Path, tmp_path: Path
) -> None:
    from tui.cli import main

    key = _work_in_console_store()
    holder = _hold_open(sandbox_url(), tmp_path / "ready")
    try:
        inode = no_env_store.stat().st_ino
        runner = CliRunner()
        dry = runner.invoke(main, ["sync", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert no_env_store.stat().st_ino == inode  # the console's store is still the one on disk
        reset = runner.invoke(main, ["sandbox", "reset"])
        assert reset.exit_code == 1
        assert "open in another trueup process" in reset.output and "nothing was deleted" in reset.output
        assert no_env_store.stat().st_ino == inode
        audit = runner.invoke(main, ["audit"])
        assert key.split(":")[0] in audit.output
    finally:
        holder.kill()
        holder.wait()
    import gc

    gc.collect()  # the commands above ran in this process: their stores are released when collected
    reset = CliRunner().invoke(main, ["sandbox", "reset"])
    assert reset.exit_code == 0, reset.output
    assert "Reset the sandbox" in reset.output and not no_env_store.exists()
    again = CliRunner().invoke(main, ["audit"])  # a new store: the demo from the start
    assert "resolution test" not in again.output


def test_reset_refuses_a_store_with_real_data(tmp_path: Path) -> None:
    from engine.sandbox.demo import build_demo_scenario
    from engine.store import Store
    from tui.cli import main

    url = f"sqlite:///{tmp_path / 'real.db'}"
    store = Store(url)
    store.import_scenario(build_demo_scenario())  # companies, no sandbox marker: real data
    store.close()
    result = CliRunner().invoke(main, ["--db", url, "sandbox", "reset"])
    assert result.exit_code == 2
    assert "not the sandbox's" in result.output and (tmp_path / "real.db").exists()


def test_help_names_the_store_and_why(
    no_env_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.cli import main

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--db, else TRUEUP_DATABASE_URL, else database_url in trueup.toml" in text
    assert f"Now: {no_env_store} (the sandbox's own store)" in text
    config = tmp_path / "trueup.toml"
    config.write_text(f"database_url = 'sqlite:///{tmp_path / 'team.db'}'\n", encoding="utf-8")
    monkeypatch.setenv("TRUEUP_CONFIG", str(config))
    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert f"Now: {tmp_path / 'team.db'} (from database_url in trueup.toml)" in text
    monkeypatch.setenv("TRUEUP_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert f"Now: {tmp_path / 'env.db'} (from TRUEUP_DATABASE_URL)" in text


def test_config_database_url_is_used_by_commands_and_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trueup.toml's database_url: the console (open_workspace) and `trueup audit` open that file."""
    from engine.settings import load_config
    from engine.workspace import open_workspace

    monkeypatch.delenv("TRUEUP_DATABASE_URL", raising=False)
    config = tmp_path / "trueup.toml"
    config.write_text(f"database_url = 'sqlite:///{tmp_path / 'team.db'}'\n", encoding="utf-8")
    monkeypatch.setenv("TRUEUP_CONFIG", str(config))
    ws = open_workspace(load_config())
    try:
        assert ws.store.url == f"sqlite:///{tmp_path / 'team.db'}"
        assert ws.store_choice is not None and ws.store_choice.source == "config"
    finally:
        asyncio.run(ws.aclose())
        ws.store.close()
