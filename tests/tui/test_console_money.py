"""Issue 13 at the console: net money on screen, columns that fit 80×24, provisional usage held,
guards. Pilot tests against the demo MSP as of 2026-11-21."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from engine.money import fmt_money
from engine.net import fmt_net, line_net, old_line_of
from tui.app import TrueupApp
from tui.rows import COLUMNS, column_index
from tui.screens.confirm import ConfirmModal
from tui.screens.review import NET_COLUMN, ReviewScreen
from tui.workspace import StoreWorkspace

SMALL = (80, 24)
EARLY = date(2026, 11, 4)  # before day 5: the demo's usage summaries are provisional


def _early_app(store: Any, executor: Any) -> TrueupApp:
    workspace = StoreWorkspace(store, label="SANDBOX — test", sandbox=True, freshness={})
    return TrueupApp(
        workspace,
        clock=lambda: datetime(2026, 11, 4, 9, 30),
        as_of=EARLY,
        refresh_interval=None,
        save_delay=0,
        executor_factory=lambda ws: executor,
    )


def _money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", "").replace("+", "") or "0")


def _confirm_body(app: Any) -> str:
    return str(app.screen.query_one(".modal").query("Static")[1].render())


async def test_confirm_net_equals_the_sum_of_the_review_net_column(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        table = review.query_one("#review-table")
        column = sum(
            _money(table.rows.row(i)[1][NET_COLUMN])
            for i in range(table.row_count)
            if not table.rows.row(i)[0].startswith("group:")
        )
        gross = sum((x.total_price for x in review.lines), Decimal(0))
        assert column != gross  # the headline is not the gross any more
        await pilot.press("y")
        assert isinstance(app.screen, ConfirmModal)
        body = _confirm_body(app)
        assert f"net {fmt_net(column)}/month" in body, body
        assert f", to {app.data.psa}" in body and "one-time $" in body


async def test_every_line_pane_shows_who_what_change_money_and_state_at_80x24(
    make_app: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        for key, pane_name, money in (
            ("3", "unsynced", "Net $/mo"),
            ("4", "arrears", "Net $/mo"),
            ("5", "prorates", "One-time"),
        ):
            await pilot.press(key)
            await settle(app, pilot)
            table = app.main.pane(pane_name).table
            titles = [c.title for c in table.shown_columns]
            change = "Increase" if pane_name == "prorates" else "Old → new"
            for title in ("Company", "Product", change, money, "State"):
                assert title in titles, (pane_name, titles)
            assert table.table_width <= table.fit_width  # nothing off-screen to the right


async def test_a_decrease_shows_the_seats_dropped_not_the_line_value(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        data = app.data
        # any recurring seat decrease of the demo (the demo's story lines move as customers are added)
        line = next(
            x
            for x in data.plan.lines
            if x.kind.value == "recurring"
            and x.previous_quantity is not None
            and 0 < x.quantity < x.previous_quantity
            and x.unit_price > 0
        )
        dropped = line.previous_quantity - line.quantity
        row = app.main.pane("unsynced").by_key[line.subscription_id]
        net = row.cells[column_index("unsynced", "net")]
        assert (
            row.cells[column_index("unsynced", "change")] == f"{line.previous_quantity:f} → {line.quantity:f}"
        )
        # the invoice changes by the seats dropped, not by the line's whole value
        assert net == fmt_net(line_net(line, old_line_of(line, data.psa_lines)).monthly)
        assert net == f"-{fmt_money(dropped * line.unit_price)}"
        assert fmt_money(line.total_price) not in row.cells  # the gross is in the detail only
        assert f"gross {fmt_money(line.total_price)}" in row.detail


async def test_right_pages_to_the_dropped_columns_not_one_character(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        await settle(app, pilot)
        pane = app.main.pane("prorates")
        table = pane.table
        first = [c.key for c in table.shown_columns]
        assert "formula" not in first and table.page_count > 1
        assert "Formula:" in str(pane.query_one(".detail").render())  # the rest is in the detail
        await pilot.press("right")
        await pilot.pause()
        second = [c.key for c in table.shown_columns]
        assert second[:3] == ["sel", "customer", "product"]  # pinned in front
        assert set(second[3:]).isdisjoint(first) and table.scroll_x == 0
        assert table.border_subtitle == f"columns 2/{table.page_count} ←/→"
        await pilot.press("left")
        await pilot.pause()
        assert [c.key for c in table.shown_columns] == first


async def test_provisional_usage_is_held_until_included(store: Any, executor: Any, settle: Any) -> None:
    app = _early_app(store, executor)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        provisional = {x.key for x in app.data.plan.lines if x.provisional}
        assert provisional  # the demo's usage summaries before day 5
        await pilot.press("v")
        await settle(app, pilot)
        assert isinstance(app.screen, ReviewScreen)
        assert provisional.isdisjoint(x.key for x in app.screen.lines)
        assert f"{len(provisional)} provisional held" in str(app.screen.query_one("#review-title").render())
        await pilot.press("escape")
        await pilot.press("P")
        assert isinstance(app.screen, ConfirmModal) and "PROVISIONAL" in _confirm_body(app)
        await pilot.press("y")
        await pilot.press("v")
        await settle(app, pilot)
        assert provisional <= {x.key for x in app.screen.lines}


async def test_a_future_as_of_and_a_mid_month_invoiced_through_are_not_taken_silently(
    store: Any, executor: Any, settle: Any
) -> None:
    app = _early_app(store, executor)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        as_of = app.data.as_of
        await pilot.press("o")
        app.screen.query_one("Input").value = "2026-11-09"
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmModal)
        assert "after today" in _confirm_body(app) and "4 provisional line(s)" in _confirm_body(app)
        await pilot.press("n")
        await settle(app, pilot)
        assert app.data.as_of == as_of  # refused: nothing recomputed
        await pilot.press("I")
        app.screen.query_one("Input").value = "2026-11-15"
        await pilot.press("enter")
        await settle(app, pilot)
        error = str(app.screen.query_one("#date-error").render())
        assert "not the last day of a month" in error
        assert app.data.invoiced_through.isoformat() == "2026-11-30"
        app.screen.query_one("Input").value = "2026-12-31"  # a month end is taken
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.data.invoiced_through.isoformat() == "2026-12-31"


async def test_leaving_or_quitting_a_running_sync_asks(make_app: Any, executor: Any, settle: Any) -> None:
    executor.delay = 0.05
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        review = app.screen
        await pilot.press("y", "y")
        await pilot.pause(0.1)
        assert review.running
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmModal) and "A sync is running" in _confirm_body(app)
        await pilot.press("n")
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmModal) and "Cancel it?" in _confirm_body(app)
        await pilot.press("y")
        await settle(app, pilot)
        assert not review.running and any(o.startswith("skipped") for o in review.outcomes.values())


def test_columns_never_drop_money_change_or_state() -> None:
    for pane in ("unsynced", "arrears", "prorates"):
        by_key = {c.key: c for c in COLUMNS[pane]}
        money = by_key.get("net") or by_key["one_time"]
        for column in (by_key["customer"], by_key["product"], by_key["change"], money, by_key["state"]):
            assert column.priority == 0, (pane, column)


async def test_the_map_dialog_preselects_the_near_match(make_app: Any, settle: Any) -> None:
    from tui.screens.map_company import MapCompanyModal

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        pane = app.main.pane("customers")
        target = next(r for r in pane.rows if r.cells[0] == "Quarry Hill Foods LLC")
        pane.table.move_cursor(row=pane.table.keys.index(target.key))
        await pilot.pause()
        await pilot.press("m")
        assert isinstance(app.screen, MapCompanyModal)
        assert "Suggested: Quarry Hill Foods, L.L.C." in str(app.screen.query_one(".modal-note").render())
        options = app.screen.query_one("OptionList")
        chosen = options.get_option_at_index(options.highlighted).id
        name = app.data.psa_company_names[chosen]
        assert name == "Quarry Hill Foods, L.L.C."
        await pilot.press("enter")
        await settle(app, pilot)
        assert pane.by_key[target.key].cells[1] == name


async def test_w_writes_the_pane_and_the_review_as_csv_and_says_where(
    make_app: Any, settle: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    import csv

    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "w")
        await settle(app, pilot)
        path = tmp_path / "trueup-unsynced-2026-11-21.csv"
        rows = list(csv.reader(path.open(encoding="utf-8")))
        # every column, also those the 80-column screen drops, and every row
        assert rows[0] == ["Sel", *(c.title for c in COLUMNS["unsynced"])]
        assert len(rows) - 1 == len(app.main.pane("unsynced").rows)
        assert any(str(path) in n.message for n in app._notifications)
        await pilot.press("v")
        await settle(app, pilot)
        await pilot.press("w")
        await settle(app, pilot)
        review = list(csv.reader((tmp_path / "trueup-review-2026-11-21.csv").open(encoding="utf-8")))
        assert review[0][0] == "Line" and review[0][NET_COLUMN] == "Net $/mo" and len(review) > 2
