"""Create the vendor product in the PSA (seed 001 "Export Product", seed 004's wizard): name, SKU,
price, cost, product group (ConnectWise: the catalog subcategory; empty for HaloPSA), recurring and
taxable, filled in from the vendor product; enter on a field moves on,
enter on the last one (or ctrl+s) creates, esc cancels. A refused field is said inline and nothing
is sent."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Static

from engine import actions
from engine.connectors.base import ProductSpec

FIELDS = (("name", "Name"), ("sku", "SKU"), ("price", "Price"), ("cost", "Cost"), ("category", "Group"))


class ProductWizardModal(ModalScreen[ProductSpec | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modal-cancel"),
        Binding("ctrl+s", "create", "Create", id="modal-create", priority=True),
    ]

    def __init__(
        self, psa: str, *, name: str, sku: str = "", price: str = "", cost: str = "", what: str = ""
    ) -> None:
        super().__init__()
        self._psa, self._what = psa, what or name
        self._values = {"name": name, "sku": sku, "price": price, "cost": cost, "category": ""}

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(f"Create {self._what} in {self._psa} and bind it"), classes="modal-title")
            for field, label in FIELDS:
                with Horizontal(classes="wizard-row"):
                    yield Static(Text(f"{label:<6}"), classes="wizard-label")
                    yield Input(value=self._values[field], placeholder=label, id=f"wizard-{field}")
            with Horizontal(classes="wizard-row"):
                yield Checkbox("Recurring", value=True, id="wizard-recurring")
                yield Checkbox("Taxable", value=False, id="wizard-taxable")
            yield Static("", id="wizard-error", classes="modal-note")
            yield Static(Text("enter  next / create    ctrl+s  create    esc  cancel"), classes="modal-keys")

    def on_mount(self) -> None:
        self.query_one("#wizard-name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        ids = [f"wizard-{f}" for f, _ in FIELDS]
        here = ids.index(event.input.id or ids[0])
        if here + 1 < len(ids):
            self.query_one(f"#{ids[here + 1]}", Input).focus()
        else:
            self.action_create()

    def spec(self) -> ProductSpec:
        value = {f: self.query_one(f"#wizard-{f}", Input).value for f, _ in FIELDS}
        return actions.new_product_spec(
            value["name"],
            value["sku"],
            value["price"],
            value["cost"],
            recurring=self.query_one("#wizard-recurring", Checkbox).value,
            taxable=self.query_one("#wizard-taxable", Checkbox).value,
            category=value["category"],
        )

    def action_create(self) -> None:
        try:
            spec = self.spec()
        except actions.ActionError as exc:
            self.query_one("#wizard-error", Static).update(Text(str(exc)))
            return
        self.dismiss(spec)

    def action_cancel(self) -> None:
        self.dismiss(None)
