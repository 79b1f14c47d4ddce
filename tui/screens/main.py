"""The main screen: the panes in tabs, the status header and a short footer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Input, Static, TabbedContent, TabPane

from engine.batch import hold_provisional
from engine.money import fmt_money
from tui.bindings import bindings
from tui.rows import IGNORED_PREFIX, PANE_TITLES, PANES, ConsoleData, Row, cell, company_rows, figures_time
from tui.screens.confirm import ConfirmModal
from tui.screens.edit_date import EditDateModal
from tui.screens.fixes import FixActions, TextModal
from tui.screens.ignore import IgnoreChoice, IgnoreModal
from tui.screens.map_company import MapCompanyModal, SuggestionsModal, suggest_company
from tui.view import count, folded
from tui.widgets.footer import KeysFooter
from tui.widgets.header import StatusHeader
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.margin import MARGIN, MarginPane
from tui.widgets.panes import Pane
from tui.widgets.renewals import RENEWALS, RenewalsPane

if TYPE_CHECKING:
    from engine.console_core import Outcome
    from tui.app import TrueupApp

LINE_PANES = ("unsynced", "arrears", "prorates")


def write_csv_of(app: TrueupApp, table: KeyedTable, name: str) -> None:
    """Write `table` to `name` in the current directory and say where (or why not, in one line)."""
    path = Path.cwd() / name
    try:
        rows = table.write_csv(path)
    except OSError as exc:
        app.notify(f"Cannot write {path}: {exc.strerror or exc}", severity="error", timeout=8)
        return
    app.notify(f"Wrote {rows:,} rows to {path}", timeout=8)


class MainScreen(FixActions, Screen[None]):
    SCOPE = "main"
    BINDINGS = bindings("main")
    app: TrueupApp
    customer_search = ""  # F: every pane shows only the rows of these customers
    include_provisional = False  # provisional usage is held out of a sync until the operator includes it

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield Static("", id="stale-banner", classes="-hidden")
        with TabbedContent(id="tabs"):
            for name in PANES:
                with TabPane(PANE_TITLES[name], id=f"tab-{name}"):
                    yield Pane(name)
            with TabPane(PANE_TITLES[RENEWALS], id=f"tab-{RENEWALS}"):  # issue 15
                yield RenewalsPane()
            with TabPane(PANE_TITLES[MARGIN], id=f"tab-{MARGIN}"):  # issue 14
                yield MarginPane()
        yield KeysFooter()

    def on_mount(self) -> None:
        self.pane().table.focus()

    # --- state ---------------------------------------------------------------------------------

    @property
    def active(self) -> str:
        return self.query_one(TabbedContent).active.removeprefix("tab-") or "overview"

    def pane(self, name: str | None = None) -> Pane:
        return self.query_one(f"#pane-{name or self.active}", Pane)

    def show_data(self, data: ConsoleData, *, patch: frozenset[str] | None = None) -> None:
        """Show `data`; `patch`: only these customers changed (each pane keeps the rest)."""
        tabs = self.query_one(TabbedContent)
        show_ignored = self.app.show_ignored
        with self.app.batch_update():
            for name in PANES:
                changed = company_rows(data, name, patch, show_ignored) if patch is not None else None
                self.pane(name).set_rows(
                    data.rows_for(name, show_ignored),
                    changed=changed,
                    widths=data.widths_for(name, show_ignored),
                )
                tab, label = tabs.get_tab(f"tab-{name}"), self.tab_label(name, data)
                if tab.label.plain != label:  # a new label is a layout pass of the whole screen
                    tab.label = label
        self.query_one(RenewalsPane).load(self.app.workspace, data.as_of)
        self.query_one(MarginPane).figures_changed(self.app.workspace, data)
        if self.customer_search:
            self.apply_customer_search()
        self.show_state()

    # --- how current the figures are (loading / stale banner) ----------------------------------------

    def show_state(self) -> None:
        """The header, and the banner that says when the figures shown are not the current ones."""
        data = self.app.data
        banner = self.query_one("#stale-banner", Static)
        if data is not None and data.stale:
            banner.update(
                f"⚠ FIGURES FROM {figures_time(data)} (saved), RECOMPUTING… — they may have "
                "changed since; review, sync and edits wait for the current figures."
            )
            banner.remove_class("-hidden")
        else:
            banner.add_class("-hidden")
        self.update_header()
        self.refresh_bindings()

    @staticmethod
    def tab_label(name: str, data: ConsoleData) -> str:
        """'Unsynced 42': what waits in the pane (ignored rows not counted); Overview has no count."""
        if name == "overview":
            return PANE_TITLES[name]
        return f"{PANE_TITLES[name]} {count(len(data.rows.get(name, [])))}"

    def update_header(self, busy: str = "") -> None:
        app = self.app
        data = app.data
        ws = app.workspace
        if not busy and data is not None and data.stale:
            busy = f"figures from {figures_time(data)}, recomputing…"
        self.query_one(StatusHeader).show(  # before the engine is loaded: the launch's label, no freshness
            label=ws.label if ws is not None else app.launch_label,
            sandbox=ws.sandbox if ws is not None else app.launch_sandbox,
            as_of=data.as_of if data else app.as_of,
            invoiced_through=data.invoiced_through if data else None,
            freshness=dict(getattr(ws, "freshness", {}) or {}) if ws is not None else {},
            busy=busy or app.busy,
            customer=self.customer_search,
            psa=data.psa if data is not None else "",
        )

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.pane().table.focus()
        if self.active == MARGIN:
            self.query_one(MarginPane).opened()
        self.refresh_bindings()

    def on_keyed_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        pane = self.pane()
        row = pane.by_key.get(event.key)
        if pane.pane == "overview" and row is not None and row.target:
            if row.target == "products":
                self.action_products()
            else:
                self.action_show_pane(row.target)
        elif pane.pane == "errors" and row is not None:
            self.fix_finding(row)  # issue 13: jump to where it is fixed and say the key

    # No refresh_bindings on a cursor move: the footer shows only keys that do not depend on the
    # row (filter, review, help, refresh, quit), a footer rebuild is a full layout pass (the
    # slowest part of a move), and a row key's availability is checked when it is pressed.

    def targets(self) -> list[Row]:
        """The selection of the active pane (in the pane's order), else the row under the cursor."""
        pane = self.pane()
        if pane.selected:
            return pane.selected_rows()
        return [pane.current] if pane.current is not None else []

    def _any_target(self, ignored: bool) -> bool:
        """Is there a target row that is (not) ignored? Cheap: runs on every cursor move."""
        pane = self.pane()
        if pane.selected:
            by_key = pane.by_key
            return any(by_key[k].ignored == ignored for k in pane.selected if k in by_key)
        row = pane.current
        return row is not None and row.ignored == ignored

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.app.data is None and action not in ("show_pane", "filter"):
            return None
        active = self.active
        focused_input = isinstance(self.focused, Input)
        if focused_input and action not in ("show_pane",):
            return None
        try:
            pane = self.pane()
        except Exception:
            return None
        row = pane.current
        if action in ("toggle_select", "select_all", "copy_id"):
            return row is not None
        if action == "ignore_row":
            return active in LINE_PANES and self._any_target(ignored=False) or None
        if action == "restore_row":
            return active in LINE_PANES and self._any_target(ignored=True) or None
        if action == "toggle_ignored":
            return active in LINE_PANES or None
        if action == "edit_date":  # an update-only line says why (action_edit_date)
            return active in LINE_PANES and row is not None and not row.ignored or None
        if action == "bulk_date":
            return active in LINE_PANES and bool(pane.selected) or None
        if action == "map_company" and active == "errors":  # a finding's customer (issue 13)
            return row is not None and row.company_id is not None or None
        if action in ("map_company", "unmap_company"):
            if active != "customers" or row is None:
                return None
            is_mapped = row.status != "not_mapped"
            return (not is_mapped if action == "map_company" else is_mapped) or None
        if action == "refresh_customer":
            return row is not None and self._company_of(row) is not None or None
        if action == "generate_mappings":
            return active == "customers" or None
        if action == "review":  # saved figures (plan not restored yet): let `v` say why it waits
            data = self.app.data
            return bool(data and (not data.complete or data.plan.lines)) or None
        if action == "products":
            return self.app.data is not None or None
        return True

    # --- navigation and selection ----------------------------------------------------------------

    def action_show_pane(self, name: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{name}"
        self.pane(name).table.focus()

    def action_cursor_last(self) -> None:
        table = self.pane().table
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def action_sort_column(self) -> None:
        self.notify(self.pane().cycle_sort(), timeout=3)

    def action_sort_reverse(self) -> None:
        self.notify(self.pane().reverse_sort(), timeout=3)

    def action_filter(self) -> None:
        self.pane().open_filter()

    def key_escape(self) -> None:
        if isinstance(self.focused, Input):
            self.pane().close_filter(keep=False)
        elif self.customer_search:
            self.clear_customer_search()

    def clear_customer_search(self) -> None:
        self.customer_search = ""
        self.apply_customer_search()
        self.notify("Every customer shown again", timeout=3)

    # --- the customer search across panes ----------------------------------------------------------

    def matching_companies(self, text: str) -> frozenset[str]:
        """The vendor companies whose name (or mapped PSA company's name) holds `text`, case and
        punctuation ignored."""
        data = self.app.data
        needle = folded(text)
        if data is None or not needle:
            return frozenset()
        found = {cid for cid, name in data.company_names.items() if needle in folded(name)}
        for row in data.rows.get("customers", []):  # the PSA company it is mapped to
            if row.status != "not_mapped" and needle in folded(cell(row, "customers", "psa_company")):
                found.add(row.key)
        return frozenset(found)

    def apply_customer_search(self) -> None:
        text = self.customer_search
        companies = self.matching_companies(text)
        for name in (*PANES, RENEWALS):
            self.pane(name).set_customer(text, companies)
        self.update_header()

    # --- a subscription's history (h) ------------------------------------------------------------------

    def _subscription_of(self, row: Row) -> str | None:
        data = self.app.data
        if data is None:
            return None
        if self.active == RENEWALS:
            return row.key
        if self.active in LINE_PANES:
            for key in row.line_keys:
                line = data.lines.get(key)
                if line is not None and line.subscription_id in data.product_names:
                    return line.subscription_id
        return None

    def action_history(self) -> None:
        from engine.history import subscription_history
        from tui.screens.history import HistoryModal

        row = self.pane().current
        if row is None:
            self.notify("No row here: h shows the history of a row's subscription", timeout=4)
            return
        sub = self._subscription_of(row)
        if sub is None:
            self.notify(
                "h shows a subscription's history: on a row of Unsynced, Arrears, Prorates or Renewals "
                "(backup configurations have none)",
                timeout=5,
            )
            return
        store = getattr(self.app.workspace, "store", None)
        if store is None:
            self.notify("This workspace has no store to read the history from", severity="warning")
            return
        data = self.app.data
        product = data.product_names.get(sub, sub) if data is not None else sub
        company = row.company_id or ""
        who = f"{data.company(company)} · " if data is not None and company else ""
        self.app.push_screen(
            HistoryModal(f"History of {who}{product} ({sub})", subscription_history(store, sub))
        )

    def action_find_customer(self, then: Callable[[], None] | None = None) -> None:
        """F: every pane narrowed to the customers whose name holds the text; `then`: what else
        shows the search (the Products screen, when F is pressed there)."""

        def done(text: str | None) -> None:
            if text is None:
                return
            text = text.strip()
            if text and not folded(text):
                self.notify("Type letters or digits of a customer's name", severity="warning", timeout=4)
                return
            if text and not self.matching_companies(text):
                self.notify(f"No customer's name holds '{text}': every customer still shown", timeout=5)
                return
            self.customer_search = text
            self.apply_customer_search()
            if then is not None:
                then()
            if text:
                found = len(self.matching_companies(text))
                self.notify(f"{found} customer(s) match '{text}' in every pane (esc: all)", timeout=4)

        self.app.push_screen(
            TextModal(
                "Find customer (every pane)",
                "Part of a customer's name",
                value=self.customer_search,
                note="Case and punctuation are ignored; an empty text shows every customer.",
            ),
            done,
        )

    def action_toggle_select(self) -> None:
        pane = self.pane()
        row = pane.current
        if row is not None:
            pane.toggle(row.key)
            pane.table.action_cursor_down()

    def action_select_all(self) -> None:
        self.pane().select_all()
        self.refresh_bindings()

    def action_toggle_ignored(self) -> None:
        self.app.show_ignored = not self.app.show_ignored
        if self.app.data is not None:
            self.show_data(self.app.data)
        self.notify(
            "Showing ignored items (r restores)" if self.app.show_ignored else "Ignored items hidden",
            timeout=3,
        )

    def action_copy_id(self) -> None:
        row = self.pane().current
        if row is not None:
            value = row.key.removeprefix(IGNORED_PREFIX)
            self.app.copy_to_clipboard(value)
            self.notify(f"Copied {value}", timeout=3)

    def action_export_csv(self) -> None:
        """w: the pane's rows (after the filter, every column, the selection mark first) to a CSV."""
        data = self.app.data
        stamp = data.as_of.isoformat() if data is not None else "now"
        write_csv_of(self.app, self.pane().table, f"trueup-{self.active}-{stamp}.csv")

    # --- ignore / restore --------------------------------------------------------------------------

    def action_ignore_row(self) -> None:
        from engine.console_core import Act

        if self.app.refuse("ignore rows"):
            return
        rows = [r for r in self.targets() if not r.ignored]
        if not rows:
            return
        keys = [r.key for r in rows]
        pane = self.pane()
        title = PANE_TITLES[self.active]
        # one row: its company and product by name (the columns say where they sit in each line pane)
        what = (
            f"{count(len(keys))} rows"
            if len(keys) > 1
            else f"{cell(rows[0], self.active, 'customer')} · {cell(rows[0], self.active, 'product')}"
        )
        lines_only = self.active != "unsynced"

        def done(choice: IgnoreChoice | None) -> None:
            if choice is None:
                return
            pane.selected -= set(keys)
            pane.redraw()
            self.app.act(
                Act("ignore", keys=tuple(keys), mode=choice.mode, reason=choice.reason or None),
                f"Ignored {count(len(keys))} {'row' if len(keys) == 1 else 'rows'}",
            )

        def ask_reason(yes: bool | None = True) -> None:
            if yes:
                self.app.push_screen(IgnoreModal(what, allow_this_change=lines_only), done)

        if len(keys) == 1:
            ask_reason()
            return
        hidden = sum(1 for k in keys if not pane.table.holds(k))
        body = (
            f"Ignore {count(len(keys))} selected rows of {title}?"
            + (f" ({count(hidden)} of them are hidden by the filter.)" if hidden else "")
            + " Ignored rows leave the plan (t shows them, r restores). Next: the reason."
        )
        self.app.push_screen(ConfirmModal(f"Ignore {count(len(keys))} rows", body), ask_reason)

    def action_products(self) -> None:
        if self.app.refuse("open Products"):
            return
        if self.app.data is None:
            return
        from tui.screens.products import ProductsScreen

        self.app.push_screen(ProductsScreen(self.app.data))

    def action_restore_row(self) -> None:
        from engine.console_core import Act

        if self.app.refuse("restore rows"):
            return
        data = self.app.data
        rows = [r for r in self.targets() if r.ignored]
        if not rows or data is None:
            return
        keys: list[str] = []
        for row in rows:
            candidates = [row.key.removeprefix(IGNORED_PREFIX), *row.line_keys]
            candidates += [data.lines[k].subscription_id for k in row.line_keys if k in data.lines]
            keys += [k for k in candidates if k in data.ignored]
        keys = list(dict.fromkeys(keys))
        self.pane().selected -= {r.key for r in rows}
        self.app.act(
            Act("restore", keys=tuple(keys)), f"Restored {len(keys)} {'item' if len(keys) == 1 else 'items'}"
        )

    # --- dates -------------------------------------------------------------------------------------

    def _line_key_for_edit(self, row: Row) -> str:
        data = self.app.data
        assert data is not None
        for key in row.line_keys:
            line = data.lines.get(key)
            if line is not None and line.action == "create":
                return key
        return row.line_keys[0] if row.line_keys else row.key

    def action_edit_date(self) -> None:
        from engine.console_core import Act

        if self.app.refuse("edit dates"):
            return
        row = self.pane().current
        data = self.app.data
        if row is None or data is None:
            return
        if not row.editable:  # seed 001's wording; C creates a new line, whose date can move
            self.notify(
                "Cannot be changed when updating existing addition (C creates a new line instead).",
                severity="warning",
                timeout=6,
            )
            return
        key = self._line_key_for_edit(row)
        line = data.lines.get(key)

        def apply(value: date) -> None:  # in the modal's worker thread: the one write path, the core's
            self.app.act_now(Act("set_effective_date", keys=(key,), day=value))

        def done(value: date | None) -> None:
            if value is not None:
                self.app.notify(f"Effective date of {key} set to {value.isoformat()}", timeout=4)

        self.app.push_screen(
            EditDateModal(
                f"Effective date of {line.description if line else key}",
                line.effective_date if line else None,
                apply,
                note=f"The 1st of a month, after {data.invoiced_through.isoformat()}.",
            ),
            done,
        )

    def action_bulk_date(self) -> None:
        from engine.console_core import Act

        if self.app.refuse("edit dates"):
            return
        pane = self.pane()
        data = self.app.data
        if not pane.selected or data is None:
            return
        keys: list[str] = []
        for row in self.targets():
            keys += list(row.line_keys)

        def apply(value: date) -> None:
            self.app.act_now(Act("set_effective_date", keys=tuple(keys), day=value))

        def done(value: date | None) -> None:
            if value is not None:
                self.app.notify(f"Effective date of {len(keys)} lines set to {value.isoformat()}", timeout=4)
                pane.selected.clear()
                pane.redraw()

        self.app.push_screen(
            EditDateModal(
                f"Effective date of {len(keys)} selected lines",
                None,
                apply,
                note="All or nothing: if one line is refused, none changes.",
            ),
            done,
        )

    # --- customers -----------------------------------------------------------------------------------

    def action_map_company(self) -> None:
        from engine.console_core import Act

        if self.app.refuse("map customers"):
            return
        row = self.pane().current
        data = self.app.data
        if row is None or data is None:
            return
        vendor_id = row.key if self.active == "customers" else row.company_id
        if vendor_id is None:
            return
        name = data.company(vendor_id)

        def done(psa_id: str | None) -> None:
            if psa_id:
                self.app.act(
                    Act("map_company", vendor_id=vendor_id, psa_id=psa_id),
                    f"Mapped {name} to {data.psa_company_names.get(psa_id, psa_id)}",
                )

        # pre-select the near match (issue 13): the PSA companies already mapped are not offered first
        mapped_names = {
            cell(r, "customers", "psa_company")
            for r in data.rows.get("customers", [])
            if r.status != "not_mapped"
        }
        taken = {cid for cid, psa_name in data.psa_companies if psa_name in mapped_names}
        suggested = suggest_company(name, data.psa_companies, taken)
        self.app.push_screen(MapCompanyModal(name, data.psa_companies, suggested), done)

    def action_unmap_company(self) -> None:
        from engine.console_core import Act

        if self.app.refuse("unmap customers"):
            return
        row = self.pane().current
        data = self.app.data
        if row is None:
            return
        lines = sum(1 for x in data.plan.lines if x.company_id == row.key) if data is not None else 0
        customer, psa_company = cell(row, "customers", "customer"), cell(row, "customers", "psa_company")
        body = (
            f"Unmap {customer} from {psa_company}? Its {lines} planned line(s) leave the plan "
            "until it is mapped again (m)."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.act(Act("unmap_company", vendor_id=row.key), f"Unmapped {customer}")

        self.app.push_screen(ConfirmModal(f"Unmap {customer}", body), answered)

    def action_generate_mappings(self) -> None:
        from engine.actions import GeneratedMappings
        from engine.console_core import Act

        if self.app.refuse("generate mappings"):
            return

        def after(outcome: Outcome) -> None:
            generated = outcome.result
            if not isinstance(generated, GeneratedMappings):
                return
            if not generated.suggestions:
                self.app.notify(f"Mapped {len(generated.applied)} exact name matches; no near matches.")
                return
            suggestions = [
                (s.vendor_id, s.vendor_name, s.psa_id, s.psa_name, s.score) for s in generated.suggestions
            ]

            def accepted(pairs: list[tuple[str, str]] | None) -> None:
                for i, (vendor_id, psa_id) in enumerate(pairs or []):
                    last = i == len(pairs or []) - 1
                    self.app.act(
                        Act("map_company", vendor_id=vendor_id, psa_id=psa_id),
                        f"Mapped {len(pairs or [])} near matches" if last else "",
                    )

            self.app.push_screen(SuggestionsModal(len(generated.applied), suggestions), accepted)

        self.app.act(Act("generate_mappings"), "Generated mappings", then=after)

    # --- the targeted refresh of the customer under the cursor ----------------------------------------

    def _company_of(self, row: Row) -> str | None:
        if self.active == "customers":
            return row.key
        return row.company_id

    def action_refresh_customer(self) -> None:
        row = self.pane().current
        company = self._company_of(row) if row is not None else None
        if company is None:
            return
        data = self.app.data
        self.app.action_refresh_customer(company, data.company(company) if data is not None else company)

    # --- review ----------------------------------------------------------------------------------------

    def action_review(self) -> None:
        if self.app.refuse("review and sync", review=True):
            return
        data = self.app.data
        if data is None:
            return
        keys: list[str] = []
        for name in LINE_PANES:
            pane = self.pane(name)
            for row in pane.rows:
                if row.key in pane.selected and not row.ignored:
                    keys += row.line_keys
        chosen = set(keys)
        lines = [line for line in data.plan.lines if line.key in chosen] if chosen else list(data.plan.lines)
        lines, held = hold_provisional(lines, self.include_provisional)
        if held:
            self.notify(
                f"{len(held)} provisional usage line(s) held out of this sync (figures not final; P includes them)",
                timeout=6,
            )
        if not lines:
            return
        from tui.screens.review import ReviewScreen

        self.app.push_screen(ReviewScreen(data, lines, selection=bool(chosen), held=len(held)))

    def action_include_provisional(self) -> None:
        """P: include provisional usage in the next review (asks), or hold it again."""
        data = self.app.data
        if self.include_provisional:
            self.include_provisional = False
            self.notify("Provisional usage held out of syncs again", timeout=4)
            return
        provisional = [x for x in data.plan.lines if x.provisional] if data is not None else []
        if not provisional:
            self.notify("No provisional lines: every usage figure is final", timeout=4)
            return
        total = sum((x.total_price for x in provisional), Decimal("0.00"))
        body = (
            f"Include {len(provisional)} PROVISIONAL usage line(s) ({fmt_money(total)} gross) in the sync? "
            f"Their periods are not final until day 5 of the next month: the vendor may still change "
            f"the figures, and the PSA would invoice these ones."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.include_provisional = True
                self.notify(f"Provisional usage included: {len(provisional)} line(s)", timeout=4)

        self.app.push_screen(ConfirmModal("Include provisional usage", body), answered)
