"""Month-end scale: a synthetic plan of 24,000 lines (20,000 subscriptions) straight from PlanLine
objects. The table holds at most its cap, the title says how many of how many, `/` reaches rows
beyond the cap, selection and cursor survive a refresh, and building the panes stays linear."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest

from tui.app import TrueupApp
from tui.synthetic import synthetic_data, synthetic_loader
from tui.view import CAP, RowView
from tui.workspace import StoreWorkspace

SIZE = (120, 40)
N = 20_000


@pytest.fixture(scope="module")
def loader() -> Any:
    return synthetic_loader(N)


def make(loader: Any) -> TrueupApp:
    return TrueupApp(StoreWorkspace(None, label="SANDBOX — scale"), as_of=date(2026, 11, 21),
                     refresh_interval=None, loader=loader)


async def filtered(pilot: Any, pane: Any) -> None:
    """Until the debounced filter has been applied (no sleep guessed)."""
    for _ in range(100):
        if not pane.filter_pending:
            break
        await pilot.pause(0.05)
    await pilot.pause()


async def test_big_unsynced_pane_is_capped_and_filter_reaches_beyond(loader: Any, settle: Any) -> None:
    data = loader(None, date(2026, 11, 21))
    assert len(data.plan.lines) >= 20_000 and len(data.rows["unsynced"]) == N
    app = make(loader)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        assert pane.table.row_count == CAP
        assert pane.table.border_title == "Unsynced — 1,000 of 20,000 (/ narrows)"
        assert str(app.main.query_one("#tabs").get_tab("tab-unsynced").label) == "Unsynced 20,000"
        last = data.rows["unsynced"][-1]
        assert not pane.table.holds(last.key)  # beyond the cap
        await pilot.press("/", *last.key)
        await filtered(pilot, pane)
        assert pane.table.keys == [last.key]
        assert pane.table.border_title == f"Unsynced — 1 of 20,000 (filter: {last.key})"
        await pilot.press("enter")  # keep the filter, back to the table
        assert pane.current is not None and pane.current.key == last.key
        await pilot.press("space")
        assert pane.selected == {last.key}
        # a refresh keeps the filter, the cursor and the selection
        count = app.refresh_count
        await pilot.press("f5")
        await settle(app, pilot)
        assert app.refresh_count == count + 1
        assert pane.table.keys == [last.key] and pane.current.key == last.key and pane.selected == {last.key}
        # esc in the box clears the filter: the window is back, the selection is kept
        await pilot.press("/", "escape")
        await pilot.pause()
        assert pane.table.row_count == CAP and pane.selected == {last.key}
        assert pane.table.border_title.endswith("· 1 selected")


async def test_filter_many_matches_stays_capped_and_select_all_takes_every_match(loader: Any,
                                                                                 settle: Any) -> None:
    app = make(loader)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        await pilot.press("/", *"sub-01")  # sub-010000 … sub-019999
        await filtered(pilot, pane)
        assert pane.table.row_count == CAP
        title = "Unsynced — 1,000 of 10,000 matching, 20,000 in all (filter: sub-01)"
        assert pane.table.border_title == title
        await pilot.press("enter", "a")
        assert len(pane.selected) == 10_000  # every match, not just the window
        assert all(k.startswith("sub-01") for k in pane.selected)


async def test_cursor_moves_in_a_capped_table(loader: Any, settle: Any) -> None:
    app = make(loader)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "down", "down", "pagedown", "G")
        pane = app.main.pane("unsynced")
        assert pane.table.cursor_row == CAP - 1
        assert pane.current.key == pane.table.keys[-1]


def test_row_view_filters_the_model_and_narrows() -> None:
    data = synthetic_data(3_000, prorate_every=0)
    view = RowView(cap=100)
    view.set_rows(data.rows["unsynced"])
    assert len(view.window) == 100 and view.title("Unsynced") == "Unsynced — 100 of 3,000 (/ narrows)"
    view.set_filter("sub-0029")
    assert [r.key for r in view.window] == [f"sub-{i:06d}" for i in range(2900, 3000)]
    view.set_filter("sub-00299")  # narrowing reuses the previous matches
    assert [r.key for r in view.matches] == [f"sub-{i:06d}" for i in range(2990, 3000)]
    view.set_filter("SUB-000001")  # case-folded
    assert [r.key for r in view.matches] == ["sub-000001"]
    view.set_filter("")
    assert len(view.matches) == 3_000
    in_order = view.in_order({"sub-000005", "sub-000002", "nope"})
    assert [r.key for r in in_order] == ["sub-000002", "sub-000005"]


def test_building_the_panes_is_linear() -> None:
    """Twice the plan, about twice the time (quadratic would be four times): 6k vs 12k lines."""
    def timed(n: int) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            synthetic_data(n)
            best = min(best, time.perf_counter() - start)
        return best

    small, big = timed(5_000), timed(10_000)
    assert big < small * 3.2, (small, big)
