"""The `trueup` command line. With no subcommand it opens the console."""

from __future__ import annotations

import sys

import click


@click.group(invoke_without_command=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """trueup — reconcile vendor billing with the PSA, from the keyboard."""
    if ctx.invoked_subcommand is None:
        click.echo("The console is not built yet; try `trueup plan FILE`.")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(file: str, as_json: bool) -> None:
    """Print the plan for a scenario FILE (JSON or YAML)."""
    from engine.reconcile import reconcile
    from engine.scenario_io import ScenarioError, load_scenario

    try:
        scenario = load_scenario(file)
    except ScenarioError as exc:
        click.echo(f"trueup: {exc}", err=True)
        sys.exit(2)
    result = reconcile(scenario)
    if as_json:
        click.echo(result.model_dump_json(indent=1))
    else:
        click.echo(result)
