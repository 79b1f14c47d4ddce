"""The `trueup` command line. With no subcommand it opens the console.

Heavy imports (the store, the connectors, Textual) happen inside each command, so `trueup plan`
starts fast. Commands of other areas live in their own modules (`tui/cli_*.py`), each with a
`register(group)` function, so that each part of the tree owns its commands.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from engine.store.resolve import StoreChoice

COMMAND_MODULES = ("tui.cli_connections", "tui.cli_sync", "tui.cli_renewals", "tui.cli_margin")


def fail(message: str, code: int = 2) -> NoReturn:
    from engine.scrub import clean_text, redact

    click.echo(f"trueup: {redact(clean_text(message, newlines=True))}", err=True)
    sys.exit(code)


# --- operator errors: one sentence, never a traceback --------------------------------------------


def one_line(text: str) -> str:
    """An error message on one line for the operator: scrubbed, redacted, whitespace collapsed, and
    without pydantic's `[type=…]` and documentation-link noise."""
    import re

    from engine.scrub import clean_text, redact

    text = re.sub(r"\s*\[type=[^\]]*\]|\s*For further information visit \S+", "", text)
    return " ".join(redact(clean_text(text, newlines=True)).split())


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line or type(exc).__name__


def store_choice(ctx: click.Context) -> StoreChoice:
    """The store this command works on: `engine.store.resolve.resolve_store` (flag > env > config >
    default), the same resolution as the console's and the bench's. A configuration that cannot be
    read is a ConfigError (exit 2, one sentence)."""
    from engine.settings import load_config
    from engine.store.resolve import resolve_store

    return resolve_store((ctx.find_root().obj or {}).get("db_url"), load_config())


def _store_label(ctx: click.Context) -> str:
    from engine.store.resolve import resolve_store, safe_url

    try:
        return f"the store {safe_url(store_choice(ctx).url)}"
    except Exception:  # noqa: BLE001 - the label of an error message must not raise itself
        return f"the store {safe_url(resolve_store((ctx.find_root().obj or {}).get('db_url'), None).url)}"


def describe_error(exc: Exception, ctx: click.Context) -> tuple[int, str]:
    """(exit status, one sentence) for an error a command did not handle itself: 1 for a store, a
    connection or a service failing, 2 for bad input (configuration, scenario, arguments)."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

    from engine.connectors.base import ServiceError
    from engine.scenario_io import ScenarioError
    from engine.settings import ConfigError
    from engine.store.database import StoreError
    from engine.workspace import WorkspaceError

    if isinstance(exc, (ConfigError, WorkspaceError, ScenarioError)):
        return 2, str(exc)
    if isinstance(exc, StoreError):
        return 1, str(exc)
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return (
            2,
            f"the database URL is not valid ({_first_line(exc)}); check --db, TRUEUP_DATABASE_URL or database_url",
        )
    if isinstance(exc, DBAPIError):
        reason = _first_line(exc)
        if "file is not a database" in reason or "malformed" in reason:
            return 1, f"{_store_label(ctx)} is corrupt ({reason}); restore it from a backup"
        return 1, f"{_store_label(ctx)} cannot be used: {reason}"
    if isinstance(exc, SQLAlchemyError):
        return 1, f"{_store_label(ctx)} cannot be used: {_first_line(exc)}"
    if isinstance(exc, ServiceError):
        return 1, " ".join(str(exc).split())
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return 1, f"{exc.strerror or _first_line(exc)}{where}"
    return 1, f"unexpected {type(exc).__name__}: {_first_line(exc)}"


class TrueupGroup(click.Group):
    """The `trueup` group: whatever a command (of any area) lets escape is printed as one sentence
    with exit status 1 (2 for bad input), never as a traceback."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        with formatter.section("Store"):
            formatter.write_text(_help_store(ctx))

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the operator gets a sentence, the log the details
            import logging

            logging.getLogger("trueup.cli").debug("command failed", exc_info=True)
            code, message = describe_error(exc, ctx)
            fail(message, code)


def _help_store(ctx: click.Context) -> str:
    """`--help` says which store the commands and the console would open now, and why."""
    from engine.settings import ConfigError

    order = "Chosen by --db, else TRUEUP_DATABASE_URL, else database_url in trueup.toml, else the sandbox's own file."
    try:
        now = f"Now: {store_choice(ctx).describe()}."
    except ConfigError as exc:
        now = f"Now: unknown, the configuration cannot be read ({one_line(str(exc))})."
    return f"{order}\n\n\b\n{now}"  # \b: click does not re-wrap the path


def scrub_outputs(db_url: str | None) -> None:
    """Secrets known from the start (environment, the store URL's password) are redacted from
    every message, and every log record passes the redaction."""
    from engine.scrub import install_log_redaction, register_secret
    from engine.settings import register_configured_secrets

    install_log_redaction()
    register_configured_secrets()
    for url in (db_url, os.environ.get("TRUEUP_DATABASE_URL")):
        if url:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                register_secret(make_url(url).password)
            except ArgumentError:
                pass


@click.group(cls=TrueupGroup, invoke_without_command=True)
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="SQLAlchemy URL of the store (over TRUEUP_DATABASE_URL and trueup.toml's database_url; see Store below).",
)
@click.option("--no-mouse", is_flag=True, help="Console: leave the mouse to the terminal (text selection).")
@click.option("--theme", help="Console: colour theme (e.g. textual-dark, ansi-dark).")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, no_mouse: bool, theme: str | None) -> None:
    """trueup — reconcile vendor billing with the PSA, from the keyboard.

    With no command, opens the console (on the built-in sandbox when nothing is configured).
    """
    ctx.ensure_object(dict)
    ctx.obj.update(db_url=db_url, no_mouse=no_mouse, theme=theme)
    if ctx.invoked_subcommand is None:  # the console scrubs once its engine is loaded (after the first paint)
        from tui.app import run_console

        sys.exit(run_console(db_url=db_url, no_mouse=no_mouse, theme=theme))
    scrub_outputs(db_url)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print every plan line as CSV (money as plain decimals).")
@click.option(
    "--price-policy",
    type=click.Choice(["follow_retail", "keep_and_warn", "keep_margin"]),
    default=None,
    help="What a vendor price change proposes (engine.rules.leaks); default: the scenario's "
    "settings.price_change_policy (follow_retail).",
)
def plan(file: Path, as_json: bool, as_csv: bool, price_policy: str | None) -> None:
    """Print the plan for a scenario FILE (JSON or YAML).

    The scenario is loaded into a fresh in-memory store and reconciled exactly as the console does.
    The table fits the terminal (COLUMNS, else 80 columns); --csv and --json print everything.
    """
    import shutil

    from engine.reconcile import reconcile
    from engine.report import plan_csv, plan_table
    from engine.scenario_io import ScenarioError, load_scenario
    from engine.store import Store

    if as_json and as_csv:
        fail("choose one of --json and --csv, not both.")
    try:
        scenario = load_scenario(file)
    except ScenarioError as exc:
        fail(str(exc))
    if price_policy is not None:
        settings = scenario.settings.model_copy(update={"price_change_policy": price_policy})
        scenario = scenario.model_copy(update={"settings": settings})
    store = Store.memory()
    store.import_scenario(scenario)
    result = reconcile(*store.plan_inputs(scenario.as_of))
    if as_json:
        click.echo(result.model_dump_json(indent=1))
    elif as_csv:
        click.echo(plan_csv(result), nl=False)
    else:
        click.echo(plan_table(result, shutil.get_terminal_size((80, 24)).columns))


@main.command("export-scenario")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout)."
)
@click.option(
    "--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), help="as_of of the scenario (default: the store's)."
)
@click.pass_context
def export_scenario(ctx: click.Context, output: Path | None, as_of: object) -> None:
    """Write the store's world as a scenario file (the format `trueup plan` reads)."""
    from engine.scenario_io import dump_scenario
    from engine.store import Store

    store = Store(store_choice(ctx).url)
    text = dump_scenario(store.snapshot(as_of.date() if as_of else None))  # type: ignore[attr-defined]
    if output is None:
        click.echo(text)
    else:
        tmp = output.with_suffix(output.suffix + ".tmp")
        try:
            tmp.write_text(text + "\n", encoding="utf-8")
            tmp.replace(output)  # nothing half-written
        except OSError as exc:
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)
            fail(f"cannot write {output}: {exc.strerror or exc}; nothing was written.", 2)
        click.echo(f"Wrote {output}")


@main.command()
@click.argument("what", type=click.Choice(["scenario", "plan"]))
def schema(what: str) -> None:
    """Print the JSON Schema of the scenario or plan format."""
    from engine.plan import Plan
    from engine.scenario import Scenario

    model = Scenario if what == "scenario" else Plan
    click.echo(
        json.dumps(
            model.model_json_schema(mode="validation" if what == "scenario" else "serialization"), indent=1
        )
    )


@main.command()
@click.option("--current", is_flag=True, help="Check the store's current plan instead of the last sync.")
@click.pass_context
def verify(ctx: click.Context, current: bool) -> None:
    """Compare what the PSA will invoice with the plan, line by line (exit 1 when it differs).

    By default the plan lines the last sync wrote (from the journal); `--current` checks the
    store's current plan. The PSA is read through its connector; nothing is written.
    """
    import asyncio

    sys.exit(asyncio.run(_verify((ctx.obj or {}).get("db_url"), current=current)))


async def _verify(db_url: str | None, *, current: bool) -> int:
    from engine.connectors.base import ServiceError
    from engine.plan import PlanLine
    from engine.sync import Journal
    from engine.verify import verify_psa
    from tui.cli_sync import PSA_LABELS, _open_workspace

    ws = _open_workspace(db_url)
    try:
        label = PSA_LABELS.get(ws.psa.name, ws.psa.name)
        if current:
            lines = list(ws.plan().lines)
        else:
            lines = [PlanLine.model_validate(row) for row in Journal(ws.store).last_batch_lines(ws.psa.name)]
        if not lines:
            click.echo(f"Nothing to verify: no {'plan lines' if current else 'sync'} for {label} yet.")
            return 0
        try:
            result = await verify_psa(ws.psa, lines)
        except ServiceError as exc:
            click.echo(f"trueup: could not read {label}: {exc}", err=True)
            return 1
        for check in result.problems:
            where = f" (line {', '.join(check.psa_line_ids)})" if check.psa_line_ids else ""
            click.echo(f"{check.status:<9} {check.key}{where}: {check.message} ({check.difference:+} $)")
        for key, ids in sorted(result.duplicates.items()):
            click.echo(f"duplicate {key}: lines {', '.join(ids)} bill the same thing")
        click.echo(result.summary().replace(ws.psa.name, label, 1))
        return 0 if result.ok else 1
    finally:
        await ws.aclose()


@main.group()
def sandbox() -> None:
    """The built-in sandbox (a simulated Pax8 and PSA with the demo MSP). It persists across launches."""


@sandbox.command("reset")
@click.pass_context
def sandbox_reset(ctx: click.Context) -> None:
    """Start the sandbox over: delete its store, so the next `trueup` starts from the demo.

    Refused while a console or a command has the store open, and for a store that is not the sandbox's."""
    from engine.store.presence import StoreInUse
    from engine.workspace import reset_sandbox

    try:
        click.echo(reset_sandbox(store_choice(ctx)))
    except StoreInUse as exc:
        fail(str(exc), 1)


def _register_areas() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(main)


_register_areas()
