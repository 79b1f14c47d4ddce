"""Issue 14 at the console: the Margin pane on the demo MSP (as of 2026-11-21) with the demo's
distributor invoices in the store. The planted leaks appear with their class, enter opens a
customer's subscriptions, the totals equal what `trueup margin` prints for the same month, and a
month with no invoice says NOT AUDITED."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from engine.margin.store import save_invoices
from engine.sandbox.demo import DEMO_MARGIN_LEAKS, build_demo_invoices
from tui.rows import COLUMNS, column_index
from tui.widgets.margin import MARGIN, MarginPane
from tui.workspace import StoreWorkspace

SMALL = (80, 24)
MONTH = "2026-11"


@pytest.fixture
def invoiced(store: Any, scenario: Any) -> Any:
    invoices = build_demo_invoices(scenario)
    save_invoices(store, invoices, {inv.month for inv in invoices})
    return store


def _money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def _cells(pane: MarginPane, key: str) -> tuple[str, ...]:
    return pane.by_key[key].cells


def _col(key: str) -> int:
    return column_index(MARGIN, key)


async def _open(app: Any, pilot: Any, settle: Any) -> MarginPane:
    await settle(app, pilot)
    await pilot.press("8")
    await settle(app, pilot)
    pane = app.main.query_one(MarginPane)
    assert pane.report is not None
    return pane


async def test_planted_leaks_show_with_their_class_and_enter_opens_the_customer(
    invoiced: Any, make_app: Any, settle: Any
) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        pane = await _open(app, pilot, settle)
        assert pane.month == MONTH  # the latest invoiced month
        names = [r.cells[_col("customer")] for r in pane.rows]
        assert "Riverside Montessori School" in names and "Total USD" == names[-1]
        # every money column is on screen at 80×24
        shown = {c.key for c in pane.table.shown_columns}
        assert {"cost", "billed", "planned", "margin", "class"} <= shown
        # enter on a customer: its subscription rows follow it, with the class and the reason
        key = next(r.key for r in pane.rows if r.cells[_col("customer")] == "Riverside Montessori School")
        pane.table.move_cursor(row=pane.table.rows.index(key))
        await pilot.press("enter")
        await settle(app, pilot)
        subs = [r for r in pane.rows if r.cells[_col("customer")] == "  Riverside Montessori School"]
        basic = [r for r in subs if r.cells[_col("product")] == "Microsoft 365 Business Basic"]
        assert [r.cells[_col("class")] for r in basic] == ["not billed onward"]
        assert "no PSA line bills it" in basic[0].cells[_col("reason")]
        assert _money(basic[0].cells[_col("cost")]) == Decimal("107.10")
        await pilot.press("enter")  # closes it again
        await settle(app, pilot)
        assert not [r for r in pane.rows if r.cells[_col("customer")].startswith("  ")]
        # open every customer: each planted class is on some row
        pane.expanded = set(pane._subs)
        pane._render_rows()
        classes = {r.cells[_col("class")] for r in pane.rows}
        from engine.margin import CLASS_LABELS

        assert {CLASS_LABELS[c] for c in DEMO_MARGIN_LEAKS} <= classes  # type: ignore[index]
        below = [r for r in pane.rows if r.cells[_col("class")] == "price below cost"]
        assert below and "$23.10" in below[0].cells[_col("reason")]


async def test_totals_equal_what_trueup_margin_prints(
    invoiced: Any, make_app: Any, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        pane = await _open(app, pilot, settle)
        total = _cells(pane, "total:USD")
    assert total[_col("class")] == "ties out"
    # the customers' rows add up to the bottom line
    customers = [r for r in pane.rows if r.key.startswith("customer:")]
    for column in ("cost", "billed", "margin"):
        assert sum(_money(r.cells[_col(column)]) for r in customers) == _money(total[_col(column)])

    import tui.cli_margin
    from tui.cli import main

    monkeypatch.setattr(
        tui.cli_margin, "_open_workspace", lambda db_url: StoreWorkspace(invoiced, label="test", sandbox=True)
    )
    args = ["margin", "--use-stored", "--month", MONTH]
    # the command runs its own event loop: off this test's loop
    result = await asyncio.to_thread(CliRunner().invoke, main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = re.search(
        r"USD: distributor invoices ([\d,.-]+), PSA ([\d,.-]+), margin ([\d,.-]+)", result.output
    )
    assert found, result.output
    invoices, psa, margin = (Decimal(g.replace(",", "")) for g in found.groups())
    assert _money(total[_col("cost")]) == invoices
    assert _money(total[_col("billed")]) == psa
    assert _money(total[_col("margin")]) == margin


async def test_a_month_without_invoices_is_not_audited(invoiced: Any, make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        pane = await _open(app, pilot, settle)
        await pilot.press("right_square_bracket")
        await settle(app, pilot)
        assert pane.month == "2026-12" and pane.report is not None
        assert pane.report.status == "not_audited"
        (row,) = pane.rows
        assert row.cells[_col("class")] == "NOT AUDITED" and "clean" in row.detail
        assert _money(row.cells[_col("billed")]) > 0
        assert COLUMNS[MARGIN][_col("cost")].priority == 0


async def test_a_failing_check_is_one_sentence_and_keys_still_work(
    invoiced: Any, make_app: Any, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.margin.store

    def broken(store: Any, months: Any = None) -> Any:
        raise ValueError("invoice INV-9 has no currency")

    monkeypatch.setattr(engine.margin.store, "load_invoices", broken)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        await pilot.press("8")
        await settle(app, pilot)
        pane = app.main.query_one(MarginPane)
        assert pane.report is None and pane.table.border_subtitle == "check failed"
        messages = [n.message for n in app._notifications]
        assert any(
            "The margin check failed: ValueError: invoice INV-9 has no currency" in m for m in messages
        )
        await pilot.press("1")
        assert app.main.active == "overview"


async def test_each_customer_says_where_psa_billed_came_from(
    invoiced: Any, scenario: Any, make_app: Any, settle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.margin.store import save_psa_invoiced
    from engine.sandbox.demo import build_demo_psa_invoices, planted_short_invoice_line

    lines = build_demo_psa_invoices(scenario)
    save_psa_invoiced(invoiced, scenario.settings.psa, lines, {x.month for x in lines})
    short = next(x for x in scenario.psa.lines if x.id == planted_short_invoice_line(scenario))
    name = next(
        c.name
        for c in scenario.vendor.companies
        if c.id
        == next(s.company_id for s in scenario.vendor.subscriptions if s.id == short.source.subscription_id)
    )
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        pane = await _open(app, pilot, settle)
        customers = {r.cells[_col("customer")]: r for r in pane.rows if r.key.startswith("customer:")}
        assert "PSA billed from invoices" in customers[name].cells[_col("product")]
        assert "PSA billed: from the PSA's invoices of the month." in customers[name].detail
        riverside = customers["Riverside Montessori School"]
        assert "PSA billed from lines in force" in riverside.cells[_col("product")]
        assert "the lines in force" in riverside.detail
        assert "quantity differs" in customers[name].cells[_col("reason")]
        assert _cells(pane, "total:USD")[_col("class")] == "ties out"
    # `trueup margin --use-stored` prints the same source per customer
    import tui.cli_margin
    from tui.cli import main

    monkeypatch.setattr(
        tui.cli_margin, "_open_workspace", lambda db_url: StoreWorkspace(invoiced, label="test", sandbox=True)
    )
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["margin", "--use-stored", "--month", MONTH], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert re.search(rf"USD {re.escape(name)}: .* — PSA billed: from invoices", result.output)
    assert "USD Riverside Montessori School: " in result.output
    assert re.search(r"USD Riverside Montessori School: .* — PSA billed: from lines in force", result.output)
    assert "PSA billed from the PSA's invoices of 2026-11 for " in result.output
