"""The bind dialog (issue 13): pick the PSA product, and say how the lines the binding produces are
billed — a Taxable checkbox and a bill option select (seed 001's review rows "Bill Options:
Billable / Taxable"), pre-filled from the existing binding. A PSA whose lines carry neither
(engine.psa capabilities: HaloPSA, Autotask) shows them disabled, with the one sentence why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, Input, OptionList, Select, Static

from engine.actions import KEEP, Keep
from engine.scenario import BILL_OPTION_LABELS, BillOption
from tui.screens.fixes import PreselectPickerModal


@dataclass(frozen=True)
class BindChoice:
    """What the dialog returns: the PSA product and the bill options (KEEP: left as they are)."""

    psa_id: str
    taxable: bool | None | Keep = KEEP
    bill_option: BillOption | None = None


class BindProductModal(PreselectPickerModal):
    """Returns a `BindChoice` (None on esc)."""

    def __init__(
        self,
        *args: Any,
        taxable: bool | None = None,
        bill_option: BillOption = "billable",
        refusal: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._taxable, self._bill_option, self._refusal = taxable, bill_option, refusal
        self._taxable_set = False  # the operator toggled the checkbox

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal bind-modal"):
            yield Static(Text(self._title), classes="modal-title")
            if self._note:
                yield Static(Text(self._note), classes="modal-note")
            yield Input(placeholder=self._placeholder, id="search", value="")
            yield OptionList(*self._options(""), id=self._list_id, classes="picker")
            with Horizontal(id="bind-options"):
                label = "Taxable" + (" (product default)" if self._taxable is None else "")
                yield Checkbox(
                    label,
                    bool(self._taxable),
                    id="bind-taxable",
                    compact=True,
                    disabled=self._refusal is not None,
                )
                yield Static(Text("  Bill option "), classes="bind-label")
                yield Select(
                    [(text, value) for value, text in BILL_OPTION_LABELS.items()],
                    value=self._bill_option,
                    allow_blank=False,
                    id="bind-bill-option",
                    compact=True,
                    disabled=self._refusal is not None,
                )
            if self._refusal is not None:
                yield Static(Text(self._refusal), classes="modal-note")
            yield Static(
                Text(f"type to search   ↓ list   tab options   enter  {self._verb}   esc  cancel"),
                classes="modal-keys",
            )

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._taxable_set = True
        event.checkbox.label = "Taxable"  # set by the operator now, no longer the product's default

    def choice(self, psa_id: str) -> BindChoice:
        """The dialog's answer for `psa_id`: what the operator changed, the rest kept."""
        if self._refusal is not None:
            return BindChoice(psa_id)
        checkbox = self.query_one("#bind-taxable", Checkbox)
        taxable: bool | None | Keep = KEEP
        if self._taxable_set and (self._taxable is None or checkbox.value != self._taxable):
            taxable = checkbox.value
        value = self.query_one("#bind-bill-option", Select).value
        option = next((o for o in BILL_OPTION_LABELS if o == value), None)
        return BindChoice(psa_id, taxable, option if option != self._bill_option else None)

    def dismiss(self, result: Any = None) -> Any:
        """The picker answers with the chosen id; this dialog with a `BindChoice`."""
        if isinstance(result, str):
            result = self.choice(result)
        return super().dismiss(result)
