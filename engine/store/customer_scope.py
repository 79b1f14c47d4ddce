"""Scoped reads for the incremental plan: which customers depend on one another (`Topology`), and
one group of customers read from the store as a scenario of their own (`read_customers`), so that
`reconcile` over it gives exactly their lines and findings of the full plan.

**Why groups, not single customers.** A customer's plan reads, besides its own rows, only:
the products and bindings (read whole: a few hundred rows), the settings, and the PSA companies it
maps to with their agreements and lines. Two vendor companies mapped to one PSA company (a
`duplicate_mapping`, RULES.md §9), or one whose explicitly mapped agreement belongs to another's
PSA company, share those PSA rows (a line claimed by one is not free for the other). A PSA line
whose source names a subscription bills it wherever it sits, mapped or not (the rules read
`psa.lines` by `source.subscription_id`: the seats billed, leaks, duplicate keys), so a customer's
part also holds the lines its subscriptions source, and the PSA company holding them is its
neighbour. So the unit of recompute is a connected component of the graph vendor company ↔ PSA
company (edges: company mappings, explicit agreement mappings to the agreement's PSA company, and
lines sourced by the company's subscriptions) — almost always one customer alone.

Plan keys are `<subscription or billing configuration id>:<kind>…` (engine/rules), and an ignore
is keyed by a plan key or a subscription id: a group's synced keys, ignores and overrides are read
as key ranges of the primary key."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from engine.batch import fast, gc_paused
from engine.keys import subject_of
from engine.rules.hints import PlanHints
from engine.scenario import (
    AgreementMapping,
    BillingConfiguration,
    CompanyMapping,
    Ignore,
    Mappings,
    Override,
    ProductBinding,
    Psa,
    PsaAgreement,
    PsaCompany,
    PsaProduct,
    Scenario,
    Settings,
    Subscription,
    UsageRow,
    Vendor,
    VendorCompany,
    VendorProduct,
)
from engine.store import tables as t
from engine.store.commitments import read_commitments
from engine.store.database import Store
from engine.store.loading import history_rows

_CHUNK = 400  # ids per IN (…) clause (SQLite's variable limit)


def _chunks(ids: Iterable[str]) -> list[list[str]]:
    ordered = sorted(set(ids))
    return [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]


@dataclass
class Topology:
    """Who depends on whom, and whose is what: enough to attribute every plan line and finding to
    a customer and to find the group a customer is recomputed with."""

    company_of_subject: dict[str, str] = field(default_factory=dict)  # subscription / configuration id
    # the reverse: a company's subjects (a reload forgets them without a pass over every subject)
    subjects_of_company: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    configurations: set[str] = field(default_factory=set)  # billing configuration ids
    product_of_subject: dict[str, str] = field(default_factory=dict)  # subscription -> vendor product
    active: set[str] = field(default_factory=set)  # active subscriptions
    active_by_product: Counter[str] = field(default_factory=Counter)  # vendor product -> active subscriptions
    psa_of_vendor: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    vendors_of_psa: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    agreement_of_vendor: dict[str, str] = field(default_factory=dict)
    psa_company_of_agreement: dict[str, str] = field(default_factory=dict)
    # PSA companies holding a line whose source names one of the vendor company's subscriptions
    # (such a line bills it, mapped or not: `read_customers` reads it with its customer), and back
    sourced_psa_of_vendor: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    sourced_vendors_of_psa: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def read(cls, store: Any) -> Topology:
        """The whole store's topology (one pass over subscriptions, mappings and agreements)."""
        topo = cls()
        with store.engine.connect() as conn:
            sub = t.SubscriptionRow
            for row in conn.execute(
                select(col(sub.id), col(sub.company_id), col(sub.product_id), col(sub.status))
            ):
                topo._add_subscription(*row)
            for bid, cid in conn.execute(
                select(col(t.BillingConfigurationRow.id), col(t.BillingConfigurationRow.company_id))
            ):
                topo._own(bid, cid)
                topo.configurations.add(bid)
            for aid, cid in conn.execute(
                select(col(t.PsaAgreementRow.id), col(t.PsaAgreementRow.company_id))
            ):
                topo.psa_company_of_agreement[aid] = cid
            for vid, pid in conn.execute(
                select(col(t.CompanyMappingRow.vendor_id), col(t.CompanyMappingRow.psa_id))
            ):
                topo.psa_of_vendor[vid].add(pid)
                topo.vendors_of_psa[pid].add(vid)
            for vid, aid in conn.execute(
                select(
                    col(t.AgreementMappingRow.vendor_company_id), col(t.AgreementMappingRow.psa_agreement_id)
                )
            ):
                topo.agreement_of_vendor[vid] = aid
            topo._add_sourced(conn.execute(_sourced_lines()))
        return topo

    def _add_sourced(self, pairs: Iterable[Any]) -> None:
        """Edges vendor company ↔ PSA company for (source subscription id, agreement id) pairs."""
        for sid, aid in pairs:
            vendor = self.company_of_subject.get(sid)
            psa = self.psa_company_of_agreement.get(aid)
            if vendor is not None and psa is not None:
                self.sourced_psa_of_vendor[vendor].add(psa)
                self.sourced_vendors_of_psa[psa].add(vendor)

    def _own(self, subject: str, company_id: str) -> None:
        old = self.company_of_subject.get(subject)
        if old is not None and old != company_id:
            self.subjects_of_company[old].discard(subject)
        self.company_of_subject[subject] = company_id
        self.subjects_of_company[company_id].add(subject)

    def _add_subscription(self, sid: str, company_id: str, product_id: str, status: str) -> None:
        self._own(sid, company_id)
        self.product_of_subject[sid] = product_id
        if status == "active":
            self.active.add(sid)
            self.active_by_product[product_id] += 1

    def _forget_subject(self, subject: str) -> None:
        company = self.company_of_subject.pop(subject)
        self.subjects_of_company[company].discard(subject)
        self.configurations.discard(subject)
        product = self.product_of_subject.pop(subject, None)
        if subject in self.active:
            self.active.discard(subject)
            self.active_by_product[product or ""] -= 1

    def _psa_targets(self, vendor_id: str) -> set[str]:
        targets = set(self.psa_of_vendor.get(vendor_id, ())) | self.sourced_psa_of_vendor.get(
            vendor_id, set()
        )
        agreement = self.agreement_of_vendor.get(vendor_id)
        if agreement is not None and agreement in self.psa_company_of_agreement:
            targets.add(self.psa_company_of_agreement[agreement])
        return targets

    def group(self, vendor_ids: Iterable[str]) -> set[str]:
        """The vendor companies recomputed together with `vendor_ids` (their connected components)."""
        by_agreement_psa: dict[str, set[str]] = defaultdict(set)
        for vid, aid in self.agreement_of_vendor.items():
            psa = self.psa_company_of_agreement.get(aid)
            if psa is not None:
                by_agreement_psa[psa].add(vid)
        seen: set[str] = set()
        todo = list(vendor_ids)
        while todo:
            vid = todo.pop()
            if vid in seen:
                continue
            seen.add(vid)
            for psa in self._psa_targets(vid):
                todo += [
                    v
                    for v in (
                        *self.vendors_of_psa.get(psa, ()),
                        *by_agreement_psa.get(psa, ()),
                        *self.sourced_vendors_of_psa.get(psa, ()),
                    )
                    if v not in seen
                ]
        return seen

    def company_of_finding(self, subject: dict[str, str]) -> str | None:
        """The vendor company a finding belongs to (one of its group for a PSA company's)."""
        if "vendor_company_id" in subject:
            return subject["vendor_company_id"]
        for name in ("subscription_id", "configuration_id"):
            if name in subject and subject[name] in self.company_of_subject:
                return self.company_of_subject[subject[name]]
        if "key" in subject:
            return self.company_of_subject.get(subject_of(subject["key"]))
        if "psa_company_id" in subject:
            vendors = self.vendors_of_psa.get(subject["psa_company_id"])
            return min(vendors) if vendors else None
        return None

    def reload(self, store: Any, vendor_ids: Iterable[str]) -> None:
        """Re-read what these vendor companies own (subscriptions, configurations, mappings, the
        agreements of the PSA companies they map to): after an action or a targeted refresh."""
        ids = set(vendor_ids)
        with store.engine.connect() as conn:
            for cid in ids:
                for psa in self.psa_of_vendor.pop(cid, set()):
                    self.vendors_of_psa[psa].discard(cid)
                for psa in self.sourced_psa_of_vendor.pop(cid, set()):
                    self.sourced_vendors_of_psa[psa].discard(cid)
                self.agreement_of_vendor.pop(cid, None)
            for subject in [x for cid in ids for x in self.subjects_of_company.get(cid, ())]:
                self._forget_subject(subject)
            for chunk in _chunks(ids):
                sub = t.SubscriptionRow
                for row in conn.execute(
                    select(col(sub.id), col(sub.company_id), col(sub.product_id), col(sub.status)).where(
                        col(sub.company_id).in_(chunk)
                    )
                ):
                    self._add_subscription(*row)
                for bid, cid in conn.execute(
                    select(
                        col(t.BillingConfigurationRow.id), col(t.BillingConfigurationRow.company_id)
                    ).where(col(t.BillingConfigurationRow.company_id).in_(chunk))
                ):
                    self._own(bid, cid)
                    self.configurations.add(bid)
                for vid, pid in conn.execute(
                    select(col(t.CompanyMappingRow.vendor_id), col(t.CompanyMappingRow.psa_id)).where(
                        col(t.CompanyMappingRow.vendor_id).in_(chunk)
                    )
                ):
                    self.psa_of_vendor[vid].add(pid)
                    self.vendors_of_psa[pid].add(vid)
                for vid, aid in conn.execute(
                    select(
                        col(t.AgreementMappingRow.vendor_company_id),
                        col(t.AgreementMappingRow.psa_agreement_id),
                    ).where(col(t.AgreementMappingRow.vendor_company_id).in_(chunk))
                ):
                    self.agreement_of_vendor[vid] = aid
            psa_ids = {p for cid in ids for p in self.psa_of_vendor.get(cid, ())}
            mapped: list[str] = []  # the agreements of the PSA companies they map to
            for chunk in _chunks(psa_ids):
                for aid, cid in conn.execute(
                    select(col(t.PsaAgreementRow.id), col(t.PsaAgreementRow.company_id)).where(
                        col(t.PsaAgreementRow.company_id).in_(chunk)
                    )
                ):
                    self.psa_company_of_agreement[aid] = cid
                    mapped.append(aid)
            explicit = [a for cid in ids if (a := self.agreement_of_vendor.get(cid)) is not None]
            for chunk in _chunks(explicit):
                for aid, cid in conn.execute(
                    select(col(t.PsaAgreementRow.id), col(t.PsaAgreementRow.company_id)).where(
                        col(t.PsaAgreementRow.id).in_(chunk)
                    )
                ):
                    self.psa_company_of_agreement[aid] = cid
            # the lines their subscriptions source, wherever they sit, and the sourced lines of the
            # PSA companies they map to (another customer's edge there may be new; a stale one only
            # groups more customers than needed, never fewer)
            line = t.PsaLineRow
            subjects = [x for cid in ids for x in self.subjects_of_company.get(cid, ())]
            pairs = [
                pair
                for chunk in _chunks(subjects)
                for pair in conn.execute(_sourced_lines(col(line.source_subscription_id).in_(chunk)))
            ]
            unknown = [aid for _, aid in pairs if aid not in self.psa_company_of_agreement]
            for chunk in _chunks(unknown):
                for aid, cid in conn.execute(
                    select(col(t.PsaAgreementRow.id), col(t.PsaAgreementRow.company_id)).where(
                        col(t.PsaAgreementRow.id).in_(chunk)
                    )
                ):
                    self.psa_company_of_agreement[aid] = cid
            self._add_sourced(pairs)
            for chunk in _chunks(mapped):
                self._add_sourced(conn.execute(_sourced_lines(col(line.agreement_id).in_(chunk))))


def _sourced_lines(*where: Any) -> Any:
    """(source subscription id, agreement id) of the PSA lines that name a subscription."""
    line = t.PsaLineRow
    return select(col(line.source_subscription_id), col(line.agreement_id)).where(
        col(line.source_subscription_id).is_not(None), *where
    )


def _keys_in_ranges(conn: Any, table: str, prefixes: list[str], exact: bool) -> list[str]:
    """The primary keys of `table` that are one of `prefixes` (when `exact`) or start with
    `<prefix>:`, read as primary-key ranges in one statement of plain SQL on the driver.

    Plain SQL because the expression layer cost more than the read: an action's group of 65
    subjects built ≈ 200 `and_` terms and compiled them afresh on every action (their number
    varies, so SQLAlchemy's statement cache never hits), ≈ 7 ms of a 35 ms action at 50k."""
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    quote = conn.dialect.identifier_preparer.quote
    key = quote("key")
    terms = [f"({key} >= {marker} AND {key} < {marker})"] * len(prefixes)
    params: list[str] = [bound for p in prefixes for bound in (f"{p}:", f"{p};")]
    if exact:
        terms.append(f"{key} IN ({', '.join([marker] * len(prefixes))})")
        params += prefixes
    sql = f"SELECT {key} FROM {quote(table)} WHERE {' OR '.join(terms)}"  # noqa: S608 (table names are ours; values are bound)
    return [found for (found,) in conn.exec_driver_sql(sql, tuple(params))]


def read_customers(
    store: Any, vendor_ids: Iterable[str], as_of: date | None = None
) -> tuple[Scenario, PlanHints]:
    """The scenario of these vendor companies alone (with every product and binding): reconciled,
    it gives exactly their lines and findings of the store's full plan. The history of every
    subscription is read (there are few), synced keys come as hints, as `Store.plan_inputs` does.
    One connection, a dozen indexed reads (primary keys, company ids, key ranges)."""
    ids = sorted(set(vendor_ids))
    with gc_paused(), store.engine.connect() as conn:

        def rows(table: Any, *where: Any, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
            columns = [c for c in table.__table__.columns if c.name not in drop]
            names = [c.name for c in columns]
            pk = [c for c in table.__table__.columns if c.primary_key]  # the full read's order (Store._read)
            query = select(*columns).where(*where).order_by(*pk)
            return [dict(zip(names, r, strict=True)) for r in conn.execute(query)]

        def setting(name: str) -> Any:
            return conn.execute(
                select(col(t.SettingRow.value)).where(col(t.SettingRow.name) == name)
            ).scalar()

        stored_as_of, settings_value = setting("as_of"), setting("scenario_settings")
        if as_of is None:
            as_of = date.fromisoformat(stored_as_of) if stored_as_of else date.today()  # noqa: DTZ011 (the operator's calendar day, as the CLI's --as-of default)
        settings = Settings.model_validate(settings_value or {})
        companies = [
            fast(VendorCompany, r) for r in rows(t.VendorCompanyRow, col(t.VendorCompanyRow.id).in_(ids))
        ]
        configs = [
            fast(BillingConfiguration, r)
            for r in rows(t.BillingConfigurationRow, col(t.BillingConfigurationRow.company_id).in_(ids))
        ]
        mappings = [
            fast(CompanyMapping, r)
            for r in rows(t.CompanyMappingRow, col(t.CompanyMappingRow.vendor_id).in_(ids), drop=("version",))
        ]
        agreement_maps = [
            fast(AgreementMapping, r)
            for r in rows(
                t.AgreementMappingRow,
                col(t.AgreementMappingRow.vendor_company_id).in_(ids),
                drop=("version",),
            )
        ]
        psa_ids = sorted({m.psa_id for m in mappings})
        # the other side of a shared PSA company (a duplicate mapping is the group's own finding)
        mappings += (
            [
                fast(CompanyMapping, r)
                for r in rows(
                    t.CompanyMappingRow,
                    col(t.CompanyMappingRow.psa_id).in_(psa_ids),
                    col(t.CompanyMappingRow.vendor_id).notin_(ids),
                    drop=("version",),
                )
            ]
            if psa_ids
            else []
        )
        mappings.sort(key=lambda m: (m.vendor_id, m.psa_id))
        bindings = [
            fast(ProductBinding, {**r, "sub_product": r["sub_product"] or None})
            for r in rows(t.ProductBindingRow, drop=("version",))
        ]
        products = [fast(VendorProduct, r) for r in rows(t.VendorProductRow)]
        psa_products = [fast(PsaProduct, r) for r in rows(t.PsaProductRow)]
        sub_rows = rows(t.SubscriptionRow, col(t.SubscriptionRow.company_id).in_(ids))
        history = history_rows(conn, [r["id"] for r in sub_rows]) if sub_rows else {}
        commitments = read_commitments(conn, {r["id"] for r in sub_rows}) if sub_rows else []
        subs = [fast(Subscription, {**r, "history": history.get(r["id"], [])}) for r in sub_rows]
        sub_ids = [x.id for x in subs]
        usage = [
            fast(UsageRow, {**r, "sub_product": r["sub_product"] or None})
            for chunk in _chunks(sub_ids)
            for r in rows(t.UsageRecord, col(t.UsageRecord.subscription_id).in_(chunk), drop=("id",))
        ]
        agreement_ids = [a.psa_agreement_id for a in agreement_maps]
        agreement_rows = [
            r
            for chunk in _chunks(psa_ids)
            for r in rows(t.PsaAgreementRow, col(t.PsaAgreementRow.company_id).in_(chunk))
        ]
        seen = {r["id"] for r in agreement_rows}
        agreement_rows += [
            r
            for chunk in _chunks(a for a in agreement_ids if a not in seen)
            for r in rows(t.PsaAgreementRow, col(t.PsaAgreementRow.id).in_(chunk))
        ]
        agreements = [fast(PsaAgreement, r) for r in agreement_rows]
        line_rows = {
            r["id"]: r
            for chunk in _chunks(r["id"] for r in agreement_rows)
            for r in rows(t.PsaLineRow, col(t.PsaLineRow.agreement_id).in_(chunk))
        }
        # A PSA line whose source names one of these subscriptions bills it wherever it sits (the
        # rules read `psa.lines` by `source.subscription_id`: seats billed, leaks, duplicate keys),
        # so it is theirs too, on an agreement of a PSA company they no longer map to or not.
        for chunk in _chunks([*sub_ids, *(c.id for c in configs)]):  # a usage line names its configuration
            for r in rows(t.PsaLineRow, col(t.PsaLineRow.source_subscription_id).in_(chunk)):
                line_rows.setdefault(r["id"], r)
        lines = [Store._line(r) for r in line_rows.values()]
        subjects = sorted(sub_ids + [c.id for c in configs])
        synced: set[str] = set()
        ignored_keys: list[str] = []
        overridden_keys: list[str] = []
        for i in range(0, len(subjects), _CHUNK // 2):
            chunk = subjects[i : i + _CHUNK // 2]
            synced.update(_keys_in_ranges(conn, t.SyncedKeyRow.__tablename__, chunk, exact=False))
            ignored_keys += _keys_in_ranges(conn, t.IgnoreRow.__tablename__, chunk, exact=True)
            overridden_keys += _keys_in_ranges(conn, t.OverrideRow.__tablename__, chunk, exact=True)
        # the few ignores and overrides, whole and typed, by key (a cached statement shape)
        ignored: list[Ignore] = [
            fast(Ignore, r)
            for chunk in _chunks(ignored_keys)
            for r in rows(t.IgnoreRow, col(t.IgnoreRow.key).in_(chunk), drop=("version",))
        ]
        overrides: list[Override] = [
            fast(Override, r)
            for chunk in _chunks(overridden_keys)
            for r in rows(t.OverrideRow, col(t.OverrideRow.key).in_(chunk), drop=("version",))
        ]
        psa_companies = [
            fast(PsaCompany, r)
            for chunk in _chunks(psa_ids)
            for r in rows(t.PsaCompanyRow, col(t.PsaCompanyRow.id).in_(chunk))
        ]
    lines.sort(key=lambda x: x.id)
    ignored.sort(key=lambda x: x.key)
    overrides.sort(key=lambda x: x.key)
    scenario = fast(
        Scenario,
        dict(
            as_of=as_of,
            settings=settings,
            vendor=fast(
                Vendor,
                dict(
                    companies=companies,
                    products=products,
                    subscriptions=subs,
                    usage=usage,
                    billing_configurations=configs,
                    commitments=commitments,
                ),
            ),
            psa=fast(
                Psa, dict(companies=psa_companies, products=psa_products, agreements=agreements, lines=lines)
            ),
            mappings=fast(Mappings, dict(companies=mappings, products=bindings, agreements=agreement_maps)),
            synced=[],
            ignored=ignored,
            overrides=overrides,
        ),
    )
    return scenario, PlanHints(synced_keys=synced)
