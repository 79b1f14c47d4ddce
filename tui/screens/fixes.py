"""Every finding's fix is a key (issue 13). `FIXES` says, per finding code, where it is fixed and by
which keys (ids of `tui.bindings.REGISTRY`, so a remapped key is named right); `FixActions` holds
those keys' actions for the main screen: import a vendor company into the PSA, pick the agreement,
create new vs update, mark free / not free, clear an effective date, acknowledge a warning, a note
on a line or customer, undo (until the next sync), and `enter` on a finding (jump to the row and say
the key). A key that does not apply to the row says why, in one line. The engine does the work
(`engine.actions`, audited); the dialogs are here: a one-line text prompt and a picker that opens
on a pre-selected choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

from tui.bindings import REGISTRY, key_label
from tui.rows import IGNORED_PREFIX, Row
from tui.screens.confirm import ConfirmModal
from tui.screens.map_company import PickerModal

if TYPE_CHECKING:
    from tui.app import TrueupApp
    from tui.widgets.panes import Pane


@dataclass(frozen=True)
class Fix:
    pane: str | None  # where the fix is made (None: outside trueup, in the vendor console or the PSA)
    commands: tuple[str, ...]  # REGISTRY ids of the keys that clear it
    how: str  # one line; {command-id} is replaced by its key


FIXES: dict[str, Fix] = {
    "company_not_mapped": Fix(
        "customers",
        ("map-company", "import-company"),
        "{map-company} maps it to a PSA company; {import-company} creates it in the PSA and maps it",
    ),
    "duplicate_mapping": Fix(
        "customers", ("unmap-company",), "{unmap-company} unmaps; then map the right one"
    ),
    "no_active_agreement": Fix(
        "customers",
        ("refresh-customer",),
        "create an active agreement in the PSA, then {refresh-customer} re-reads this customer",
    ),
    "multiple_active_agreements": Fix(
        "customers",
        ("pick-agreement", "acknowledge"),
        "{pick-agreement} picks the agreement; {acknowledge} accepts the newest",
    ),
    "billing_period_mismatch": Fix(
        "customers",
        ("pick-agreement", "refresh-customer"),
        "{pick-agreement} picks an agreement of the term's period (or add one in the PSA, then "
        "{refresh-customer})",
    ),
    "product_not_bound": Fix(
        "products",
        ("bind-product",),
        "{bind-product} binds it to a PSA product (the one with the same SKU is pre-selected)",
    ),
    "no_product_to_sync": Fix(
        "errors",
        ("mark-free", "refresh-customer"),
        "{mark-free} marks the product free; or add its line to the agreement in the PSA, then "
        "{refresh-customer}",
    ),
    "override_ignored": Fix(
        "unsynced", ("edit-date", "clear-date"), "{edit-date} sets the date again; {clear-date} clears it"
    ),
    "credit_due": Fix(
        "errors", ("acknowledge",), "issue the credit in the PSA, then {acknowledge} records 'credit issued'"
    ),
    "usage_pending": Fix(
        "errors",
        ("refresh", "acknowledge"),
        "final figures come on day 3/5: {refresh} fetches them; {acknowledge} notes you saw it",
    ),
    "price_missing": Fix(
        "errors",
        ("acknowledge",),
        "set the price in the vendor console and refresh; {acknowledge} accepts 0 for now",
    ),
    "mixed_editions": Fix(
        None,
        ("refresh-customer",),
        "in the vendor console: one edition per customer; then {refresh-customer}",
    ),
    "locations_differ": Fix(
        None,
        ("refresh-customer",),
        "in the vendor console: backup and DR on one storage location; then {refresh-customer}",
    ),
    "geo_redundancy_without_parent": Fix(
        None,
        ("refresh-customer",),
        "in the PSA: add the parent storage item to the agreement; then {refresh-customer}",
    ),
    "billing_mode_invalid": Fix(
        None,
        ("refresh",),
        "in the vendor console: use the 'total' mode for this configuration; then {refresh}",
    ),
    "duplicate_line": Fix(
        None, ("refresh-customer",), "in the PSA: end all but one of the lines; then {refresh-customer}"
    ),  # Commitment terms (issue 15): the decision is made in the vendor portal; the Renewals pane lists them.
    "seats_reducible_until": Fix(
        "renewals",
        ("acknowledge",),
        "remove the seats in the vendor portal before that instant, or {acknowledge} to keep them",
    ),
    "renewal_window_open": Fix(
        "renewals",
        ("acknowledge",),
        "reduce or cancel at the vendor before the window closes; {acknowledge} to let it renew",
    ),
    "renewal_in_n_days": Fix(
        "renewals",
        ("acknowledge",),
        "decide the renewal quantity before the window closes; {acknowledge} notes the decision",
    ),
    "commitment_cost_continues": Fix(
        "unsynced",
        ("ignore-row", "acknowledge"),
        "{ignore-row} keeps billing the customer until the term ends; {acknowledge} accepts the cost",
    ),
    "seats_reducible_at_renewal": Fix(
        "renewals",
        ("acknowledge",),
        "reduce the vendor quantity when the renewal window opens; {acknowledge} notes it",
    ),
    # Leaks (issue 14, engine.rules.leaks): the proposals are plan lines in the Unsynced pane.
    "vendor_subscription_gone": Fix(
        "unsynced",
        ("review", "ignore-row", "refresh-customer"),
        "{review} and sync the proposed cancel (<sub>:cancel); {ignore-row} keeps billing; or restore "
        "the subscription at the vendor, then {refresh-customer}",
    ),
    "price_below_cost": Fix(
        "products",
        ("bind-product", "refresh-customer"),
        "raise the PSA line's price in the PSA, then {refresh-customer}; or {bind-product} with a price "
        "above cost",
    ),
    "vendor_price_changed": Fix(
        "unsynced",
        ("review", "ignore-row", "acknowledge"),
        "{review} and sync the proposed price line (<sub>:price); {ignore-row} keeps the PSA price; "
        "{acknowledge} notes it (policy keep_and_warn)",
    ),
}


def check_fixes() -> None:
    """The console does not start unless every finding code has a fix entry (checked once the
    engine is loaded: the codes are the engine's)."""
    from engine.rules.findings import CODES

    missing, extra = sorted(set(CODES) - set(FIXES)), sorted(set(FIXES) - set(CODES))
    if missing or extra:
        raise RuntimeError(f"tui.screens.fixes.FIXES: no fix for {missing}, fixes for unknown codes {extra}")


def keys_of(keymap: dict[str, str] | None = None) -> dict[str, str]:
    """Command id -> the key label shown to the operator (after the config's keymap)."""
    return {c.id: key_label((keymap or {}).get(c.id, c.keys)) for c in REGISTRY}


def how_to_fix(code: str, keymap: dict[str, str] | None = None) -> str:
    fix = FIXES.get(code)
    if fix is None:
        from engine.rules.findings import CODES

        return CODES.get(code, ("error", ""))[1]
    return fix.how.format_map(keys_of(keymap))


# --- dialogs -------------------------------------------------------------------------------------


class TextModal(ModalScreen[str | None]):
    """One line of text (a reason, a note): enter takes it, esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal-cancel")]

    def __init__(self, title: str, placeholder: str, *, value: str = "", note: str = "") -> None:
        super().__init__()
        self._title, self._placeholder, self._value, self._note = title, placeholder, value, note

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(Text(self._title), classes="modal-title")
            if self._note:
                yield Static(Text(self._note), classes="modal-note")
            yield Input(placeholder=self._placeholder, value=self._value, id="text")
            yield Static(Text("enter  ok      esc  cancel"), classes="modal-keys")

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PreselectPickerModal(PickerModal):
    """A picker that opens with `selected` highlighted (the suggestion, the product of the same SKU):
    enter in the search box takes it at once."""

    def __init__(self, *args: Any, selected: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._selected = selected

    def on_mount(self) -> None:
        super().on_mount()
        if self._selected is None:
            return
        options = self.query_one(OptionList)
        for index in range(options.option_count):
            if options.get_option_at_index(index).id == self._selected:
                options.highlighted = index
                break


# --- the keys ------------------------------------------------------------------------------------


class FixActions:
    """Mixed into the main screen (`tui.screens.main.MainScreen`)."""

    app: TrueupApp

    if TYPE_CHECKING:

        @property
        def active(self) -> str: ...

        def pane(self, name: str | None = None) -> Pane: ...

        def notify(self, message: str, **kwargs: Any) -> None: ...

        def action_show_pane(self, name: str) -> None: ...

        def action_products(self) -> None: ...

    # helpers

    def _keys(self) -> dict[str, str]:
        return keys_of(getattr(self.app, "keymap", None))

    def _say(self, message: str) -> None:
        """Why a key does not apply here: one line."""
        self.notify(message, severity="warning", timeout=6)

    def _row(self) -> Row | None:
        try:
            return self.pane().current
        except Exception:
            return None

    def _finding(self, row: Row | None) -> Any:
        data = self.app.data
        if row is None or data is None or self.active != "errors":
            return None
        from engine.rules.findings import finding_key

        return next((f for f in data.plan.findings if finding_key(f) == row.key), None)

    def _company_of_row(self, row: Row | None) -> str | None:
        if row is None:
            return None
        if self.active == "customers":
            return row.key
        return row.company_id

    def _subscription_of_row(self, row: Row | None) -> str | None:
        data = self.app.data
        if row is None or data is None:
            return None
        finding = self._finding(row)
        if finding is not None:
            sub = finding.subject.get("subscription_id")
            return str(sub) if sub else None
        for key in row.line_keys:
            line = data.lines.get(key)
            if line is not None:
                return str(line.subscription_id)
        return None

    def _refused(self, what: str) -> bool:
        return bool(self.app.refuse(what))

    # enter on a finding: jump to the row and say the key

    def fix_finding(self, row: Row) -> None:
        if self.app.engine_pending("open the fix"):
            return
        from engine import actions

        finding = self._finding(row)
        if finding is None:
            return
        fix = FIXES.get(finding.code)
        how = how_to_fix(finding.code, getattr(self.app, "keymap", None))
        store = self.app.loaded_workspace.store
        ack = self.app.data.acknowledged.get(row.key) if self.app.data is not None else None
        if ack is not None:
            by, at, why = ack
            how += f" — acknowledged by {by} {at}: {why}"
        if fix is not None and fix.pane == "customers":
            company = finding.subject.get("vendor_company_id") or row.company_id
            self.action_show_pane("customers")
            self._move_to(self.pane("customers"), lambda r: r.key == company)
        elif fix is not None and fix.pane == "unsynced":
            key = finding.subject.get("key", "")
            self.action_show_pane("unsynced")
            self._move_to(self.pane("unsynced"), lambda r: key in r.line_keys or r.key == key)
        elif fix is not None and fix.pane == "products":
            self.action_products()
            sub = finding.subject.get("subscription_id")
            product = actions.product_of(store, sub) if sub else None
            if product is not None:
                self.app.call_after_refresh(self._move_in_products, product)
        self.notify(f"{finding.code}: {how}", timeout=10)

    def _move_to(self, pane: Pane, match: Any) -> None:
        for index, key in enumerate(pane.table.keys):
            row = pane.by_key.get(key)
            if row is not None and match(row):
                pane.table.move_cursor(row=index)
                return

    def _move_in_products(self, product_id: str) -> None:
        from tui.rows import split_product_key
        from tui.screens.products import ProductsScreen

        screen = self.app.screen
        if isinstance(screen, ProductsScreen):
            self._move_to(screen.pane, lambda r: split_product_key(r.key)[0] == product_id)

    # import a vendor company into the PSA

    def action_import_company(self) -> None:
        from engine import actions

        row = self._row()
        data = self.app.data
        vendor_id = self._company_of_row(row)
        if row is None or data is None or vendor_id is None or self.active not in ("customers", "errors"):
            self._say("Import applies to a customer: on Customers or on a company_not_mapped finding.")
            return
        finding = self._finding(row)
        if finding is not None and finding.code != "company_not_mapped":
            self._say(f"Import fixes company_not_mapped; this is {finding.code}: {how_to_fix(finding.code)}.")
            return
        if self.active == "customers" and row.status != "not_mapped":
            self._say(f"{data.company(vendor_id)} is mapped already; unmap it first to import it anew.")
            return
        ws = self.app.loaded_workspace
        if getattr(ws, "psa", None) is None:
            self._say("No PSA connection is open; importing needs one (trueup doctor checks it).")
            return
        if self._refused("import customers"):
            return
        name = data.company(vendor_id)

        def go(yes: bool | None) -> None:
            if not yes:
                return
            store, psa, core = ws.store, ws.psa, self.app.core
            self.app.run_engine(
                lambda: core.run_async(actions.import_company(store, psa, vendor_id)),
                f"Created {name} in {data.psa} and mapped it",
            )

        self.app.push_screen(
            ConfirmModal(
                f"Create {name} in {data.psa}",
                f"Create a new {data.psa} company named '{name}' and map {name} to it? It stays in "
                f"{data.psa} even if the mapping is undone later.",
            ),
            go,
        )

    # pick the agreement

    def action_pick_agreement(self) -> None:
        from engine import actions

        row = self._row()
        data = self.app.data
        vendor_id = self._company_of_row(row)
        if row is None or data is None or vendor_id is None or self.active not in ("customers", "errors"):
            self._say("The agreement is picked for a customer: on Customers or on its finding.")
            return
        store = self.app.loaded_workspace.store
        choices = actions.agreements_of(store, vendor_id)
        if not choices:
            self._say(f"{data.company(vendor_id)} is not mapped or its PSA company has no agreement.")
            return
        if self._refused("pick agreements"):
            return
        current = actions.chosen_agreement(store, vendor_id)
        automatic = "" if current is None else "(automatic: the newest active one)"
        if current is not None:
            choices = [("", automatic), *choices]

        def done(agreement_id: str | None) -> None:
            if agreement_id is None:
                return
            from engine.console_core import Act

            label = data.agreement_names.get(agreement_id, agreement_id) if agreement_id else "automatic"
            self.app.act(
                Act("map_agreement", vendor_id=vendor_id, psa_id=agreement_id),
                f"{data.company(vendor_id)} bills to {label}",
            )

        self.app.push_screen(
            PreselectPickerModal(
                f"Agreement for {data.company(vendor_id)}",
                choices,
                placeholder="Search agreements",
                note="Lines of this customer go to the agreement picked here.",
                list_id="agreements",
                verb="pick",
                selected=current,
            ),
            done,
        )

    # create new vs update (seed 001)

    def action_toggle_create_new(self) -> None:
        from engine import actions

        row = self._row()
        data = self.app.data
        sub = self._subscription_of_row(row)
        key = f"{sub}:recurring" if sub else ""
        if data is None or row is None or key not in data.lines:
            self._say("Create new / update applies to a subscription's recurring line; this row has none.")
            return
        if self._refused("change lines"):
            return
        store, plan = self.app.loaded_workspace.store, data.plan
        was = data.lines[key].action

        def go() -> None:
            actions.toggle_create_new(store, key, plan=plan)

        self.app.run_engine(
            go,
            f"{key}: {'update the existing line' if was == 'create' else 'create a new line (the old one ends)'}",
        )

    # mark free / not free

    def action_mark_free(self) -> None:
        from engine import actions

        row = self._row()
        data = self.app.data
        sub = self._subscription_of_row(row)
        store = self.app.loaded_workspace.store
        product = actions.product_of(store, sub) if sub else None
        if data is None or product is None:
            self._say("Mark free applies to a product: on its line or its finding (Products: its row).")
            return
        binding = data.bindings.get((product, ""))
        if binding is None:
            self._say("The product is not bound; bind it first (p, then b), then mark it free.")
            return
        if self._refused("mark products free"):
            return
        free = not bool(getattr(binding, "free", False))
        self.app.run_engine(
            lambda: actions.set_free(store, product, free),
            f"{product} marked {'free' if free else 'not free'}",
        )

    # clear an effective date

    def action_clear_date(self) -> None:
        from engine import actions

        row = self._row()
        data = self.app.data
        if row is None or data is None:
            return
        finding = self._finding(row)
        keys = (
            [finding.subject["key"]]
            if finding is not None and "key" in finding.subject
            else list(row.line_keys)
        )
        if self._refused("clear dates"):
            return
        store = self.app.loaded_workspace.store
        from engine.store import tables as t

        with store.session() as s:
            own = [
                k for k in keys if (o := s.get(t.OverrideRow, k)) is not None and o.effective_date is not None
            ]
        if not own:
            self._say("This row has no effective date of its own to clear (e sets one).")
            return

        def go() -> None:
            for key in own:
                actions.clear_effective_date(store, key)

        self.app.run_engine(go, f"Effective date cleared on {', '.join(own)}")

    # acknowledge a warning

    def action_acknowledge(self) -> None:
        from engine import actions

        row = self._row()
        finding = self._finding(row)
        if finding is None:
            self._say("Acknowledge applies to a warning on Errors (6).")
            return
        if finding.severity != "warning":
            self._say(f"{finding.code} is an error: {how_to_fix(finding.code)}.")
            return
        data = self.app.data
        assert data is not None and row is not None
        store, plan, key = self.app.loaded_workspace.store, data.plan, row.key
        placeholder = "credit issued (credit note number)" if finding.code == "credit_due" else "why"

        def done(reason: str | None) -> None:
            if reason is None:
                return
            self.app.run_engine(
                lambda: actions.acknowledge(store, key, reason, plan=plan),
                f"Acknowledged {finding.code}: {reason.strip()}",
            )

        self.app.push_screen(
            TextModal(f"Acknowledge {finding.code}", placeholder, note=finding.message), done
        )

    # a note on a line or a customer

    def action_add_note(self) -> None:
        from engine import actions

        row = self._row()
        data = self.app.data
        if row is None or data is None:
            return
        if self.active == "customers":
            subject, what = row.key, data.company(row.key)
        else:
            sub = self._subscription_of_row(row)
            if sub is None:
                self._say("A note goes on a line or a customer; this row is neither.")
                return
            subject, what = sub, f"{data.company(row.company_id or '')} · subscription {sub}"
        store = self.app.loaded_workspace.store
        current = actions.notes(store).get(subject, "")

        def done(note: str | None) -> None:
            if note is None:
                return
            self.app.run_engine(
                lambda: actions.add_note(store, subject, note, company=row.company_id),
                f"Note on {what} {'saved' if note.strip() else 'cleared'}",
            )

        self.app.push_screen(
            TextModal(
                f"Note on {what}",
                "What the next operator should know",
                value=current,
                note="Every later action on it carries the note into the audit trail. Empty clears it.",
            ),
            done,
        )

    # undo (until the next sync)

    def action_undo(self) -> None:
        from engine import actions

        if self._refused("undo"):
            return
        store = self.app.loaded_workspace.store
        pending = actions.undoable(store)
        if not pending:
            self._say("Nothing to undo since the last sync.")
            return
        event = pending[0]
        when = event.at.strftime("%H:%M") if event.at else ""
        what = f"{event.action.replace('_', ' ')} of {event.subject.removeprefix(IGNORED_PREFIX)}"

        def go(yes: bool | None) -> None:
            if yes:
                self.app.run_engine(lambda: actions.undo(store, event_id=event.id), f"Undone: {what}")

        self.app.push_screen(
            ConfirmModal(
                "Undo",
                f"Undo the {what} ({event.user}, {when})? {len(pending) - 1} more can be undone after it, "
                "until the next sync.",
            ),
            go,
        )
