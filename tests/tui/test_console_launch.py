"""The launch paints before the engine (issue 12 item 4): with a launch hint for this configuration
and a saved view in its SQLite store, `trueup` paints the saved rows — read with the bare sqlite3
driver, decoded once — before SQLAlchemy, SQLModel or pydantic are imported; the rows are exactly
those the engine path shows; a stale view is marked stale; keys pressed before the engine is loaded
navigate, and an action says in one line that the engine is loading."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.console_core import ConsoleCore
from engine.store import Store
from engine.store import plan_cache as pc
from tui import launch
from tui.app import LOADING_ENGINE, TrueupApp, _open_workspace
from tui.model import VIEW
from tui.workspace import StoreWorkspace

SIZE = (120, 40)
AS_OF = date(2026, 11, 21)  # as in conftest.py
NOW = datetime(2026, 11, 21, 9, 30)  # noqa: DTZ001 - the console's clock is local, as in conftest.py
HEAVY = ("sqlalchemy", "sqlmodel", "pydantic")

# A launch of the real `trueup` console (tui.app.prepare_console, as run_console does), headless:
# at the first frame that shows rows it notes which heavy modules are loaded and the rows shown;
# then it waits for the engine, the restored plan and the refresh, and notes the rows again.
LAUNCH = r"""
import asyncio, json, sys, time
from tui.app import prepare_console

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic")
app, _mouse = prepare_console(db_url=sys.argv[1])
seen = {}
shown = app._display

def rows_of(data):
    return {pane: [[r.key, *r.cells] for r in rows] for pane, rows in sorted(data.rows.items())}

def display(screen, renderable):
    shown(screen, renderable)
    data = app.data
    if "first" in seen or renderable is None or app.main is None or data is None or not data.rows:
        return
    seen["first"] = {
        "heavy": [m for m in HEAVY if m in sys.modules],
        "engine_ready": app.engine_ready,
        "complete": data.complete,
        "stale": data.stale,
        "rows": rows_of(data),
    }

app._display = display

async def main():
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            app.engine_ready and app.data is not None and app.data.complete and not app.data.stale
        ):
            await asyncio.sleep(0.05)
        await app.workers.wait_for_complete()
        seen["after"] = {"heavy": [m for m in HEAVY if m in sys.modules], "rows": rows_of(app.data)}
        await pilot.press("q")

asyncio.run(main())
print(json.dumps(seen))
"""


@pytest.fixture
def sandbox_url(tmp_path: Path) -> str:
    """A sandbox store as `trueup --db URL` opens it, after one launch that computed and saved the
    figures and left its launch hint (the operator's second launch is the one under test)."""
    url = f"sqlite:///{tmp_path / 'sandbox.db'}"
    workspace, _config = _open_workspace(url)
    core: ConsoleCore[Any] = ConsoleCore(
        workspace,
        VIEW,
        as_of=lambda: None,
        today=lambda: datetime.now().date(),  # noqa: DTZ005 - the app's clock
    )
    try:
        core.refresh(full=True)  # as run_console's first launch: the sandbox's world fetched into the store
        core.save(core.load())
        assert core.saves == 1
    finally:
        core.run_async(workspace.aclose())
        core.close()
        workspace.store.close()
    return url


def _launch(url: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCH, url], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_the_first_paint_comes_before_sqlalchemy_sqlmodel_and_pydantic(sandbox_url: str) -> None:
    seen = _launch(sandbox_url)
    first = seen["first"]
    assert first["heavy"] == [], f"loaded before the first paint: {first['heavy']}"
    assert not first["engine_ready"] and not first["complete"] and not first["stale"]
    assert first["rows"]["overview"] and sum(map(len, first["rows"].values())) > 20, first["rows"].keys()
    assert seen["after"]["heavy"] == list(HEAVY)  # then the engine was loaded, and went on
    assert seen["after"]["rows"] == first["rows"]  # nothing changed meanwhile: the same rows


def test_without_a_hint_for_this_configuration_nothing_is_painted_early(
    sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hint = launch.recall(sandbox_url)
    assert hint is not None and hint.url == sandbox_url and hint.sandbox
    assert launch.recall(None) is None  # another resolution (no --db): another store, perhaps
    monkeypatch.setenv("TRUEUP_CONSOLE__THEME", "ansi-dark")  # the configuration changed
    assert launch.recall(sandbox_url) is None


def _engine_view(url: str) -> tuple[Any, Any]:
    """What the engine path shows at launch (ConsoleCore.saved_view) and a full recompute."""
    store = Store(url)
    try:
        workspace = StoreWorkspace(store, label="test", sandbox=True)
        core: ConsoleCore[Any] = ConsoleCore(workspace, VIEW, as_of=lambda: AS_OF, today=lambda: NOW.date())
        saved = core.saved_view()
        pc.discard_state(store)
        fresh = core.load()
        return saved, fresh
    finally:
        store.close()


def _stored(tmp_path: Path, scenario: Any) -> tuple[str, launch.Hint]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.import_scenario(scenario)
    workspace = StoreWorkspace(store, label="SANDBOX — test", sandbox=True)
    core: ConsoleCore[Any] = ConsoleCore(workspace, VIEW, as_of=lambda: AS_OF, today=lambda: NOW.date())
    core.save(core.load())
    store.close()
    return url, launch.Hint(url=url, label="SANDBOX — test", sandbox=True, as_of=AS_OF)


def test_the_rows_painted_are_the_rows_the_engine_path_shows(tmp_path: Path, scenario: Any) -> None:
    url, hint = _stored(tmp_path, scenario)
    early = launch.first_view(hint, NOW.date())
    assert early is not None and not early.stale and not early.complete and early.plan is None
    saved, fresh = _engine_view(url)
    assert saved is not None and not saved.stale
    for pane in sorted({*fresh.rows, *early.rows}):
        assert early.rows.get(pane) == saved.rows.get(pane) == fresh.rows.get(pane), pane
        assert early.ignored_rows.get(pane) == fresh.ignored_rows.get(pane), pane
    assert (early.revision, early.computed_for, early.computed_at) == (
        saved.revision,
        saved.computed_for,
        saved.computed_at,
    )


def test_a_view_saved_before_a_write_is_painted_stale(tmp_path: Path, scenario: Any) -> None:
    url, hint = _stored(tmp_path, scenario)
    store = Store(url)
    store.set_setting("another_operator", "wrote")  # any committed write moves the revision
    store.close()
    early = launch.first_view(hint, NOW.date())
    assert early is not None and early.stale
    assert launch.first_view(hint, date(2026, 11, 22)) is not None  # another day: shown, stale
    assert launch.first_view(hint, date(2026, 11, 22)).stale  # type: ignore[union-attr]


def test_no_saved_view_or_a_store_that_is_not_sqlite_paints_nothing_early(tmp_path: Path) -> None:
    assert (
        launch.first_view(launch.Hint(url="postgresql://db/trueup", label="", sandbox=False), NOW.date())
        is None
    )
    missing = launch.Hint(url=f"sqlite:///{tmp_path / 'none.db'}", label="", sandbox=False)
    assert launch.first_view(missing, NOW.date()) is None
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    junk = launch.Hint(url=f"sqlite:///{tmp_path / 'junk.db'}", label="", sandbox=False)
    assert launch.first_view(junk, NOW.date()) is None  # logged, never a traceback


async def test_keys_before_the_engine_navigate_and_an_action_says_the_engine_is_loading(
    tmp_path: Path, scenario: Any
) -> None:
    url, hint = _stored(tmp_path, scenario)
    early = launch.first_view(hint, NOW.date())
    assert early is not None
    release = threading.Event()
    opened: list[Store] = []

    def open_workspace() -> StoreWorkspace:
        assert release.wait(30), "the test never let the engine load"
        store = Store(url)
        opened.append(store)
        return StoreWorkspace(store, label="SANDBOX — test", sandbox=True)

    app = TrueupApp(
        None,
        open_workspace=open_workspace,
        first_view=early,
        label="SANDBOX — test",
        sandbox=True,
        clock=lambda: NOW,
        as_of=AS_OF,
        refresh_interval=None,
        save_delay=0,
    )
    notes: list[str] = []
    notify = app.notify

    def noting(message: str, **kwargs: Any) -> None:
        notes.append(message)
        notify(message, **kwargs)

    app.notify = noting  # type: ignore[method-assign]
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            main = app.main
            assert main is not None and app.data is early and not app.engine_ready
            await pilot.press("3")
            assert main.active == "unsynced"
            table = main.pane("unsynced").table
            await pilot.press("down")
            assert table.cursor_row == 1  # navigation runs on the rows shown
            await pilot.press("i")  # ignore: needs the engine
            await pilot.press("v")  # review: needs the engine
            await pilot.pause()
            loading = [n for n in notes if n.startswith("Loading the engine")]
            assert loading == [LOADING_ENGINE.format(what="ignore"), LOADING_ENGINE.format(what="review")]
            assert all("\n" not in n for n in loading)
            assert not app.screen_stack[1:] or app.screen is main  # no modal opened
            release.set()
            for _ in range(400):
                await pilot.pause(0.05)
                if app.engine_ready and app.data is not None and app.data.complete:
                    break
            assert app.engine_ready and app.data is not None and app.data.complete
            assert app.data.rows is early.rows  # the plan restored under the rows already shown
            assert table.cursor_row == 1
            await app.workers.wait_for_complete()
    finally:
        release.set()
        for store in opened:
            store.close()


async def test_a_workspace_that_fails_to_open_after_the_paint_closes_the_console_with_one_sentence(
    tmp_path: Path, scenario: Any
) -> None:
    url, hint = _stored(tmp_path, scenario)
    early = launch.first_view(hint, NOW.date())

    def open_workspace() -> StoreWorkspace:
        raise RuntimeError("(sqlite3.OperationalError) unable to open database file")

    app = TrueupApp(None, open_workspace=open_workspace, first_view=early, refresh_interval=None)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.startup_error is not None:
                break
    assert isinstance(app.startup_error, RuntimeError) and app.return_code == 1


def test_the_hint_never_holds_a_password() -> None:
    url = "postgresql://trueup:s3cret-pw@db.example/trueup"
    launch.remember(url, launch.Hint(url=url, label="PSA · db.example", sandbox=False))
    text = launch.hint_path().read_text(encoding="utf-8")
    assert "s3cret-pw" not in text
    hint = launch.recall(url)
    assert hint is not None and hint.url == "postgresql://trueup:***@db.example/trueup"
    assert launch.first_view(hint, NOW.date()) is None  # PostgreSQL: painted after the engine
