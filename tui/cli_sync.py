"""`trueup sync` and `trueup audit`.

`trueup sync --dry-run` prints exactly the requests a sync would send (method, URL, JSON body;
headers are left out: they carry credentials) and changes nothing. `trueup sync` asks for
confirmation (the number of lines and the PSA) unless `--yes`, then writes through
`engine.sync.SyncExecutor`: every line is journaled before it is sent, and an interrupted sync
(Ctrl-C, a crash) is resolved by lookup on the next start. `--only KEY` (repeatable, or
comma-separated) limits the sync to those plan lines and the rest of their change sets (a change's
recurring update, prorates and extra months are written together, RULES.md §3). A line another
operator's different plan holds is `refused` ("changed since your review — refresh").
Provisional usage (a period not final yet, RULES.md §5: summaries before day 5) is held out of the
sync — and out of the dry run, which shows what the sync would send — unless
`--include-provisional` is given (issue 13; the console holds it the same way, `P` includes it).

The workspace is `engine.workspace.open_workspace()` (the built-in sandbox when nothing is
configured); it is refreshed from the vendor and the PSA before the plan is made, so the plan —
and the values an update expects to find — are those of the PSA now.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from typing import Any

import click

from engine.psa import PSAS

PSA_LABELS: dict[str, str] = {name: psa.product_name for name, psa in PSAS.items()}


def register(group: click.Group) -> None:
    group.add_command(sync)
    group.add_command(audit_command)


# --- the workspace --------------------------------------------------------------------------------


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"trueup: {message}", err=True)
    sys.exit(code)


def _open_workspace(db_url: str | None) -> Any:
    from engine.settings import ConfigError, load_config
    from engine.workspace import WorkspaceError, open_workspace

    try:
        return open_workspace(load_config(), db_url=db_url)
    except (ConfigError, WorkspaceError) as exc:
        _fail(str(exc), 2)


# --- trueup sync ----------------------------------------------------------------------------------


def _keys(only: tuple[str, ...]) -> list[str]:
    return [k.strip() for item in only for k in item.split(",") if k.strip()]


@click.command("sync")
@click.option("--dry-run", is_flag=True, help="Print the requests that would be sent; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="KEY",
    help="Sync only this plan line (repeatable, or comma-separated keys).",
)
@click.option("--use-stored", is_flag=True, help="Plan on the data the store holds when the refresh fails.")
@click.option(
    "--include-provisional",
    is_flag=True,
    help="Also write provisional usage (periods not final yet: the vendor may still change them).",
)
@click.pass_context
def sync(
    ctx: click.Context,
    dry_run: bool,
    yes: bool,
    only: tuple[str, ...],
    use_stored: bool,
    include_provisional: bool,
) -> None:
    """Write the plan's lines into the PSA (journaled; safe to interrupt and re-run)."""
    db_url = (ctx.obj or {}).get("db_url")
    sys.exit(
        asyncio.run(
            _sync(
                db_url,
                dry_run=dry_run,
                yes=yes,
                only=_keys(only),
                use_stored=use_stored,
                include_provisional=include_provisional,
            )
        )
        or 0
    )


def _refresh_failed(result: Any, use_stored: bool) -> bool:
    """A failed refresh stops the sync (its plan would rest on data the services did not confirm),
    unless the operator said to use the stored data."""
    errors = list(getattr(result, "errors", None) or [])
    for error in errors:
        click.echo(f"trueup: refresh failed: {error}", err=True)
    if not errors:
        return False
    if use_stored:
        click.echo("Planning on the data the store already holds (--use-stored).", err=True)
        return False
    click.echo(
        "trueup: not planning on a failed refresh; fix the above, or pass --use-stored to plan on "
        "the data the store already holds.",
        err=True,
    )
    return True


def _hold_provisional(lines: list[Any], unfinished: set[str], include: bool) -> tuple[list[Any], int]:
    """The lines to write, with provisional usage held out unless included (engine.batch, the
    console's rule); says how many were held and why. A line an earlier sync left half-written
    is finished whatever it is: its change set is already partly in the PSA."""
    from engine.batch import hold_provisional

    write, held = hold_provisional([x for x in lines if x.key not in unfinished], include)
    held_keys = {x.key for x in held}
    if held:
        click.echo(
            f"Held {len(held)} provisional usage line(s) out of this sync: their periods are not final "
            "yet (usage summaries before day 5 of the next month; the vendor may still change them). "
            "Pass --include-provisional to write them."
        )
    elif include and any(x.provisional for x in lines):
        count = sum(1 for x in lines if x.provisional)
        click.echo(f"Including {count} provisional usage line(s) (--include-provisional).")
    return [x for x in lines if x.key not in held_keys], len(held)


async def _sync(
    db_url: str | None,
    *,
    dry_run: bool,
    yes: bool,
    only: list[str],
    use_stored: bool = False,
    include_provisional: bool = False,
) -> int:
    from engine.sync import Journal, SyncExecutor, dry_run_requests
    from engine.sync.executor import first_unbilled, only_change_sets, with_unfinished

    ws = _open_workspace(db_url)
    try:
        click.echo(f"Refreshing {ws.label}…", err=True)
        if _refresh_failed(await ws.refresh(), use_stored):
            return 1
        executor = None
        if not dry_run:
            # Writes an earlier sync left pending are resolved before the plan is made, so the
            # plan is made from what the PSA really holds (and a create-new done is not redone).
            executor = SyncExecutor(ws.store, ws.psa)
            recovered, blocked_by = await executor.recover()
            for item in recovered:
                click.echo(
                    f"resolved      {item.key} (interrupted earlier): {item.outcome.value} — {item.message}"
                )
            if blocked_by:
                click.echo(f"Nothing was sent: {blocked_by}")
                return 1
        plan = ws.plan()
        unfinished = Journal(ws.store).unfinished_lines(ws.psa.name)
        lines = with_unfinished(plan.lines, unfinished)
        if unfinished:
            click.echo(
                f"Resuming {len(unfinished)} line(s) of change sets an earlier sync left half-written."
            )
        if only:
            known = {line.key for line in lines}
            missing = [k for k in only if k not in known]
            if missing:
                click.echo(f"trueup: not in the plan: {', '.join(missing)}", err=True)
                return 2
            lines = only_change_sets(lines, only)  # a line goes with its change set (RULES.md §3)
        lines, held = _hold_provisional(lines, {str(x["key"]) for x in unfinished}, include_provisional)
        label = PSA_LABELS.get(ws.psa.name, ws.psa.name)
        blocking = [f for f in getattr(plan, "findings", []) if f.severity == "error"]
        if not lines:
            also = " but the held provisional usage" if held else ""
            click.echo(f"Nothing to write: the plan has no lines for {label}{also}.")
            return 0
        if dry_run:
            planned = await dry_run_requests(ws.psa, lines, effective_from=first_unbilled(ws.store))
            total = 0
            for line, requests in planned:
                click.echo(f"# {line.key}  ({line.action} {line.kind.value})")
                if not requests:
                    click.echo("#   record only: nothing is sent; the key is recorded as synced")
                for request in requests:
                    total += 1
                    click.echo(f"{request.method} {request.url}")
                    # The body exactly as it is sent (re-indenting would turn 4.50 into 4.5).
                    click.echo(request.content.decode("utf-8") if request.content else "")
                click.echo("")
            click.echo(f"Dry run: {total} request(s) for {len(lines)} line(s) to {label}; nothing was sent.")
            return 0
        actions: dict[str, int] = {}
        for line in lines:
            name = "record only" if line.record_only else line.action
            actions[name] = actions.get(name, 0) + 1
        summary = ", ".join(f"{n} {a}" for a, n in sorted(actions.items()))
        if blocking:
            click.echo(
                f"Note: the plan has {len(blocking)} error finding(s); their lines are not in the plan."
            )
        if not yes and not click.confirm(
            f"Write {len(lines)} line(s) into {label} ({summary})?", default=False
        ):
            click.echo("Nothing was written.")
            return 1
        assert executor is not None

        def show(outcome: Any) -> None:
            where = f"  line {outcome.psa_line_id}" if outcome.psa_line_id else ""
            note = f"  — {outcome.message}" if outcome.message else ""
            click.echo(f"{outcome.outcome.value:<13} {outcome.key}{where}{note}")

        try:
            report = await executor.run(lines, on_event=show)
        except (asyncio.CancelledError, KeyboardInterrupt):
            interrupted = executor.report  # None when it stopped before the first line
            if interrupted is not None:
                _print_summary(interrupted, label, interrupted=True)
            return 130
        _print_summary(report, label)
        return 0 if report.ok and not report.blocked else 1
    finally:
        await ws.aclose()


def _print_summary(report: Any, label: str, *, interrupted: bool = False) -> None:
    for item in report.recovered:
        click.echo(f"resolved      {item.key} (interrupted earlier): {item.outcome.value} — {item.message}")
    counts = report.counts()
    parts = [f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n]
    click.echo(f"{label}: " + (", ".join(parts) or "nothing to do") + ".")
    if report.blocked:
        click.echo(f"Nothing was sent: {report.blocked}")
    if report.halted:
        click.echo(f"Stopped: {report.halted}")
    if interrupted or report.cancelled:
        click.echo(
            "Interrupted: the line in flight was finished and recorded; the rest was not started. "
            "Run `trueup sync` again to continue."
        )


# --- trueup audit ---------------------------------------------------------------------------------


def _compact(values: dict[str, Any] | None) -> str:
    if not values:
        return "—"
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)


@click.command("audit")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only events on or after DATE.")
@click.option("--customer", metavar="NAME", help="Only events of customers whose name contains NAME.")
@click.pass_context
def audit_command(ctx: click.Context, since: Any, customer: str | None) -> None:
    """Print the audit trail: time, user@host, action, subject, before → after."""
    from engine import audit
    from engine.store import Store
    from tui.cli import store_choice

    store = Store(store_choice(ctx).url)  # the one resolution (engine.store.resolve)
    since_date: date | None = since.date() if since else None
    with store.session() as s:
        events = audit.events(s, since=since_date, company=customer)
    if not events:
        click.echo("No audit events" + (" matching." if since or customer else "."))
        return
    for event in events:
        at = event.at.strftime("%Y-%m-%d %H:%M:%S")
        who = f"{event.user}@{event.host}"
        company = f" [{event.company}]" if event.company else ""
        click.echo(
            f"{at}  {who}  {event.action}  {event.subject}{company}  "
            f"{_compact(event.before)} → {_compact(event.after)}"
        )
