"""Refresh: pull the vendor's and the PSA's data through their connectors into the store.

Two entry points, both `async` (they await the connectors; the store calls in between block briefly):

* `refresh(store, vendor, psa, …)` — the **periodic sweep** of everything (below);
* `refresh_customer(store, vendor, psa, company_id, …)` — the **targeted refresh** of one customer
  (vendor company) end to end, for "this subscription just changed, show me the new plan now".

Periodic sweep, vendor side (stages "vendor companies", "vendor subscriptions", "usage"):
- companies are read in full every time (one list);
- subscriptions are **incremental**: `changed_since` is the vendor-clock time the previous
  successful vendor refresh started (minus a safety margin), kept in the store's settings; the
  changed subscriptions (with their whole history) are merged into the stored ones, the rest stay
  as they are. A full refresh (first run, `full=True`, or the last full one over a day old) replaces
  every subscription and so also drops those the vendor no longer lists;
- products: the ones the subscriptions use (those just listed, plus, on an incremental run, those
  the stored subscriptions use), described again each time (`vendor.products(ids)`: the listing is
  not paged a second time); product attributes Pax8 does not carry (`edition`, `service`,
  `storage_location`, `parent_product_id` of backup/quota items) are kept from the store;
- usage is read for the periods the rules use, for active usage subscriptions only: endpoint counts
  for the previous month and the one before (RULES §5: month M is billable from day 3 of M+1),
  usage summaries for the previous month, quota items for the current month and the previous one
  (the latest ≤ current wins). Those (subscription, period) pairs are replaced; older periods stay.
PSA side (stages "psa companies", "psa agreements", "psa lines"): companies, products, agreements
and the lines of the active agreements are read in full and replace what the store holds (no PSA
offers a documented, reliable "changed since" for lines *and* deletions, so the sweep reads it all).

The sweep does not read the whole store first: it reads what the comparison needs — the stored
companies and products (small), the stored copies of the subscriptions that changed (all of them
on a full run), the active usage subscriptions and the usage rows in scope, and the PSA side (which
it replaces). `vendor_changed`/`psa_changed` count records that differ (model equality, so `1.0`
and `1` are the same amount), among the changed records only on an incremental run.

Targeted refresh of one customer (`refresh_customer`), both sides concurrently:
- vendor: `GET /companies/{id}` (an unknown id raises `UnknownCompany` and nothing is written, on
  either side), `GET /subscriptions?companyId=…` (one page for a normal customer); history is read
  only for subscriptions that are new, whose record is newer than what the store has (the later of
  the last sweep's `changed_since` and this customer's own, setting `refresh.vendor.company.<id>`)
  or whose current record disagrees with the stored one; then that customer's usage for the
  periods above. Products the store already has are kept as stored; a product new to the store is
  described (`vendor.products([id])`). Written in one transaction that replaces exactly the
  customer's scope: its company row, its subscriptions (those the vendor no longer lists for it are
  dropped with their history and usage), their history, the usage pairs in scope, and new products.
- PSA: the PSA companies the customer is mapped to (`company_mapping`), their active agreements and
  those agreements' lines (`psa.company_billing(psa_company_id)`: ConnectWise
  `conditions=company/id=N and agreementStatus="Active"` + additions, HaloPSA
  `/RecurringInvoice?client_id=N&includelines=true`, Autotask `Contracts/query` with
  `companyID eq N` + services/units/charges); and, when the customer has an explicit agreement
  mapping to an agreement of another company, that agreement's lines. One transaction replaces
  those companies' agreements and those agreements' lines; PSA companies and products are not
  touched. A customer mapped to no PSA company leaves the PSA side alone (reported in progress).
- the global freshness (`refresh.vendor.at`, `refresh.psa.at`) and the sweep's `changed_since`
  are not moved: only that customer is fresh. A store that has never been swept gets the customer
  anyway (every subscription read in full).
The result equals what a full refresh would store for that customer; every other row is untouched.

Each side is written in one transaction, and only once everything it needs has been read: a
connector error (`ServiceError`, which includes a 200 with an error body, an empty 200, a malformed
envelope and a listing past its page/byte cap) or any other failure leaves that side's previous data
— every table, and its settings — exactly as it was, and is reported in `RefreshResult.errors` with
the service's message. The other side still refreshes. The time of each side's last success is kept
in the store settings (`refresh.vendor.at`, `refresh.psa.at`).

**One refresh at a time per store** (issue 11): `refresh` and `refresh_customer` hold the store's
"refresh" lock (engine.store.locks: a PostgreSQL advisory lock, a lock file beside a SQLite file)
from before they read the store until they have written it, so two processes refreshing one team
database serialise instead of colliding (`UniqueViolation psa_company_pkey`). A refresh that finds
the lock taken reports "another refresh is running (alice@host (pid 123) since 19:50:01 UTC):
waiting for it to finish" (progress stage "waiting") and waits up to `lock_wait` seconds; past
that it gives up, writes nothing, and says so (with the holder) in `errors`.

**Empty listings are held** (issue 11): a listing that comes back empty where the store holds rows
of it — vendor companies, the vendor's subscriptions (a full sweep, or one customer's), PSA
companies, agreements or lines (the sweep, or one customer's agreements and lines) — is not applied
unless `accept_empty=True`: that side is left as it was, `RefreshResult.held` says what ("Pax8
returned 0 subscriptions (was 400)") and `errors` carries the same sentence with what to do. A
service that really has nothing left is applied by refreshing again with `accept_empty`
(`trueup refresh --accept-empty`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar, cast

from engine.connectors.base import PsaConnector, ServiceError, VendorConnector
from engine.months import add_months, first_of_month, month_key
from engine.psa import PSAS, Capability, DigestsKeys, psa_spec
from engine.scenario import Psa, PsaAgreement, PsaLine, Subscription, UsageRow, VendorCompany, VendorProduct
from engine.store import Store
from engine.store.locks import HeldLock, LockBusy, StoreLocks

log = logging.getLogger(__name__)

VENDOR_STAGES = ("vendor companies", "vendor subscriptions", "usage")
PSA_STAGES = ("psa companies", "psa agreements", "psa lines")

SETTING_VENDOR_AT = "refresh.vendor.at"  # wall clock, last successful vendor refresh (ISO)
SETTING_PSA_AT = "refresh.psa.at"
SETTING_VENDOR_SINCE = "refresh.vendor.changed_since"  # vendor clock: next incremental starts here
SETTING_VENDOR_FULL_AT = "refresh.vendor.full_at"  # vendor clock: last full vendor refresh
# + vendor company id: {"since", "at"} of that customer's last targeted refresh
SETTING_VENDOR_COMPANY = "refresh.vendor.company."
SETTING_PSA_COMPANY = "refresh.psa.company."  # + vendor company id: {"at"} of its targeted PSA refresh
CHANGED_SINCE_MARGIN = timedelta(minutes=10)  # clock skew between us and the vendor
FULL_REFRESH_EVERY = timedelta(hours=24)
# The shortest PSA key field (ConnectWise serialNumber): longer keys may be stored as digests.
DIGEST_KEYS_LONGER_THAN = 50

# Which periods (months back from the current one) each product kind needs.
USAGE_MONTHS: dict[str, tuple[int, ...]] = {
    "endpoint_usage": (-1, -2),
    "usage_summary": (-1,),
    "quota": (0, -1),
}


class UnknownCompany(LookupError):
    """The vendor has no such company (or no company has that exact name). The message names it."""


SERVICE_NAMES: dict[str, str] = {"pax8": "Pax8", **{name: psa.display_name for name, psa in PSAS.items()}}


@dataclass(frozen=True)
class EmptyListing:
    """A listing that came back empty where the store holds `was` rows of it (not applied)."""

    service: str  # "Pax8", "ConnectWise"…
    what: str  # "subscriptions", "companies", "agreements", "lines"
    was: int
    scope: str = ""  # " of company X" for a targeted refresh

    @property
    def message(self) -> str:
        return f"{self.service} returned 0 {self.what}{self.scope} (was {self.was}) — keep the store?"


class EmptyListingHeld(Exception):
    """Raised inside a side of the refresh: nothing of that side is written."""

    def __init__(self, listings: list[EmptyListing]) -> None:
        self.listings = listings
        super().__init__("; ".join(item.message for item in listings))


REFRESH_LOCK = "refresh"
LOCK_WAIT = 900.0  # seconds a refresh waits for another one to finish (a month-end sweep takes minutes)
LOCK_POLL = 0.5


async def _refresh_lock(store: Store, run: _Run, wait: float) -> HeldLock:
    """The store's refresh lock, waited for (asynchronously) up to `wait` seconds; `LockBusy` after."""
    locks: StoreLocks | None = getattr(store, "locks", None)
    if locks is None:
        return HeldLock(None)
    held = locks.try_acquire(REFRESH_LOCK)
    if held is not None:
        return held
    holder = locks.holder(REFRESH_LOCK)
    who = holder.describe() if holder else "another process"
    log.info("refresh: the store is being refreshed by %s; waiting", who)
    run.report("waiting", 0, 0, f"another refresh is running ({who}): waiting for it to finish")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        await asyncio.sleep(LOCK_POLL)
        held = locks.try_acquire(REFRESH_LOCK)
        if held is not None:
            run.report("waiting", 1, 1, f"the other refresh ({who}) finished: refreshing now")
            return held
        holder = locks.holder(REFRESH_LOCK) or holder
    raise LockBusy(REFRESH_LOCK, holder, wait)


def _service_name(connector: Any) -> str:
    name = str(getattr(connector, "name", "") or "")
    return SERVICE_NAMES.get(name, name or "the service")


def _hold_empty(
    connector: Any, counts: Iterable[tuple[str, int, int]], accept_empty: bool, scope: str = ""
) -> None:
    """(what, fresh count, stored count) per listing: raise `EmptyListingHeld` for those that came
    back empty where the store has rows, unless the operator accepted empty listings."""
    if accept_empty:
        return
    held = [
        EmptyListing(_service_name(connector), what, was, scope)
        for what, fresh, was in counts
        if fresh == 0 and was > 0
    ]
    if held:
        raise EmptyListingHeld(held)


@dataclass
class RefreshProgress:
    stage: str
    done: int
    total: int | None
    message: str


@dataclass
class RefreshResult:
    started: datetime
    finished: datetime
    vendor_changed: (
        int  # vendor records (companies, products, subscriptions, usage rows) added/changed/removed
    )
    psa_changed: int  # PSA records (companies, products, agreements, lines) added/changed/removed
    full: bool  # the vendor subscriptions were read in full
    errors: list[str] = field(default_factory=list)
    company_id: str | None = None  # a targeted refresh: the vendor company refreshed
    held: list[EmptyListing] = field(default_factory=list)  # empty listings not applied (also in errors)
    warnings: list[str] = field(default_factory=list)  # applied, but worth the operator's eye

    @property
    def ok(self) -> bool:
        return not self.errors


Progress = Callable[[RefreshProgress], None]


def _parse_instant(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def freshness(store: Store) -> dict[str, datetime | None]:
    """The last successful refresh of each source ("vendor", "psa")."""
    return {
        "vendor": _parse_instant(store.get_setting(SETTING_VENDOR_AT)),
        "psa": _parse_instant(store.get_setting(SETTING_PSA_AT)),
    }


def usage_periods(
    subscriptions: Iterable[Subscription], products: Iterable[VendorProduct], today: date
) -> dict[str, list[Subscription]]:
    """Period (YYYY-MM) -> the active subscriptions whose usage of that month the rules need."""
    kinds = {p.id: p.kind for p in products}
    month0 = first_of_month(today)
    out: dict[str, list[Subscription]] = {}
    for sub in subscriptions:
        if sub.status != "active":
            continue
        for back in USAGE_MONTHS.get(kinds.get(sub.product_id, "seat"), ()):
            out.setdefault(month_key(add_months(month0, back)), []).append(sub)
    return dict(sorted(out.items()))


# Product attributes Pax8 does not carry (backup/quota items: RULES §6, §8): set in the store (by the
# operator, an import or the sandbox), they survive a refresh that reads the product without them.
KEPT_PRODUCT_FIELDS = ("edition", "service", "storage_location", "parent_product_id")


def keep_product_details(fresh: list[VendorProduct], stored: Iterable[VendorProduct]) -> list[VendorProduct]:
    known = {p.id: p for p in stored}
    out = []
    for product in fresh:
        old = known.get(product.id)
        if old is not None:
            keep = {
                f: getattr(old, f)
                for f in KEPT_PRODUCT_FIELDS
                if getattr(product, f) is None and getattr(old, f) is not None
            }
            if keep:
                product = product.model_copy(update=keep)
        out.append(product)
    return out


def _count_changes(before: Iterable[Any], after: Iterable[Any], key: Callable[[Any], Any]) -> int:
    """Records added, removed or different (pydantic equality: field values, amounts by value)."""
    old = {key(item): item for item in before}
    new = {key(item): item for item in after}
    return sum(1 for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _usage_key(row: UsageRow) -> tuple[str, str, str]:
    return row.subscription_id, row.sub_product or "", row.period


def _describe(exc: BaseException, service: str) -> str:
    if isinstance(exc, ServiceError):
        return str(exc)
    return f"{service}: unexpected {type(exc).__name__}: {exc}"


class _Run:
    def __init__(self, store: Store, progress: Progress | None) -> None:
        self.store = store
        self._progress = progress

    def report(self, stage: str, done: int, total: int | None, message: str) -> None:
        if self._progress is None:
            return
        try:
            self._progress(RefreshProgress(stage, done, total, message))
        except Exception:  # a broken progress display must not break the refresh
            log.debug("refresh progress callback failed", exc_info=True)


def _remember_products(vendor: VendorConnector, products: Iterable[VendorProduct]) -> None:
    remember = getattr(vendor, "remember_products", None)
    if callable(remember):  # usage() then knows their kinds without describing them again
        remember(products)


def _remember_keys(store: Store, psa: PsaConnector, company_id: str | None = None) -> None:
    """Keys too long for the PSA field are stored as digests: tell the connector the synced keys
    that may be (of one vendor company's subscriptions and billing configurations when given)."""
    if not psa_spec(psa.name).can(Capability.DIGEST_KEYS):
        return
    remember = cast(DigestsKeys, psa).remember_keys
    if company_id is None:
        remember(store.long_synced_keys(DIGEST_KEYS_LONGER_THAN))
        return
    owners = [s.id for s in store.subscriptions_where(company_id=company_id, with_history=False)]
    owners += store.billing_configuration_ids(company_id)
    if owners:
        remember(store.long_synced_keys(DIGEST_KEYS_LONGER_THAN, owners))


async def _read_usage(
    run: _Run, vendor: VendorConnector, wanted: dict[str, list[Subscription]]
) -> list[UsageRow]:
    """The usage of every period, the periods read concurrently (the connector bounds its requests)."""
    run.report("usage", 0, len(wanted), "reading usage for " + (", ".join(wanted) or "no period"))
    done = 0

    async def one(period: str, subs: list[Subscription]) -> list[UsageRow]:
        nonlocal done
        rows = await vendor.usage(subs, period=period)
        done += 1
        run.report(
            "usage", done, len(wanted), f"{period}: {len(rows)} usage rows for {len(subs)} subscriptions"
        )
        return rows

    per_period = await asyncio.gather(*(one(period, subs) for period, subs in wanted.items()))
    return [row for rows in per_period for row in rows]


# --- the periodic sweep ---------------------------------------------------------------------------


async def _refresh_vendor(
    run: _Run,
    vendor: VendorConnector,
    *,
    full: bool,
    today: date,
    vendor_now: datetime,
    wall_now: Callable[[], datetime],
    accept_empty: bool = False,
) -> tuple[int, bool]:
    store = run.store
    since = _parse_instant(store.get_setting(SETTING_VENDOR_SINCE))
    full_at = _parse_instant(store.get_setting(SETTING_VENDOR_FULL_AT))
    full = full or since is None or full_at is None or vendor_now - full_at > FULL_REFRESH_EVERY

    run.report("vendor companies", 0, None, "reading companies")
    companies = await vendor.companies()
    run.report("vendor companies", len(companies), len(companies), f"{len(companies)} companies")

    run.report(
        "vendor subscriptions",
        0,
        None,
        "reading every subscription"
        if full
        else f"reading subscriptions changed since {since:%Y-%m-%d %H:%M}",
    )
    changed = await vendor.subscriptions(changed_since=None if full else since)
    changed_ids = {sub.id for sub in changed}
    # Issue 15: the commitment terms of the subscriptions just read, where the connector has them.
    read_terms = getattr(vendor, "commitments", None)
    commitments = await read_terms([sub.id for sub in changed]) if read_terms is not None else None
    product_ids = {sub.product_id for sub in changed}
    if not full:
        product_ids |= store.subscription_product_ids()
    stored_products = store.vendor_products()
    products = keep_product_details(await vendor.products(sorted(product_ids)), stored_products)
    run.report(
        "vendor subscriptions",
        len(changed),
        len(changed),
        (f"{len(changed)} subscriptions" if full else f"{len(changed)} changed since the last refresh")
        + f", {len(products)} products",
    )

    usage_products = [p.id for p in products if p.kind in USAGE_MONTHS]
    if full:
        current: list[Subscription] = list(changed)
    else:
        stored_usage_subs = (
            store.subscriptions_where(product_ids=usage_products, status="active", with_history=False)
            if usage_products
            else []
        )
        current = [s for s in stored_usage_subs if s.id not in changed_ids] + list(changed)
    wanted = usage_periods(current, products, today)
    usage = await _read_usage(run, vendor, wanted)
    scope = {(sub.id, period) for period, subs in wanted.items() for sub in subs}

    # What changes, compared with the store (for the result and the operator): only what was read.
    stored_companies = store.vendor_companies()
    if full:
        # one kept as gone (no longer listed, a PSA line bills it) is not the vendor's any more
        before_subs = [sub for sub in store.subscriptions_where() if not sub.gone]
        _hold_empty(
            vendor,
            [
                ("companies", len(companies), len(stored_companies)),
                ("subscriptions", len(changed), len(before_subs)),
            ],
            accept_empty,
        )
        old_usage = [
            row
            for row in store.usage_rows()
            if (row.subscription_id, row.period) in scope or row.subscription_id not in changed_ids
        ]
    else:
        _hold_empty(vendor, [("companies", len(companies), len(stored_companies))], accept_empty)
        before_subs = store.subscriptions_where(ids=changed_ids) if changed_ids else []
        scoped_ids = {sid for sid, _ in scope}
        old_usage = [
            row for row in store.usage_rows(scoped_ids) if (row.subscription_id, row.period) in scope
        ]
    changes = (
        _count_changes(stored_companies, companies, lambda c: c.id)
        + _count_changes(stored_products, products, lambda p: p.id)
        + _count_changes(before_subs, changed, lambda s: s.id)
        + _count_changes(old_usage, usage, _usage_key)
    )
    settings: dict[str, Any] = {
        SETTING_VENDOR_SINCE: (vendor_now - CHANGED_SINCE_MARGIN).isoformat(),
        SETTING_VENDOR_AT: wall_now().isoformat(),
    }
    if full:
        settings[SETTING_VENDOR_FULL_AT] = vendor_now.isoformat()
    store.write_vendor_refresh(
        companies=companies,
        products=products,
        subscriptions=list(changed),
        usage=usage,
        usage_scope=scope,
        full=full,
        settings=settings,
        commitments=commitments,
    )
    return changes, full


async def _refresh_psa(
    run: _Run, psa: PsaConnector, *, wall_now: Callable[[], datetime], accept_empty: bool = False
) -> int:
    store = run.store
    _remember_keys(store, psa)
    run.report("psa companies", 0, None, "reading companies and products")
    companies = await psa.companies()
    products = await psa.products()
    run.report(
        "psa companies",
        len(companies),
        len(companies),
        f"{len(companies)} companies, {len(products)} products",
    )
    run.report("psa agreements", 0, None, "reading agreements")
    agreements = await psa.agreements()
    run.report("psa agreements", len(agreements), len(agreements), f"{len(agreements)} agreements")
    run.report("psa lines", 0, None, "reading the lines of the active agreements")
    lines = await psa.lines(None)
    run.report("psa lines", len(lines), len(lines), f"{len(lines)} lines")
    data = Psa(companies=companies, products=products, agreements=agreements, lines=lines)
    before = store.psa_data()
    _hold_empty(
        psa,
        [
            ("companies", len(companies), len(before.companies)),
            ("agreements", len(agreements), len(before.agreements)),
            ("lines", len(lines), len(before.lines)),
        ],
        accept_empty,
    )
    changes = (
        _count_changes(before.companies, companies, lambda c: c.id)
        + _count_changes(before.products, products, lambda p: p.id)
        + _count_changes(before.agreements, agreements, lambda a: a.id)
        + _count_changes(before.lines, lines, lambda line: line.id)
    )
    store.write_psa_refresh(data, {SETTING_PSA_AT: wall_now().isoformat()})
    return changes


T = TypeVar("T")


async def _guarded(
    side: Awaitable[T],
    service: Any,
    label: str,
    errors: list[str],
    fallback: T,
    about: str = "",
    held: list[EmptyListing] | None = None,
) -> T:
    """One side of a refresh: a failure is reported in `errors` with the service's message (and
    logged when it is not a service error), and that side's rows stay as they were. An empty listing
    held back is reported in `held` and `errors`. A question about a company the vendor does not
    have (`UnknownCompany`) is the caller's to answer."""
    try:
        return await side
    except UnknownCompany:
        raise
    except EmptyListingHeld as exc:
        for item in exc.listings:
            if held is not None:
                held.append(item)
            errors.append(
                f"{item.message} The {item.service} side was not applied; if {item.service} really "
                "has none, refresh again accepting empty listings (trueup refresh --accept-empty)."
            )
        return fallback
    except Exception as exc:  # noqa: BLE001 - reported, the previous data stays
        if not isinstance(exc, ServiceError):
            log.warning("%s refresh%s failed", label, about, exc_info=True)
        errors.append(_describe(exc, getattr(service, "name", label)))
        return fallback


def _clocks(
    clock: Callable[[], datetime] | None,
    vendor_clock: Callable[[], datetime] | None,
) -> tuple[Callable[[], datetime], Callable[[], datetime]]:
    wall = clock or (lambda: datetime.now(UTC))
    return wall, vendor_clock or wall


async def refresh(
    store: Store,
    vendor: VendorConnector,
    psa: PsaConnector,
    progress: Progress | None = None,
    *,
    full: bool = False,
    today: date | None = None,
    clock: Callable[[], datetime] | None = None,
    vendor_clock: Callable[[], datetime] | None = None,
    accept_empty: bool = False,
    lock_wait: float = LOCK_WAIT,
) -> RefreshResult:
    """Refresh both sides (concurrently); see the module doc. `today` decides the usage periods
    (default: the clock's date); `clock` is the wall clock (aware, default UTC now); `vendor_clock`
    is the time as the vendor sees it, for `changed_since` (default: the wall clock);
    `accept_empty` applies listings that came back empty where the store has rows; `lock_wait`:
    how long to wait for another process's refresh of this store."""
    wall, vendor_time = _clocks(clock, vendor_clock)
    started = wall()
    run = _Run(store, progress)
    try:
        lock = await _refresh_lock(store, run, lock_wait)
    except LockBusy as exc:
        return RefreshResult(
            started=started,
            finished=wall(),
            vendor_changed=0,
            psa_changed=0,
            full=full,
            errors=[f"{exc}; nothing was refreshed"],
        )
    with lock:
        return await _sweep(
            run,
            vendor,
            psa,
            full=full,
            today=today or started.date(),
            wall=wall,
            vendor_time=vendor_time,
            started=started,
            accept_empty=accept_empty,
        )


async def _sweep(
    run: _Run,
    vendor: VendorConnector,
    psa: PsaConnector,
    *,
    full: bool,
    today: date,
    wall: Callable[[], datetime],
    vendor_time: Callable[[], datetime],
    started: datetime,
    accept_empty: bool,
) -> RefreshResult:
    errors: list[str] = []
    held: list[EmptyListing] = []

    vendor_side = _refresh_vendor(
        run,
        vendor,
        full=full,
        today=today,
        vendor_now=vendor_time(),
        wall_now=wall,
        accept_empty=accept_empty,
    )
    (vendor_changed, was_full), psa_changed = await asyncio.gather(
        _guarded(vendor_side, vendor, "vendor", errors, (0, full), held=held),
        _guarded(
            _refresh_psa(run, psa, wall_now=wall, accept_empty=accept_empty), psa, "psa", errors, 0, held=held
        ),
    )
    return RefreshResult(
        started=started,
        finished=wall(),
        vendor_changed=vendor_changed,
        psa_changed=psa_changed,
        full=was_full,
        errors=errors,
        held=held,
        warnings=_connector_warnings(vendor, psa),
    )


def _connector_warnings(*connectors: Any) -> list[str]:
    """What the connectors noted while reading (e.g. Pax8's price reading), taken once."""
    out: list[str] = []
    for connector in connectors:
        take = getattr(connector, "take_warnings", None)
        if callable(take):
            out.extend(str(w) for w in take())
    return out


# --- the targeted refresh of one customer ------------------------------------------------------------


async def resolve_company(store: Store, vendor: VendorConnector, text: str) -> VendorCompany:
    """The vendor company `text` names: its id or its exact name, looked up in the store first, then
    in the vendor's company list (a customer added since the last refresh). Raises `UnknownCompany`
    (no such company, or several with that name: the message lists their ids)."""
    text = text.strip()
    if not text:
        raise UnknownCompany("no company given")
    found = store.find_vendor_companies(text)
    if not found:
        listed = await vendor.companies()
        found = [c for c in listed if c.id == text] or [c for c in listed if c.name == text]
    if not found:
        raise UnknownCompany(f"no vendor company has the id or exact name {text!r}")
    if len(found) > 1:
        ids = ", ".join(c.id for c in found)
        raise UnknownCompany(f"{len(found)} vendor companies are named {text!r} ({ids}); give the id")
    return found[0]


async def _refresh_vendor_company(
    run: _Run,
    vendor: VendorConnector,
    company_id: str,
    known: asyncio.Future[bool],
    *,
    today: date,
    vendor_now: datetime,
    wall_now: Callable[[], datetime],
    accept_empty: bool = False,
) -> int:
    store = run.store
    own = store.get_setting(SETTING_VENDOR_COMPANY + company_id) or {}
    stamps = [
        s
        for s in (
            _parse_instant(store.get_setting(SETTING_VENDOR_SINCE)),
            _parse_instant(own.get("since") if isinstance(own, dict) else None),
        )
        if s
    ]
    since = max(stamps) if stamps else None
    stored = {s.id: s for s in store.subscriptions_where(company_id=company_id)}

    run.report("vendor subscriptions", 0, None, f"reading the subscriptions of company {company_id}")
    try:
        company, fresh = await asyncio.gather(
            vendor.company(company_id),
            vendor.subscriptions(company_id=company_id, changed_since=since, known=stored),
        )
    except BaseException:
        if not known.done():
            known.set_result(True)  # not known to be unknown: the PSA side may go on
        raise
    known.set_result(company is not None)
    if company is None:
        raise UnknownCompany(f"{getattr(vendor, 'name', 'the vendor')} has no company {company_id!r}")
    _hold_empty(
        vendor, [("subscriptions", len(fresh), len(stored))], accept_empty, f" for company {company_id}"
    )
    fresh_ids = {s.id for s in fresh}
    changed = [s for s in fresh if stored.get(s.id) != s]
    removed = sorted(sid for sid in set(stored) - fresh_ids if not stored[sid].gone)
    run.report("vendor companies", 1, 1, company.name)
    run.report(
        "vendor subscriptions",
        len(fresh),
        len(fresh),
        f"{len(fresh)} subscriptions, {len(changed)} new or changed, {len(removed)} gone",
    )

    stored_products = store.vendor_products()
    _remember_products(vendor, stored_products)
    have = {p.id for p in stored_products}
    missing = sorted({s.product_id for s in fresh} - have)
    new_products = keep_product_details(await vendor.products(missing), ()) if missing else []
    products = [*stored_products, *new_products]

    wanted = usage_periods(fresh, products, today)
    usage = await _read_usage(run, vendor, wanted)
    scope = {(sub.id, period) for period, subs in wanted.items() for sub in subs}

    old_usage = [
        row
        for row in store.usage_rows(set(stored) | fresh_ids)
        if (row.subscription_id, row.period) in scope or row.subscription_id in removed
    ]
    changes = (
        _count_changes(store.vendor_companies([company_id]), [company], lambda c: c.id)
        + len(new_products)
        + _count_changes([s for s in stored.values() if not s.gone], fresh, lambda s: s.id)
        + _count_changes(old_usage, usage, _usage_key)
    )
    store.write_vendor_scope(
        company=company,
        new_products=new_products,
        subscriptions=changed,
        removed=removed,
        usage=usage,
        usage_scope=scope,
        settings={
            SETTING_VENDOR_COMPANY + company_id: {
                "since": (vendor_now - CHANGED_SINCE_MARGIN).isoformat(),
                "at": wall_now().isoformat(),
            }
        },
    )
    return changes


async def _refresh_psa_company(
    run: _Run,
    psa: PsaConnector,
    company_id: str,
    known: asyncio.Future[bool],
    *,
    wall_now: Callable[[], datetime],
    accept_empty: bool = False,
) -> int:
    store = run.store
    psa_ids, explicit = store.psa_mapping(company_id)
    if not psa_ids and explicit is None:
        run.report(
            "psa agreements", 0, 0, f"company {company_id} is mapped to no PSA company: PSA side not read"
        )
        await known
        return 0
    _remember_keys(store, psa, company_id)
    before = store.psa_data(company_ids=psa_ids, agreement_ids=[explicit] if explicit else ())
    run.report("psa agreements", 0, None, "reading the agreements of PSA company " + ", ".join(psa_ids))
    read = await asyncio.gather(*(psa.company_billing(pid) for pid in psa_ids))
    agreements: list[PsaAgreement] = [a for got, _ in read for a in got]
    lines: list[PsaLine] = [line for _, got in read for line in got]
    run.report("psa agreements", len(agreements), len(agreements), f"{len(agreements)} agreements")
    line_agreements = [a.id for a in before.agreements]
    outside = next((a for a in before.agreements if a.id == explicit and a.company_id not in psa_ids), None)
    if outside is not None and explicit not in {a.id for a in agreements}:
        lines += await psa.lines([outside.id])  # the explicitly mapped agreement of another company
    run.report("psa lines", len(lines), len(lines), f"{len(lines)} lines")
    if not await known:
        return 0  # the vendor has no such company: nothing is written
    in_companies = set(psa_ids)
    _hold_empty(
        psa,
        [
            (
                "agreements",
                len(agreements),
                sum(1 for a in before.agreements if a.company_id in in_companies),
            ),
            ("lines", len(lines), len(before.lines)),
        ],
        accept_empty,
        f" for company {company_id}",
    )
    changes = _count_changes(
        [a for a in before.agreements if a.company_id in in_companies], agreements, lambda a: a.id
    ) + _count_changes(before.lines, lines, lambda line: line.id)
    store.write_psa_scope(
        company_ids=psa_ids,
        agreements=agreements,
        lines=lines,
        line_agreement_ids=line_agreements,
        settings={SETTING_PSA_COMPANY + company_id: {"at": wall_now().isoformat()}},
    )
    return changes


async def refresh_customer(
    store: Store,
    vendor: VendorConnector,
    psa: PsaConnector,
    company_id: str,
    progress: Progress | None = None,
    *,
    today: date | None = None,
    clock: Callable[[], datetime] | None = None,
    vendor_clock: Callable[[], datetime] | None = None,
    accept_empty: bool = False,
    lock_wait: float = LOCK_WAIT,
) -> RefreshResult:
    """Refresh one customer (vendor company `company_id`), both sides concurrently; see the module
    doc. Raises `UnknownCompany` when the vendor has no such company (nothing written); a service
    error on one side is reported in `errors` and leaves that side's rows as they were."""
    wall, vendor_time = _clocks(clock, vendor_clock)
    started = wall()
    run = _Run(store, progress)
    try:
        lock = await _refresh_lock(store, run, lock_wait)
    except LockBusy as exc:
        return RefreshResult(
            started=started,
            finished=wall(),
            vendor_changed=0,
            psa_changed=0,
            full=False,
            errors=[f"{exc}; nothing was refreshed"],
            company_id=company_id,
        )
    with lock:
        return await _customer(
            run,
            vendor,
            psa,
            company_id,
            today=today or started.date(),
            wall=wall,
            vendor_time=vendor_time,
            started=started,
            accept_empty=accept_empty,
        )


async def _customer(
    run: _Run,
    vendor: VendorConnector,
    psa: PsaConnector,
    company_id: str,
    *,
    today: date,
    wall: Callable[[], datetime],
    vendor_time: Callable[[], datetime],
    started: datetime,
    accept_empty: bool,
) -> RefreshResult:
    errors: list[str] = []
    held: list[EmptyListing] = []
    known: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    unknown: list[UnknownCompany] = []

    async def vendor_side() -> int:
        try:
            read = _refresh_vendor_company(
                run,
                vendor,
                company_id,
                known,
                today=today,
                vendor_now=vendor_time(),
                wall_now=wall,
                accept_empty=accept_empty,
            )
            return await _guarded(read, vendor, "vendor", errors, 0, f" of company {company_id}", held=held)
        except UnknownCompany as exc:
            unknown.append(exc)
            return 0
        finally:
            if not known.done():
                known.set_result(True)

    psa_side = _refresh_psa_company(run, psa, company_id, known, wall_now=wall, accept_empty=accept_empty)
    vendor_changed, psa_changed = await asyncio.gather(
        vendor_side(), _guarded(psa_side, psa, "psa", errors, 0, f" of company {company_id}", held=held)
    )
    if unknown:
        raise unknown[0]
    return RefreshResult(
        started=started,
        finished=wall(),
        vendor_changed=vendor_changed,
        psa_changed=psa_changed,
        full=False,
        errors=errors,
        company_id=company_id,
        held=held,
        warnings=_connector_warnings(vendor, psa),
    )


def stage_names() -> tuple[str, ...]:
    return (*VENDOR_STAGES, *PSA_STAGES)


__all__ = [
    "EmptyListing",
    "RefreshProgress",
    "RefreshResult",
    "UnknownCompany",
    "refresh",
    "refresh_customer",
    "resolve_company",
    "freshness",
    "usage_periods",
    "stage_names",
]
