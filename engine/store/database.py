"""Opening the store, moving scenarios in and out of it."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, event, insert, select, update
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, col, create_engine

from engine.batch import fast, gc_paused
from engine.rules.hints import PlanHints
from engine.scenario import (
    AgreementMapping,
    BillingConfiguration,
    Commitment,
    CompanyMapping,
    HistoryRow,
    Ignore,
    LineSource,
    Mappings,
    Override,
    ProductBinding,
    Psa,
    PsaAgreement,
    PsaCompany,
    PsaLine,
    PsaProduct,
    Scenario,
    Settings,
    Subscription,
    SyncedKey,
    UsageRow,
    Vendor,
    VendorCompany,
    VendorProduct,
)
from engine.store import tables as t
from engine.store.commitments import delete_commitments, read_commitments, write_commitments
from engine.store.loading import HistoryLoader, history_rows, raw_rows, scan_history

if TYPE_CHECKING:
    from engine.store.locks import StoreLocks

VENDOR_TABLES = (
    t.VendorCompanyRow,
    t.VendorProductRow,
    t.SubscriptionRow,
    t.HistoryRowRecord,
    t.UsageRecord,
    t.BillingConfigurationRow,
    t.CommitmentTermRow,  # issue 15: commitment terms are vendor data
    t.SeatAdditionRow,
)
PSA_TABLES = (t.PsaCompanyRow, t.PsaProductRow, t.PsaAgreementRow, t.PsaLineRow)
OPERATOR_TABLES = (
    t.CompanyMappingRow,
    t.ProductBindingRow,
    t.AgreementMappingRow,
    t.SyncedKeyRow,
    t.IgnoreRow,
    t.OverrideRow,
)


def default_database_url() -> str:
    """`TRUEUP_DATABASE_URL`, else the real default SQLite file in the user data dir. Entry points
    resolve the store with `engine.store.resolve.resolve_store` (flag > env > config > default);
    this is only `Store()`'s fallback when given no URL."""
    from engine.store.resolve import ENV_VAR, real_default_url

    return os.environ.get(ENV_VAR) or real_default_url()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url in ("sqlite://", "sqlite:///:memory:"):
        engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
        return engine
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class StoreError(Exception):
    """The store cannot be used as it is. The message is one sentence for the operator."""


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def refuse_unusable_sqlite(url: str) -> None:
    """An existing SQLite file that is empty or not a SQLite database is refused, instead of being
    opened (and migrated) as a new, empty store (issue 11)."""
    if not url.startswith("sqlite:///") or url in ("sqlite:///:memory:",):
        return
    path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return  # a new store
    except OSError as exc:
        raise StoreError(f"the store {path} cannot be read: {exc.strerror or exc}") from None
    if not header:
        raise StoreError(
            f"the store {path} is an empty file (0 bytes), not a trueup store; "
            "restore it from a backup, or remove it to start a new store"
        )
    if header != SQLITE_HEADER:
        raise StoreError(
            f"the store {path} is not a SQLite database (corrupt or another kind of file); "
            "restore it from a backup, or remove it to start a new store"
        )


class Store:
    """The local store. `Store(url)` opens (and migrates) a database; `Store.memory()` is a fresh
    in-memory one (what `trueup plan` uses)."""

    def __init__(self, url: str | None = None, *, migrate: bool = True):
        self.url = url or default_database_url()
        if migrate:  # what would be migrated into a new, empty store
            refuse_unusable_sqlite(self.url)
        from engine.store.presence import OpenHold
        from engine.store.resolve import sqlite_path

        file = sqlite_path(self.url)
        # held while open: nothing deletes this file under us (engine.store.presence)
        self._hold = OpenHold(file) if file is not None else None
        self.engine = make_engine(self.url)
        if migrate:
            if self.url in ("sqlite://", "sqlite:///:memory:"):
                SQLModel.metadata.create_all(self.engine)
            else:
                from engine.store.migrate import upgrade

                upgrade(self.engine)
        from engine.store.plan_cache import track_revision

        track_revision(self.engine)  # every committed write raises the store revision (plan_cache)

    @classmethod
    def memory(cls) -> Store:
        return cls("sqlite://")

    def close(self) -> None:
        self.engine.dispose()
        if self._hold is not None:
            self._hold.release()

    @property
    def locks(self) -> StoreLocks:
        """Named locks across processes (engine.store.locks): the refresh holds "refresh"."""
        from engine.store.locks import StoreLocks

        found = self.__dict__.get("_locks")
        if found is None:
            found = self.__dict__["_locks"] = StoreLocks(self.engine, self.url)
        return found

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # --- settings --------------------------------------------------------------------------------

    def get_setting(self, name: str, default: Any = None) -> Any:
        with self.session() as s:
            row = s.get(t.SettingRow, name)
            return default if row is None else row.value

    def set_setting(self, name: str, value: Any) -> None:
        with self.session() as s:
            row = s.get(t.SettingRow, name)
            if row is None:
                s.add(t.SettingRow(name=name, value=value))
            else:
                row.value = value
                s.add(row)
            s.commit()

    def settings(self) -> Settings:
        stored = self.get_setting("scenario_settings") or {}
        return Settings.model_validate(stored)

    def save_settings(self, settings: Settings) -> None:
        self.set_setting("scenario_settings", settings.model_dump(mode="json"))

    # --- scenario in -----------------------------------------------------------------------------

    def import_scenario(self, scenario: Scenario) -> None:
        """Replace everything in the store with the scenario, in one transaction."""
        with self.session() as s, s.begin():
            for table in (*VENDOR_TABLES, *PSA_TABLES, *OPERATOR_TABLES):
                s.execute(delete(table))
            self._write_vendor(s, scenario.vendor)
            self._write_psa(s, scenario.psa)
            self._write_operator_state(s, scenario)
            for name, value in (
                ("scenario_settings", scenario.settings.model_dump(mode="json")),
                ("as_of", scenario.as_of.isoformat()),
            ):
                s.merge(t.SettingRow(name=name, value=value))

    def replace_psa(self, psa: Psa) -> None:
        with self.session() as s, s.begin():
            for table in PSA_TABLES:
                s.execute(delete(table))
            self._write_psa(s, psa)

    @staticmethod
    def _bulk(s: Session, table: type[SQLModel], rows: list[dict[str, Any]]) -> None:
        if rows:
            s.execute(insert(table), rows)

    def _write_vendor(self, s: Session, vendor: Vendor) -> None:
        self._bulk(s, t.VendorCompanyRow, [c.model_dump() for c in vendor.companies])
        self._bulk(s, t.VendorProductRow, [p.model_dump() for p in vendor.products])
        subs, history = [], []
        for sub in vendor.subscriptions:
            data = sub.model_dump(exclude={"history"})
            subs.append(data)
            for seq, row in enumerate(sub.history):
                history.append({**row.model_dump(), "subscription_id": sub.id, "seq": seq})
        self._bulk(s, t.SubscriptionRow, subs)
        self._bulk(s, t.HistoryRowRecord, history)
        self._bulk(
            s, t.UsageRecord, [{**u.model_dump(), "sub_product": u.sub_product or ""} for u in vendor.usage]
        )
        self._bulk(s, t.BillingConfigurationRow, [c.model_dump() for c in vendor.billing_configurations])
        write_commitments(s, vendor.commitments)

    def _write_psa(self, s: Session, psa: Psa) -> None:
        self._bulk(s, t.PsaCompanyRow, [c.model_dump() for c in psa.companies])
        self._bulk(s, t.PsaProductRow, [p.model_dump() for p in psa.products])
        self._bulk(s, t.PsaAgreementRow, [a.model_dump() for a in psa.agreements])
        rows = []
        for line in psa.lines:
            data = line.model_dump(exclude={"source"})
            source = line.source
            data.update(
                has_source=source is not None,
                source_subscription_id=source.subscription_id if source else None,
                source_sub_product=source.sub_product if source else None,
                source_key=source.key if source else None,
            )
            rows.append(data)
        self._bulk(s, t.PsaLineRow, rows)

    def _write_operator_state(self, s: Session, scenario: Scenario) -> None:
        m = scenario.mappings
        self._bulk(s, t.CompanyMappingRow, [c.model_dump() for c in m.companies])
        self._bulk(
            s,
            t.ProductBindingRow,
            [{**b.model_dump(), "sub_product": b.sub_product or ""} for b in m.products],
        )
        self._bulk(s, t.AgreementMappingRow, [a.model_dump() for a in m.agreements])
        self._bulk(s, t.SyncedKeyRow, [k.model_dump() for k in scenario.synced])
        self._bulk(s, t.IgnoreRow, [i.model_dump() for i in scenario.ignored])
        self._bulk(s, t.OverrideRow, [o.model_dump() for o in scenario.overrides])

    # --- scenario out ----------------------------------------------------------------------------

    def snapshot(self, as_of: date | None = None) -> Scenario:
        """The whole store as a scenario (what `export-scenario` writes and `trueup plan` replays)."""
        scenario, _ = self._read(as_of, lean=False)
        return scenario

    def plan_inputs(self, as_of: date | None = None) -> tuple[Scenario, PlanHints]:
        """What a reconciliation needs, read the fast way: the history of quiet seat subscriptions
        stays in the database (see `engine.store.loading`), synced keys come as a set."""
        return self._read(as_of, lean=True)

    def _read(self, as_of: date | None, *, lean: bool) -> tuple[Scenario, PlanHints]:
        """Rows were validated on the way in, so they are rebuilt without validating again."""
        hints = PlanHints()
        with gc_paused(), self.session() as s:
            conn = s.connection()
            stored_as_of = s.get(t.SettingRow, "as_of")
            settings_row = s.get(t.SettingRow, "scenario_settings")
            if as_of is None:
                as_of = (
                    date.fromisoformat(str(stored_as_of.value))  # stored as an ISO date string
                    if stored_as_of and stored_as_of.value
                    else date.today()  # noqa: DTZ011 (the operator's calendar day, as the CLI's --as-of default)
                )
            settings = Settings.model_validate(
                settings_row.value if settings_row and settings_row.value else {}
            )

            def rows(table: type[SQLModel], *order: Any, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
                columns = [c for c in table.__table__.columns if c.name not in drop]  # type: ignore[attr-defined]  # SQLModel sets __table__ on table classes at runtime; its stubs do not declare it
                names = [c.name for c in columns]
                return [
                    dict(zip(names, r, strict=True)) for r in conn.execute(select(*columns).order_by(*order))
                ]

            sub_rows = rows(t.SubscriptionRow, col(t.SubscriptionRow.id))
            if lean:
                hints.synced_keys = {k for (k,) in raw_rows(conn, "SELECT key FROM synced_key")}
                line_keys = {
                    k
                    for (k,) in raw_rows(conn, "SELECT source_key FROM psa_line WHERE source_key IS NOT NULL")
                }
                seat_products = {
                    pid
                    for (pid,) in conn.execute(
                        select(col(t.VendorProductRow.id)).where(col(t.VendorProductRow.kind) == "seat")
                    )
                }
                monthly = {r["id"] for r in sub_rows if r["billing_term"] == "monthly"}
                # subscriptions a PSA line is tied to (by its source or its key): the others have no line
                lined = {
                    sid
                    for (sid,) in raw_rows(
                        conn,
                        "SELECT source_subscription_id FROM psa_line WHERE source_subscription_id IS NOT NULL",
                    )
                } | {k.split(":", 1)[0] for k in line_keys}
                eligible = {
                    r["id"] for r in sub_rows if r["status"] == "active" and r["product_id"] in seat_products
                }
                quiet, history = scan_history(
                    conn,
                    as_of=as_of,
                    invoiced_through=settings.invoiced_through_on(as_of),
                    monthly=monthly,
                    synced_keys=hints.synced_keys,
                    line_keys=line_keys,
                    unlined=eligible - lined,
                )
                hints.quiet = {sid: q for sid, q in quiet.items() if sid in eligible}
                hints.load_history = HistoryLoader(self.engine)
            else:
                history = history_rows(conn)
            empty: list[HistoryRow] = []
            for r in sub_rows:
                r["history"] = history.get(r["id"], empty)
            subs = [fast(Subscription, r) for r in sub_rows]
            vendor = fast(
                Vendor,
                dict(
                    companies=[
                        fast(VendorCompany, r) for r in rows(t.VendorCompanyRow, col(t.VendorCompanyRow.id))
                    ],
                    products=[
                        fast(VendorProduct, r) for r in rows(t.VendorProductRow, col(t.VendorProductRow.id))
                    ],
                    subscriptions=subs,
                    usage=[
                        fast(UsageRow, {**r, "sub_product": r["sub_product"] or None})
                        for r in rows(t.UsageRecord, col(t.UsageRecord.id), drop=("id",))
                    ],
                    billing_configurations=[
                        fast(BillingConfiguration, r)
                        for r in rows(t.BillingConfigurationRow, col(t.BillingConfigurationRow.id))
                    ],
                    commitments=read_commitments(conn),
                ),
            )
            lines = []
            line_table = t.PsaLineRow.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ on table classes at runtime; its stubs do not declare it
            source_columns = ("has_source", "source_subscription_id", "source_sub_product", "source_key")
            line_columns = [c for c in line_table.columns if c.name not in source_columns]
            line_names = [c.name for c in line_columns]
            for line_row in conn.execute(
                select(*line_columns, *(line_table.c[name] for name in source_columns)).order_by(
                    col(t.PsaLineRow.id)
                )
            ):
                data = dict(
                    zip(line_names, line_row, strict=False)
                )  # the line's own columns come first; the source's follow
                has_source, source_subscription_id, source_sub_product, source_key = line_row[
                    len(line_names) :
                ]
                data["source"] = (
                    fast(
                        LineSource,
                        {
                            "subscription_id": source_subscription_id,
                            "sub_product": source_sub_product,
                            "key": source_key,
                        },
                    )
                    if has_source
                    else None
                )
                lines.append(fast(PsaLine, data))
            psa = fast(
                Psa,
                dict(
                    companies=[fast(PsaCompany, r) for r in rows(t.PsaCompanyRow, col(t.PsaCompanyRow.id))],
                    products=[fast(PsaProduct, r) for r in rows(t.PsaProductRow, col(t.PsaProductRow.id))],
                    agreements=[
                        fast(PsaAgreement, r) for r in rows(t.PsaAgreementRow, col(t.PsaAgreementRow.id))
                    ],
                    lines=lines,
                ),
            )
            mappings = fast(
                Mappings,
                dict(
                    companies=[
                        fast(CompanyMapping, r)
                        for r in rows(
                            t.CompanyMappingRow,
                            col(t.CompanyMappingRow.vendor_id),
                            col(t.CompanyMappingRow.psa_id),
                            drop=("version",),
                        )
                    ],
                    products=[
                        fast(ProductBinding, {**r, "sub_product": r["sub_product"] or None})
                        for r in rows(
                            t.ProductBindingRow,
                            col(t.ProductBindingRow.vendor_product_id),
                            col(t.ProductBindingRow.sub_product),
                            drop=("version",),
                        )
                    ],
                    agreements=[
                        fast(AgreementMapping, r)
                        for r in rows(
                            t.AgreementMappingRow,
                            col(t.AgreementMappingRow.vendor_company_id),
                            drop=("version",),
                        )
                    ],
                ),
            )
            synced = (
                [] if lean else [fast(SyncedKey, r) for r in rows(t.SyncedKeyRow, col(t.SyncedKeyRow.key))]
            )
            ignored = [fast(Ignore, r) for r in rows(t.IgnoreRow, col(t.IgnoreRow.key), drop=("version",))]
            overrides = [
                fast(Override, r) for r in rows(t.OverrideRow, col(t.OverrideRow.key), drop=("version",))
            ]
        scenario = fast(
            Scenario,
            dict(
                as_of=as_of,
                settings=settings,
                vendor=vendor,
                psa=psa,
                mappings=mappings,
                synced=synced,
                ignored=ignored,
                overrides=overrides,
            ),
        )
        return scenario, hints

    # --- refresh: incremental writes (each call is one transaction) ------------------------------

    _CHUNK = 400  # ids per IN (…) clause (SQLite's variable limit)

    def _delete_in(self, s: Session, column: Any, ids: list[str]) -> None:
        for start in range(0, len(ids), self._CHUNK):
            s.execute(delete(column.class_).where(column.in_(ids[start : start + self._CHUNK])))

    def _upsert_subscriptions(self, s: Session, subscriptions: list[Subscription]) -> None:
        ids = [sub.id for sub in subscriptions]
        self._delete_in(s, col(t.HistoryRowRecord.subscription_id), ids)
        self._delete_in(s, col(t.SubscriptionRow.id), ids)
        history = []
        for sub in subscriptions:
            for seq, row in enumerate(sub.history):
                history.append({**row.model_dump(), "subscription_id": sub.id, "seq": seq})
        self._bulk(s, t.SubscriptionRow, [sub.model_dump(exclude={"history"}) for sub in subscriptions])
        self._bulk(s, t.HistoryRowRecord, history)

    def _remove_subscriptions(self, s: Session, ids: list[str]) -> None:
        """Subscriptions the vendor no longer lists: one a PSA line still bills (not ended) is kept
        with its history, marked `gone`, so vendor_subscription_gone (engine.rules.leaks) proposes
        ending that line; the others are deleted with their history."""
        if not ids:
            return
        line = t.PsaLineRow
        billed: set[str] = set()
        for start in range(0, len(ids), self._CHUNK):
            billed |= {
                sid
                for sid in s.execute(
                    select(col(line.source_subscription_id)).where(
                        col(line.source_subscription_id).in_(ids[start : start + self._CHUNK]),
                        col(line.cancelled_date).is_(None),
                    )
                ).scalars()
                if sid is not None
            }
        dropped = [sid for sid in ids if sid not in billed]
        self._delete_in(s, col(t.HistoryRowRecord.subscription_id), dropped)
        self._delete_in(s, col(t.SubscriptionRow.id), dropped)
        kept = sorted(billed)
        for start in range(0, len(kept), self._CHUNK):
            s.execute(
                update(t.SubscriptionRow)
                .where(col(t.SubscriptionRow.id).in_(kept[start : start + self._CHUNK]))
                .values(gone=True)
            )

    def _replace_usage(self, s: Session, rows: list[UsageRow], scope: set[tuple[str, str]]) -> None:
        by_period: dict[str, set[str]] = defaultdict(set)
        for subscription_id, period in scope | {(r.subscription_id, r.period) for r in rows}:
            by_period[period].add(subscription_id)
        for period, subscription_ids in by_period.items():
            ids = sorted(subscription_ids)
            for start in range(0, len(ids), self._CHUNK):
                s.execute(
                    delete(t.UsageRecord).where(
                        col(t.UsageRecord.period) == period,
                        col(t.UsageRecord.subscription_id).in_(ids[start : start + self._CHUNK]),
                    )
                )
        self._bulk(s, t.UsageRecord, [{**u.model_dump(), "sub_product": u.sub_product or ""} for u in rows])

    def upsert_subscriptions(self, subscriptions: list[Subscription]) -> None:
        """Insert or replace these subscriptions (with their whole history); others stay as they are."""
        with self.session() as s, s.begin():
            self._upsert_subscriptions(s, subscriptions)

    def replace_usage(self, rows: list[UsageRow], scope: set[tuple[str, str]] | None = None) -> None:
        """Replace the usage of every (subscription id, period) in `scope` (default: the pairs `rows`
        cover) with `rows`; a pair in `scope` with no row is left with none."""
        with self.session() as s, s.begin():
            self._replace_usage(s, rows, scope or set())

    def write_vendor_refresh(
        self,
        *,
        companies: list[VendorCompany],
        products: list[VendorProduct],
        subscriptions: list[Subscription],
        usage: list[UsageRow],
        usage_scope: set[tuple[str, str]],
        full: bool,
        settings: dict[str, Any] | None = None,
        commitments: list[Commitment] | None = None,
    ) -> None:
        """One vendor refresh, in one transaction: companies and products replaced; subscriptions
        replaced (`full`) or upserted (incremental: only the changed ones are given); the usage of
        `usage_scope` replaced (a full refresh also drops the usage of subscriptions that are gone);
        billing configurations (operator state) untouched; `settings` written with the data.
        `commitments` (issue 15), when given, replace those of the given subscriptions (`full`: all)."""
        with self.session() as s, s.begin():
            for table in (t.VendorCompanyRow, t.VendorProductRow):
                s.execute(delete(table))
            self._bulk(s, t.VendorCompanyRow, [c.model_dump() for c in companies])
            self._bulk(s, t.VendorProductRow, [p.model_dump() for p in products])
            if full:
                kept = {sub.id for sub in subscriptions}
                vanished = [
                    r for r in s.execute(select(col(t.SubscriptionRow.id))).scalars() if r not in kept
                ]
                self._remove_subscriptions(s, vanished)
                stale = [
                    r
                    for r in s.execute(select(col(t.UsageRecord.subscription_id)).distinct()).scalars()
                    if r not in kept
                ]
                self._delete_in(s, col(t.UsageRecord.subscription_id), stale)
            self._upsert_subscriptions(s, subscriptions)
            self._replace_usage(s, usage, usage_scope)
            if commitments is not None:
                delete_commitments(s, None if full else [sub.id for sub in subscriptions])
                write_commitments(s, commitments)
            for name, value in (settings or {}).items():
                s.merge(t.SettingRow(name=name, value=value))

    def write_psa_refresh(self, psa: Psa, settings: dict[str, Any] | None = None) -> None:
        """Replace the PSA side (companies, products, agreements, lines) and write `settings`, in one
        transaction."""
        with self.session() as s, s.begin():
            for table in PSA_TABLES:
                s.execute(delete(table))
            self._write_psa(s, psa)
            for name, value in (settings or {}).items():
                s.merge(t.SettingRow(name=name, value=value))

    # --- refresh: scoped reads and writes (targeted refresh of one customer, lean comparisons) ---
    # Each read touches only the rows it names (no snapshot); each write is one transaction.

    @staticmethod
    def _dicts(
        s: Session, table: type[SQLModel], *where: Any, drop: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        columns = [c for c in table.__table__.columns if c.name not in drop]  # type: ignore[attr-defined]  # SQLModel sets __table__ on table classes at runtime; its stubs do not declare it
        names = [c.name for c in columns]
        pk = [c for c in columns if c.primary_key]
        query = select(*columns).where(*where).order_by(*pk)
        return [dict(zip(names, r, strict=True)) for r in s.connection().execute(query)]

    def _chunked(self, ids: Iterable[str]) -> list[list[str]]:
        ordered = sorted(set(ids))
        return [ordered[i : i + self._CHUNK] for i in range(0, len(ordered), self._CHUNK)]

    def vendor_companies(self, ids: Iterable[str] | None = None) -> list[VendorCompany]:
        """The stored vendor companies (only `ids` when given)."""
        with self.session() as s:
            if ids is None:
                return [fast(VendorCompany, r) for r in self._dicts(s, t.VendorCompanyRow)]
            return [
                fast(VendorCompany, r)
                for chunk in self._chunked(ids)
                for r in self._dicts(s, t.VendorCompanyRow, col(t.VendorCompanyRow.id).in_(chunk))
            ]

    def find_vendor_companies(self, text: str) -> list[VendorCompany]:
        """Stored vendor companies whose id is `text`, else whose name is exactly `text`."""
        with self.session() as s:
            rows = self._dicts(s, t.VendorCompanyRow, col(t.VendorCompanyRow.id) == text)
            if not rows:
                rows = self._dicts(s, t.VendorCompanyRow, col(t.VendorCompanyRow.name) == text)
            return [fast(VendorCompany, r) for r in rows]

    def vendor_products(self) -> list[VendorProduct]:
        with self.session() as s:
            return [fast(VendorProduct, r) for r in self._dicts(s, t.VendorProductRow)]

    def subscription_ids(self) -> set[str]:
        with self.session() as s:
            return set(s.connection().execute(select(col(t.SubscriptionRow.id))).scalars())

    def subscription_product_ids(self) -> set[str]:
        """The products the stored subscriptions use."""
        with self.session() as s:
            return set(s.connection().execute(select(col(t.SubscriptionRow.product_id)).distinct()).scalars())

    def subscriptions_where(
        self,
        *,
        company_id: str | None = None,
        ids: Iterable[str] | None = None,
        product_ids: Iterable[str] | None = None,
        status: str | None = None,
        with_history: bool = True,
    ) -> list[Subscription]:
        """Stored subscriptions (with their history unless `with_history` is False) of `company_id`,
        of `ids`, of `product_ids` and/or with `status` (every given condition applies)."""
        sub = t.SubscriptionRow
        where: list[Any] = []
        if company_id is not None:
            where.append(sub.company_id == company_id)
        if status is not None:
            where.append(sub.status == status)
        with self.session() as s:
            if ids is None and product_ids is None:
                rows = self._dicts(s, sub, *where)
            elif ids is not None:
                rows = [
                    r
                    for chunk in self._chunked(ids)
                    for r in self._dicts(s, sub, *where, col(sub.id).in_(chunk))
                ]
                if product_ids is not None:
                    wanted = set(product_ids)
                    rows = [r for r in rows if r["product_id"] in wanted]
            else:
                rows = [
                    r
                    for chunk in self._chunked(product_ids or ())
                    for r in self._dicts(s, sub, *where, col(sub.product_id).in_(chunk))
                ]
            history = history_rows(s.connection(), [r["id"] for r in rows]) if with_history and rows else {}
            empty: list[HistoryRow] = []
            return [
                fast(Subscription, {**r, "history": history.get(r["id"], empty) if with_history else []})
                for r in rows
            ]

    def usage_rows(self, subscription_ids: Iterable[str] | None = None) -> list[UsageRow]:
        """Stored usage rows (of `subscription_ids` only when given)."""
        u = t.UsageRecord
        with self.session() as s:
            if subscription_ids is None:
                rows = self._dicts(s, u, drop=("id",))
            else:
                rows = [
                    r
                    for chunk in self._chunked(subscription_ids)
                    for r in self._dicts(s, u, col(u.subscription_id).in_(chunk), drop=("id",))
                ]
        return [fast(UsageRow, {**r, "sub_product": r["sub_product"] or None}) for r in rows]

    def psa_mapping(self, vendor_company_id: str) -> tuple[list[str], str | None]:
        """(the PSA companies the vendor company is mapped to, its explicitly mapped agreement)."""
        with self.session() as s:
            conn = s.connection()
            psa_ids = list(
                conn.execute(
                    select(col(t.CompanyMappingRow.psa_id))
                    .where(col(t.CompanyMappingRow.vendor_id) == vendor_company_id)
                    .order_by(col(t.CompanyMappingRow.psa_id))
                ).scalars()
            )
            agreement = conn.execute(
                select(col(t.AgreementMappingRow.psa_agreement_id)).where(
                    col(t.AgreementMappingRow.vendor_company_id) == vendor_company_id
                )
            ).scalar()
        return psa_ids, agreement

    @staticmethod
    def _line(r: dict[str, Any]) -> PsaLine:
        source = (
            fast(
                LineSource,
                {
                    "subscription_id": r["source_subscription_id"],
                    "sub_product": r["source_sub_product"],
                    "key": r["source_key"],
                },
            )
            if r["has_source"]
            else None
        )
        data = {
            k: v
            for k, v in r.items()
            if k not in ("has_source", "source_subscription_id", "source_sub_product", "source_key")
        }
        data["source"] = source
        return fast(PsaLine, data)

    def psa_data(self, *, company_ids: Iterable[str] | None = None, agreement_ids: Iterable[str] = ()) -> Psa:
        """The stored PSA side. With `company_ids`: no companies or products, the agreements of
        those companies (and of `agreement_ids`), and the lines of those agreements."""
        with self.session() as s:
            if company_ids is None:
                return fast(
                    Psa,
                    dict(
                        companies=[fast(PsaCompany, r) for r in self._dicts(s, t.PsaCompanyRow)],
                        products=[fast(PsaProduct, r) for r in self._dicts(s, t.PsaProductRow)],
                        agreements=[fast(PsaAgreement, r) for r in self._dicts(s, t.PsaAgreementRow)],
                        lines=[self._line(r) for r in self._dicts(s, t.PsaLineRow)],
                    ),
                )
            a = t.PsaAgreementRow
            rows = [
                r
                for chunk in self._chunked(company_ids)
                for r in self._dicts(s, a, col(a.company_id).in_(chunk))
            ]
            seen = {r["id"] for r in rows}
            extra = [i for i in agreement_ids if i not in seen]
            rows += [r for chunk in self._chunked(extra) for r in self._dicts(s, a, col(a.id).in_(chunk))]
            ids = [r["id"] for r in rows]
            lines = [
                self._line(r)
                for chunk in self._chunked(ids)
                for r in self._dicts(s, t.PsaLineRow, col(t.PsaLineRow.agreement_id).in_(chunk))
            ]
            return fast(
                Psa,
                dict(
                    companies=[], products=[], agreements=[fast(PsaAgreement, r) for r in rows], lines=lines
                ),
            )

    def long_synced_keys(self, longer_than: int, prefixes: Iterable[str] | None = None) -> list[str]:
        """Synced keys longer than `longer_than` characters (the ones a PSA may store as digests);
        with `prefixes` (subscription or billing configuration ids) only the keys `<prefix>:…`,
        read as key ranges of the primary key."""
        from sqlalchemy import and_, func, or_

        k = col(t.SyncedKeyRow.key)
        longer = func.length(k) > longer_than
        with self.session() as s:
            conn = s.connection()
            if prefixes is None:
                return list(conn.execute(select(k).where(longer)).scalars())
            out: list[str] = []
            for chunk in self._chunked(prefixes):
                ranges = or_(*(and_(k >= f"{p}:", k < f"{p};") for p in chunk))
                out += conn.execute(select(k).where(ranges, longer)).scalars()
            return out

    def billing_configuration_ids(self, company_id: str) -> list[str]:
        with self.session() as s:
            return list(
                s.connection()
                .execute(
                    select(col(t.BillingConfigurationRow.id)).where(
                        col(t.BillingConfigurationRow.company_id) == company_id
                    )
                )
                .scalars()
            )

    def write_vendor_scope(
        self,
        *,
        company: VendorCompany,
        new_products: list[VendorProduct],
        subscriptions: list[Subscription],
        removed: list[str],
        usage: list[UsageRow],
        usage_scope: set[tuple[str, str]],
        settings: dict[str, Any] | None = None,
    ) -> None:
        """A targeted vendor refresh of one company, in one transaction: the company row replaced,
        `new_products` added (stored products are left as they are), `subscriptions` upserted with
        their history, the subscriptions in `removed` deleted with their history and usage, the
        usage of `usage_scope` replaced; nothing else is touched."""
        with self.session() as s, s.begin():
            s.execute(delete(t.VendorCompanyRow).where(col(t.VendorCompanyRow.id) == company.id))
            self._bulk(s, t.VendorCompanyRow, [company.model_dump()])
            if new_products:
                self._delete_in(s, col(t.VendorProductRow.id), [p.id for p in new_products])
                self._bulk(s, t.VendorProductRow, [p.model_dump() for p in new_products])
            if removed:
                self._delete_in(s, col(t.UsageRecord.subscription_id), removed)
                self._remove_subscriptions(s, removed)
            if subscriptions:
                self._upsert_subscriptions(s, subscriptions)
            self._replace_usage(s, usage, usage_scope)
            for name, value in (settings or {}).items():
                s.merge(t.SettingRow(name=name, value=value))

    def write_psa_scope(
        self,
        *,
        company_ids: list[str],
        agreements: list[PsaAgreement],
        lines: list[PsaLine],
        line_agreement_ids: list[str],
        settings: dict[str, Any] | None = None,
    ) -> None:
        """A targeted PSA refresh, in one transaction: the agreements of `company_ids` replaced by
        `agreements`, the lines of `line_agreement_ids` (and of the new agreements) replaced by
        `lines`; companies, products and other agreements untouched."""
        with self.session() as s, s.begin():
            a, line = t.PsaAgreementRow, t.PsaLineRow
            for chunk in self._chunked(company_ids):
                s.execute(delete(a).where(col(a.company_id).in_(chunk)))
            self._delete_in(s, col(a.id), [x.id for x in agreements])
            self._delete_in(
                s, col(line.agreement_id), sorted({*line_agreement_ids, *(x.id for x in agreements)})
            )
            self._delete_in(s, col(line.id), [x.id for x in lines])
            self._write_psa(s, fast(Psa, dict(companies=[], products=[], agreements=agreements, lines=lines)))
            for name, value in (settings or {}).items():
                s.merge(t.SettingRow(name=name, value=value))
