"""Pilot tests of the per-customer path: `R` re-reads the customer under the cursor and patches only
its rows; an action recomputes only the customers it touched; the edit-date modal writes through
the core (refused when the store moved since the figures shown)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from engine import actions
from engine.scenario import HistoryRow
from tui import model
from tui.screens.edit_date import EditDateModal

SIZE = (120, 40)
AS_OF = date(2026, 11, 21)


async def test_r_refreshes_the_customer_under_the_cursor_and_patches_its_rows(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        row = next(
            r
            for r in pane.rows
            if r.company_id and r.line_keys and app.data.lines[r.line_keys[0]].kind == "recurring"
        )
        pane.table.move_cursor(row=pane.view.index[row.key])
        await pilot.pause()
        other = next(r for r in pane.rows if r.company_id != row.company_id)
        sub = store.subscriptions_where(ids=[row.key])[0]

        def vendor_reports_an_increase(company: str) -> None:  # what the targeted refresh writes
            last = sub.history[-1]
            bumped = HistoryRow(
                id=f"{sub.id}-more",
                action="increase",
                quantity=last.quantity + Decimal(3),
                effective_date=date(2026, 11, 2)
                if last.effective_date < date(2026, 11, 2)
                else last.effective_date,
            )
            store.upsert_subscriptions([sub.model_copy(update={"history": [*sub.history, bumped]})])

        workspace = app.workspace
        original = workspace.refresh_customer

        async def refresh_customer(company: str, progress: Any = None) -> Any:
            vendor_reports_an_increase(company)
            return await original(company, progress)

        workspace.refresh_customer = refresh_customer
        await pilot.press("R")
        await settle(app, pilot)
        assert workspace.customer_refreshes == [row.company_id]
        assert app.core.recomputed[-1] is not None and row.company_id in app.core.recomputed[-1]
        new = pane.by_key[row.key]
        assert new.cells[3] != row.cells[3]  # the new quantity is on screen …
        assert pane.by_key[other.key] is other  # … and another customer's row was not rebuilt
        full = model.load(store, AS_OF, today=AS_OF)
        assert app.data.rows == full.rows and app.data.plan.lines == full.plan.lines


async def test_an_ignore_recomputes_only_its_customer(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        row = pane.current
        assert row is not None
        await pilot.press("i", *"asked", "enter")
        await settle(app, pilot)
        assert row.key not in pane.by_key
        assert app.core.recomputed[-1] is not None and row.company_id in app.core.recomputed[-1]
        assert len(app.core.recomputed[-1]) < len(app.data.company_names)
        assert app.data.rows == model.load(store, AS_OF, today=AS_OF).rows


async def test_the_edit_date_modal_is_refused_when_the_store_moved_since_the_figures(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        row = next(r for r in pane.rows if r.editable)
        pane.table.move_cursor(row=pane.view.index[row.key])
        await pilot.pause()
        await pilot.press("e")
        assert isinstance(app.screen, EditDateModal)
        actions.set_invoiced_through(store, date(2026, 11, 30))  # another operator, meanwhile
        app.screen.query_one("#date-input").value = "2026-12-01"
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, EditDateModal)  # refused inline, nothing saved
        assert "changed since they were computed" in str(app.screen.query_one("#date-error").render())
        assert not store.snapshot().overrides
        assert app.data.invoiced_through == date(2026, 11, 30)  # and the figures were recomputed


async def test_the_ui_loop_measures_no_pane_the_model_measured(
    make_app: Any, settle: Any, monkeypatch: Any
) -> None:
    """A pane's column widths come with the figures (measured in the worker with the rows, saved
    with the view): neither an action nor a full reload measures a pane's rows on the UI loop
    (45,000 rows: ≈ 45 ms), and the columns still hold every cell shown."""
    from tui import view

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)

        def measured(rows: Any) -> list[int]:
            raise AssertionError("a pane's rows measured on the UI loop")

        monkeypatch.setattr(view, "row_widths", measured)
        pane = app.main.pane("unsynced")
        before = pane.table.row_count
        await pilot.press("i", *"bundle", "enter")
        await settle(app, pilot)
        assert pane.table.row_count == before - 1
        app.reload()  # the store as it is, every pane set again
        await settle(app, pilot)
        await pilot.press("t")  # the ignored rows too
        await settle(app, pilot)
        monkeypatch.undo()
        widths = pane.view.widths()
        assert all(w >= m for w, m in zip(widths, view.row_widths(pane.rows), strict=True))
