"""Month-end scale: a synthetic plan of 60,000 lines (50,000 subscriptions) straight from PlanLine
objects. The Unsynced table is virtual: every one of the 50,000 rows is reachable by the keys and
the mouse, `/` filters over all of them, the title says how many, selection and cursor survive a
refresh, and building the panes stays linear."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region

from bench.synthetic import AS_OF, synthetic_data, synthetic_inputs, synthetic_loader
from tui import model
from tui.app import TrueupApp
from tui.view import RowView
from tui.widgets.keyed_table import KeyedTable
from tui.workspace import StoreWorkspace

SIZE = (120, 40)
N = 50_000


@pytest.fixture(scope="module")
def loader() -> Any:
    return synthetic_loader(N)


def make(loader: Any) -> TrueupApp:
    return TrueupApp(
        StoreWorkspace(None, label="SANDBOX — scale"),
        as_of=date(2026, 11, 21),
        refresh_interval=None,
        loader=loader,
    )


async def filtered(pilot: Any, pane: Any) -> None:
    """Until the filter has been applied (no sleep guessed)."""
    for _ in range(100):
        if not pane.filter_pending:
            break
        await pilot.pause(0.05)
    await pilot.pause()


def on_screen(table: KeyedTable) -> list[str]:
    """The table's lines as the operator sees them: the border with the title, the header, the rows."""
    width, height = table.region.size
    return ["".join(s.text for s in strip) for strip in table.render_lines(Region(0, 0, width, height))]


def cursor_line(table: KeyedTable) -> str:
    """The screen line of the cursor row (below the border, if any, and the header)."""
    return on_screen(table)[table.cursor_row - round(table.scroll_y) + table.gutter.top + 1]


async def test_every_row_of_a_50k_pane_is_reachable_by_keys(loader: Any, settle: Any) -> None:
    rows = loader(None, date(2026, 11, 21)).rows["unsynced"]
    assert len(rows) == N
    app = make(loader)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        table = pane.table
        assert table.row_count == N
        assert table.border_title == "Unsynced — 50,000"
        assert str(app.main.query_one("#tabs").get_tab("tab-unsynced").label) == "Unsynced 50,000"
        lines = on_screen(table)
        assert "Unsynced — 50,000" in lines[0] and "Company" in lines[1] and rows[0].key in lines[2]
        # page down: the next page of rows is on screen, the cursor keeps its place on it
        page = table.page_height
        await pilot.press("pagedown")
        assert table.cursor_row == page and pane.current.key == rows[page].key
        assert rows[page].key in cursor_line(table) and rows[0].key not in "".join(on_screen(table))
        await pilot.press("down", "down", "up")
        assert pane.current.key == rows[page + 1].key and rows[page + 1].key in cursor_line(table)
        # end: the last of the 50,000 rows, on screen, its detail shown
        await pilot.press("end")
        assert pane.current.key == rows[-1].key and table.cursor_row == N - 1
        assert rows[-1].key in cursor_line(table) and rows[-1].key in on_screen(table)[-2]  # the bottom line
        detail = str(app.main.query_one("#detail-unsynced").render())
        assert detail == rows[-1].detail.splitlines()[0] or rows[-1].detail.startswith(detail.split("\n")[0])
        await pilot.press("home")
        assert pane.current.key == rows[0].key and round(table.scroll_y) == 0
        await pilot.press("G")  # the console's own "last row" key
        assert pane.current.key == rows[-1].key


async def test_filter_reaches_every_row_and_keeps_cursor_and_selection(loader: Any, settle: Any) -> None:
    data = loader(None, date(2026, 11, 21))
    app = make(loader)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        target = data.rows["unsynced"][40_000]  # far beyond any window a DataTable would hold
        await pilot.press("/", *target.key)
        await filtered(pilot, pane)
        assert pane.table.keys == [target.key]
        assert pane.table.border_title == f"Unsynced — 1 of 50,000 (filter: {target.key})"
        assert target.key in cursor_line(pane.table)
        await pilot.press("enter")  # keep the filter, back to the table
        assert pane.current is not None and pane.current.key == target.key
        await pilot.press("space")
        assert pane.selected == {target.key}
        # a refresh keeps the filter, the cursor and the selection
        count = app.refresh_count
        await pilot.press("f5")
        await settle(app, pilot)
        assert app.refresh_count == count + 1
        assert pane.table.keys == [target.key] and pane.current.key == target.key
        assert pane.selected == {target.key}
        assert "✓" in cursor_line(pane.table)  # the Sel mark
        # esc in the box clears the filter: every row is back, the cursor still on the target
        await pilot.press("/", "escape")
        await pilot.pause()
        assert pane.table.row_count == N and pane.current.key == target.key
        assert target.key in cursor_line(pane.table)  # scrolled to it, 40,000 rows down
        assert pane.table.border_title == "Unsynced — 50,000 · 1 selected"


async def test_filter_with_many_matches_and_select_all_takes_every_match(loader: Any, settle: Any) -> None:
    app = make(loader)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        await pilot.press("/", *"sub-01")  # sub-010000 … sub-019999
        await filtered(pilot, pane)
        assert pane.table.row_count == 10_000
        assert pane.table.border_title == "Unsynced — 10,000 of 50,000 (filter: sub-01)"
        await pilot.press("enter", "end")
        assert pane.current.key == "sub-019999"
        await pilot.press("a")
        assert len(pane.selected) == 10_000
        assert all(k.startswith("sub-01") for k in pane.selected)
        await pilot.press("backspace")  # not in the box: nothing happens to the filter
        assert pane.filter_text == "sub-01"


async def test_a_click_moves_the_cursor_and_a_second_click_selects(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        overview = app.main.pane("overview")
        table = overview.table
        keys = table.keys
        target = next(i for i, k in enumerate(keys) if overview.by_key[k].target and i > 0)
        row = overview.by_key[keys[target]]
        # the table's border is line 0, the header line 1: row i is on line i + 2
        await pilot.click(table, offset=(4, target + 2))
        assert table.cursor_row == target and overview.current.key == row.key
        assert app.main.active == "overview"
        await pilot.click(table, offset=(4, target + 2))  # a click on the cursor row: enter
        await pilot.pause()
        assert app.main.active == (row.target if row.target != "products" else "overview")
        await pilot.click(table, offset=(4, 1))  # the header: nothing moves
        assert table.cursor_row == target


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(("Id", "Name"), id="probe")


async def test_apply_keeps_the_cursor_on_its_key() -> None:
    app = OneTable()
    highlighted: list[str] = []

    def hook(message: object) -> None:
        if isinstance(message, KeyedTable.RowHighlighted):
            highlighted.append(message.key)

    async with app.run_test(size=(40, 12), message_hook=hook) as pilot:
        table = app.query_one(KeyedTable)
        table.apply((f"k{i}", (f"k{i}", f"name {i}"), "") for i in range(200))
        table.focus()
        await pilot.press("pagedown", "pagedown", "pagedown", "down")
        key = table.cursor_key
        assert key == f"k{3 * table.page_height + 1}" and key in cursor_line(table)
        # other rows gone, the order reversed, the cells changed: the cursor follows its key
        table.apply((f"k{i}", (f"k{i}", f"renamed {i}"), "") for i in reversed(range(1, 200, 3)))
        await pilot.pause()
        assert table.cursor_key == key and f"renamed {key[1:]}" in cursor_line(table)
        assert table.keys[0] == "k199" and table.row_count == 67
        # the cursor's key vanishes: the cursor stays on the same index, the new row is highlighted
        index = table.cursor_row
        table.apply((k, (k, "x"), "") for k in table.keys if k != key)
        await pilot.pause()
        assert table.cursor_row == index and table.cursor_key not in (key, None)
        assert highlighted[-1] == table.cursor_key
        table.apply(())
        await pilot.pause()
        assert (
            table.cursor_key is None
            and table.row_count == 0
            and on_screen(table)[0].split() == ["Id", "Name"]
        )


def test_row_view_filters_the_model_and_narrows() -> None:
    data = synthetic_data(3_000, prorate_every=0)
    view = RowView()
    view.set_rows(data.rows["unsynced"])
    assert len(view.matches) == 3_000 and view.title("Unsynced") == "Unsynced — 3,000"
    view.set_filter("sub-0029")
    assert [r.key for r in view.matches] == [f"sub-{i:06d}" for i in range(2900, 3000)]
    assert view.title("Unsynced", 2) == "Unsynced — 100 of 3,000 (filter: sub-0029) · 2 selected"
    view.set_filter("sub-00299")  # narrowing reuses the previous matches
    assert [r.key for r in view.matches] == [f"sub-{i:06d}" for i in range(2990, 3000)]
    view.set_filter("SUB-000001")  # case-folded
    assert [r.key for r in view.matches] == ["sub-000001"]
    view.set_filter("")
    assert len(view.matches) == 3_000
    in_order = view.in_order({"sub-000005", "sub-000002", "nope"})
    assert [r.key for r in in_order] == ["sub-000002", "sub-000005"]
    widths = view.widths()
    assert widths[0] == max(len(r.cells[0]) for r in data.rows["unsynced"])


def test_building_the_panes_is_linear(python_lines: Callable[[Callable[[], object]], int]) -> None:
    """Twice the plan, twice the work (quadratic would be four times): the Python lines that
    `model.build` runs for 1,000 and 2,000 subscriptions (1,200 and 2,400 plan lines) are counted,
    not timed. Its time at month-end scale is a bench figure (`bench.panes`, bench/RESULTS.md)."""
    work = {}
    for n in (1_000, 2_000):
        scenario, plan = synthetic_inputs(n)
        built: list[Any] = []
        work[n] = python_lines(lambda s=scenario, p=plan, b=built: b.append(model.build(s, p, today=AS_OF)))
        assert len(built[0].rows["unsynced"]) == n and len(built[0].rows["prorates"]) == n // 5
    assert work[2_000] <= 2.05 * work[1_000], work
