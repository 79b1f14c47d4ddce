"""Review: every line to be written, grouped by customer and agreement, vendor vs PSA side by side,
grand totals and the findings that block any of them; `y`/`s` confirms (a modal states the count
and the PSA), then the executor runs in a worker and each line's outcome shows as it happens."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import ProgressBar, Static

from engine.money import fmt_money, fmt_quantity
from engine.net import Net, fmt_net, fmt_pct, line_net, old_line_of, total_net
from engine.net import summary as net_summary
from engine.plan import Finding, PlanLine
from engine.scenario import BILL_OPTION_LABELS
from engine.verify import invoiced_total
from tui.bindings import bindings
from tui.rows import Column, ConsoleData
from tui.screens.confirm import ConfirmModal, cost_continues_warning
from tui.widgets.footer import KeysFooter
from tui.widgets.keyed_table import KeyedTable

if TYPE_CHECKING:
    from tui.app import TrueupApp

ZERO = Decimal("0.00")
C = Column
# Cells in this order; at 80×24 the line, its action, its net and its outcome stay on screen.
COLUMNS = (
    C("line", "Line", 0, 16, pin=True),
    C("outcome", "Outcome", 0, 8),
    C("action", "Action", 0, 8),
    C("qty_vendor", "Qty Pax8", 4, 4),
    C("qty_psa", "Qty PSA", 4, 4),
    C("cost_vendor", "Unit cost Pax8", 8, 8),
    C("cost_psa", "Unit cost PSA", 8, 8),
    C("price_vendor", "Unit price Pax8", 6, 8),
    C("price_psa", "Unit price PSA", 6, 8),
    C("total", "Total", 7, 8),
    C("effective", "Effective", 5, 10),
    C("end", "End", 9, 10),
    C("net", "Net $/mo", 0, 9),
    C("one_time", "One-time", 1, 9),
)
NET_COLUMN = 12


def blocking_findings(data: ConsoleData, lines: list[PlanLine]) -> list[Finding]:
    subs = {line.subscription_id for line in lines}
    companies = {line.company_id for line in lines}
    agreements = {line.psa_agreement_id for line in lines}
    found = []
    for f in data.plan.findings:
        s = f.subject
        if (
            s.get("subscription_id") in subs
            or s.get("vendor_company_id") in companies
            or s.get("psa_agreement_id") in agreements
        ):
            found.append(f)
    return found


class ReviewScreen(Screen[None]):
    SCOPE = "review"
    BINDINGS = bindings("review")
    app: TrueupApp

    def __init__(self, data: ConsoleData, lines: list[PlanLine], selection: bool, held: int = 0) -> None:
        super().__init__()
        self.held = held  # provisional lines held out of this sync
        self.quit_after = False  # q during the sync: quit once it has stopped
        self.data = data
        self.lines = lines
        self.selection = selection
        self.outcomes: dict[str, str] = {}
        self.running = False
        self.finished = False
        self.cancel_event: asyncio.Event | None = None
        self.rows: dict[str, tuple[str, ...]] = {}
        self.details: dict[str, str] = {}
        self.verification: str = ""

    def compose(self) -> ComposeResult:
        yield Static(id="review-title", classes="review-title")
        yield KeyedTable(COLUMNS, id="review-table")
        with VerticalScroll(id="review-detail-box"):
            yield Static(id="review-detail", classes="detail")
        yield Static(id="review-findings", classes="findings")
        yield ProgressBar(
            total=max(1, len(self.lines)), show_eta=False, id="review-progress", classes="-hidden"
        )
        yield Static(id="review-totals", classes="totals")
        yield KeysFooter()

    def on_mount(self) -> None:
        data = self.data
        psa_name = data.psa
        scope = "selected lines" if self.selection else "all proposed lines"
        self.query_one("#review-title", Static).update(
            Text(
                f"Review — {len(self.lines)} {scope} to write to {psa_name} ({self.app.loaded_workspace.label}) · "
                f"Pax8 | {psa_name} side by side"
                + (f" · {self.held} provisional held (P)" if self.held else "")
            )
        )
        groups: dict[tuple[str, str], list[PlanLine]] = defaultdict(list)
        for line in self.lines:
            groups[(data.company(line.company_id), line.psa_agreement_id)].append(line)
        for (company, agreement_id), lines in sorted(groups.items()):
            agreement = data.agreement_names.get(agreement_id, agreement_id)
            subtotal = sum((x.total_price for x in lines), ZERO)
            group_net = Net()
            for x in lines:
                group_net += line_net(x, old_line_of(x, data.psa_lines))
            header_key = f"group:{company}:{agreement_id}"
            self.rows[header_key] = (
                f"▸ {company} — {agreement} ({agreement_id})",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                fmt_money(subtotal),
                "",
                "",
                fmt_net(group_net.monthly),
                fmt_money(group_net.one_time),
            )
            self.details[header_key] = (
                f"{company} — agreement {agreement}: {len(lines)} lines, net {fmt_net(group_net.monthly)}/month, "
                f"one-time {fmt_money(group_net.one_time)}, margin {fmt_net(group_net.margin)} "
                f"({fmt_pct(group_net.margin_pct)}) · gross {fmt_money(subtotal)}"
            )
            for line in lines:
                psa = data.psa_lines.get(line.psa_line_id) if line.psa_line_id else None
                recurring = "one-time" if line.kind.one_time else "recurring"
                net = line_net(line, old_line_of(line, data.psa_lines))
                self.rows[line.key] = (
                    f"  {line.description}",
                    "pending",
                    f"{line.action} {line.kind.value}",
                    fmt_quantity(line.quantity),
                    fmt_quantity(psa.quantity) if psa is not None else "—",
                    fmt_money(line.unit_cost),
                    fmt_money(psa.unit_cost) if psa is not None else "—",
                    fmt_money(line.unit_price),
                    fmt_money(psa.unit_price) if psa is not None else "—",
                    f"{fmt_money(line.total_price)} {recurring}",
                    line.effective_date.isoformat(),
                    line.end_date.isoformat() if line.end_date else "—",
                    "" if line.kind.one_time else fmt_net(net.monthly),
                    fmt_money(net.one_time) if line.kind.one_time else "",
                )
                self.details[line.key] = self._side_by_side(line, psa, net)
        self.draw()
        findings = blocking_findings(data, self.lines)
        text = Text()
        if findings:
            text.append(f"{len(findings)} findings concern these lines:\n", style="bold")
            for f in findings:
                text.append(f"  {'ERROR' if f.severity == 'error' else 'warning'} {f.code}: {f.message}\n")
        else:
            text.append("No findings block these lines.")
        self.query_one("#review-findings", Static).update(text)
        self.update_totals()
        self.query_one(KeyedTable).focus()

    def _side_by_side(self, line: PlanLine, psa: Any, net: Net) -> str:
        name = self.data.psa
        rows = [
            ("", "Pax8", name),
            (
                "Action",
                f"{line.action} ({line.kind.value})",
                f"line {line.psa_line_id}" if psa is not None else "new",
            ),
            ("Quantity", fmt_quantity(line.quantity), fmt_quantity(psa.quantity) if psa is not None else "—"),
            ("Unit cost", fmt_money(line.unit_cost), fmt_money(psa.unit_cost) if psa is not None else "—"),
            ("Unit price", fmt_money(line.unit_price), fmt_money(psa.unit_price) if psa is not None else "—"),
            (
                "Effective",
                line.effective_date.isoformat(),
                psa.effective_date.isoformat() if psa is not None else "—",
            ),
            (
                "End",
                line.end_date.isoformat() if line.end_date else "—",
                psa.cancelled_date.isoformat() if psa is not None and psa.cancelled_date else "—",
            ),
            ("Description", line.description, psa.description if psa is not None else "—"),
            # seed 001's review rows "Bill Options: Billable / Taxable" (the binding's, issue 13)
            (
                "Bill option",
                BILL_OPTION_LABELS[line.bill_option],
                BILL_OPTION_LABELS[psa.bill_option] if psa is not None and psa.bill_option else "—",
            ),
            (
                "Taxable",
                _taxable(line.taxable),
                _taxable(psa.taxable) if psa is not None and psa.taxable is not None else "—",
            ),
            ("Gross", fmt_money(line.total_price), "—"),
        ]
        money = (
            f"One-time {fmt_money(net.one_time)} (cost {fmt_money(net.one_time_cost)})"
            if line.kind.one_time
            else f"Net {fmt_net(net.monthly)}/month (cost {fmt_net(net.monthly_cost)})"
        )
        if not line.billed:
            money += f" · {BILL_OPTION_LABELS[line.bill_option].lower()}: bills the customer $0.00"
        return (
            "\n".join(f"{a:<12} {b:<28} {c}" for a, b, c in rows)
            + f"\n{money} · margin {fmt_net(net.margin)} ({fmt_pct(net.margin_pct)})"
            + f"\nFormula: {line.formula}"
        )

    def draw(self) -> None:
        out = []
        for key, cells in self.rows.items():
            if key in self.outcomes:
                cells = (cells[0], self.outcomes[key], *cells[2:])
            style = "bold" if key.startswith("group:") else ""
            outcome = self.outcomes.get(key, "")
            if outcome.startswith(("failed", "conflict", "refused", "missing", "differs", "duplicate")):
                style = "bold reverse"
            out.append((key, cells, style))
        self.query_one(KeyedTable).apply(out)

    def on_keyed_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        key = event.key
        detail = self.details.get(key, "")
        if key in self.outcomes:
            detail += f"\nOutcome: {self.outcomes[key]}"
        self.query_one("#review-detail", Static).update(Text(detail))

    @property
    def net(self) -> Net:
        """The invoice change of these lines (engine.net): what the confirm states."""
        return total_net(self.lines, self.data.psa_lines, blocking_findings(self.data, self.lines))

    def update_totals(self) -> None:
        net = self.net
        counts = Counter(x.action for x in self.lines)
        text = (
            f"Net {fmt_net(net.monthly)}/month, one-time {fmt_money(net.one_time)}"
            f" · margin {fmt_net(net.margin)} ({fmt_pct(net.margin_pct)})"
            + (f" · credits due {fmt_money(net.credits)} (by hand)" if net.credits else "")
            + f"\nGrand total {fmt_money(net.gross)} gross · "
            + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        )
        if self.outcomes:
            done = Counter(o.split(":")[0] for o in self.outcomes.values())
            text += "\nOutcomes: " + ", ".join(f"{n} {o}" for o, n in sorted(done.items()))
        if self.verification:
            text += f"\nVerified: {self.verification}"
        self.query_one("#review-totals", Static).update(Text(text))

    # --- keys --------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "confirm_sync":
            return (not self.running and not self.finished and bool(self.lines)) or None
        if action == "cancel_sync":
            return self.running or None
        return True

    def action_confirm_sync(self) -> None:
        if self.running or self.finished or not self.lines:
            return
        ws = self.app.loaded_workspace
        held = [x for x in self.lines if x.provisional]
        # The gross is what the PSA will invoice for these lines (engine.verify), not a plan sum;
        # the headline is the invoice change (engine.net).
        body = (
            f"Write {len(self.lines)} lines: {net_summary(self.net, self.data.psa)}"
            f" — {ws.label}{' (sandbox)' if ws.sandbox else ''}?"
            f"\nGross, as the PSA will invoice these lines: ({fmt_money(invoiced_total(self.lines))})."
            + (f"\n{len(held)} of them are PROVISIONAL usage (figures not final)." if held else "")
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_sync()

        warning = cost_continues_warning(self.data.plan.findings, self.lines)  # issue 15
        self.app.push_screen(ConfirmModal("Confirm sync", body, warning), answered)

    def start_sync(self) -> None:
        self.running = True
        self.cancel_event = asyncio.Event()
        self.query_one(ProgressBar).remove_class("-hidden")
        self.refresh_bindings()
        self.run_sync()

    @work(exclusive=True, group="sync", exit_on_error=False)
    async def run_sync(self) -> None:
        progress = self.query_one(ProgressBar)
        try:
            executor = self.app.make_executor()
        except Exception as exc:
            self.running = False
            self.app.notify(f"Cannot sync: {exc}", severity="error", timeout=10)
            self.refresh_bindings()
            return

        def on_event(outcome: Any) -> None:
            message = getattr(outcome, "message", "") or ""
            self.outcomes[outcome.key] = str(outcome.outcome) + (f": {message}" if message else "")
            if str(outcome.outcome) != "skipped":  # a line not run is not progress (cancel, block)
                progress.advance(1)
            self.draw()
            self.update_totals()

        try:
            report = await executor.run(self.lines, on_event=on_event, cancel=self.cancel_event)
        except Exception as exc:  # a connector failure: a notification, never a traceback
            self.app.notify(f"Sync stopped: {exc}", severity="error", timeout=10)
            report = None
        self.running = False
        self.finished = True
        counts = Counter(o.split(":")[0] for o in self.outcomes.values())
        summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "nothing written"
        cancelled = self.cancel_event is not None and self.cancel_event.is_set()
        self.app.notify(
            f"Sync {'cancelled' if cancelled else 'finished'}: {summary}",
            severity="warning"
            if cancelled or counts.get("failed") or counts.get("conflict") or counts.get("refused")
            else "information",
            timeout=8,
        )
        if counts.get("refused"):
            # Another operator's plan holds these keys (issue 11): this review is stale.
            self.app.notify(
                f"{counts['refused']} line(s) changed since your review — refresh (f5) and review again",
                severity="error",
                timeout=12,
            )
        self.sync_report = report
        if self.quit_after:  # q was answered yes during the sync
            self.app.exit()
            return
        await self._verify(executor, report)
        for reason in (getattr(report, "blocked", None), getattr(report, "halted", None)):
            if reason:
                self.app.notify(f"Sync stopped: {reason}", severity="error", timeout=10)
        self.refresh_bindings()
        self.app.reload()

    async def _verify(self, executor: Any, report: Any) -> None:
        """Re-read the PSA and show whether it holds what was written (engine.verify)."""
        psa = getattr(executor, "psa", None)
        if psa is None or report is None:
            return
        landed = {str(o.key) for o in report.outcomes if str(o.outcome) in ("written", "already_there")}
        lines = [line for line in self.lines if line.key in landed]
        if not lines:
            return
        from engine.verify import verify_psa

        try:
            result = await verify_psa(psa, lines)
        except Exception as exc:  # a read failure: say so, never a traceback
            self.verification = f"the PSA could not be re-read ({exc})"
        else:
            self.verification = result.summary().replace(psa.name, self.data.psa, 1)
            if not result.ok:
                for check in result.problems[:5]:
                    self.outcomes[check.key] = f"{check.status}: {check.message}"
                self.app.notify(
                    f"The PSA differs from the plan: {self.verification}", severity="error", timeout=12
                )
        self.draw()
        self.update_totals()

    def action_export_csv(self) -> None:
        """w: the review's lines (group rows included, every column) to a CSV file."""
        from tui.screens.main import write_csv_of

        write_csv_of(self.app, self.query_one(KeyedTable), f"trueup-review-{self.data.as_of.isoformat()}.csv")

    def action_cancel_sync(self) -> None:
        if self.running and self.cancel_event is not None:
            self.cancel_event.set()
            self.app.notify("Cancelling after the line in flight…", timeout=4)

    def action_close_review(self) -> None:
        if self.running:  # leaving during a sync asks (issue 13)

            def answered(yes: bool | None) -> None:
                if yes and self.running:
                    self.action_cancel_sync()

            body = (
                f"A sync is running ({len(self.outcomes)} of {len(self.lines)} lines done). Cancel it? "
                "It stops after the line in flight; the review stays open with each line's outcome."
            )
            self.app.push_screen(ConfirmModal("Cancel the sync", body), answered)
            return
        self.app.pop_screen()


def _taxable(value: bool | None) -> str:
    return "product default" if value is None else ("yes" if value else "no")
