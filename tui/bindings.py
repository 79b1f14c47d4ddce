"""The one registry of keys: it generates BINDINGS (app and main screen), the command palette and
the help screen, so the three cannot drift. Every entry has an id, so `keymap` in the config can
remap it (`App.set_keymap`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding, BindingType

Scope = Literal["app", "main", "products", "review"]


@dataclass(frozen=True)
class Command:
    id: str
    keys: str
    action: str
    description: str
    scope: Scope = "main"
    show: bool = False
    help: str = ""


REGISTRY: tuple[Command, ...] = (
    # global
    Command("quit", "q", "quit", "Quit", "app", True),
    Command("help", "question_mark,f1", "help", "Help", "app", True, "All keys, from this same registry."),
    Command(
        "refresh",
        "f5",
        "refresh",
        "Refresh",
        "app",
        True,
        "Fetch from the vendor and the PSA, then reconcile.",
    ),
    Command(
        "set-as-of", "o", "edit_as_of", "Set as-of date", "app", False, "The date the plan is computed for."
    ),
    Command(
        "set-invoiced-through",
        "I",
        "edit_invoiced_through",
        "Set invoiced-through",
        "app",
        False,
        "The last day already invoiced to customers.",
    ),
    # panes
    Command("pane-overview", "1", "show_pane('overview')", "Overview pane"),
    Command("pane-customers", "2", "show_pane('customers')", "Customers pane"),
    Command("pane-unsynced", "3", "show_pane('unsynced')", "Unsynced pane"),
    Command("pane-arrears", "4", "show_pane('arrears')", "Arrears pane"),
    Command("pane-prorates", "5", "show_pane('prorates')", "Prorates pane"),
    Command("pane-errors", "6", "show_pane('errors')", "Errors pane"),
    Command("pane-renewals", "7", "show_pane('renewals')", "Renewals pane (commitment terms)"),
    Command("pane-margin", "8", "show_pane('margin')", "Margin pane (three-way check)"),
    Command(
        "cursor-last", "G", "cursor_last", "Last row", help="Jump to the last row (ignored items are last)."
    ),
    Command("filter", "slash", "filter", "Filter", show=True, help="Type to narrow the pane; esc leaves it."),
    Command(
        "sort-column",
        "s",
        "sort_column",
        "Sort",
        help="Sort the pane by the next column on screen (money as money); after the last: its own order.",
    ),
    Command("sort-reverse", "S", "sort_reverse", "Reverse sort", help="Reverse the pane's sort."),
    Command(
        "find-customer",
        "F",
        "find_customer",
        "Find customer",
        help="Every pane shows only the rows of the customers whose name holds the text "
        "(case and punctuation ignored); esc shows every customer again.",
    ),
    Command(
        "history",
        "h",
        "history",
        "History",
        help="The row's subscription: every quantity change (date, before → after, source, synced?).",
    ),
    Command("toggle-select", "space", "toggle_select", "Select", help="Select or unselect the row."),
    Command("select-all", "a", "select_all", "Select all", help="Select every row shown (again: none)."),
    Command(
        "ignore-row", "i", "ignore_row", "Ignore", help="Ignore the row (or the selection) with a reason."
    ),
    Command("restore-row", "r", "restore_row", "Restore", help="Restore an ignored row (t shows them)."),
    Command(
        "toggle-ignored", "t", "toggle_ignored", "Show ignored", help="Show ignored items: who, when, why."
    ),
    Command("edit-date", "e", "edit_date", "Edit date", help="Edit the effective date of a proposed line."),
    Command(
        "bulk-date", "E", "bulk_date", "Bulk date", help="Set the effective date of every selected line."
    ),
    Command(
        "review",
        "v",
        "review",
        "Review",
        show=True,
        help="Review the selection (or everything) before syncing.",
    ),
    Command(
        "include-provisional",
        "P",
        "include_provisional",
        "Include provisional",
        help="Include provisional usage (figures not final) in the next sync, after a confirm; again: hold it.",
    ),
    Command(
        "export-csv",
        "w",
        "export_csv",
        "Write CSV",
        help="Write the pane's rows (after the filter, every column) to a CSV file; says where.",
    ),
    Command("copy-id", "c", "copy_id", "Copy id", help="Copy the row's id to the clipboard (OSC 52)."),
    Command("map-company", "m", "map_company", "Map customer", help="Customers: map to a PSA company."),
    Command("unmap-company", "u", "unmap_company", "Unmap customer", help="Customers: remove the mapping."),
    Command(
        "generate-mappings",
        "g",
        "generate_mappings",
        "Generate mappings",
        help="Customers: map exact name matches; confirm near matches one by one.",
    ),
    Command(
        "refresh-customer",
        "R",
        "refresh_customer",
        "Refresh customer",
        help="Re-read the customer under the cursor from the vendor and the PSA and recompute it alone "
        "(after a refresh under way).",
    ),
    Command(
        "products",
        "p",
        "products",
        "Products",
        help="Vendor products and the PSA products they are bound to (bind, unbind).",
    ),
    # every finding's fix is a key (issue 13: tui.screens.fixes)
    Command(
        "import-company",
        "N",
        "import_company",
        "Create in PSA",
        help="Customers / Errors: create the vendor company in the PSA and map it (company_not_mapped).",
    ),
    Command(
        "pick-agreement",
        "A",
        "pick_agreement",
        "Pick agreement",
        help="Customers / Errors: the agreement the customer's lines go to (several active, period).",
    ),
    Command(
        "toggle-create-new",
        "C",
        "toggle_create_new",
        "Create new / update",
        help="A recurring line: create a new PSA line (the old one ends) instead of updating it, or back.",
    ),
    Command(
        "mark-free", "f", "mark_free", "Free / not free", help="The row's product: mark it free or not free."
    ),
    Command(
        "clear-date", "X", "clear_date", "Clear date", help="Clear the effective date set on the row's line."
    ),
    Command(
        "acknowledge",
        "k",
        "acknowledge",
        "Acknowledge",
        help="Errors: acknowledge a warning with why (credit_due: 'credit issued'), audited.",
    ),
    Command(
        "add-note",
        "n",
        "add_note",
        "Note",
        help="A note on the line or customer; later actions on it carry it into the audit trail.",
    ),
    Command(
        "undo",
        "U",
        "undo",
        "Undo",
        help="Undo the last change (ignore, unmap, date, free…) until the next sync.",
    ),
    # products
    Command(
        "bind-product",
        "b",
        "bind_product",
        "Bind",
        "products",
        True,
        help="Bind the vendor product (or sub-product) to a PSA product; enter does it too.",
    ),
    Command(
        "unbind-product", "u", "unbind_product", "Unbind", "products", True, "Remove the row's own binding."
    ),
    Command(
        "products-mark-free", "f", "mark_free", "Free / not free", "products", True, "Mark the binding free."
    ),
    Command(
        "create-product",
        "N",
        "create_product",
        "Create in PSA",
        "products",
        True,
        "Create the product in the PSA (name, SKU, price, cost, recurring, taxable) and bind it.",
    ),
    Command("products-filter", "slash", "filter", "Filter", "products", True, "Type to narrow the products."),
    Command(
        "products-find-customer",
        "F",
        "find_customer",
        "Find customer",
        "products",
        False,
        "Only the products the customers whose name holds the text subscribe to (every pane too).",
    ),
    Command(
        "close-products",
        "escape",
        "close_products",
        "Back",
        "products",
        True,
        "Every customer again when a customer search narrows the products, else back to the panes.",
    ),
    # review
    Command(
        "confirm-sync", "y,s", "confirm_sync", "Confirm sync", "review", True, "Write these lines to the PSA."
    ),
    Command(
        "cancel-sync", "x", "cancel_sync", "Cancel sync", "review", True, "Stop after the line in flight."
    ),
    Command(
        "review-export-csv",
        "w",
        "export_csv",
        "Write CSV",
        "review",
        False,
        "Write the review's lines (every column) to a CSV file; says where.",
    ),
    Command(
        "close-review", "escape", "close_review", "Back", "review", True, "Back (or cancel a running sync)."
    ),
)


def bindings(scope: Scope) -> list[BindingType]:
    """A BINDINGS list (Textual declares it list[BindingType]; list is invariant)."""
    return [
        Binding(c.keys, c.action, c.description, show=c.show, id=c.id) for c in REGISTRY if c.scope == scope
    ]


def key_label(keys: str) -> str:
    names = {"question_mark": "?", "slash": "/", "space": "space", "escape": "esc"}
    return ", ".join(names.get(k, k) for k in keys.split(","))


def effective_keys(command: Command, keymap: dict[str, str] | None) -> str:
    return (keymap or {}).get(command.id, command.keys)


# Commands that work on the rows shown alone (panes, cursor, filter, sort, selection, copy, CSV):
# they run before the engine is loaded. Every other command acts on the plan or the store, so until
# the engine is loaded it says so in one line instead (TrueupApp.run_action).
ON_ROWS_SHOWN = frozenset(
    {
        "quit",
        "help",
        "show_pane",
        "cursor_last",
        "filter",
        "sort_column",
        "sort_reverse",
        "find_customer",
        "toggle_select",
        "select_all",
        "toggle_ignored",
        "copy_id",
        "export_csv",
    }
)
NEEDS_ENGINE: dict[str, Command] = {
    name: c for c in REGISTRY if (name := c.action.split("(", 1)[0]) not in ON_ROWS_SHOWN
}
