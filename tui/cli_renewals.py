"""`trueup renewals [--within DAYS] [--csv]`: committed subscriptions whose renewal window is open
or ahead, soonest closing first (engine.rules.commitments), for a scheduled report."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

import click

COLUMNS = (
    "window_closes",
    "days_left",
    "state",
    "window_opens",
    "term_ends",
    "company",
    "product",
    "term",
    "billed",
    "seats",
    "monthly_cost",
    "auto_renew",
    "subscription_id",
)
NUMBERS = frozenset({"days_left", "seats", "monthly_cost"})  # never formula-guarded: "-" is a sign


def register(group: click.Group) -> None:
    group.add_command(renewals_command)


@click.command("renewals")
@click.option(
    "--within",
    type=click.IntRange(0, 3650),
    metavar="DAYS",
    help="Only windows open now or terms ending within DAYS days.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Comma-separated values with a header row.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The day to judge the windows on (default: today).",
)
@click.pass_context
def renewals_command(ctx: click.Context, within: int | None, as_csv: bool, as_of: datetime | None) -> None:
    """Renewal windows of committed subscriptions (annual, 2- and 3-year terms), soonest closing first."""
    from engine.money import fmt_money, fmt_quantity
    from engine.rules.commitments import renewals
    from engine.store import Store
    from engine.store.commitments import renewal_scenario

    store = Store((ctx.obj or {}).get("db_url"))
    try:
        today = as_of.date() if as_of else date.today()  # noqa: DTZ011 (the operator's calendar day)
        rows = renewals(renewal_scenario(store, today), today=today, within_days=within)
    finally:
        store.close()
    records: list[dict[str, Any]] = [
        {
            "window_closes": r.window.closes.isoformat(),
            "days_left": r.days_left,
            "state": r.state,
            "window_opens": r.window.opens.isoformat(),
            "term_ends": r.window.term_end.isoformat(),
            "company": r.company,
            "product": r.product,
            "term": r.term,
            "billed": "up front" if r.billing_term == "annual" else "monthly",
            "seats": fmt_quantity(r.quantity),
            "monthly_cost": f"{r.monthly_cost:.2f}" if as_csv else fmt_money(r.monthly_cost),
            "auto_renew": "yes" if r.auto_renew else "no",
            "subscription_id": r.subscription_id,
        }
        for r in rows
    ]
    if as_csv:
        from engine.scrub import spreadsheet_text

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(
                {k: str(v) if k in NUMBERS else spreadsheet_text(str(v)) for k, v in record.items()}
            )
        click.echo(out.getvalue(), nl=False)
        return
    if not records:
        scope = f" within {within} days" if within is not None else ""
        click.echo(f"No renewal window open or ahead{scope} (as of {today.isoformat()}).")
        return
    _table(records)


def _table(records: list[dict[str, Any]]) -> None:
    from engine.scrub import clean_text

    shown = (
        ("Window closes", "window_closes"),
        ("Left", "days_left"),
        ("State", "state"),
        ("Opens", "window_opens"),
        ("Company", "company"),
        ("Product", "product"),
        ("Term", "term"),
        ("Billed", "billed"),
        ("Seats", "seats"),
        ("Cost/month", "monthly_cost"),
        ("Renews", "auto_renew"),
    )
    cells = [[clean_text(str(r[key]))[:40] for _, key in shown] for r in records]
    widths = [max(len(title), *(len(row[i]) for row in cells)) for i, (title, _) in enumerate(shown)]
    click.echo("  ".join(title.ljust(w) for (title, _), w in zip(shown, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(records)} renewal(s)")
