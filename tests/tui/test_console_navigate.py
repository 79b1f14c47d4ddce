"""Issue 13, "what operators ask for", Pilot: s sorts the active pane by the next column on screen
(money as money, quantities as numbers), S reverses, the header carries the arrow, the cursor stays
on its row; F finds a customer across every pane; h shows a subscription's history (seed 001's
History table); a key that does not apply says why."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import select

from engine.money import fmt_quantity
from tui.bindings import REGISTRY
from tui.rows import Row, column_index
from tui.view import number_of, numeric_cells, sort_rows

SIZE = (120, 40)


def notices(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


def header(pane: Any) -> list[str]:
    table = pane.table
    return [table._column_names[i] for i in table._shown]


def test_money_and_quantities_sort_by_value_and_blanks_last() -> None:
    rows = [
        Row("a", ("+$1,200.00",)),
        Row("b", ("—",)),
        Row("c", ("-$40.00",)),
        Row("d", ("$9.50",)),
        Row("e", ("+$240.00",)),
    ]
    assert [r.key for r in sort_rows(rows, 0, True, False)] == ["c", "d", "e", "a", "b"]
    assert [r.key for r in sort_rows(rows, 0, True, True)] == ["a", "e", "d", "c", "b"]
    # as text "+$1,200.00" < "+$240.00" < "-$40.00": what a text sort would wrongly give
    assert number_of("+$1,234.56") == Decimal("1234.56")
    assert number_of("−$3.00") == Decimal("-3.00")
    assert number_of("Mapped") is None
    assert numeric_cells(rows, 0)
    assert not numeric_cells([Row("x", ("7 → 6",))], 0)
    words = [Row("a", ("beta",)), Row("b", ("",)), Row("c", ("Alpha",))]
    assert [r.key for r in sort_rows(words, 0, False, False)] == ["c", "a", "b"]


def test_sort_keys_are_in_the_registry_and_help() -> None:
    keys = {c.id: c.keys for c in REGISTRY}
    assert keys["sort-column"] == "s" and keys["sort-reverse"] == "S"
    taken = [c.keys for c in REGISTRY if c.scope == "main"]
    assert taken.count("s") == 1 and taken.count("S") == 1


async def test_s_sorts_by_net_money_as_money_S_reverses_cursor_stays(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)
        pane = app.main.pane("unsynced")
        net = column_index("unsynced", "net")
        shown = [i - 1 for i in pane.table._shown if i > 0]
        assert net in shown
        pane.table.move_cursor(row=3)
        await pilot.pause()
        kept = pane.current.key
        for _ in range(shown.index(net) + 1):
            await pilot.press("s")
        await pilot.pause()
        values = [number_of(r.cells[net]) for r in pane.visible_rows()]
        present = [v for v in values if v is not None]
        assert len(present) > 2 and present == sorted(present)
        assert "Net $/mo ▲" in header(pane)
        assert pane.current.key == kept
        assert any("Sorted by Net $/mo ▲" in n for n in notices(app))
        await pilot.press("S")
        await pilot.pause()
        present = [v for r in pane.visible_rows() if (v := number_of(r.cells[net])) is not None]
        assert present == sorted(present, reverse=True)
        assert "Net $/mo ▼" in header(pane)
        assert pane.current.key == kept
        # the sort survives a recompute of the rows
        pane.set_rows(app.data.rows_for("unsynced", False))
        present = [v for r in pane.visible_rows() if (v := number_of(r.cells[net])) is not None]
        assert present == sorted(present, reverse=True)
        # after the last column on screen: the pane's own order again, no arrow
        for _ in range(len(shown) - shown.index(net)):
            await pilot.press("s")
        await pilot.pause()
        assert [r.key for r in pane.visible_rows()] == [r.key for r in app.data.rows_for("unsynced", False)]
        assert not any("▲" in h or "▼" in h for h in header(pane))


async def test_S_without_a_sort_says_why(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("S")
        await pilot.pause()
        assert any("Not sorted: s sorts by a column first" in n for n in notices(app))


def status_text(app: Any) -> str:
    from tui.widgets.header import StatusHeader

    return str(app.main.query_one(StatusHeader).render())


async def test_F_finds_a_customer_in_every_pane_punctuation_ignored_esc_clears(
    make_app: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        data = app.data
        # the customer with the most unsynced rows, typed the way an operator might
        counts: dict[str, int] = {}
        for row in data.rows["unsynced"]:
            counts[row.company_id] = counts.get(row.company_id, 0) + 1
        company = max(counts, key=lambda c: counts[c])
        name = data.company(company)
        typed = ".".join(name.upper().split())  # "QUARRY.HILL.FOODS" for "Quarry Hill Foods, LLC"
        await pilot.press("F")
        await pilot.pause()
        app.screen.query_one("#text").value = typed
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is app.main
        wanted = app.main.matching_companies(typed)
        assert company in wanted
        unsynced = app.main.pane("unsynced").visible_rows()
        assert len(unsynced) == sum(counts[c] for c in wanted if c in counts)
        for pane in ("customers", "unsynced", "arrears", "prorates", "errors"):
            shown = app.main.pane(pane).visible_rows()
            assert all((r.company_id or r.key) in wanted for r in shown), pane
        assert [r.key for r in app.main.pane("customers").visible_rows()] == [
            r.key for r in data.rows["customers"] if r.key in wanted
        ]
        assert f"customer: {typed}" in status_text(app)
        assert f"customer: {typed}" in app.main.pane("unsynced").table.border_title
        # Overview's totals are not narrowed
        assert len(app.main.pane("overview").visible_rows()) == len(data.rows["overview"])
        await pilot.press("escape")
        await pilot.pause()
        assert "customer:" not in status_text(app)
        assert len(app.main.pane("unsynced").visible_rows()) == len(data.rows["unsynced"])


async def test_F_with_no_matching_customer_says_so_and_keeps_every_row(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("F")
        await pilot.pause()
        app.screen.query_one("#text").value = "zz no such customer zz"
        await pilot.press("enter")
        await settle(app, pilot)
        assert any("No customer's name holds 'zz no such customer zz'" in n for n in notices(app))
        assert len(app.main.pane("unsynced").visible_rows()) == len(app.data.rows["unsynced"])


def _seat_sub_with_history(scenario: Any) -> Any:
    """A subscription whose second quantity never comes back after it (so a sync at it has a clear
    before and after)."""
    return next(
        s
        for s in scenario.vendor.subscriptions
        if len(s.history) >= 3 and all(h.quantity != s.history[1].quantity for h in s.history[2:])
    )


def test_history_reads_the_store_before_after_and_what_a_sync_recorded(store: Any, scenario: Any) -> None:
    from datetime import date as day

    from engine.history import subscription_history
    from engine.store import tables as t

    sub = _seat_sub_with_history(scenario)
    with store.session() as s:  # start from nothing synced for it
        for row in s.exec(select(t.SyncedKeyRow)).all():
            if row.key.startswith(sub.id + ":"):
                s.delete(row)
        s.commit()
    entries = subscription_history(store, sub.id)
    assert [(e.effective_date, e.change, e.after) for e in entries] == [
        (h.effective_date, h.action, h.quantity) for h in sub.history
    ]
    assert entries[0].before is None
    assert [e.before for e in entries[1:]] == [h.quantity for h in sub.history[:-1]]
    assert all(e.synced_on is None for e in entries)
    # a sync wrote the recurring line at the second change's quantity: it and the first are synced
    second = sub.history[1]
    with store.session() as s:
        s.add(t.SyncedKeyRow(key=f"{sub.id}:recurring", quantity=second.quantity, synced_on=day(2026, 1, 2)))
        s.commit()
    entries = subscription_history(store, sub.id)
    assert entries[0].synced_on == entries[1].synced_on == day(2026, 1, 2)
    assert all(e.synced_on is None for e in entries[2:])
    # the third change's prorate line was synced: that change is synced on its own
    third = sub.history[2].effective_date
    with store.session() as s:
        s.add(t.SyncedKeyRow(key=f"{sub.id}:prorate:{third.isoformat()}", synced_on=day(2026, 2, 3)))
        s.commit()
    assert subscription_history(store, sub.id)[2].synced_on == day(2026, 2, 3)
    assert subscription_history(store, "no-such-subscription") == []


async def test_h_shows_the_subscriptions_history_and_says_why_elsewhere(make_app: Any, settle: Any) -> None:
    from textual.widgets import DataTable

    from tui.screens.history import HistoryModal

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("h")  # Overview: not a subscription's row
        await pilot.pause()
        assert app.screen is app.main
        assert any("h shows a subscription's history" in n for n in notices(app))
        await pilot.press("3")
        await settle(app, pilot)
        pane = app.main.pane("unsynced")
        sub = app.data.lines[pane.current.line_keys[0]].subscription_id
        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, HistoryModal)
        table = app.screen.query_one(DataTable)
        stored = app.workspace.store.snapshot(None)
        history = next(s for s in stored.vendor.subscriptions if s.id == sub).history
        assert table.row_count == len(history)
        last = [str(c) for c in table.get_row_at(table.row_count - 1)]
        assert last[0] == history[-1].effective_date.isoformat()
        assert last[2].endswith(f"→ {fmt_quantity(history[-1].quantity)}")
        assert last[3] == "vendor"
        assert last[4] == "no" or last[4].startswith("yes, ")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main
