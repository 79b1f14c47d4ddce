"""Issue 13, Pilot: the bind dialog sets a binding's taxable flag and bill option (checkbox + select,
seed 001's "Bill Options: Billable / Taxable"), pre-filled from the binding; a re-bind keeps what
is not changed; the review's side-by-side shows both rows and that a No charge line bills $0."""

from __future__ import annotations

from typing import Any

from textual.widgets import Checkbox, Input, Select

from engine.reconcile import reconcile
from engine.store import tables as t
from tui.screens.bind_product import BindProductModal

SMALL = (80, 24)


def row_of(store: Any, product_id: str) -> t.ProductBindingRow:
    with store.session() as s:
        row = s.get(t.ProductBindingRow, (product_id, ""))
        assert row is not None
        return row


async def open_bind(app: Any, pilot: Any, settle: Any, product_id: str) -> BindProductModal:
    from tui.screens.products import ProductsScreen

    if not isinstance(app.screen, ProductsScreen):
        await pilot.press("p")
        await settle(app, pilot)
    screen = app.screen
    assert isinstance(screen, ProductsScreen)
    screen.pane.table.move_cursor(row=screen.pane.table.keys.index(f"{product_id}|"))
    await pilot.pause()
    await pilot.press("b")
    await pilot.pause()
    modal = app.screen
    assert isinstance(modal, BindProductModal)
    return modal


async def test_the_bind_dialog_sets_and_prefills_taxable_and_bill_option(
    make_app: Any, store: Any, settle: Any
) -> None:
    bound = sorted(
        p
        for p, sp in ((r.vendor_product_id, r.sub_product) for r in store.snapshot().mappings.products)
        if not sp
    )
    product_id = bound[0]
    before = row_of(store, product_id)
    assert (before.taxable, before.bill_option) == (None, "billable")
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        modal = await open_bind(app, pilot, settle, product_id)
        checkbox, select = (
            modal.query_one("#bind-taxable", Checkbox),
            modal.query_one("#bind-bill-option", Select),
        )
        assert (checkbox.value, select.value, checkbox.disabled) == (False, "billable", False)
        assert "product default" in str(checkbox.label)
        for widget in (checkbox, select, modal.query_one("#psa-products")):  # all on screen at 80×24
            region = widget.region
            assert region.height >= 1 and region.bottom <= SMALL[1] and region.right <= SMALL[0]
        await pilot.click("#bind-taxable")  # the product default → taxable
        select.value = "no_charge"
        modal.query_one("#search", Input).focus()
        await pilot.press("enter")  # bind to what is highlighted (the current product)
        await settle(app, pilot)
        row = row_of(store, product_id)
        assert (row.psa_product_id, row.taxable, row.bill_option, row.free) == (
            before.psa_product_id,
            True,
            "no_charge",
            before.free,
        )

        modal = await open_bind(app, pilot, settle, product_id)  # pre-filled from the binding now
        checkbox, select = (
            modal.query_one("#bind-taxable", Checkbox),
            modal.query_one("#bind-bill-option", Select),
        )
        assert (checkbox.value, select.value) == (True, "no_charge")
        assert "product default" not in str(checkbox.label)
        modal.query_one("#search", Input).focus()
        await pilot.press("enter")  # re-bind, nothing changed: kept
        await settle(app, pilot)
        row = row_of(store, product_id)
        assert (row.taxable, row.bill_option) == (True, "no_charge")
        lines = [x for x in reconcile(store.snapshot()).lines if x.psa_product_id == row.psa_product_id]
        assert all((x.taxable, x.bill_option) == (True, "no_charge") for x in lines)


async def test_the_review_side_by_side_shows_bill_option_and_taxable(
    make_app: Any, store: Any, settle: Any
) -> None:
    from engine import actions
    from tui.screens.review import ReviewScreen

    plan = reconcile(store.snapshot())
    line = next(x for x in plan.lines if x.action == "create" and x.kind.value == "recurring")
    sub = next(s for s in store.snapshot().vendor.subscriptions if s.id == line.subscription_id)
    actions.bind_product(store, sub.product_id, line.psa_product_id, taxable=False, bill_option="no_charge")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        detail = screen.details[line.key]
        assert "Bill option  No charge" in detail
        assert "Taxable      no" in detail
        assert "no charge: bills the customer $0.00" in detail
        assert "Net $0.00/month" in detail  # a new line that bills nothing changes nothing
