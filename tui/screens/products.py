"""Products: every vendor product (and sub-product), what it is bound to in the PSA and how many
subscriptions wait for a binding. `b` (or enter) binds with a searchable PSA-product picker, `u`
removes the row's own binding; the plan is computed again at once, so `product_not_bound`
findings clear as soon as their product is bound. Overview's "Products not bound" leads here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Input

from engine import actions
from engine.connectors.base import ProductSpec
from engine.console_core import Act
from engine.scenario import BILL_OPTION_LABELS, BillOption
from tui.bindings import bindings
from tui.rows import ConsoleData, Row, cell, split_product_key
from tui.screens.bind_product import BindChoice, BindProductModal
from tui.widgets.footer import KeysFooter
from tui.widgets.header import StatusHeader
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.panes import Pane

if TYPE_CHECKING:
    from tui.app import TrueupApp


class ProductsScreen(Screen[None]):
    SCOPE = "products"
    BINDINGS = bindings("products")
    app: TrueupApp

    def __init__(self, data: ConsoleData) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield Pane("products")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.show_data(self.data)
        self.pane.table.focus()

    @property
    def pane(self) -> Pane:
        return self.query_one(Pane)

    def show_data(self, data: ConsoleData) -> None:
        self.data = data
        self.pane.set_rows(data.rows_for("products", False))
        self.apply_customer_search()
        self.refresh_bindings()

    # --- the customer search (F): the main screen's, shared by every pane -------------------------

    @property
    def customer_search(self) -> str:
        main = self.app.main
        return main.customer_search if main is not None else ""

    def apply_customer_search(self) -> None:
        """Only the vendor products the searched customers' subscriptions use (issue 13), with the
        header's and the title's "customer: …" as on every other pane."""
        text = self.customer_search
        main = self.app.main
        companies = main.matching_companies(text) if main is not None and text else frozenset()
        products = (
            actions.products_of_companies(self.app.loaded_workspace.store, companies) if text else set()
        )
        self.pane.set_customer(text, companies, lambda row: split_product_key(row.key)[0] in products)
        self.update_header()

    def update_header(self) -> None:
        ws, data = self.app.loaded_workspace, self.data
        self.query_one(StatusHeader).show(
            label=ws.label,
            sandbox=ws.sandbox,
            as_of=data.as_of,
            invoiced_through=data.invoiced_through,
            freshness=dict(getattr(ws, "freshness", {}) or {}),
            busy=self.app.busy,
            customer=self.customer_search,
            psa=data.psa,
        )

    def action_find_customer(self) -> None:
        main = self.app.main
        if main is not None:
            main.action_find_customer(then=self.apply_customer_search)

    def _binding_of(self, row: Row) -> object | None:
        product_id, sub_product = split_product_key(row.key)
        return self.data.bindings.get((product_id, sub_product or ""))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.focused, Input) and action != "close_products":
            return None
        row = self.pane.current
        if action == "bind_product":
            return (row is not None and bool(self.data.psa_products)) or None
        if action == "unbind_product":
            return (row is not None and self._binding_of(row) is not None) or None
        return True

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        self.refresh_bindings()

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        self.action_bind_product()

    # --- keys --------------------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.pane.open_filter()

    def action_close_products(self) -> None:
        if isinstance(self.focused, Input):
            self.pane.close_filter(keep=False)
            return
        main = self.app.main
        if main is not None and main.customer_search:  # as on the panes: esc shows every customer
            main.clear_customer_search()
            self.apply_customer_search()
            return
        self.app.pop_screen()

    def action_bind_product(self) -> None:
        row = self.pane.current
        if row is None:
            return
        product_id, sub_product = split_product_key(row.key)
        what = cell(row, "products", "product") + (f" · {sub_product}" if sub_product else "")
        current = self._binding_of(row)
        note = (
            "Every sub-product without a binding of its own follows the product's."
            if sub_product is None and any(p == product_id and sp for p, sp in self.data.bindings)
            else ""
        )
        if current is not None:
            note = (f"Now bound to {cell(row, 'products', 'psa_product')}. " + note).strip()

        def done(choice: BindChoice | None) -> None:
            if choice is None or not choice.psa_id:
                return
            psa_name = self.data.psa_product_names.get(choice.psa_id, choice.psa_id)
            self.app.act(
                Act(
                    "bind_product",
                    vendor_id=product_id,
                    psa_id=choice.psa_id,
                    sub_product=sub_product,
                    taxable=choice.taxable,
                    bill_option=choice.bill_option,
                ),
                f"Bound {what} to {psa_name}",
            )

        # issue 13: the PSA product with the vendor product's SKU (else the current binding) is highlighted
        preselect = actions.same_sku_product(self.app.loaded_workspace.store, product_id)
        if current is not None:
            preselect = getattr(current, "psa_product_id", None) or preselect
        taxable = getattr(current, "taxable", None)
        stored = getattr(current, "bill_option", None)  # the binding's (engine.scenario.BillOption)
        bill_option: BillOption = next((o for o in BILL_OPTION_LABELS if o == stored), "billable")
        psa = str(self.app.loaded_workspace.store.settings().psa)
        # a PSA whose lines carry no bill options: the dialog says why, once (engine.psa)
        refusal = actions.bill_options_refusal(psa, True, "no_charge")
        self.app.push_screen(
            BindProductModal(
                f"Bind {what} to a {self.data.psa} product",
                self.data.psa_products,
                placeholder=f"Search {self.data.psa} products",
                note=note,
                list_id="psa-products",
                verb="bind",
                selected=preselect,
                taxable=taxable,
                bill_option=bill_option,
                refusal=refusal,
            ),
            # PickerModal is a ModalScreen[str | None]; BindProductModal's dismiss turns the picked
            # id into a BindChoice, which that result type cannot say:
            done,  # type: ignore[arg-type]
        )

    def action_mark_free(self) -> None:
        """Issue 13: the row's binding free / not free (re-binding keeps it)."""
        row = self.pane.current
        current = self._binding_of(row) if row is not None else None
        if row is None or current is None:
            self.notify("Bind the product first (b), then mark it free.", severity="warning", timeout=6)
            return
        product_id, sub_product = split_product_key(row.key)
        free = not bool(getattr(current, "free", False))
        store = self.app.loaded_workspace.store
        self.app.run_engine(
            lambda: actions.set_free(store, product_id, free, sub_product=sub_product),
            f"{cell(row, 'products', 'product')} marked {'free' if free else 'not free'}",
        )

    def action_create_product(self) -> None:
        """Issue 13 / seed 001 "Export Product": create the row's product in the PSA and bind it."""
        row = self.pane.current
        ws = self.app.loaded_workspace
        if row is None:
            return
        if getattr(ws, "psa", None) is None:
            self.notify("No PSA connection is open; creating a product needs one.", severity="warning")
            return
        from tui.screens.product_wizard import ProductWizardModal

        product_id, sub_product = split_product_key(row.key)
        name, sku, price, cost = actions.product_defaults(ws.store, product_id)
        what = cell(row, "products", "product") + (f" · {sub_product}" if sub_product else "")
        store, psa, core = ws.store, ws.psa, self.app.core

        def done(spec: ProductSpec | None) -> None:
            if spec is None:
                return
            self.app.run_engine(
                lambda: core.run_async(
                    actions.create_product(store, psa, product_id, spec, sub_product=sub_product)
                ),
                f"Created {what} in {self.data.psa} and bound it",
            )

        self.app.push_screen(
            ProductWizardModal(self.data.psa, name=name, sku=sku, price=price, cost=cost, what=what), done
        )

    def action_unbind_product(self) -> None:
        row = self.pane.current
        if row is None or self._binding_of(row) is None:
            return
        product_id, sub_product = split_product_key(row.key)
        what = cell(row, "products", "product") + (f" · {sub_product}" if sub_product else "")
        self.app.act(Act("unbind_product", vendor_id=product_id, sub_product=sub_product), f"Unbound {what}")
