"""Launching on the last computed figures: a current saved state is painted at once and is exactly
what a full recompute shows; a stale one is painted under a banner, with review, sync and edits
refused until the fresh figures replace it (cursor kept); no saved state, or a damaged one, means
the loading state and a normal computation — never a traceback."""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from engine import actions
from engine.plan import LineKind
from engine.store import Store
from engine.store import plan_cache as pc
from tui import model, saved_view
from tui.app import SAVED_STATE, TrueupApp
from tui.rows import Row, search_text
from tui.screens.ignore import IgnoreModal
from tui.screens.review import ReviewScreen
from tui.view import row_widths
from tui.workspace import StoreWorkspace

SIZE = (120, 40)
AS_OF = date(2026, 11, 21)  # as in conftest.py
NOW = datetime(2026, 11, 21, 9, 30)  # noqa: DTZ001 - the console's clock is local, as in conftest.py
FRESH = {"vendor": datetime(2026, 11, 21, 9, 0), "psa": datetime(2026, 11, 21, 9, 1)}  # noqa: DTZ001


@pytest.fixture
def file_url(tmp_path: Path, scenario: Any) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    store.import_scenario(scenario)
    store.close()
    return url


def launch(store: Store, executor: Any = None) -> TrueupApp:
    workspace = StoreWorkspace(store, label="SANDBOX — test", sandbox=True, freshness=FRESH)
    return TrueupApp(
        workspace,
        clock=lambda: NOW,
        as_of=AS_OF,
        refresh_interval=None,
        save_delay=0,
        executor_factory=lambda ws: executor,
    )


def notes_of(app: TrueupApp) -> list[str]:
    notes: list[str] = []
    original = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        notes.append(message)
        original(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return notes


class Gate:
    """`tui.model.load` held until opened: the recompute a test wants to look behind."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = threading.Event()
        self.calls = 0
        real = model.load

        def held(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.open.wait(30)
            return real(*args, **kwargs)

        monkeypatch.setattr(model, "load", held)


async def until(pilot: Any, condition: Any, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("the console never reached the expected state")


def banner(app: TrueupApp) -> Static:
    assert app.main is not None
    return app.main.query_one("#stale-banner", Static)


async def test_a_second_launch_paints_the_saved_figures_identical_to_a_recompute(
    file_url: str, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(file_url)
    first = launch(store)
    async with first.run_test(size=SIZE) as pilot:
        await settle(first, pilot)
        assert first.saves == 1 and first.data is not None
    full = model.load(store, AS_OF, today=AS_OF)  # what a full recompute shows now

    calls: list[object] = []
    monkeypatch.setattr(model, "load", lambda *a, **k: calls.append(a) or full)
    second = launch(Store(file_url))  # the operator's next launch: a new process, a new handle
    async with second.run_test(size=SIZE) as pilot:
        await settle(second, pilot)
        data = second.data
        assert calls == []  # nothing recomputed
        assert data is not None and data.complete and not data.stale
        assert data.rows == full.rows and data.ignored_rows == full.ignored_rows
        assert data.plan == full.plan and data.plan.ignored_lines == full.plan.ignored_lines
        assert data.lines == full.lines and data.ignored == full.ignored and data.bindings == full.bindings
        assert banner(second).has_class("-hidden")
        assert second.main is not None
        assert second.main.pane("unsynced").rows == full.rows["unsynced"]
        await pilot.press("v")
        assert isinstance(second.screen, ReviewScreen)


async def test_a_stale_saved_state_is_shown_with_a_banner_and_review_waits_for_the_fresh_figures(
    file_url: str, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(file_url)
    first = launch(store)
    async with first.run_test(size=SIZE) as pilot:
        await settle(first, pilot)
    assert first.data is not None
    saved_rows = first.data.rows["unsynced"]
    gone = next(r for r in saved_rows if not r.ignored)

    other = Store(file_url)  # another operator ignores a subscription meanwhile
    actions.ignore(other, gone.key, reason="another operator", as_of=AS_OF)
    other.close()

    gate = Gate(monkeypatch)
    app = launch(Store(file_url))
    notes = notes_of(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.data is not None and app.main is not None)
        assert app.data is not None and app.data.stale
        assert app.data.rows["unsynced"] == saved_rows  # the old figures, as saved …
        assert not banner(app).has_class("-hidden")  # … under a banner that says so
        assert "FIGURES FROM" in str(banner(app).render()) and "RECOMPUTING" in str(banner(app).render())

        await pilot.press("3")
        pane = app.main.pane("unsynced")  # type: ignore[union-attr]
        await pilot.press("down", "down")
        kept = pane.current
        assert kept is not None and kept.key != gone.key

        await pilot.press("v")  # review and sync: refused while stale
        assert not isinstance(app.screen, ReviewScreen)
        await pilot.press("i")  # so are edits
        assert not isinstance(app.screen, IgnoreModal)
        assert sum("being recomputed" in n for n in notes) == 2

        gate.open.set()
        await until(pilot, lambda: app.data is not None and not app.data.stale and app.data.complete)
        await settle(app, pilot)
        assert banner(app).has_class("-hidden")
        fresh = model.load(store, AS_OF, today=AS_OF)
        assert app.data.rows == fresh.rows  # the fresh figures replaced the saved ones
        assert gone.key not in {r.key for r in pane.rows if not r.ignored}
        assert pane.current is not None and pane.current.key == kept.key  # the cursor stayed on its row
        assert app.saves == 1  # and they are saved for the next launch
        saved = pc.load_state(store, SAVED_STATE, view=False, plan=False)
        assert saved is not None and saved.revision == pc.store_revision(store)

        await pilot.press("v")
        assert isinstance(app.screen, ReviewScreen)


async def test_no_saved_state_shows_the_loading_state_then_the_figures(
    store: Store, make_app: Any, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: gate.calls == 1)
        assert app.data is None and app.busy == "loading…"
        assert banner(app).has_class("-hidden")
        gate.open.set()
        await until(pilot, lambda: app.data is not None)
        await settle(app, pilot)
        assert app.data is not None and app.data.complete and not app.data.stale and app.busy == ""
        assert app.saves == 1


async def test_a_damaged_saved_state_is_never_shown(store: Store, make_app: Any, settle: Any) -> None:
    pc.save_state(
        store,
        SAVED_STATE,
        revision=pc.store_revision(store),
        as_of=AS_OF,
        today=AS_OF,
        code=pc.code_version(*model.VIEW.code_files),
        view=b"\x00\x00\x00\x00\x00\x00\x00\x05{not json",
        plan=b"nor this",
    )
    app = make_app()
    notes = notes_of(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.data is not None and app.data.complete and not app.data.stale
        assert app.data.rows == model.load(store, AS_OF, today=AS_OF).rows
        assert notes == []  # nothing for the operator to see: it was recomputed


async def test_an_action_saves_the_recomputed_figures(store: Store, make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.saves == 1
        app.run_engine(lambda: actions.set_invoiced_through(store, date(2026, 11, 30)), "done")
        await settle(app, pilot)
        assert app.saves == 2 and app.data is not None
        assert app.data.invoiced_through == date(2026, 11, 30)
        saved = pc.load_state(store, SAVED_STATE, view=False, plan=False)
        assert saved is not None and saved.revision == pc.store_revision(store) == app.data.revision


async def test_nothing_written_since_means_nothing_recomputed(
    store: Store, make_app: Any, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        shown = app.data
        monkeypatch.setattr(model, "load", lambda *a, **k: pytest.fail("recomputed"))
        app.reload()
        await settle(app, pilot)
        assert app.data is shown


def test_the_saved_view_and_plan_round_trip_exactly(store: Store) -> None:
    data = model.load(store, AS_OF, today=AS_OF)
    view = saved_view.decode_view(saved_view.encode_view(data))
    assert not view.complete
    assert view.rows == data.rows and view.ignored_rows == data.ignored_rows
    # the column widths travel with the rows: a first paint measures none of them on the UI loop
    assert view.widths == data.widths and view.widths["unsynced"] == row_widths(data.rows["unsynced"])
    assert all(r.search == "" for r in view.rows["unsynced"])  # not saved: a fifth of the view
    assert [search_text(r) for r in view.rows["unsynced"]] == [r.search for r in data.rows["unsynced"]]
    full = saved_view.restore_plan(view, saved_view.encode_plan(data))
    assert full.complete and full.rows is view.rows
    for name in (
        "plan",
        "lines",
        "ignored",
        "psa_lines",
        "bindings",
        "product_names",
        "company_names",
        "psa_companies",
        "psa_company_names",
        "agreement_names",
        "psa_products",
        "psa_product_names",
        "psa",
        "as_of",
        "invoiced_through",
    ):
        assert getattr(full, name) == getattr(data, name), name
    assert full.plan.ignored_lines == data.plan.ignored_lines
    assert any(line.kind == LineKind.RECURRING for line in full.plan.lines)


def test_a_row_holding_a_separator_is_not_saved(store: Store) -> None:
    data = model.load(store, AS_OF, today=AS_OF)
    row = data.rows["unsynced"][0]
    data.rows["unsynced"][0] = Row(key=row.key, cells=(row.cells[0], "Odd\x1fName", *row.cells[2:]))
    with pytest.raises(saved_view.NotSaveable):
        saved_view.encode_view(data)


def test_separators_anywhere_in_a_row_are_refused(store: Store) -> None:
    """The separators are counted on the joined texts: one in a key, a detail, a plan key or the
    state is refused as surely as one in a cell (the search text is not saved)."""
    data = model.load(store, AS_OF, today=AS_OF)
    row = data.rows["unsynced"][0]
    for change in (
        {"key": "a\x1eb"},
        {"detail": "x\x1fy"},
        {"line_keys": ("k\x1fk",)},
        {"status": "\x1e"},
    ):
        data.rows["unsynced"][0] = Row(**{**row.__dict__, **change})
        with pytest.raises(saved_view.NotSaveable):
            saved_view.encode_view(data)


def test_a_save_after_a_patch_encodes_only_the_new_models_and_equals_a_fresh_encode(store: Store) -> None:
    data = model.load(store, AS_OF, today=AS_OF)
    first = saved_view.encode_plan(data)
    assert saved_view._MODELS.made > 0
    assert saved_view.encode_plan(data) == first and saved_view._MODELS.made == 0  # all reused
    line = data.plan.lines[0]
    moved = line.model_copy(update={"quantity": line.quantity + 1})
    data.plan = data.plan.model_copy(update={"lines": [moved, *data.plan.lines[1:]]})
    again = saved_view.encode_plan(data)
    assert saved_view._MODELS.made == 1  # the one new line
    saved_view._MODELS._last.clear()
    assert again == saved_view.encode_plan(data)  # the same bytes as encoding everything afresh


async def test_figures_outdated_by_a_refresh_are_flagged_until_recomputed(
    store: Store, make_app: Any, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.data is not None and banner(app).has_class("-hidden")

        async def refresh_that_writes(progress: Any = None, *, full: bool = False) -> Any:
            actions.set_invoiced_through(store, date(2026, 11, 30))  # what the fetch brought in

        monkeypatch.setattr(app.workspace, "refresh", refresh_that_writes)
        gate = Gate(monkeypatch)
        await pilot.press("f5")
        await until(pilot, lambda: gate.calls == 1)
        assert app.data.stale and not banner(app).has_class("-hidden")
        await pilot.press("v")
        assert not isinstance(app.screen, ReviewScreen)
        gate.open.set()
        await until(pilot, lambda: app.data is not None and not app.data.stale)
        await settle(app, pilot)
        assert banner(app).has_class("-hidden") and app.data.invoiced_through == date(2026, 11, 30)
