"""Issue 13's remaining console items, Pilot at 80×24 where the item is about fitting: an
acknowledged warning shows in its Errors row and sorts after the open ones (and the Overview
counts open vs acknowledged); F narrows the Products screen; the header keeps the
invoiced-through date at 80 columns; notifications stay compact."""

from __future__ import annotations

from typing import Any

from engine import actions
from engine.rules.findings import finding_key
from tui.model import ack_state
from tui.saved_view import decode_view, encode_view

SMALL = (80, 24)


def screen_lines(app: Any) -> list[str]:
    """The text on screen, a line per terminal row (what the operator reads, toasts included)."""
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


def test_ack_state_keeps_the_date_when_the_name_is_long() -> None:
    assert ack_state(None) == "open"
    assert ack_state(("alice", "2026-12-01T09:30+00:00", "credit issued")) == "ack'd by alice 12-01"
    long = ack_state(("bartholomew.q.operator", "2026-12-01T09:30+00:00", "x"))
    assert long == "ack'd by bartholom… 12-01"
    assert len(long) <= 25


async def test_an_acknowledged_warning_shows_in_its_row_after_the_open_ones(
    make_app: Any, store: Any, settle: Any
) -> None:
    plan = actions.current_plan(store)
    credit = next(f for f in plan.findings if f.code == "credit_due")
    key = finding_key(credit)
    warnings = [f for f in plan.findings if f.severity == "warning"]
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        overview = app.main.pane("overview").by_key["errors"]
        assert overview.cells[2].startswith(f"{len(plan.findings)} open, 0 acknowledged")
        await pilot.press("6")
        await settle(app, pilot)
        pane = app.main.pane("errors")
        keys = pane.table.keys
        assert keys.index(key) < len(keys) - 1  # in plan order while open
        pane.table.move_cursor(row=keys.index(key))
        await pilot.pause()
        await pilot.press("k", *"credit issued CN-7", "enter")
        await settle(app, pilot)
        [ack] = actions.acknowledgements(store).values()
        keys = pane.table.keys
        assert keys[-1] == key  # acknowledged: after every open row
        state = ack_state((ack.by, ack.at, ack.reason))
        assert state.endswith(ack.at[5:10])
        row = next(line for line in screen_lines(app) if "ack'd" in line)
        assert state in row  # who and when, whole, in the row at 80 columns
        assert "ERROR" not in row and "open" not in row
        assert pane.current is not None and pane.current.key == key  # the cursor stayed on it
        assert any("Acknowledged by" in line and "credit issued CN-7" in line for line in screen_lines(app))
        assert decode_view(encode_view(app.data)).acknowledged == app.data.acknowledged  # saved too
        overview = app.main.pane("overview").by_key["errors"]
        assert overview.cells[2].startswith(f"{len(plan.findings) - 1} open, 1 acknowledged")
        assert f"{len(warnings)} warnings" in overview.detail
        # undone: open again, back in plan order
        await pilot.press("U", "y")
        await settle(app, pilot)
        assert actions.acknowledgements(store) == {}
        assert pane.table.keys.index(key) < len(pane.table.keys) - 1
        assert (
            app.main.pane("overview")
            .by_key["errors"]
            .cells[2]
            .startswith(f"{len(plan.findings)} open, 0 acknowledged")
        )


async def test_find_customer_narrows_the_products_screen_and_esc_clears_it(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        data = app.data
        await pilot.press("F", *"Lakeside", "enter")
        await settle(app, pilot)
        companies = app.main.matching_companies("Lakeside")
        assert companies
        wanted = actions.products_of_companies(store, companies)
        every = data.rows["products"]
        assert wanted and len(wanted) < len(every)
        await pilot.press("p")
        await settle(app, pilot)
        pane = app.screen.pane
        shown = {r.key.split("|")[0] for r in pane.visible_rows()}
        assert shown == wanted  # only the products the customer's subscriptions use
        assert "customer: Lakeside" in pane.table.border_title
        assert any("customer: Lakeside" in line for line in screen_lines(app)[:4])
        # F on Products searches again (for every pane too)
        await pilot.press("F")
        await pilot.pause()
        app.screen.query_one("#text").value = "Zephyr"
        await pilot.press("enter")
        await settle(app, pilot)
        zephyr = actions.products_of_companies(store, app.main.matching_companies("Zephyr"))
        assert {r.key.split("|")[0] for r in app.screen.pane.visible_rows()} == zephyr != wanted
        assert app.main.customer_search == "Zephyr"
        # esc shows every product again (and every customer on the panes), a second esc goes back
        await pilot.press("escape")
        await settle(app, pilot)
        assert len(app.screen.pane.visible_rows()) == len(every)
        assert "customer:" not in app.screen.pane.table.border_title
        assert app.main.customer_search == ""
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main


async def test_the_header_keeps_store_psa_as_of_and_invoiced_through_at_80_columns(
    store: Any, settle: Any
) -> None:
    from tui.app import TrueupApp
    from tui.workspace import StoreWorkspace

    from .conftest import AS_OF, FRESH, NOW

    def make() -> TrueupApp:
        label = "SANDBOX — demo MSP · sandbox.db"  # the sandbox's own label (engine.workspace)
        workspace = StoreWorkspace(store, label=label, sandbox=True, freshness=FRESH)
        return TrueupApp(workspace, clock=lambda: NOW, as_of=AS_OF, refresh_interval=None, save_delay=0)

    app = make()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        header = screen_lines(app)[0]
        for text in (
            "SANDBOX",
            "sandbox.db",
            app.data.psa,
            "2026-11-21",
            app.data.invoiced_through.isoformat(),
        ):
            assert text in header, (text, header)
        await pilot.press("F", *"Lakeside", "enter")  # a customer search: the dates still stay
        await settle(app, pilot)
        header = screen_lines(app)[0]
        assert app.data.invoiced_through.isoformat() in header and "sandbox.db" in header
        await pilot.press("p")  # the Products screen's header too
        await settle(app, pilot)
        header = screen_lines(app)[0]
        assert app.data.invoiced_through.isoformat() in header and app.data.psa in header
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:  # room: the labels in full
        await settle(app, pilot)
        header = screen_lines(app)[0]
        assert "invoiced through 2026-11-30 (I)" in header and "as of 2026-11-21 (o)" in header


def test_a_long_store_url_gives_way_before_the_dates() -> None:
    from datetime import date

    from tui.widgets.header import HeaderFields, header_text

    label = "Pax8 → ConnectWise (na.myconnectwise.net) · postgresql://trueup@db.example.com:5432/trueup"
    fields = HeaderFields(
        label, False, date(2026, 11, 21), date(2026, 11, 30), {}, "", "Quarry Hill", "ConnectWise"
    )
    text = header_text(fields, 80).plain
    assert len(text) <= 80
    assert "as of 2026-11-21" in text and "2026-11-30" in text and "ConnectWise" in text
    assert text.startswith(" postgres") and "/trueup" in text  # the store, cut in its middle
    wide = header_text(fields, 200).plain
    assert "invoiced through 2026-11-30 (I)" in wide and "customer: Quarry Hill (esc: all)" in wide


async def test_notifications_take_one_or_two_lines_at_80x24(make_app: Any, settle: Any) -> None:
    from textual.widgets._toast import Toast

    app = make_app()
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("6")
        await settle(app, pilot)
        rows_before = app.main.pane("errors").table.row_count
        await pilot.press("k")  # an error: k says why, in one line
        app.notify("Refresh failed: " + "the vendor answered 503 Service Unavailable " * 2, title="Refused")
        await settle(app, pilot)
        toasts = list(app.screen.query(Toast))
        assert len(toasts) == 2
        assert all(1 <= t.region.height <= 2 for t in toasts), [t.region for t in toasts]
        assert "Refused: Refresh failed" in str(toasts[1].render())  # the title is on the message's line
        # the table's rows stay readable behind them: every line of the table but two or so
        table = app.main.pane("errors").table
        covered = {y for t in toasts for y in range(t.region.y, t.region.bottom)}
        assert len(covered & set(range(table.region.y, table.region.bottom))) <= 2
        assert rows_before == table.row_count
