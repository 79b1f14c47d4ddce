"""Pilot tests: the operator's real keys, asserting on state and on what the engine stored."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import select

from engine.plan import LineKind
from engine.store import tables as t
from tui.rows import cell
from tui.screens.confirm import ConfirmModal
from tui.screens.edit_date import EditDateModal
from tui.screens.help import HelpModal
from tui.screens.ignore import IgnoreModal
from tui.screens.map_company import MapCompanyModal, SuggestionsModal
from tui.screens.review import ReviewScreen

SIZE = (120, 40)


def ignore_rows(store: Any) -> dict[str, t.IgnoreRow]:
    with store.session() as s:
        return {r.key: r for r in s.exec(select(t.IgnoreRow))}


def override_rows(store: Any) -> dict[str, t.OverrideRow]:
    with store.session() as s:
        return {r.key: r for r in s.exec(select(t.OverrideRow))}


def mappings(store: Any) -> dict[str, str]:
    with store.session() as s:
        return {r.vendor_id: r.psa_id for r in s.exec(select(t.CompanyMappingRow))}


async def test_loads_every_pane_with_counts(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        main = app.main
        assert app.data is not None and app.data.as_of == date(2026, 11, 21)
        prorates = [x for x in app.data.plan.lines if x.kind in (LineKind.PRORATE, LineKind.EXTRA_MONTHS)]
        assert main.pane("prorates").table.row_count == len(prorates)
        assert main.pane("prorates").table.border_title == f"Prorates — {len(prorates)}"
        assert main.pane("errors").table.row_count == len(app.data.plan.findings)
        assert main.pane("overview").table.row_count == 8


async def test_overview_enter_jumps_to_pane(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.main.active == "overview"
        await pilot.press("enter")  # first line: customers not mapped
        await settle(app, pilot)
        assert app.main.active == "customers"


async def test_ignore_removes_row_and_stores_reason_then_restore(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        key = pane.current.key
        company, product = (
            cell(pane.current, "unsynced", "customer"),
            cell(pane.current, "unsynced", "product"),
        )
        before = pane.table.row_count
        await pilot.press("i")
        assert isinstance(app.screen, IgnoreModal)
        # the operator sees which line: its company and product by name, not the plan key
        title = str(app.screen.query_one(".modal-title").render())
        assert title == f"Ignore {company} · {product}" and key not in title
        await pilot.press(*"customer asked", "enter")
        await settle(app, pilot)
        assert key not in pane.table.keys
        assert pane.table.row_count == before - 1
        row = ignore_rows(store)[key]
        assert row.reason == "customer asked" and row.mode == "until_restored"
        # t shows ignored items (who/when/why), r restores
        await pilot.press("t")
        await settle(app, pilot)
        shown = "ignored:" + key
        assert shown in pane.table.keys
        assert "IGNORED by" in pane.by_key[shown].detail and "customer asked" in pane.by_key[shown].detail
        pane.table.move_cursor(row=pane.table.keys.index(shown))
        await pilot.pause()
        await pilot.press("r")
        await settle(app, pilot)
        assert key not in ignore_rows(store)
        assert key in pane.by_key and not pane.by_key[key].ignored
        await pilot.press("t")
        await settle(app, pilot)
        assert pane.table.row_count == before


async def test_ignore_this_change_on_a_prorate(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        pane = app.main.pane("prorates")
        key = pane.current.key
        await pilot.press("i", "tab", *"dup", "enter")
        await settle(app, pilot)
        assert ignore_rows(store)[key].mode == "this_change"
        assert key not in pane.table.keys


async def test_invalid_date_refused_inline_nothing_saved(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        pane = app.main.pane("prorates")
        key = pane.current.key
        await pilot.press("e")
        assert isinstance(app.screen, EditDateModal)
        box = app.screen.query_one("Input")
        box.value = "2026-12-15"
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, EditDateModal)
        error = str(app.screen.query_one("#date-error").render())
        assert "2026-12-15 is not the first of a month" in error
        assert key not in override_rows(store)
        box.value = "2026-11-01"
        await pilot.press("enter")
        await settle(app, pilot)
        assert "before 2026-12-01" in str(app.screen.query_one("#date-error").render())
        assert key not in override_rows(store)
        box.value = "2027-01-01"
        await pilot.press("enter")
        await settle(app, pilot)
        assert not isinstance(app.screen, EditDateModal)
        assert override_rows(store)[key].effective_date == date(2027, 1, 1)
        assert app.data.lines[key].effective_date == date(2027, 1, 1)
        assert pane.current.key == key  # the cursor survived the reload


async def test_bulk_date_is_all_or_nothing(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        pane = app.main.pane("unsynced")
        # one subscription with only creates, one with an update (whose date cannot move)
        creates = next(r for r in pane.rows if all(app.data.lines[k].action == "create" for k in r.line_keys))
        update = next(r for r in pane.rows if any(app.data.lines[k].action == "update" for k in r.line_keys))
        pane.selected = {creates.key, update.key}
        pane.redraw()
        await pilot.pause()
        await pilot.press("E")
        assert isinstance(app.screen, EditDateModal)
        app.screen.query_one("Input").value = "2027-01-01"
        await pilot.press("enter")
        await settle(app, pilot)
        assert "No date was changed" in str(app.screen.query_one("#date-error").render())
        assert override_rows(store) == {}
        await pilot.press("escape")
        pane.selected = {creates.key}
        pane.redraw()
        await pilot.pause()
        await pilot.press("E")
        app.screen.query_one("Input").value = "2027-01-01"
        await pilot.press("enter")
        await settle(app, pilot)
        assert set(override_rows(store)) == set(creates.line_keys)


async def test_space_and_a_select(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        pane = app.main.pane("prorates")
        first = pane.current.key
        await pilot.press("space")
        assert pane.selected == {first}
        assert "1 selected" in str(pane.table.border_title)
        await pilot.press("a")
        assert len(pane.selected) == pane.table.row_count
        await pilot.press("a")
        assert pane.selected == set()


async def test_filter_narrows_and_escape_clears(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2", "/", *"bakery")
        pane = app.main.pane("customers")
        assert pane.table.row_count == 1
        assert "1 of" in str(pane.table.border_title)
        await pilot.press("escape")
        assert pane.table.row_count == len(pane.rows)


async def test_map_unmap_and_generate(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        pane = app.main.pane("customers")
        unmapped = [r for r in pane.rows if r.cells[2] == "Not mapped"]
        assert unmapped
        target = next(r for r in unmapped if r.cells[0] == "Sunrise Bakery & Café")
        pane.table.move_cursor(row=pane.table.keys.index(target.key))
        await pilot.pause()
        await pilot.press("m")
        assert isinstance(app.screen, MapCompanyModal)
        free = next(cid for cid, name in app.data.psa_companies if cid not in mappings(store).values())
        name = app.data.psa_company_names[free]
        app.screen.query_one("#search").value = name
        await pilot.pause()
        await pilot.press("enter")
        await settle(app, pilot)
        assert mappings(store)[target.key] == free
        assert pane.by_key[target.key].cells[2] != "Not mapped"
        await pilot.press("u")  # unmapping asks first (issue 13): nothing changes until y
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmModal) and target.key in mappings(store)
        await pilot.press("y")
        await settle(app, pilot)
        assert target.key not in mappings(store)
        assert pane.by_key[target.key].cells[2] == "Not mapped"
        # generate: exact matches applied, near matches listed for one-key confirmation
        await pilot.press("g")
        await settle(app, pilot)
        assert isinstance(app.screen, SuggestionsModal)
        suggestion = app.screen._suggestions[0]
        await pilot.press("y", "escape")
        await settle(app, pilot)
        assert mappings(store)[suggestion[0]] == suggestion[2]


async def test_review_groups_and_totals(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        pane = app.main.pane("prorates")
        await pilot.press("space", "space")
        chosen = sorted(pane.selected)
        await pilot.press("v")
        await settle(app, pilot)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert sorted(x.key for x in review.lines) == chosen
        keys = review.query_one("#review-table").keys
        assert all(k in keys for k in chosen)
        assert any(k.startswith("group:") for k in keys)
        total = sum(app.data.lines[k].total_price for k in chosen)
        from engine.money import fmt_money

        assert f"Grand total {fmt_money(total)}" in str(review.query_one("#review-totals").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, ReviewScreen)


async def test_review_everything_when_nothing_selected(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        assert len(app.screen.lines) == len(app.data.plan.lines)
        assert "findings concern these lines" in str(app.screen.query_one("#review-findings").render())


async def test_confirm_runs_executor_and_shows_outcomes(make_app: Any, executor: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5", "space", "space", "space", "v")
        await settle(app, pilot)
        review = app.screen
        await pilot.press("y")
        assert isinstance(app.screen, ConfirmModal)
        assert "Write 3 lines" in str(app.screen.query_one(".modal").query("Static")[1].render())
        await pilot.press("n")
        assert executor.calls == []
        await pilot.press("s", "y")
        await settle(app, pilot)
        assert len(executor.calls) == 1 and len(executor.calls[0]) == 3
        assert set(review.outcomes) == set(executor.calls[0])
        assert list(review.outcomes.values())[1].startswith("conflict")
        assert "1 conflict, 2 written" in str(review.query_one("#review-totals").render())


async def test_cancel_stops_after_line_in_flight(make_app: Any, executor: Any, settle: Any) -> None:
    executor.delay = 0.05
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        review = app.screen
        await pilot.press("y", "y")
        await pilot.pause(0.12)
        await pilot.press("x")
        await settle(app, pilot)
        assert review.cancel_event.is_set()
        outcomes = list(review.outcomes.values())
        assert outcomes[0].startswith("written") and outcomes[-1].startswith("skipped")


async def test_refresh_keeps_cursor_and_selection(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5", "down", "down", "space")
        pane = app.main.pane("prorates")
        cursor = pane.current.key
        selected = set(pane.selected)
        count = app.refresh_count
        await pilot.press("f5")
        await settle(app, pilot)
        assert app.refresh_count == count + 1
        assert app.workspace.refreshes >= 2
        assert pane.current.key == cursor and pane.selected == selected


async def test_refresh_skipped_while_modal_open(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5", "e")
        count = app.refresh_count
        app._scheduled_refresh()
        await settle(app, pilot)
        assert app.refresh_count == count


async def test_help_lists_registry_and_unavailable_actions_grey(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.main.check_action("map_company", ()) is None  # not on Overview
        assert app.main.check_action("ignore_row", ()) is None
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpModal)
        from tui.bindings import REGISTRY

        assert app.screen.query_one("#help-table").row_count == len(REGISTRY)
        await pilot.press("escape")


async def test_invoiced_through_and_as_of(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("I")
        app.screen.query_one("Input").value = "2026-12-31"
        await pilot.press("enter")
        await settle(app, pilot)
        assert store.settings().invoiced_through == date(2026, 12, 31)
        assert app.data.invoiced_through == date(2026, 12, 31)
        await pilot.press("o")
        app.screen.query_one("Input").value = "2026-11-25"
        await pilot.press("enter")
        await settle(app, pilot)
        # after today (the clock's 2026-11-21): asked, with the reason, since issue 13
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await settle(app, pilot)
        assert app.data.as_of == date(2026, 11, 25)


async def test_keymap_remaps_binding(make_app: Any, store: Any, settle: Any) -> None:
    app = make_app(keymap={"ignore-row": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "x")
        assert isinstance(app.screen, IgnoreModal)


async def test_copy_id(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5", "c")
        assert app.clipboard == app.main.pane("prorates").current.key


async def test_brackets_are_not_markup(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        pane = app.main.pane("customers")
        from tui.rows import Row

        pane.set_rows([Row(key="x", cells=("[bold]Acme[/bold] [Ltd]", "—", "Not mapped", "", "—"))])
        await pilot.pause()
        assert pane.table.get_row("x")[1].plain == "[bold]Acme[/bold] [Ltd]"


def bindings_rows(store: Any) -> dict[tuple[str, str], str]:
    with store.session() as s:
        rows = s.exec(select(t.ProductBindingRow))
        return {(r.vendor_product_id, r.sub_product): r.psa_product_id for r in rows}


async def test_bulk_ignore_asks_yes_no_with_the_count_then_the_reason(
    make_app: Any, store: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "space", "space", "space")
        pane = app.main.pane("unsynced")
        chosen = set(pane.selected)
        assert len(chosen) == 3
        await pilot.press("i")
        assert isinstance(app.screen, ConfirmModal)
        body = str(app.screen.query_one(".modal").query("Static")[1].render())
        assert "Ignore 3 selected rows of Unsynced?" in body
        await pilot.press("n")  # no: nothing asked, nothing stored
        assert not isinstance(app.screen, (ConfirmModal, IgnoreModal))
        assert not chosen & set(ignore_rows(store))
        assert pane.selected == chosen
        await pilot.press("i", "y")
        assert isinstance(app.screen, IgnoreModal)
        assert "Ignore 3 rows" in str(app.screen.query_one(".modal-title").render())
        await pilot.press(*"month-end batch", "enter")
        await settle(app, pilot)
        stored = ignore_rows(store)
        assert chosen <= set(stored) and {stored[k].reason for k in chosen} == {"month-end batch"}
        assert not chosen & set(pane.table.keys) and pane.selected == set()


async def test_single_ignore_asks_no_confirmation(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "space", "i")
        assert isinstance(app.screen, IgnoreModal)


async def test_overview_unbound_products_leads_to_binding(make_app: Any, store: Any, settle: Any) -> None:
    from tui.screens.map_company import PickerModal
    from tui.screens.products import ProductsScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        unbound = [f for f in app.data.plan.findings if f.code == "product_not_bound"]
        assert unbound
        overview = app.main.pane("overview")
        assert overview.by_key["unbound"].cells[0] == "TODO"
        overview.table.move_cursor(row=overview.table.keys.index("unbound"))
        await pilot.pause()
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ProductsScreen)
        row = screen.pane.current  # products with unbound subscriptions come first
        assert row.cells[0] == "Microsoft 365 Copilot" and row.cells[-1] == "NOT BOUND"
        assert row.cells[5] == "1"  # subscriptions waiting for this binding
        assert screen.check_action("unbind_product", ()) is None  # nothing to unbind yet
        await pilot.press("b")
        assert isinstance(app.screen, PickerModal)
        await pilot.press(*"apps for business")
        options = app.screen.query_one("#psa-products")
        assert options.option_count == 1
        psa_id = options.get_option_at_index(0).id
        await pilot.press("enter")
        await settle(app, pilot)
        product_id = row.key.split("|")[0]
        assert bindings_rows(store)[(product_id, "")] == psa_id
        # the next plan has no product_not_bound finding, and the checklist says so
        assert not [f for f in app.data.plan.findings if f.code == "product_not_bound"]
        assert app.main.pane("overview").by_key["unbound"].cells[0] == "OK"
        bound = screen.pane.by_key[row.key]
        assert bound.cells[-1] == "bound" and bound.cells[3] == app.data.psa_product_names[psa_id]
        # unbind: the finding comes back
        screen.pane.table.move_cursor(row=screen.pane.table.keys.index(row.key))
        await pilot.pause()
        await pilot.press("u")
        await settle(app, pilot)
        assert (product_id, "") not in bindings_rows(store)
        assert [f for f in app.data.plan.findings if f.code == "product_not_bound"]
        await pilot.press("escape")
        assert app.screen is app.main


async def test_bind_a_sub_product_and_filter_products(make_app: Any, store: Any, settle: Any) -> None:
    from tui.screens.products import ProductsScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, ProductsScreen)
        await pilot.press("/", *"proofpoint", "enter")
        keys = screen.pane.table.keys
        sub_key = next(k for k in keys if k.endswith("|Advanced"))
        assert screen.pane.by_key[sub_key].cells[-1] == "via product"
        screen.pane.table.move_cursor(row=keys.index(sub_key))
        await pilot.pause()
        await pilot.press("enter")  # enter binds too
        app.screen.query_one("#search").value = "Email Security"
        await pilot.pause()
        await pilot.press("enter")
        await settle(app, pilot)
        product_id = sub_key.split("|")[0]
        assert (product_id, "Advanced") in bindings_rows(store)
        assert screen.pane.by_key[sub_key].cells[-1] == "bound"


async def test_tab_labels_show_pane_counts(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        tabs = app.main.query_one("#tabs")
        for name, title in (("unsynced", "Unsynced"), ("prorates", "Prorates"), ("errors", "Errors")):
            assert str(tabs.get_tab(f"tab-{name}").label) == f"{title} {len(app.data.rows[name])}"
        assert str(tabs.get_tab("tab-overview").label) == "Overview"
        before = len(app.data.rows["prorates"])
        await pilot.press("5", "i", *"x", "enter")
        await settle(app, pilot)
        assert str(tabs.get_tab("tab-prorates").label) == f"Prorates {before - 1}"


async def test_no_color_picks_a_monochrome_builtin_theme(
    make_app: Any, monkeypatch: Any, settle: Any
) -> None:
    from textual.app import App

    from tui.app import NO_COLOR_THEME

    monkeypatch.setenv("NO_COLOR", "1")
    assert NO_COLOR_THEME == "ansi-dark" and NO_COLOR_THEME in App().available_themes
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.theme == "ansi-dark" and app.no_color and app.native_ansi_color
        # colour is stripped (Textual's NoColor filter): the cursor shows by text style alone,
        # and states are words
        table = app.main.pane("overview").table
        cursor = table.get_component_rich_style("keyed-table--cursor")
        assert cursor.reverse and cursor.bold
        line = table.render_line(1 + table.cursor_row)  # below the header: the cursor row as drawn
        assert all(segment.style.reverse for segment in line if segment.text.strip())
        assert {r.cells[0] for r in app.data.rows["overview"]} <= {"OK", "TODO", "WAIT"}
        await pilot.press("3")
        assert app.main.pane("unsynced").table.row_count > 0


async def test_explicit_theme_without_no_color(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.theme == "textual-dark" and not app.no_color
