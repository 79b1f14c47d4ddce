"""Connection commands: `trueup config path`, `trueup login SERVICE`, `trueup doctor`, `trueup refresh`.

Operator errors (bad configuration, missing secret, a service refusing) are printed as plain
sentences and give exit status 1 (2 for a configuration error); never a traceback.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, NoReturn

import click

SERVICES = ("pax8", "connectwise", "halopsa", "autotask")


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"trueup: {message}", err=True)
    sys.exit(code)


def _load_config() -> Any:
    from engine.settings import ConfigError, load_config

    try:
        return load_config()
    except ConfigError as exc:
        _fail(str(exc), 2)


def _open(ctx: click.Context) -> Any:
    from engine.settings import ConfigError
    from engine.workspace import WorkspaceError, open_workspace

    config = _load_config()
    try:
        return open_workspace(config, db_url=(ctx.obj or {}).get("db_url"))
    except (ConfigError, WorkspaceError) as exc:
        _fail(str(exc), 2)


def register(group: click.Group) -> None:
    group.add_command(config_group)
    group.add_command(login)
    group.add_command(doctor)
    group.add_command(refresh)


@click.group("config")
def config_group() -> None:
    """The configuration file (trueup.toml)."""


@config_group.command("path")
def config_path_command() -> None:
    """Print where trueup reads its configuration, and whether the file exists."""
    from engine.settings import CONFIG_ENV, config_path

    path = config_path()
    click.echo(str(path))
    if path.is_file():
        click.echo("The file exists.")
    else:
        where = f" (from ${CONFIG_ENV})" if CONFIG_ENV in __import__("os").environ else ""
        click.echo(
            f"The file does not exist{where}: with nothing configured, trueup runs on the built-in sandbox."
        )


@click.command()
@click.argument("service", type=click.Choice(SERVICES))
def login(service: str) -> None:
    """Store SERVICE's secret in the OS keyring (asked with hidden input)."""
    from keyring.errors import KeyringError, NoKeyringError

    from engine.settings import secret_spec, store_secret

    spec = secret_spec(service)
    value = click.prompt(f"{spec.title} {spec.what}", hide_input=True, default="", show_default=False)
    if not value.strip():
        _fail("nothing entered; the keyring was not changed.")
    try:
        store_secret(service, value.strip())
    except NoKeyringError:
        _fail(
            f"no OS keyring is available on this machine. Set {spec.env} in the environment instead "
            "(for example in the service unit or the shell profile of the account that runs trueup)."
        )
    except KeyringError as exc:
        _fail(
            f"the OS keyring refused to store the secret ({type(exc).__name__}: {exc}). "
            f"Set {spec.env} in the environment instead."
        )
    click.echo(f"Stored the {spec.title} {spec.what} in the OS keyring (service 'trueup', user '{service}').")


@click.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check each configured connection: authentication, one read, permissions."""
    from engine.settings import ConfigError
    from engine.workspace import WorkspaceError, check_connections, open_workspace

    config = _load_config()
    if config.is_sandbox:
        where = config.path or __import__("engine.settings", fromlist=["config_path"]).config_path()
        click.echo(f"No connection configured ({where} names none): checking the built-in sandbox services.")
    try:
        workspace = open_workspace(config, db_url=(ctx.obj or {}).get("db_url"))
    except (ConfigError, WorkspaceError) as exc:
        click.echo(str(exc))
        sys.exit(1)

    async def run() -> list[Any]:
        try:
            return await check_connections(workspace)
        finally:
            await workspace.aclose()

    checks = asyncio.run(run())
    click.echo(f"Workspace: {workspace.label}")
    for check in checks:
        click.echo(("ok    " if check.ok else "FAIL  ") + check.message)
    if not all(check.ok for check in checks):
        sys.exit(1)
    click.echo("Everything answered.")


@click.command()
@click.option("--full", is_flag=True, help="Read every vendor subscription, not only the changed ones.")
@click.option(
    "--company", metavar="COMPANY", help="Refresh only this customer: a vendor company id or its exact name."
)
@click.option(
    "--accept-empty",
    is_flag=True,
    help="Apply a listing that comes back empty where the store has rows (the service really has none).",
)
@click.pass_context
def refresh(ctx: click.Context, full: bool, company: str | None, accept_empty: bool) -> None:
    """Pull vendor and PSA data into the store now (one customer with --company)."""
    from engine.refresh import UnknownCompany

    if company is not None and full:
        _fail("--full and --company do not go together: --company always reads that customer in full.", 2)
    if company is not None and not company.strip():
        _fail("--company needs a vendor company id or exact name.", 2)
    workspace = _open(ctx)
    click.echo(
        f"Refreshing {company.strip() if company else workspace.label}"
        + (f" ({workspace.label})" if company else "")
    )

    def show(progress: Any) -> None:
        if progress.total is not None:
            click.echo(f"  {progress.stage}: {progress.message}")

    async def once(accept: bool) -> Any:
        if company is not None:
            return await workspace.refresh_customer(company, show, accept_empty=accept)
        return await workspace.refresh(show, full=full, accept_empty=accept)

    async def run() -> Any:
        try:
            result = await once(accept_empty)
            if result.held and _confirm_empty(result.held):
                click.echo("Refreshing again, applying the empty listing(s)…")
                result = await once(True)
            return result
        finally:
            await workspace.aclose()

    try:
        result = asyncio.run(run())
    except UnknownCompany as exc:
        _fail(f"{exc}; nothing was refreshed.")
    seconds = (result.finished - result.started).total_seconds()
    kind = "one customer" if result.company_id else ("full" if result.full else "incremental")
    click.echo(
        f"Done in {seconds:.1f} s ({kind}): {result.vendor_changed} vendor records and "
        f"{result.psa_changed} PSA records changed."
    )
    from tui.cli import one_line

    for warning in getattr(result, "warnings", []):
        click.echo(f"Warning: {one_line(warning)}", err=True)
    for error in result.errors:
        click.echo(f"Error: {one_line(error)} (the previous data was kept)", err=True)
    if result.errors:
        sys.exit(1)


def _confirm_empty(held: list[Any]) -> bool:
    """Ask whether to apply listings that came back empty (only at a terminal; elsewhere: no)."""
    if not sys.stdin.isatty():
        return False
    for item in held:
        click.echo(item.message, err=True)
    return click.confirm(
        "Apply the empty listing(s) and drop those rows from the store?", default=False, err=True
    )
