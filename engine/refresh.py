"""Refresh: pull the vendor's and the PSA's data through their connectors into the store.

Vendor side (stages "vendor companies", "vendor subscriptions", "usage"):
- companies and products are read in full every time (cheap: one list, one call per used product);
  product attributes Pax8 does not carry (`edition`, `service`, `storage_location`,
  `parent_product_id` of backup/quota items) are kept from the store;
- subscriptions are **incremental**: `changed_since` is the vendor-clock time the previous
  successful vendor refresh started (minus a safety margin), kept in the store's settings; the
  changed subscriptions (with their whole history) are merged into the stored ones, the rest stay
  as they are. A full refresh (first run, `full=True`, or the last full one over a day old) replaces
  every subscription and so also drops those the vendor no longer lists;
- usage is read for the periods the rules use, for active usage subscriptions only: endpoint counts
  for the previous month and the one before (RULES §5: month M is billable from day 3 of M+1),
  usage summaries for the previous month, quota items for the current month and the previous one
  (the latest ≤ current wins). Those (subscription, period) pairs are replaced; older periods stay.
PSA side (stages "psa companies", "psa agreements", "psa lines"): companies, products, agreements
and the lines of the active agreements are read in full and replace what the store holds.

Each side is written in one transaction, and only once everything it needs has been read: a
connector error (`ServiceError`) leaves that side's previous data in place and is reported in
`RefreshResult.errors` with the service's message. The other side still refreshes. The time of each
side's last success is kept in the store settings (`refresh.vendor.at`, `refresh.psa.at`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from engine.connectors.base import PsaConnector, ServiceError, VendorConnector
from engine.months import add_months, first_of_month, month_key
from engine.scenario import Psa, Scenario, Subscription, UsageRow, VendorProduct
from engine.store import Store

log = logging.getLogger(__name__)

VENDOR_STAGES = ("vendor companies", "vendor subscriptions", "usage")
PSA_STAGES = ("psa companies", "psa agreements", "psa lines")

SETTING_VENDOR_AT = "refresh.vendor.at"  # wall clock, last successful vendor refresh (ISO)
SETTING_PSA_AT = "refresh.psa.at"
SETTING_VENDOR_SINCE = "refresh.vendor.changed_since"  # vendor clock: next incremental starts here
SETTING_VENDOR_FULL_AT = "refresh.vendor.full_at"  # vendor clock: last full vendor refresh
CHANGED_SINCE_MARGIN = timedelta(minutes=10)  # clock skew between us and the vendor
FULL_REFRESH_EVERY = timedelta(hours=24)

# Which periods (months back from the current one) each product kind needs.
USAGE_MONTHS: dict[str, tuple[int, ...]] = {
    "endpoint_usage": (-1, -2),
    "usage_summary": (-1,),
    "quota": (0, -1),
}


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
    vendor_changed: int  # vendor records (companies, products, subscriptions, usage rows) added/changed/removed
    psa_changed: int  # PSA records (companies, products, agreements, lines) added/changed/removed
    full: bool  # the vendor subscriptions were read in full
    errors: list[str] = field(default_factory=list)

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
    return {"vendor": _parse_instant(store.get_setting(SETTING_VENDOR_AT)),
            "psa": _parse_instant(store.get_setting(SETTING_PSA_AT))}


def usage_periods(subscriptions: Iterable[Subscription], products: Iterable[VendorProduct],
                  today: date) -> dict[str, list[Subscription]]:
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
            keep = {f: getattr(old, f) for f in KEPT_PRODUCT_FIELDS
                    if getattr(product, f) is None and getattr(old, f) is not None}
            if keep:
                product = product.model_copy(update=keep)
        out.append(product)
    return out


def _dump(item: Any) -> Any:
    return item.model_dump(mode="json")


def _count_changes(before: Iterable[Any], after: Iterable[Any], key: Callable[[Any], Any]) -> int:
    old = {key(item): _dump(item) for item in before}
    new = {key(item): _dump(item) for item in after}
    return sum(1 for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _usage_key(row: UsageRow) -> tuple[str, str, str]:
    return row.subscription_id, row.sub_product or "", row.period


def _describe(exc: BaseException, service: str) -> str:
    if isinstance(exc, ServiceError):
        return str(exc)
    return f"{service}: unexpected {type(exc).__name__}: {exc}"


class _Run:
    def __init__(self, store: Store, before: Scenario, progress: Progress | None) -> None:
        self.store = store
        self.before = before
        self._progress = progress

    def report(self, stage: str, done: int, total: int | None, message: str) -> None:
        if self._progress is None:
            return
        try:
            self._progress(RefreshProgress(stage, done, total, message))
        except Exception:  # a broken progress display must not break the refresh
            log.debug("refresh progress callback failed", exc_info=True)


async def _refresh_vendor(run: _Run, vendor: VendorConnector, *, full: bool, today: date,
                          vendor_now: datetime, wall_now: Callable[[], datetime]) -> tuple[int, bool]:
    store, before = run.store, run.before
    since = _parse_instant(store.get_setting(SETTING_VENDOR_SINCE))
    full_at = _parse_instant(store.get_setting(SETTING_VENDOR_FULL_AT))
    full = full or since is None or full_at is None or vendor_now - full_at > FULL_REFRESH_EVERY

    run.report("vendor companies", 0, None, "reading companies and products")
    companies = await vendor.companies()
    products = keep_product_details(await vendor.products(), before.vendor.products)
    run.report("vendor companies", len(companies), len(companies),
               f"{len(companies)} companies, {len(products)} products")

    run.report("vendor subscriptions", 0, None,
               "reading every subscription" if full else f"reading subscriptions changed since {since:%Y-%m-%d %H:%M}")
    changed = await vendor.subscriptions(changed_since=None if full else since)
    if full:
        merged = {sub.id: sub for sub in changed}
    else:
        merged = {sub.id: sub for sub in before.vendor.subscriptions}
        merged.update((sub.id, sub) for sub in changed)
    run.report("vendor subscriptions", len(changed), len(changed),
               f"{len(merged)} subscriptions" + ("" if full else f", {len(changed)} changed since the last refresh"))

    wanted = usage_periods(merged.values(), products, today)
    run.report("usage", 0, len(wanted), "reading usage for " + (", ".join(wanted) or "no period"))
    usage: list[UsageRow] = []
    for n, (period, subs) in enumerate(wanted.items(), start=1):
        rows = await vendor.usage(subs, period=period)
        usage += rows
        run.report("usage", n, len(wanted), f"{period}: {len(rows)} usage rows for {len(subs)} subscriptions")
    scope = {(sub.id, period) for period, subs in wanted.items() for sub in subs}

    # What changes, compared with the store (for the result and the operator).
    subs_after = list(merged.values())
    old_usage = [row for row in before.vendor.usage
                 if (row.subscription_id, row.period) in scope or (full and row.subscription_id not in merged)]
    changes = (
        _count_changes(before.vendor.companies, companies, lambda c: c.id)
        + _count_changes(before.vendor.products, products, lambda p: p.id)
        + _count_changes(before.vendor.subscriptions, subs_after, lambda s: s.id)
        + _count_changes(old_usage, usage, _usage_key)
    )
    settings: dict[str, Any] = {
        SETTING_VENDOR_SINCE: (vendor_now - CHANGED_SINCE_MARGIN).isoformat(),
        SETTING_VENDOR_AT: wall_now().isoformat(),
    }
    if full:
        settings[SETTING_VENDOR_FULL_AT] = vendor_now.isoformat()
    store.write_vendor_refresh(
        companies=companies, products=products, subscriptions=subs_after if full else list(changed),
        usage=usage, usage_scope=scope, full=full, settings=settings,
    )
    return changes, full


async def _refresh_psa(run: _Run, psa: PsaConnector, *, wall_now: Callable[[], datetime]) -> int:
    store, before = run.store, run.before
    remember = getattr(psa, "remember_keys", None)
    if callable(remember):  # keys too long for the PSA field are stored as digests: map them back
        remember([synced.key for synced in before.synced])
    run.report("psa companies", 0, None, "reading companies and products")
    companies = await psa.companies()
    products = await psa.products()
    run.report("psa companies", len(companies), len(companies), f"{len(companies)} companies, {len(products)} products")
    run.report("psa agreements", 0, None, "reading agreements")
    agreements = await psa.agreements()
    run.report("psa agreements", len(agreements), len(agreements), f"{len(agreements)} agreements")
    run.report("psa lines", 0, None, "reading the lines of the active agreements")
    lines = await psa.lines(None)
    run.report("psa lines", len(lines), len(lines), f"{len(lines)} lines")
    data = Psa(companies=companies, products=products, agreements=agreements, lines=lines)
    changes = (
        _count_changes(before.psa.companies, companies, lambda c: c.id)
        + _count_changes(before.psa.products, products, lambda p: p.id)
        + _count_changes(before.psa.agreements, agreements, lambda a: a.id)
        + _count_changes(before.psa.lines, lines, lambda line: line.id)
    )
    store.write_psa_refresh(data, {SETTING_PSA_AT: wall_now().isoformat()})
    return changes


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
) -> RefreshResult:
    """Refresh both sides (concurrently); see the module doc. `today` decides the usage periods
    (default: the clock's date); `clock` is the wall clock (aware, default UTC now); `vendor_clock`
    is the time as the vendor sees it, for `changed_since` (default: the wall clock)."""
    wall = clock or (lambda: datetime.now(UTC))
    vendor_time = vendor_clock or wall
    started = wall()
    today = today or started.date()
    run = _Run(store, store.snapshot(), progress)
    errors: list[str] = []

    async def vendor_side() -> tuple[int, bool]:
        try:
            return await _refresh_vendor(run, vendor, full=full, today=today, vendor_now=vendor_time(),
                                         wall_now=wall)
        except Exception as exc:  # noqa: BLE001 - reported, the previous data stays
            if not isinstance(exc, ServiceError):
                log.warning("vendor refresh failed", exc_info=True)
            errors.append(_describe(exc, getattr(vendor, "name", "vendor")))
            return 0, full

    async def psa_side() -> int:
        try:
            return await _refresh_psa(run, psa, wall_now=wall)
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, ServiceError):
                log.warning("PSA refresh failed", exc_info=True)
            errors.append(_describe(exc, getattr(psa, "name", "psa")))
            return 0

    (vendor_changed, was_full), psa_changed = await asyncio.gather(vendor_side(), psa_side())
    return RefreshResult(started=started, finished=wall(), vendor_changed=vendor_changed,
                         psa_changed=psa_changed, full=was_full, errors=errors)


def stage_names() -> tuple[str, ...]:
    return (*VENDOR_STAGES, *PSA_STAGES)


__all__ = [
    "RefreshProgress", "RefreshResult", "refresh", "freshness", "usage_periods", "stage_names",
]
