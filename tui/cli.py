"""The `trueup` command line. With no subcommand it opens the console.

Heavy imports (the store, the connectors, Textual) happen inside each command, so `trueup plan`
starts fast. Commands of other areas live in their own modules (`tui/cli_*.py`), each with a
`register(group)` function, so that each part of the tree owns its commands.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click

COMMAND_MODULES = ("tui.cli_connections", "tui.cli_sync")


def fail(message: str, code: int = 2) -> None:
    click.echo(f"trueup: {message}", err=True)
    sys.exit(code)


@click.group(invoke_without_command=True)
@click.option("--db", "db_url", envvar="TRUEUP_DATABASE_URL", help="SQLAlchemy URL of the store.")
@click.option("--no-mouse", is_flag=True, help="Console: leave the mouse to the terminal (text selection).")
@click.option("--theme", help="Console: colour theme (e.g. textual-dark, ansi-dark).")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, no_mouse: bool, theme: str | None) -> None:
    """trueup — reconcile vendor billing with the PSA, from the keyboard.

    With no command, opens the console (on the built-in sandbox when nothing is configured).
    """
    ctx.ensure_object(dict)
    ctx.obj.update(db_url=db_url, no_mouse=no_mouse, theme=theme)
    if ctx.invoked_subcommand is None:
        try:
            app = importlib.import_module("tui.app")
        except ModuleNotFoundError as exc:
            if exc.name != "tui.app":
                raise
            fail("the console is not part of this build; `trueup plan FILE` works.", 1)
        sys.exit(app.run_console(db_url=db_url, no_mouse=no_mouse, theme=theme))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(file: Path, as_json: bool) -> None:
    """Print the plan for a scenario FILE (JSON or YAML).

    The scenario is loaded into a fresh in-memory store and reconciled exactly as the console does.
    """
    from engine.reconcile import reconcile
    from engine.report import plan_table
    from engine.scenario_io import ScenarioError, load_scenario
    from engine.store import Store

    try:
        scenario = load_scenario(file)
    except ScenarioError as exc:
        fail(str(exc))
    store = Store.memory()
    store.import_scenario(scenario)
    result = reconcile(*store.plan_inputs(scenario.as_of))
    click.echo(result.model_dump_json(indent=1) if as_json else plan_table(result))


@main.command("export-scenario")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout).")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), help="as_of of the scenario (default: the store's).")
@click.pass_context
def export_scenario(ctx: click.Context, output: Path | None, as_of: object) -> None:
    """Write the store's world as a scenario file (the format `trueup plan` reads)."""
    from engine.scenario_io import dump_scenario
    from engine.store import Store

    store = Store(ctx.obj["db_url"])
    text = dump_scenario(store.snapshot(as_of.date() if as_of else None))  # type: ignore[attr-defined]
    if output is None:
        click.echo(text)
    else:
        tmp = output.with_suffix(output.suffix + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(output)  # nothing half-written
        click.echo(f"Wrote {output}")


@main.command()
@click.argument("what", type=click.Choice(["scenario", "plan"]))
def schema(what: str) -> None:
    """Print the JSON Schema of the scenario or plan format."""
    from engine.plan import Plan
    from engine.scenario import Scenario

    model = Scenario if what == "scenario" else Plan
    click.echo(json.dumps(model.model_json_schema(mode="validation" if what == "scenario" else "serialization"),
                          indent=1))


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


def _register_areas() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(main)


_register_areas()
