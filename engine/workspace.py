"""The workspace: one store, one vendor connector, one PSA connector — what the console and the
commands work on.

`open_workspace()` with no configuration (or one that names no connection) gives the **sandbox**:
the demo MSP (`engine.sandbox.demo.build_demo_scenario`, as of today) served by the sandbox
services through the real connectors, in the SQLite store `sandbox.db` in the user data dir. The
sandbox persists across launches (the next launch seeds the services with the world the store holds;
`trueup sandbox reset` starts it over). A new store receives the demo's operator state (mappings, synced keys, ignores, overrides, settings, billing configurations); the
vendor and PSA data arrive by `refresh()`, exactly as they would from the real services.

With a configuration it connects to Pax8 and the configured PSA (secrets from the environment or
the OS keyring, `engine.settings`). The store is the one `engine.store.resolve.resolve_store` names
(--db > TRUEUP_DATABASE_URL > database_url > default), the same for the console and every command.
"""

from __future__ import annotations

import logging
import os
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from engine.connectors.base import PsaConnector, ServiceError, VendorConnector
from engine.connectors.http import RateBudget, ServiceClient
from engine.keys import PlanKey
from engine.months import last_of_month, parse_month
from engine.plan import Plan
from engine.psa import PSAS, display_name
from engine.reconcile import reconcile
from engine.refresh import (
    SETTING_PSA_AT,
    SETTING_VENDOR_AT,
    Progress,
    RefreshProgress,
    RefreshResult,
    UnknownCompany,
    freshness,
    refresh,
    refresh_customer,
    resolve_company,
)
from engine.scenario import LineSource, Psa, Scenario, Vendor
from engine.settings import ConfigError, TrueupConfig, require_secret
from engine.store import Store
from engine.store.resolve import StoreChoice, resolve_store, safe_url, sandbox_url

log = logging.getLogger(__name__)

__all__ = [
    "Check",
    "RefreshProgress",
    "RefreshResult",
    "Workspace",
    "WorkspaceError",
    "check_connections",
    "open_workspace",
    "reset_sandbox",
    "sandbox_database_url",
    "SERVICE_TITLES",
    "UnknownCompany",
]

SANDBOX_LABEL = "SANDBOX — demo MSP"
SANDBOX_MARKER = "workspace.sandbox"  # store setting: this store holds the sandbox's demo data
SERVICE_TITLES: dict[str, str] = {"pax8": "Pax8", **{name: psa.display_name for name, psa in PSAS.items()}}


class WorkspaceError(Exception):
    """The workspace cannot be opened. The message is meant for the operator as is."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Workspace:
    """A store and the two connectors feeding it."""

    def __init__(
        self,
        store: Store,
        vendor: VendorConnector,
        psa: PsaConnector,
        *,
        sandbox: bool,
        label: str,
        as_of: date | None = None,
        zone: tzinfo = UTC,
        clock: Callable[[], datetime] | None = None,
        vendor_clock: Callable[[], datetime] | None = None,
        sandboxes: Mapping[str, Any] | None = None,
        config: TrueupConfig | None = None,
    ) -> None:
        self.store = store
        self.vendor = vendor
        self.psa = psa
        self.sandbox = sandbox
        self.label = label
        self.config = config
        self.zone = zone
        self.sandboxes: dict[str, Any] = dict(sandboxes or {})  # sandbox services by name (sandbox only)
        self._as_of = as_of  # fixed as_of (sandbox: the scenario's); None = today in the partner's zone
        self._clock = clock or _utc_now
        self._vendor_clock = vendor_clock
        self.store_choice: StoreChoice | None = None  # how the store was chosen (open_workspace)

    # --- state -----------------------------------------------------------------------------------

    @property
    def freshness(self) -> dict[str, datetime | None]:
        """Last successful refresh per source ("vendor", "psa"); None = never."""
        return freshness(self.store)

    @property
    def fixed_as_of(self) -> date | None:
        """The as-of the plan is always computed for (the sandbox's), None: today in `zone`."""
        return self._as_of

    def today(self) -> date:
        return self._as_of or self._clock().astimezone(self.zone).date()

    # --- work ------------------------------------------------------------------------------------

    async def refresh(
        self, progress: Progress | None = None, *, full: bool = False, accept_empty: bool = False
    ) -> RefreshResult:
        """Refresh both sides (engine.refresh.refresh). `accept_empty`: apply listings that came
        back empty where the store has rows (otherwise held: `result.held`)."""
        return await refresh(
            self.store,
            self.vendor,
            self.psa,
            progress,
            full=full,
            today=self.today(),
            clock=self._clock,
            vendor_clock=self._vendor_clock,
            accept_empty=accept_empty,
        )

    async def refresh_customer(
        self, company: str, progress: Progress | None = None, *, accept_empty: bool = False
    ) -> RefreshResult:
        """Refresh one customer end to end (engine.refresh.refresh_customer): `company` is the vendor
        company's id or exact name. Raises `UnknownCompany` (message for the operator as is) when
        there is no such company; service errors are in the result's `errors`."""
        found = await resolve_company(self.store, self.vendor, company)
        return await refresh_customer(
            self.store,
            self.vendor,
            self.psa,
            found.id,
            progress,
            today=self.today(),
            clock=self._clock,
            vendor_clock=self._vendor_clock,
            accept_empty=accept_empty,
        )

    def plan(self, as_of: date | None = None) -> Plan:
        return reconcile(*self.store.plan_inputs(as_of or self.today()))

    async def aclose(self) -> None:
        for connector in (self.vendor, self.psa):
            try:
                await connector.aclose()
            except Exception:  # closing must not hide what happened before
                log.debug("closing %s failed", getattr(connector, "name", connector), exc_info=True)

    # --- the sandbox -----------------------------------------------------------------------------

    @classmethod
    def sandbox_from_scenario(
        cls,
        scenario: Scenario,
        *,
        store: Store | None = None,
        faults: Any = None,
        clock: Callable[[], datetime] | None = None,
        label: str = SANDBOX_LABEL,
        pax8_price_field: str = "retail",
        pax8_price_reading: str = "auto",
        load_state: bool = True,
    ) -> Workspace:
        """Sandbox services seeded from `scenario`, the real connectors talking to them, and `store`
        (default: in memory) holding the scenario's operator state. Call `refresh()` to pull the
        vendor and PSA data through the connectors.

        `pax8_price_field`: what the simulated Pax8 sends as a subscription's `price` ("retail", the
        spec's reading, or "partner", the buy rate); `pax8_price_reading`: the connector's reading
        ("auto" cross-checks with /pricing; engine.connectors.pax8, "Price and cost").

        `faults`: an `engine.sandbox.faults.Faults` for every service, or a mapping service name
        ("pax8", "connectwise", "halopsa", "autotask") -> Faults. The sandbox services are in
        `workspace.sandboxes` (e.g. `sandboxes["pax8"].change_quantity(...)`); their handlers are
        looked up per request, so a test may replace one.

        The vendor's clock in the sandbox is the evening of `as_of` (23:00 UTC, then running): the
        demo's changes are all older, a change the sandbox is given dated after `as_of` is newer.
        """
        from engine.connectors.pax8 import Pax8Connector
        from engine.sandbox.pax8 import Pax8Sandbox

        store = store or Store.memory()
        as_of = scenario.as_of
        seeded = _seedable(scenario)

        def faults_for(name: str) -> Any:
            if isinstance(faults, Mapping):
                return faults.get(name)
            return faults

        # The demo drops the connectors' client-side budgets (below), so it drops Pax8's 1000-a-minute
        # limit with them; tests/sandbox/test_pax8_rate_limit.py runs the pair with both in place.
        pax8 = Pax8Sandbox.from_scenario(
            seeded, faults=faults_for("pax8"), price_field=pax8_price_field, rate_limit=None
        )
        vendor = Pax8Connector(
            pax8.client_id,
            pax8.client_secret,
            transport=_late_transport(pax8),
            product_kinds=pax8.product_kinds(),
            today=lambda: as_of,
            price_reading=pax8_price_reading,  # type: ignore[arg-type]  # a str; Pax8Connector refuses any value other than its PriceReading literals
        )
        psa_name = scenario.settings.psa
        psa_sandbox, psa = _psa_sandbox(psa_name, seeded, faults_for(psa_name))
        if load_state:  # False: the store already holds this world (a persisted sandbox)
            _load_operator_state(store, scenario)

        for connector in (vendor, psa):
            _no_rate_budget(connector)
        started = _time.monotonic()
        evening = datetime.combine(as_of, time(23, 0), tzinfo=UTC)

        def vendor_clock() -> datetime:
            return evening + timedelta(seconds=_time.monotonic() - started)

        return cls(
            store,
            vendor,
            psa,
            sandbox=True,
            label=label,
            as_of=as_of,
            clock=clock,
            vendor_clock=vendor_clock,
            sandboxes={"pax8": pax8, psa_name: psa_sandbox},
        )


def _no_rate_budget(connector: Any) -> None:
    """The sandbox answers from memory: drop the client-side requests-per-time budget (Pax8 1000/min,
    Halo 300/5 min), which would only make the demo wait. Concurrency limits stay (Autotask's 3)."""
    for attr in ("client", "_client", "http"):
        client = getattr(connector, attr, None)
        if isinstance(client, ServiceClient) and client.budget is not None:
            concurrent = client.budget.concurrent
            client.budget = RateBudget(concurrent=concurrent) if concurrent else None


class _Handles(Protocol):
    async def handle(self, request: httpx.Request) -> httpx.Response: ...


def _late_transport(sandbox: _Handles) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        return await sandbox.handle(request)

    return httpx.MockTransport(handle)


def _psa_sandbox(name: str, scenario: Scenario, faults: Any) -> tuple[Any, PsaConnector]:
    if name == "connectwise":
        from engine.connectors.connectwise import ConnectWiseConnector
        from engine.sandbox.connectwise import ConnectWiseSandbox

        cw = ConnectWiseSandbox.from_scenario(scenario, faults=faults)
        return cw, ConnectWiseConnector(
            cw.site, cw.company_id, cw.public_key, cw.private_key, cw.client_id, transport=_late_transport(cw)
        )
    if name == "halopsa":
        from engine.connectors.halopsa import HaloConnector
        from engine.sandbox.halopsa import HaloSandbox

        halo = HaloSandbox.from_scenario(scenario, faults=faults)
        return halo, HaloConnector(
            halo.base_url,
            halo.client_id,
            halo.client_secret,
            tenant=halo.tenant,
            transport=_late_transport(halo),
        )
    if name == "autotask":
        from engine.connectors.autotask import AutotaskConnector
        from engine.sandbox.autotask import AutotaskSandbox

        at = AutotaskSandbox.from_scenario(scenario, faults=faults)
        codes = at.billing_codes()  # a created Service bills through one the zone has, as a real one must
        return at, AutotaskConnector(
            at.username,
            at.secret,
            at.integration_code,
            zone_url=at.zone_url,
            transport=_late_transport(at),
            service_billing_code_id=min(codes) if codes else None,
        )
    raise WorkspaceError(f"unknown PSA {name!r}")


def _seedable(scenario: Scenario) -> Scenario:
    """The scenario as the services would hold it.

    * A PSA line the scenario ties to a subscription (`source` without a key) gets the key trueup
      writes for it (`<sub>:recurring`, `<sub>:arrears:<sub-product>`, `<sub>:usage_summary`,
      `<sub>:usage`): the services keep only the key, and the connectors read the source back from it.
    * A usage row with no snapshot date whose period ends after `as_of` (the current month) is posted
      on `as_of`: the vendor reports usage as it accrues, never from the future.
    """
    kinds = {p.id: p.kind for p in scenario.vendor.products}
    sub_kind = {s.id: kinds.get(s.product_id, "seat") for s in scenario.vendor.subscriptions}
    lines = []
    for line in scenario.psa.lines:
        source = line.source
        if source is not None and source.key is None and source.subscription_id:
            sub = source.subscription_id
            kind = sub_kind.get(sub, "seat")
            if source.sub_product:
                key = PlanKey.arrears(sub, source.sub_product).format()
            elif kind == "usage_summary":
                key = PlanKey.usage_summary(sub).format()
            elif kind == "quota":
                key = PlanKey.usage(sub).format()
            elif kind == "endpoint_usage":
                key = PlanKey.arrears(sub, "default").format()
            else:
                key = PlanKey.recurring(sub).format()
            line = line.model_copy(
                update={"source": LineSource(subscription_id=sub, sub_product=source.sub_product, key=key)}
            )
        lines.append(line)
    usage = []
    for row in scenario.vendor.usage:
        if row.snapshot_date is None and last_of_month(parse_month(row.period)) > scenario.as_of:
            row = row.model_copy(update={"snapshot_date": scenario.as_of})
        usage.append(row)
    return scenario.model_copy(
        update={
            "psa": scenario.psa.model_copy(update={"lines": lines}),
            "vendor": scenario.vendor.model_copy(update={"usage": usage}),
        }
    )


def _load_operator_state(store: Store, scenario: Scenario) -> None:
    """Everything but the services' data: mappings, synced, ignored, overrides, settings, as_of, the
    billing configurations (set up by the operator, not read from the vendor), and the products —
    the refresh replaces them but keeps the attributes Pax8 does not carry (backup item service,
    storage location, parent, edition)."""
    state = scenario.model_copy(
        update={
            "vendor": Vendor(
                products=scenario.vendor.products,
                billing_configurations=scenario.vendor.billing_configurations,
            ),
            "psa": Psa(),
        }
    )
    # Replacing the store's contents races another process's refresh of the same store like a
    # refresh does: take the same lock (engine.store.locks).
    from engine.refresh import LOCK_WAIT, REFRESH_LOCK
    from engine.store.locks import wait_for

    def waiting(holder: Any) -> None:
        log.warning(
            "the store is being refreshed by %s; waiting", holder.describe() if holder else "another process"
        )

    with wait_for(store.locks, REFRESH_LOCK, timeout=LOCK_WAIT, on_wait=waiting):
        store.import_scenario(state)
    store.set_setting(SANDBOX_MARKER, True)
    for name in (SETTING_VENDOR_AT, SETTING_PSA_AT):
        store.set_setting(name, None)
    from engine.refresh import SETTING_VENDOR_FULL_AT, SETTING_VENDOR_SINCE

    for name in (SETTING_VENDOR_SINCE, SETTING_VENDOR_FULL_AT):
        store.set_setting(name, None)


# --- opening -------------------------------------------------------------------------------------


def sandbox_database_url() -> str:
    """The sandbox's own SQLite file (engine.store.resolve)."""
    return sandbox_url()


def _guard_sandbox_store(store: Store) -> None:
    """Refuse to load the demo into a store that holds real data."""
    if store.get_setting(SANDBOX_MARKER):
        return
    snapshot = store.snapshot()
    if snapshot.vendor.companies or snapshot.psa.companies or snapshot.mappings.companies or snapshot.synced:
        raise WorkspaceError(
            f"the store {_safe_url(store.url)} holds data that is not the sandbox's; refusing to replace it "
            "with the demo (configure a connection in trueup.toml, or pass another --db)"
        )


def _safe_url(url: str) -> str:
    return safe_url(url)


def _sandbox_world(store: Store, as_of: date) -> Scenario | None:
    """The world a sandbox store already holds (a previous launch refreshed it; its syncs are in
    the store's PSA lines through the journal), or None when it holds none yet."""
    if not store.get_setting(SANDBOX_MARKER):
        return None
    world = store.snapshot(as_of)
    if not world.vendor.companies:
        return None  # marked but never refreshed (a launch that quit before its first refresh)
    return world


def _open_sandbox(config: TrueupConfig | None, choice: StoreChoice) -> Workspace:
    """The sandbox on the resolved store. It persists across launches: a store that already holds
    the sandbox's world seeds the simulated services with that world (the operator's mappings,
    ignores, audit and syncs stay); only a new store gets the demo. `trueup sandbox reset` starts
    it over."""
    from engine.sandbox.demo import build_demo_scenario

    zone = config.billing.zone if config else UTC
    as_of = datetime.now(zone).date()
    store = Store(choice.url)
    _guard_sandbox_store(store)
    world = _sandbox_world(store, as_of)
    if world is not None:
        workspace = Workspace.sandbox_from_scenario(world, store=store, load_state=False)
    else:
        workspace = Workspace.sandbox_from_scenario(build_demo_scenario(as_of=as_of), store=store)
    workspace.store_choice = choice
    workspace.label = f"{SANDBOX_LABEL} · {choice.short()}"
    return workspace


def reset_sandbox(choice: StoreChoice) -> str:
    """Start the sandbox over: delete its SQLite file (and WAL files) — refused when the store is
    open in another process (engine.store.presence), holds real data, or is not a SQLite file.
    Returns the sentence to print."""
    from engine.store.presence import exclusive

    path = choice.path
    if path is None:
        raise WorkspaceError(
            f"the store {choice.describe()} is not a SQLite file; `trueup sandbox reset` only starts over "
            "the sandbox's own file (pass --db with it, or unset the configured database)"
        )
    if not path.exists():
        return f"Nothing to reset: {path} does not exist; the next `trueup` starts from the demo."
    if not _file_is_sandbox(path):
        raise WorkspaceError(
            f"the store {path} holds data that is not the sandbox's; `trueup sandbox reset` deletes only a "
            "sandbox store, nothing was deleted"
        )
    with exclusive(path):
        for suffix in ("", "-wal", "-shm", "-journal"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    return f"Reset the sandbox: deleted {path}; the next `trueup` starts from the demo."


def _file_is_sandbox(path: Path) -> bool:
    """Read with the bare driver (opening a `Store` would hold the file open): the sandbox marker is
    set, or the store holds no companies, mappings or synced keys at all."""
    import json
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "setting" in tables:
            row = db.execute("SELECT value FROM setting WHERE name = ?", (SANDBOX_MARKER,)).fetchone()
            if row is not None and json.loads(row[0]) is True:
                return True
        for table in ("vendor_company", "psa_company", "company_mapping", "synced_key"):
            if table in tables and db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():  # noqa: S608
                return False
        return True
    except (sqlite3.Error, ValueError):
        return False
    finally:
        db.close()


def _connectors(config: TrueupConfig) -> tuple[VendorConnector, PsaConnector, str]:
    from engine.connectors.pax8 import Pax8Connector

    pax8 = config.vendor.pax8
    assert pax8 is not None and config.psa.kind is not None
    zone = config.billing.zone
    vendor_secret = require_secret("pax8")
    psa_secret = require_secret(config.psa.kind)
    vendor = Pax8Connector(
        pax8.client_id,
        vendor_secret.get_secret_value(),
        base_url=pax8.base_url,
        product_kinds=config.vendor.product_kinds,
        today=lambda: datetime.now(zone).date(),
        price_reading=pax8_price_reading(pax8),
    )
    kind = config.psa.kind
    psa: PsaConnector
    if kind == "connectwise":
        from engine.connectors.connectwise import ConnectWiseConnector

        cw = config.psa.connectwise
        assert cw is not None
        psa = ConnectWiseConnector(
            cw.site,
            cw.company_id,
            cw.public_key,
            psa_secret.get_secret_value(),
            cw.client_id,
            codebase=cw.codebase,
        )
        where = cw.site
    elif kind == "halopsa":
        from engine.connectors.halopsa import HaloConnector

        halo = config.psa.halopsa
        assert halo is not None
        psa = HaloConnector(halo.base_url, halo.client_id, psa_secret.get_secret_value(), tenant=halo.tenant)
        where = urlsplit(halo.base_url).hostname or halo.base_url
    else:
        from engine.connectors.autotask import AutotaskConnector

        at = config.psa.autotask
        assert at is not None
        psa = AutotaskConnector(
            at.username,
            psa_secret.get_secret_value(),
            at.integration_code,
            zone_url=at.zone_url,
            zone=config.billing.zone,
            service_billing_code_id=at.service_billing_code_id,
        )
        where = at.username
    return vendor, psa, f"Pax8 → {SERVICE_TITLES[kind]} ({where})"


PRICE_READING_ENV = "TRUEUP_PAX8_PRICE_READING"


def pax8_price_reading(pax8_config: Any = None) -> Any:
    """How to read Pax8's subscription `price` (engine.connectors.pax8, "Price and cost"): the
    config's `vendor.pax8.price_reading` when the configuration carries one, else
    `TRUEUP_PAX8_PRICE_READING`, else "auto". A value other than auto/retail/partner is refused."""
    from engine.connectors.pax8 import PRICE_READINGS

    value = getattr(pax8_config, "price_reading", None) or os.environ.get(PRICE_READING_ENV) or "auto"
    value = str(value).strip().lower()
    if value not in PRICE_READINGS:
        raise ConfigError(f"{PRICE_READING_ENV}: {value!r} is not one of {', '.join(PRICE_READINGS)}")
    return value


def open_workspace(config: TrueupConfig | None = None, *, db_url: str | None = None) -> Workspace:
    """The workspace the configuration describes (the sandbox when it describes none), on the store
    `resolve_store(db_url, config)` names (flag > env > config > default).

    Raises `ConfigError` (a missing secret…) or `WorkspaceError`; the caller then refreshes."""
    choice = resolve_store(db_url, config)
    if config is None or config.is_sandbox:
        return _open_sandbox(config, choice)
    vendor, psa, label = _connectors(config)
    store = Store(choice.url)
    if store.get_setting(SANDBOX_MARKER):
        raise WorkspaceError(
            f"the store {_safe_url(store.url)} holds the sandbox's demo data; "
            "use another database for a real connection"
        )
    overrides = {**config.billing.overrides(), "psa": config.psa.kind}
    current = store.settings()
    if any(getattr(current, name) != value for name, value in overrides.items()):
        store.save_settings(current.model_copy(update=overrides))
    workspace = Workspace(
        store,
        vendor,
        psa,
        sandbox=False,
        label=f"{label} · {choice.short()}",
        zone=config.billing.zone,
        config=config,
    )
    workspace.store_choice = choice
    return workspace


# --- doctor --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    service: str  # "Pax8", "ConnectWise"…
    ok: bool
    message: str  # a plain sentence


def _failure(title: str, step: str, exc: BaseException) -> Check:
    if isinstance(exc, ServiceError):
        status = f" (HTTP {exc.status})" if exc.status is not None else ""
        detail = exc.message + (" — " + "; ".join(exc.details) if exc.details else "")
        if exc.status == 401:
            what = "authentication failed"
        elif exc.status == 403:
            what = f"permission denied {step}"
        else:
            what = f"failed {step}"
        return Check(title, False, f"{title}: {what}{status}: {detail}")
    return Check(title, False, f"{title}: failed {step}: {type(exc).__name__}: {exc}")


async def _authenticate(connector: Any) -> None:
    """The connector's own authentication step, where it has one."""
    for name in ("access_token", "token", "connect", "discover_codebase"):
        method = getattr(connector, name, None)
        if callable(method):
            await method()
            return


async def check_connections(workspace: Workspace) -> list[Check]:
    """For each connection: authentication, one read, and the permissions a refresh needs."""
    checks: list[Check] = []
    far_future = datetime(9999, 1, 1, tzinfo=UTC)

    vendor_title = SERVICE_TITLES.get(getattr(workspace.vendor, "name", ""), "Vendor")
    step = "authenticating"
    try:
        await _authenticate(workspace.vendor)
        step = "reading companies"
        companies = await workspace.vendor.companies()
        step = "reading subscriptions (check the API credential's access to subscriptions)"
        await workspace.vendor.subscriptions(changed_since=far_future)  # lists them, reads no history
        checks.append(
            Check(
                vendor_title,
                True,
                f"{vendor_title}: signed in; {len(companies)} companies readable; subscriptions readable.",
            )
        )
    except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence
        checks.append(_failure(vendor_title, step, exc))

    psa_title = display_name(workspace.psa.name)
    step = "authenticating"
    try:
        await _authenticate(workspace.psa)
        step = "reading companies"
        psa_companies = await workspace.psa.companies()
        step = "reading agreements (check the API user's permissions for agreements/contracts)"
        agreements = await workspace.psa.agreements()
        step = "reading products (check the API user's permissions for the product catalogue)"
        products = await workspace.psa.products()
        checks.append(
            Check(
                psa_title,
                True,
                f"{psa_title}: signed in; {len(psa_companies)} companies, "
                f"{len(agreements)} agreements and {len(products)} products readable.",
            )
        )
    except Exception as exc:  # noqa: BLE001
        checks.append(_failure(psa_title, step, exc))
    return checks


__all__ += ["ConfigError"]
