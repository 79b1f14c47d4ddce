"""`trueup margin [--month YYYY-MM]`: the three-way check of a month (engine.margin) — refresh (the
PSA and vendor data, then the distributor's invoices of the months not yet final), check, print
the tie-out, the leaks with their reasons and the margin per customer; `--csv` / `--xlsx` write
the accountant's export. `trueup margin mark SUBSCRIPTION --internal-use` marks a subscription as
the MSP's own use (`--clear` removes the mark)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from tui.cli_sync import _open_workspace, _refresh_failed


def register(group: click.Group) -> None:
    group.add_command(margin)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"trueup: {message}", err=True)
    sys.exit(code)


def _money(value: Any) -> str:
    return f"{value:,.2f}" if value >= 0 else f"-{-value:,.2f}"


@click.group("margin", invoke_without_command=True)
@click.option("--month", metavar="YYYY-MM", help="The invoice month (default: the latest invoiced).")
@click.option("--floor", "floor", default="15", show_default=True, help="Margin floor, in percent.")
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the check as CSV."
)
@click.option(
    "--xlsx", "xlsx_path", type=click.Path(dir_okay=False, path_type=Path), help="Write an XLSX workbook."
)
@click.option(
    "--use-stored", is_flag=True, help="Check what the store holds; read nothing from the services."
)
@click.option("--all", "show_all", is_flag=True, help="List matched and timing rows too.")
@click.option(
    "--price-policy",
    type=click.Choice(["follow_retail", "keep_and_warn", "keep_margin"]),
    default=None,
    help="What a vendor price change proposes for the PSA line (engine.rules.leaks); default: the "
    "store's setting price_change_policy (config billing.price_change_policy), the one the plan uses.",
)
@click.pass_context
def margin(
    ctx: click.Context,
    month: str | None,
    floor: str,
    csv_path: Path | None,
    xlsx_path: Path | None,
    use_stored: bool,
    show_all: bool,
    price_policy: str | None,
) -> None:
    """The three-way check: distributor invoice, PSA billed, plan — per customer and subscription."""
    if ctx.invoked_subcommand is not None:
        return
    from decimal import Decimal, InvalidOperation

    from engine.months import parse_month

    if month is not None:
        try:
            parse_month(month)
        except ValueError:
            _fail(f"--month {month!r}: not a month (YYYY-MM)")
    try:
        floor_percent = Decimal(floor)
        if not floor_percent.is_finite() or not 0 <= floor_percent <= 100:
            raise InvalidOperation
    except InvalidOperation:
        _fail(f"--floor {floor!r}: a percent from 0 to 100")
    db_url = ctx.find_root().params.get("db_url")
    sys.exit(
        asyncio.run(
            _margin(db_url, month, floor_percent, csv_path, xlsx_path, use_stored, show_all, price_policy)
        )
    )


async def _margin(
    db_url: str | None,
    month: str | None,
    floor: Any,
    csv_path: Path | None,
    xlsx_path: Path | None,
    use_stored: bool,
    show_all: bool,
    price_policy: str | None = None,
) -> int:
    from engine.connectors.base import ServiceError
    from engine.margin import CLASS_LABELS, CLASSES, MarginSettings, three_way_check
    from engine.margin.export import write_csv, write_xlsx
    from engine.margin.store import (
        load_invoices,
        marks,
        psa_invoiced_for_check,
        refresh_invoices,
        refresh_psa_invoiced_if_able,
    )
    from engine.rules.leaks import leak_rules

    ws = _open_workspace(db_url)
    try:
        today = ws.today()
        if not use_stored:
            click.echo(f"Refreshing {ws.label}…", err=True)
            if _refresh_failed(await ws.refresh(), False):
                return 1
            if hasattr(ws.vendor, "invoices"):
                months = await refresh_invoices(ws.store, ws.vendor, today)
                click.echo(f"Read the distributor's invoices of {months[0]}…{months[-1]}.", err=True)
            try:
                psa_months = await refresh_psa_invoiced_if_able(ws.store, ws.psa, today)
            except ServiceError as exc:  # the check still runs, on what the store holds
                click.echo(
                    f"trueup: the PSA's invoices could not be read ({' '.join(str(exc).split())}); "
                    "checking with the ones read before, the lines in force for the rest.",
                    err=True,
                )
                psa_months = None
            if psa_months:
                click.echo(f"Read the PSA's invoices of {psa_months[0]}…{psa_months[-1]}.", err=True)
        invoices = load_invoices(ws.store)
        if month is None:
            counted = sorted({inv.month for inv in invoices if inv.counted})
            month = counted[-1] if counted else f"{today.year:04d}-{today.month:02d}"
        plan = ws.plan()
        scenario = ws.store.snapshot(today)
        report = three_way_check(
            scenario,
            invoices,
            month,
            settings=MarginSettings(floor_percent=floor),
            marks=marks(ws.store),
            plan=plan,
            psa_invoiced=psa_invoiced_for_check(
                ws.store, getattr(ws.psa, "name", None) or scenario.settings.psa
            ),
        )
        leaks = leak_rules(scenario, price_policy)  # type: ignore[arg-type]  # click.Choice: one of the policies
    finally:
        await ws.aclose()

    if leaks:
        click.echo(f"Leak rules ({len(leaks)}):")
        for leak in leaks:
            proposal = ""
            if leak.proposed_price is not None:
                proposal = f" → propose price {leak.proposed_price}"
            elif leak.proposed_cancel is not None:
                proposal = f" → propose cancel ending {leak.proposed_cancel}"
            click.echo(f"  {leak.finding.code:<24} {leak.finding.message}{proposal}")
        click.echo("")
    click.echo(f"Three-way check {report.month} — PSA billed from {report.psa_source}")
    if report.status == "not_audited":
        click.echo(
            f"NOT AUDITED: the distributor has no invoice for {report.month}; nothing is known to be clean."
        )
        for t in report.totals:
            click.echo(f"  {t.currency}: the PSA bills {_money(t.psa_total)}")
        return 1
    for inv in report.replaced:
        click.echo(f"  invoice {inv.id} ({inv.status}, {_money(inv.total)}) is replaced: not counted")
    for t in report.totals:
        tie = "ties out" if t.ties_out else "DOES NOT TIE OUT"
        click.echo(
            f"\n{t.currency}: distributor invoices {_money(t.invoice_total)}, PSA {_money(t.psa_total)}, "
            f"margin {_money(t.psa_total - t.invoice_total)} — classified {_money(t.cost)} / {_money(t.price)}: {tie}"
        )
        for cls in CLASSES:
            if cls in t.by_class:
                cost, price = t.by_class[cls]
                n = sum(1 for r in report.rows if r.currency == t.currency and r.cls == cls)
                click.echo(
                    f"  {CLASS_LABELS[cls]:<24} {n:>5}  cost {_money(cost):>12}  price {_money(price):>12}"
                )
    shown = report.rows if show_all else report.leaks()
    if shown:
        click.echo("\nDifferences:")
        for r in shown:
            click.echo(
                f"  {CLASS_LABELS[r.cls]:<20} {r.company_name} · {r.product}: cost {_money(r.cost)}, "
                f"price {_money(r.price)} — {r.reason}"
            )
    click.echo("\nMargin per customer:")
    for c in report.customers:
        percent = f"{c.margin_percent} %" if c.margin_percent is not None else "—"
        click.echo(
            f"  {c.currency} {c.company_name}: cost {_money(c.cost)}, price {_money(c.price)}, "
            f"margin {_money(c.margin)} ({percent}){f', {c.leaks} to act on' if c.leaks else ''}"
            f" — PSA billed: from {c.psa_billed_from}"
        )
    for path, write in ((csv_path, write_csv), (xlsx_path, write_xlsx)):
        if path is not None:
            try:
                write(report, path)
            except OSError as exc:
                click.echo(
                    f"trueup: cannot write {path}: {exc.strerror or exc}; nothing was written.", err=True
                )
                return 2
            click.echo(f"Wrote {path}.")
    return 0 if report.ties_out else 1


@margin.command("mark")
@click.argument("subscription")
@click.option("--internal-use", is_flag=True, help="The MSP's own use: reported apart, not a leak.")
@click.option("--clear", is_flag=True, help="Remove the mark.")
@click.option("--reason", help="Why (kept with the mark).")
@click.option("--by", "by", envvar="USER", default="operator", help="Who marks it (default: $USER).")
@click.pass_context
def mark_command(
    ctx: click.Context, subscription: str, internal_use: bool, clear: bool, reason: str | None, by: str
) -> None:
    """Mark a subscription for the margin check."""
    from engine.margin import Mark
    from engine.margin.store import set_mark

    if internal_use == clear:
        _fail("give exactly one of --internal-use and --clear")
    ws = _open_workspace(ctx.find_root().params.get("db_url"))
    try:
        if subscription not in ws.store.subscription_ids():
            _fail(f"no subscription {subscription!r} in the store (refresh first)")
        set_mark(ws.store, None if clear else Mark(subscription, by, ws.today(), reason), subscription)
    finally:
        asyncio.run(ws.aclose())
    click.echo(f"{subscription}: {'mark cleared' if clear else 'marked internal use'}.")


__all__ = ["register"]
