"""Operator actions (what the console's keys do). Each validates, changes the store in one
transaction, records an audit event in that same transaction, and returns what changed; a refused
action raises `ActionError` with a message for the operator, and nothing changes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher
from enum import Enum
from typing import Any, Literal, Protocol

from sqlalchemy import select, text
from sqlmodel import col

from engine import audit
from engine.connectors.base import ProductSpec
from engine.keys import PlanKey
from engine.months import first_of_month
from engine.plan import Plan, PlanLine
from engine.psa import Capability, psa_spec
from engine.reconcile import reconcile
from engine.scenario import BILL_OPTION_LABELS, BillOption, PsaCompany, PsaProduct
from engine.store import Store, plan_cache
from engine.store import tables as t


class ActionError(Exception):
    """The action was refused; the message says why, for the operator."""


class StaleEdit(ActionError):
    """Someone else changed the same item since it was read (optimistic concurrency)."""


class StaleRevision(ActionError):
    """The store was written since the plan the action was checked against was computed."""


STALE_PLAN = (
    "The figures changed since they were computed (a refresh or another operator); "
    "they are being recomputed — try again once they are shown."
)


def _revision(conn: Any) -> int | None:
    try:
        value = conn.execute(text("SELECT revision FROM store_revision WHERE id = 1")).scalar()
    except Exception:  # a store without a revision table (not migrated): nothing to compare with
        return None
    return None if value is None else int(value)


def _check_revision(s: Any, expected: int | None) -> None:
    """Optimistic check, in the action's own transaction: the plan the action was validated
    against was computed from store revision `expected` (None: not checked). Another commit in
    between moves the revision (engine.store.plan_cache), and the action is refused."""
    if expected is None:
        return
    if _revision(s.connection()) != expected:
        raise StaleRevision(STALE_PLAN)


def check_revision_now(store: Store, expected: int | None) -> None:
    """The same check outside an action's transaction (an action made of several)."""
    if expected is None:
        return
    with store.engine.connect() as conn:
        if _revision(conn) != expected:
            raise StaleRevision(STALE_PLAN)


def current_plan(store: Store, as_of: date | None = None) -> Plan:
    return reconcile(*store.plan_inputs(as_of))


def _find_line(plan: Plan, key: str) -> PlanLine | None:
    for line in (*plan.lines, *plan.ignored_lines):
        if line.key == key:
            return line
    return None


def _check_version(row: t.IgnoreRow | t.OverrideRow | None, expected: int | None, what: str) -> None:
    if expected is None:
        return
    current = row.version if row is not None else 0
    if current != expected:
        raise StaleEdit(f"{what} was changed by someone else meanwhile; refresh and try again.")


# --- ignore / restore ----------------------------------------------------------------------------


def ignore(
    store: Store,
    key: str,
    *,
    mode: Literal["until_restored", "this_change"] = "until_restored",
    reason: str | None = None,
    as_of: date | None = None,
    expected_version: int | None = None,
    user: str | None = None,
) -> t.IgnoreRow:
    """Ignore a plan line (by key) or a whole subscription (by id)."""
    return ignore_many(
        store,
        [key],
        mode=mode,
        reason=reason,
        as_of=as_of,
        expected_versions={key: expected_version} if expected_version is not None else None,
        user=user,
    )[0]


def ignore_many(
    store: Store,
    keys: list[str],
    *,
    mode: Literal["until_restored", "this_change"] = "until_restored",
    reason: str | None = None,
    as_of: date | None = None,
    expected_versions: dict[str, int] | None = None,
    user: str | None = None,
    plan: Plan | None = None,
    expected_revision: int | None = None,
) -> list[t.IgnoreRow]:
    """Ignore several lines or subscriptions: checked against one plan (`plan`, computed from store
    revision `expected_revision`, else a fresh one), written in one transaction (all or nothing),
    one audit event each."""
    plan = plan if plan is not None else current_plan(store, as_of)
    by_key = {line.key: line for line in (*plan.lines, *plan.ignored_lines)}
    subscriptions = {line.subscription_id for line in by_key.values()}
    problems = []
    for key in keys:
        if key not in by_key and key not in subscriptions:
            problems.append(f"Nothing to ignore: no proposed line or subscription is called {key!r}.")
        elif mode == "this_change" and key not in by_key:
            problems.append(
                "'Ignore this change' applies to one line; pick a line, not a whole subscription."
            )
    if problems:
        raise ActionError("\n".join(dict.fromkeys(problems)))
    who = user or audit.operator()
    on = as_of or date.today()  # noqa: DTZ011 (the operator's calendar day, as the CLI's --as-of default)
    rows: list[t.IgnoreRow] = []
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        unique = list(dict.fromkeys(keys))
        notes = audit.notes_for(s, unique)
        for key in unique:
            line = by_key.get(key)
            row = s.get(t.IgnoreRow, key)
            _check_version(row, (expected_versions or {}).get(key), f"The ignore on {key}")
            before = row.model_dump(mode="json") if row else None
            fingerprint = line.fingerprint if line else None
            if row is None:
                row = t.IgnoreRow(key=key, mode=mode, by=who, on=on, reason=reason, fingerprint=fingerprint)
            else:
                row.mode, row.by, row.on, row.reason, row.fingerprint = mode, who, on, reason, fingerprint
                row.version += 1
            s.add(row)
            audit.record(
                s,
                "ignore",
                key,
                before=before,
                after=row.model_dump(mode="json"),
                company=line.company_id if line else None,
                user=who,
                notes=notes,
            )
            rows.append(row)
    return rows


def restore(store: Store, key: str, *, expected_version: int | None = None, user: str | None = None) -> None:
    restore_many(
        store,
        [key],
        expected_versions={key: expected_version} if expected_version is not None else None,
        user=user,
    )


def restore_many(
    store: Store,
    keys: list[str],
    *,
    expected_versions: dict[str, int] | None = None,
    user: str | None = None,
    expected_revision: int | None = None,
) -> None:
    """Restore ignored items, in one transaction (all or nothing)."""
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        unique = list(dict.fromkeys(keys))
        notes = audit.notes_for(s, unique)
        for key in unique:
            row = s.get(t.IgnoreRow, key)
            if row is None:
                raise ActionError(f"{key!r} is not ignored.")
            _check_version(row, (expected_versions or {}).get(key), f"The ignore on {key}")
            before = row.model_dump(mode="json")
            s.delete(row)
            audit.record(s, "restore", key, before=before, after=None, user=user, notes=notes)


# --- effective dates -----------------------------------------------------------------------------


def validate_effective_date(plan: Plan, key: str, new_date: date) -> PlanLine:
    """The rules for moving a proposed line (seed 001): the 1st of a month, not before the first day
    after invoiced_through, and never on an update (its effective date cannot change)."""
    line = _find_line(plan, key)
    if line is None:
        raise ActionError(f"No proposed line is called {key!r}.")
    if line.action != "create":
        raise ActionError(
            "The effective date cannot be changed when updating an existing line "
            f"({key} updates PSA line {line.psa_line_id})."
        )
    if new_date != first_of_month(new_date):
        raise ActionError(
            f"{new_date.isoformat()} is not the first of a month; effective dates start a month."
        )
    first_unbilled = plan.invoiced_through.toordinal() + 1
    if new_date.toordinal() < first_unbilled:
        raise ActionError(
            f"{new_date.isoformat()} is before {date.fromordinal(first_unbilled).isoformat()}, "
            f"the first day not yet invoiced (invoiced through {plan.invoiced_through.isoformat()})."
        )
    return line


def set_effective_date(
    store: Store,
    key: str,
    new_date: date,
    *,
    as_of: date | None = None,
    expected_version: int | None = None,
    user: str | None = None,
) -> t.OverrideRow:
    return _set_effective_dates(
        store,
        [key],
        new_date,
        as_of=as_of,
        user=user,
        expected_versions={key: expected_version} if expected_version is not None else None,
    )[0]


def set_effective_dates(
    store: Store,
    keys: list[str],
    new_date: date,
    *,
    as_of: date | None = None,
    expected_versions: dict[str, int] | None = None,
    user: str | None = None,
    plan: Plan | None = None,
    expected_revision: int | None = None,
) -> list[str]:
    """Bulk: the keys that were moved (all of them, or none and `ActionError`)."""
    rows = _set_effective_dates(
        store,
        keys,
        new_date,
        as_of=as_of,
        expected_versions=expected_versions,
        user=user,
        plan=plan,
        expected_revision=expected_revision,
    )
    return [row.key for row in rows]


def _set_effective_dates(
    store: Store,
    keys: list[str],
    new_date: date,
    *,
    as_of: date | None = None,
    expected_versions: dict[str, int] | None = None,
    user: str | None = None,
    plan: Plan | None = None,
    expected_revision: int | None = None,
) -> list[t.OverrideRow]:
    """Move proposed lines to `new_date`. Every key is validated against one plan first (`plan`,
    computed from store revision `expected_revision`, else a fresh one); if any is refused, none is
    changed (the message lists each refusal). One transaction, one audit event each."""
    plan = plan if plan is not None else current_plan(store, as_of)
    problems = []
    lines = []
    for key in dict.fromkeys(keys):
        try:
            lines.append(validate_effective_date(plan, key, new_date))
        except ActionError as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        if len(keys) == 1:
            raise ActionError(problems[0].split(": ", 1)[1])
        raise ActionError("No date was changed:\n" + "\n".join(problems))
    rows = []
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        notes = audit.notes_for(s, [line.key for line in lines])
        for line in lines:
            row = s.get(t.OverrideRow, line.key)
            _check_version(row, (expected_versions or {}).get(line.key), f"The effective date of {line.key}")
            if row is None:
                row = t.OverrideRow(key=line.key, effective_date=new_date)
            else:
                row.effective_date = new_date
                row.version += 1
            s.add(row)
            audit.record(
                s,
                "set_effective_date",
                line.key,
                before={"effective_date": line.effective_date.isoformat()},
                after={"effective_date": new_date.isoformat()},
                company=line.company_id,
                user=user,
                notes=notes,
            )
            rows.append(row)
    return rows


def clear_effective_date(store: Store, key: str, *, user: str | None = None) -> None:
    with store.session() as s, s.begin():
        row = s.get(t.OverrideRow, key)
        if row is None or row.effective_date is None:
            raise ActionError(f"{key} has no effective date of its own.")
        before = {"effective_date": row.effective_date.isoformat()}
        if row.create_new:
            row.effective_date = None
            row.version += 1
            s.add(row)
        else:
            s.delete(row)
        audit.record(s, "clear_effective_date", key, before=before, after=None, user=user)


def choose_create_new(
    store: Store, subscription_id: str, create_new: bool = True, *, user: str | None = None
) -> None:
    """Create a new recurring line instead of updating the existing one (the old one gets a
    cancelled date the day before the new one starts)."""
    key = PlanKey.recurring(subscription_id).format()
    with store.session() as s, s.begin():
        row = s.get(t.OverrideRow, key) or t.OverrideRow(key=key)
        before = {"create_new": row.create_new}
        row.create_new = create_new
        row.version = (row.version or 0) + 1
        s.add(row)
        audit.record(s, "choose_create_new", key, before=before, after={"create_new": create_new}, user=user)


# --- company mappings (RULES.md §9) ----------------------------------------------------------------


def map_company(
    store: Store,
    vendor_id: str,
    psa_id: str,
    *,
    user: str | None = None,
    expected_revision: int | None = None,
) -> None:
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        vendor = s.get(t.VendorCompanyRow, vendor_id)
        psa = s.get(t.PsaCompanyRow, psa_id)
        if vendor is None:
            raise ActionError(f"No vendor company {vendor_id!r}.")
        if psa is None:
            raise ActionError(f"No PSA company {psa_id!r}.")
        existing = list(
            s.execute(
                select(t.CompanyMappingRow).where(col(t.CompanyMappingRow.vendor_id) == vendor_id)
            ).scalars()
        )
        if any(m.psa_id == psa_id for m in existing):
            raise ActionError(f"{vendor.name} is already mapped to {psa.name}.")
        if existing:
            raise ActionError(
                f"{vendor.name} is already mapped to PSA company {existing[0].psa_id}; unmap it first "
                "(a vendor company maps to one PSA company)."
            )
        taken = (
            s.execute(select(t.CompanyMappingRow).where(col(t.CompanyMappingRow.psa_id) == psa_id))
            .scalars()
            .first()
        )
        if taken is not None:
            other = s.get(t.VendorCompanyRow, taken.vendor_id)
            raise ActionError(f"{psa.name} is already mapped to {other.name if other else taken.vendor_id}.")
        s.add(t.CompanyMappingRow(vendor_id=vendor_id, psa_id=psa_id))
        audit.record(
            s,
            "map_company",
            vendor_id,
            before=None,
            after={"psa_id": psa_id, "psa_name": psa.name},
            company=vendor.name,
            user=user,
        )


def unmap_company(
    store: Store, vendor_id: str, *, user: str | None = None, expected_revision: int | None = None
) -> None:
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        rows = list(
            s.execute(
                select(t.CompanyMappingRow).where(col(t.CompanyMappingRow.vendor_id) == vendor_id)
            ).scalars()
        )
        if not rows:
            raise ActionError(f"{vendor_id!r} is not mapped.")
        vendor = s.get(t.VendorCompanyRow, vendor_id)
        for row in rows:
            s.delete(row)
        audit.record(
            s,
            "unmap_company",
            vendor_id,
            before={"psa_ids": [r.psa_id for r in rows]},
            after=None,
            company=vendor.name if vendor else None,
            user=user,
        )


_SUFFIXES = {
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "co",
    "corp",
    "corporation",
    "company",
    "plc",
    "pllc",
    "pc",
    "pa",
    "lp",
    "llp",
    "gmbh",
    "the",
}


_DOTTED = re.compile(r"\b(?:[a-z]\.){2,}|\b[a-z]\.(?=[a-z]\b)")


def normalize_name(name: str) -> str:
    """Exact-match form: trimmed and case-folded (RULES.md §9)."""
    return " ".join(name.split()).casefold()


def loose_name(name: str) -> str:
    """Near-match form: no accents, punctuation or company suffixes."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    text = text.replace("&", " and ")
    # "L.L.C." / "P.C." / "S.A.": a dotted abbreviation is one word ("llc"), so the suffix is dropped
    text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in _SUFFIXES]
    return " ".join(words)


@dataclass(frozen=True)
class Suggestion:
    vendor_id: str
    vendor_name: str
    psa_id: str
    psa_name: str
    score: float


@dataclass
class GeneratedMappings:
    applied: list[tuple[str, str]] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)


def generate_mappings(store: Store, *, apply: bool = True, user: str | None = None) -> GeneratedMappings:
    """Map unmapped companies whose names are equal after trimming and case folding; list near
    matches (suffixes, punctuation, small typos) as suggestions that need a confirming keystroke."""
    result = GeneratedMappings()
    with store.session() as s:
        vendors = list(s.execute(select(t.VendorCompanyRow).order_by(col(t.VendorCompanyRow.name))).scalars())
        psas = list(s.execute(select(t.PsaCompanyRow).order_by(col(t.PsaCompanyRow.name))).scalars())
        mapped_vendor = {m.vendor_id for m in s.execute(select(t.CompanyMappingRow)).scalars()}
        mapped_psa = {m.psa_id for m in s.execute(select(t.CompanyMappingRow)).scalars()}
    free_psa = [p for p in psas if p.id not in mapped_psa]
    exact: dict[str, list[t.PsaCompanyRow]] = {}
    for p in free_psa:
        exact.setdefault(normalize_name(p.name), []).append(p)
    loose: dict[str, list[t.PsaCompanyRow]] = {}
    for p in free_psa:
        loose.setdefault(loose_name(p.name), []).append(p)
    used: set[str] = set()
    for v in vendors:
        if v.id in mapped_vendor or v.status != "active":
            continue
        hits = [p for p in exact.get(normalize_name(v.name), []) if p.id not in used]
        if len(hits) == 1:
            result.applied.append((v.id, hits[0].id))
            used.add(hits[0].id)
            continue
        candidates = [p for p in loose.get(loose_name(v.name), []) if p.id not in used] or hits
        if candidates:
            for p in candidates:
                result.suggestions.append(Suggestion(v.id, v.name, p.id, p.name, 0.99))
            continue
        best: tuple[float, t.PsaCompanyRow] | None = None
        for p in free_psa:
            if p.id in used:
                continue
            score = SequenceMatcher(None, loose_name(v.name), loose_name(p.name)).ratio()
            if score >= 0.88 and (best is None or score > best[0]):
                best = (score, p)
        if best is not None:
            result.suggestions.append(Suggestion(v.id, v.name, best[1].id, best[1].name, round(best[0], 2)))
    if apply:
        for vendor_id, psa_id in result.applied:
            map_company(store, vendor_id, psa_id, user=user)
    return result


# --- products and agreements ---------------------------------------------------------------------


class Keep(Enum):
    """An argument left as it is (`taxable`'s None already means "the PSA product's default")."""

    KEEP = "keep"


KEEP = Keep.KEEP


def bill_options_refusal(psa: str, taxable: bool | None, bill_option: BillOption) -> str | None:
    """Why the workspace's PSA cannot write these bill options on a line (None: it can, or they are
    the defaults, which every PSA writes by saying nothing)."""
    spec = psa_spec(psa)
    if spec.can(Capability.LINE_BILL_OPTIONS) or (taxable is None and bill_option == "billable"):
        return None
    return spec.bill_options_note


def bind_product(
    store: Store,
    vendor_product_id: str,
    psa_product_id: str,
    *,
    sub_product: str | None = None,
    free: bool | None = None,
    taxable: bool | None | Keep = KEEP,
    bill_option: BillOption | None = None,
    user: str | None = None,
    expected_revision: int | None = None,
) -> None:
    """Bind (or re-bind) a vendor product. `free` None, `taxable` KEEP and `bill_option` None keep a
    re-bound product's flags (issue 13: re-binding reset the free flag); a new binding is not free,
    takes the PSA product's tax default (`taxable` None) and is billable unless asked.

    Taxable and bill option are written on every line the binding produces; a PSA whose lines carry
    neither (`engine.psa` capabilities: HaloPSA, Autotask) refuses anything but the defaults here,
    not at sync."""
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        product = s.get(t.VendorProductRow, vendor_product_id)
        psa = s.get(t.PsaProductRow, psa_product_id)
        if product is None:
            raise ActionError(f"No vendor product {vendor_product_id!r}.")
        if psa is None:
            raise ActionError(f"No PSA product {psa_product_id!r}.")
        if sub_product and sub_product not in (product.sub_products or []):
            raise ActionError(f"{product.name} has no sub-product {sub_product!r}.")
        if bill_option is not None and bill_option not in BILL_OPTION_LABELS:
            raise ActionError(
                f"Unknown bill option {bill_option!r} (one of {', '.join(BILL_OPTION_LABELS)})."
            )
        row = s.get(t.ProductBindingRow, (vendor_product_id, sub_product or ""))
        before = row.model_dump(mode="json") if row else None
        if row is None:
            row = t.ProductBindingRow(
                vendor_product_id=vendor_product_id,
                sub_product=sub_product or "",
                psa_product_id=psa_product_id,
                free=bool(free),
                taxable=None if isinstance(taxable, Keep) else taxable,
                bill_option=bill_option or "billable",
            )
        else:
            row.psa_product_id, row.version = psa_product_id, row.version + 1
            if free is not None:
                row.free = free
            if not isinstance(taxable, Keep):
                row.taxable = taxable
            if bill_option is not None:
                row.bill_option = bill_option
        option = _bill_option(row.bill_option)
        refusal = bill_options_refusal(store.settings().psa, row.taxable, option)
        if refusal is not None:
            raise ActionError(f"{product.name}: {refusal}")
        free = row.free
        s.add(row)
        audit.record(
            s,
            "bind_product",
            vendor_product_id + (f"/{sub_product}" if sub_product else ""),
            before=before,
            after={
                "psa_product_id": psa_product_id,
                "psa_name": psa.name,
                "free": free,
                "taxable": row.taxable,
                "bill_option": option,
                "vendor_product_id": vendor_product_id,
                "sub_product": sub_product or "",
            },
            user=user,
        )


def _bill_option(value: str | None) -> BillOption:
    """A stored bill option as the type says (the column holds only these, written here)."""
    for option in BILL_OPTION_LABELS:
        if value == option:
            return option
    return "billable"


def unbind_product(
    store: Store,
    vendor_product_id: str,
    *,
    sub_product: str | None = None,
    user: str | None = None,
    expected_revision: int | None = None,
) -> None:
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        row = s.get(t.ProductBindingRow, (vendor_product_id, sub_product or ""))
        if row is None:
            raise ActionError(f"{vendor_product_id!r} is not bound.")
        before = row.model_dump(mode="json")
        s.delete(row)
        audit.record(s, "unbind_product", vendor_product_id, before=before, after=None, user=user)


def map_agreement(
    store: Store,
    vendor_company_id: str,
    psa_agreement_id: str | None,
    *,
    user: str | None = None,
    expected_revision: int | None = None,
) -> None:
    """Send a vendor company's lines to this agreement (None: back to the automatic choice)."""
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        row = s.get(t.AgreementMappingRow, vendor_company_id)
        before = {"psa_agreement_id": row.psa_agreement_id} if row else None
        if psa_agreement_id is None:
            if row is None:
                raise ActionError("No agreement is chosen for this company.")
            s.delete(row)
        else:
            if s.get(t.PsaAgreementRow, psa_agreement_id) is None:
                raise ActionError(f"No PSA agreement {psa_agreement_id!r}.")
            if row is None:
                row = t.AgreementMappingRow(
                    vendor_company_id=vendor_company_id, psa_agreement_id=psa_agreement_id
                )
            else:
                row.psa_agreement_id, row.version = psa_agreement_id, row.version + 1
            s.add(row)
        audit.record(
            s,
            "map_agreement",
            vendor_company_id,
            before=before,
            after={"psa_agreement_id": psa_agreement_id},
            user=user,
        )


def set_invoiced_through(
    store: Store, value: date | None, *, user: str | None = None, expected_revision: int | None = None
) -> None:
    settings = store.settings()
    updated = settings.model_copy(update={"invoiced_through": value})
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        row = s.get(t.SettingRow, "scenario_settings") or t.SettingRow(name="scenario_settings")
        row.value = updated.model_dump(mode="json")
        s.add(row)
        audit.record(
            s,
            "set_invoiced_through",
            "settings",
            before={
                "invoiced_through": settings.invoiced_through.isoformat()
                if settings.invoiced_through
                else None
            },
            after={"invoiced_through": value.isoformat() if value else None},
            user=user,
        )


# --- free / not free (RULES.md §6: a free quota product is not billed) -----------------------------


def set_free(
    store: Store,
    vendor_product_id: str,
    free: bool,
    *,
    sub_product: str | None = None,
    user: str | None = None,
    expected_revision: int | None = None,
) -> None:
    """Mark a bound product free (its usage is not billed, `no_product_to_sync` clears) or not free."""
    with store.session() as s, s.begin():
        _check_revision(s, expected_revision)
        row = s.get(t.ProductBindingRow, (vendor_product_id, sub_product or ""))
        product = s.get(t.VendorProductRow, vendor_product_id)
        name = product.name if product else vendor_product_id
        if row is None:
            raise ActionError(f"{name} is not bound to a PSA product; bind it first (Products: b).")
        if row.free == free:
            raise ActionError(f"{name} is already {'free' if free else 'not free'}.")
        before = {"free": row.free}
        row.free, row.version = free, row.version + 1
        s.add(row)
        audit.record(
            s,
            "set_free",
            _binding_subject(vendor_product_id, sub_product),
            before=before,
            after={"free": free, "vendor_product_id": vendor_product_id, "sub_product": sub_product or ""},
            user=user,
        )


def _binding_subject(vendor_product_id: str, sub_product: str | None) -> str:
    return vendor_product_id + (f"/{sub_product}" if sub_product else "")


# --- notes and acknowledged warnings (kept in the audit trail itself) -------------------------------


def add_note(
    store: Store, subject: str, note: str, *, company: str | None = None, user: str | None = None
) -> None:
    """A note on a line (its key or subscription id) or a customer (vendor company id). It is kept in
    the audit trail, and every later operator action on that subject carries it
    (`engine.audit.record`). An empty note clears it."""
    text_ = " ".join(note.split())
    if len(text_) > 500:
        raise ActionError(f"The note is {len(text_)} characters; 500 at most.")
    with store.session() as s, s.begin():
        previous = audit.note_of(s, subject)
        if not text_ and previous is None:
            raise ActionError(f"{subject} has no note to clear.")
        audit.record(
            s,
            "note",
            subject,
            before={"note": previous} if previous is not None else None,
            after={"note": text_ or None},
            company=company,
            user=user,
        )


def notes(store: Store) -> dict[str, str]:
    """Every subject's current note."""
    with store.session() as s:
        return audit.current_notes(s)


@dataclass(frozen=True)
class Acknowledgement:
    key: str
    code: str
    by: str
    at: str
    reason: str


def acknowledge(
    store: Store,
    finding_key: str,
    reason: str,
    *,
    plan: Plan | None = None,
    as_of: date | None = None,
    user: str | None = None,
) -> None:
    """Acknowledge a warning (e.g. `credit_due`: "credit issued"): who, when and why, audited. Only
    warnings: an error stops the line and must be fixed."""
    from engine.rules.findings import finding_key as key_of

    plan = plan if plan is not None else current_plan(store, as_of)
    found = next((f for f in plan.findings if key_of(f) == finding_key), None)
    if found is None:
        raise ActionError("That finding is no longer in the plan (it cleared); nothing to acknowledge.")
    if found.severity != "warning":
        raise ActionError(f"{found.code} is an error: it is fixed, not acknowledged ({found.hint})")
    why = " ".join(reason.split())
    if not why:
        raise ActionError("Say why (for example 'credit issued'): the reason goes into the audit trail.")
    with store.session() as s, s.begin():
        if finding_key in audit.current_acknowledgements(s):
            raise ActionError(f"This {found.code} warning is already acknowledged.")
        audit.record(
            s,
            "acknowledge",
            finding_key,
            before=None,
            after={"code": found.code, "reason": why, "message": found.message},
            company=found.subject.get("vendor_company_id") or found.subject.get("subscription_id"),
            user=user,
        )
        plan_cache.mark_written(s)  # the console shows it in the finding's row


def acknowledgements(store: Store) -> dict[str, Acknowledgement]:
    """The warnings acknowledged and not undone, by finding key."""
    with store.session() as s:
        events = audit.current_acknowledgements(s)
    return {
        key: Acknowledgement(
            key=key,
            code=str((e.after or {}).get("code", "")),
            by=e.user,
            at=e.at.isoformat(timespec="minutes"),
            reason=str((e.after or {}).get("reason", "")),
        )
        for key, e in events.items()
    }


# --- create new vs update (seed 001) ---------------------------------------------------------------


def toggle_create_new(
    store: Store, key: str, *, plan: Plan | None = None, as_of: date | None = None, user: str | None = None
) -> bool:
    """On a recurring line: switch between updating the PSA's existing line and creating a new one
    (the old one then ends the day before). Returns the new choice (True: create new)."""
    plan = plan if plan is not None else current_plan(store, as_of)
    line = _find_line(plan, key)
    if line is None or not key.endswith(":recurring"):
        raise ActionError("Create new / update applies to a recurring line; this row has none.")
    with store.session() as s:
        row = s.get(t.OverrideRow, key)
        create_new = bool(row and row.create_new)
    if not create_new and line.action != "update":
        raise ActionError(f"{key} creates a new line already: there is no PSA line to update instead.")
    choose_create_new(store, line.subscription_id, not create_new, user=user)
    return not create_new


# --- undo ------------------------------------------------------------------------------------------

UNDOABLE = (
    "ignore",
    "restore",
    "set_effective_date",
    "clear_effective_date",
    "choose_create_new",
    "map_company",
    "unmap_company",
    "bind_product",
    "unbind_product",
    "map_agreement",
    "set_invoiced_through",
    "set_free",
    "acknowledge",
    "note",
    "import_company",
)


def undoable(store: Store) -> list[t.AuditEvent]:
    """Operator actions since the last sync that are not undone yet, newest first."""
    with store.session() as s:
        return audit.undoable(s, UNDOABLE)


def undo(store: Store, *, event_id: int | None = None, user: str | None = None) -> t.AuditEvent:
    """Undo the newest operator action since the last sync (or `event_id`): the store goes back to
    what the event's `before` says, refused when the item changed since. One audit event ("undo")."""
    with store.session() as s, s.begin():
        candidates = audit.undoable(s, UNDOABLE)
        if not candidates:
            raise ActionError("Nothing to undo since the last sync.")
        event = candidates[0] if event_id is None else next((e for e in candidates if e.id == event_id), None)
        if event is None:
            raise ActionError(f"Audit event {event_id} cannot be undone (not an action since the last sync).")
        _reverse(s, event)
        audit.record(
            s,
            "undo",
            event.subject,
            before={"event_id": event.id, "action": event.action, "state": event.after},
            after=event.before,
            company=event.company,
            user=user,
        )
        s.expunge(event)
        return event


def _changed_since(event: t.AuditEvent) -> ActionError:
    return ActionError(
        f"{event.subject} was changed again after that {event.action}; undo the later change first."
    )


def _reverse(s: Any, event: t.AuditEvent) -> None:  # noqa: C901 - one branch per action, each short
    before, after, subject = event.before or None, event.after or {}, event.subject
    action = event.action
    if action == "ignore":
        row = s.get(t.IgnoreRow, subject)
        if row is None or row.version != after.get("version"):
            raise _changed_since(event)
        if before is None:
            s.delete(row)
        else:
            for name in ("mode", "by", "reason", "fingerprint"):
                setattr(row, name, before.get(name))
            row.on = date.fromisoformat(before["on"])
            row.version += 1
            s.add(row)
    elif action == "restore":
        if s.get(t.IgnoreRow, subject) is not None or before is None:
            raise _changed_since(event)
        s.add(
            t.IgnoreRow(
                key=subject,
                mode=before["mode"],
                by=before["by"],
                on=date.fromisoformat(before["on"]),
                reason=before.get("reason"),
                fingerprint=before.get("fingerprint"),
                version=int(before.get("version", 1)) + 1,
            )
        )
    elif action in ("set_effective_date", "clear_effective_date"):
        row = s.get(t.OverrideRow, subject)
        now = row.effective_date.isoformat() if row is not None and row.effective_date else None
        if now != after.get("effective_date"):
            raise _changed_since(event)
        # the date this one replaced: the override an earlier, not undone date event set (else none)
        previous = audit.previous_state(s, event, ("set_effective_date", "clear_effective_date"))
        if action == "clear_effective_date":
            previous_date = (before or {}).get("effective_date")
        else:
            previous_date = (previous.after or {}).get("effective_date") if previous is not None else None
        if previous_date is None:
            if row is not None and row.create_new:
                row.effective_date, row.version = None, row.version + 1
                s.add(row)
            elif row is not None:
                s.delete(row)
        else:
            if row is None:
                row = t.OverrideRow(key=subject)
            row.effective_date = date.fromisoformat(previous_date)
            row.version = (row.version or 0) + 1
            s.add(row)
    elif action == "choose_create_new":
        row = s.get(t.OverrideRow, subject)
        if row is None or row.create_new != after.get("create_new"):
            raise _changed_since(event)
        row.create_new, row.version = bool((before or {}).get("create_new")), row.version + 1
        if not row.create_new and row.effective_date is None:
            s.delete(row)
        else:
            s.add(row)
    elif action in ("map_company", "import_company"):
        row = s.get(t.CompanyMappingRow, (subject, after.get("psa_id")))
        if row is None:
            raise _changed_since(event)
        s.delete(row)  # an imported company stays in the PSA: only the mapping is undone
    elif action == "unmap_company":
        for psa_id in (before or {}).get("psa_ids", []):
            taken = s.execute(
                select(t.CompanyMappingRow).where(col(t.CompanyMappingRow.psa_id) == psa_id)
            ).first()
            if taken is not None:
                raise ActionError(f"PSA company {psa_id} has been mapped to another customer since.")
            s.add(t.CompanyMappingRow(vendor_id=subject, psa_id=psa_id))
    elif action in ("bind_product", "unbind_product", "set_free"):
        ident = before or after
        product_id = str(ident.get("vendor_product_id", subject))
        sub_product = str(ident.get("sub_product", "") or "")
        row = s.get(t.ProductBindingRow, (product_id, sub_product))
        if action == "unbind_product":
            if row is not None or before is None:
                raise _changed_since(event)
            s.add(_binding_row(before))
        elif action == "set_free":
            if row is None or row.free != after.get("free"):
                raise _changed_since(event)
            row.free, row.version = bool((before or {}).get("free")), row.version + 1
            s.add(row)
        else:
            if row is None or row.psa_product_id != after.get("psa_product_id"):
                raise _changed_since(event)
            if before is None:
                s.delete(row)
            else:
                row.psa_product_id, row.free = before["psa_product_id"], bool(before.get("free"))
                row.taxable = before.get("taxable")
                row.bill_option = _bill_option(before.get("bill_option"))
                row.version += 1
                s.add(row)
    elif action == "map_agreement":
        row = s.get(t.AgreementMappingRow, subject)
        now = row.psa_agreement_id if row is not None else None
        if now != after.get("psa_agreement_id"):
            raise _changed_since(event)
        previous = (before or {}).get("psa_agreement_id")
        if previous is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(t.AgreementMappingRow(vendor_company_id=subject, psa_agreement_id=previous))
        else:
            row.psa_agreement_id, row.version = previous, row.version + 1
            s.add(row)
    elif action == "set_invoiced_through":
        from engine.scenario import Settings

        row = s.get(t.SettingRow, "scenario_settings") or t.SettingRow(name="scenario_settings")
        settings = Settings.model_validate(row.value or {})
        now = settings.invoiced_through.isoformat() if settings.invoiced_through else None
        if now != after.get("invoiced_through"):
            raise _changed_since(event)
        previous = (before or {}).get("invoiced_through")
        updated = settings.model_copy(
            update={"invoiced_through": date.fromisoformat(previous) if previous else None}
        )
        row.value = updated.model_dump(mode="json")
        s.add(row)
    elif action in ("acknowledge", "note"):
        if action == "note" and audit.note_of(s, subject) != after.get("note"):
            raise _changed_since(event)
        if action == "acknowledge":
            plan_cache.mark_written(s)  # the finding's row shows it open again
        # kept in the trail: the "undo" event recorded with it withdraws it (engine.audit)
    else:
        raise ActionError(f"A {action} cannot be undone.")


def _binding_row(dump: dict[str, Any]) -> t.ProductBindingRow:
    return t.ProductBindingRow(
        vendor_product_id=dump["vendor_product_id"],
        sub_product=dump.get("sub_product") or "",
        psa_product_id=dump["psa_product_id"],
        free=bool(dump.get("free")),
        taxable=dump.get("taxable"),
        bill_option=_bill_option(dump.get("bill_option")),
        version=int(dump.get("version", 1)) + 1,
    )


# --- import a vendor company into the PSA (company_not_mapped) -------------------------------------


class CreatesCompanies(Protocol):
    """What importing needs of a PSA connector (engine.connectors.base.PsaConnector)."""

    name: str

    async def companies(self) -> list[PsaCompany]: ...

    async def create_company(self, name: str) -> PsaCompany: ...


async def import_company(
    store: Store, psa: CreatesCompanies, vendor_id: str, *, user: str | None = None
) -> PsaCompany:
    """Create the vendor company in the PSA under the same name and map it (RULES.md §9: one-to-one).

    Idempotent and journaled in the audit trail: "import_company.requested" is recorded before the
    PSA is asked; when a request may have reached the PSA (a timeout, a 5xx), or an earlier attempt
    left a request without its result, the PSA's companies are read and one of the same name is
    taken instead of creating a second."""
    from engine.connectors.base import ServiceError

    with store.session() as s:
        vendor = s.get(t.VendorCompanyRow, vendor_id)
        if vendor is None:
            raise ActionError(f"No vendor company {vendor_id!r}.")
        mapped = s.execute(
            select(t.CompanyMappingRow).where(col(t.CompanyMappingRow.vendor_id) == vendor_id)
        ).first()
        if mapped is not None:
            raise ActionError(
                f"{vendor.name} is already mapped; unmap it first to import it as a new company."
            )
        name = vendor.name
        same = [
            p
            for p in s.execute(select(t.PsaCompanyRow)).scalars()
            if normalize_name(p.name) == normalize_name(name)
        ]
        pending = any(
            (e.after or {}).get("vendor_id") == vendor_id
            for e in s.execute(
                select(t.AuditEvent).where(col(t.AuditEvent.action) == "import_company.requested")
            ).scalars()
        )
    if same:
        raise ActionError(
            f"{psa.name} already has {same[0].name} ({same[0].id}); map to it (m) instead of importing."
        )
    with store.session() as s, s.begin():
        audit.record(
            s,
            "import_company.requested",
            vendor_id,
            after={"vendor_id": vendor_id, "name": name, "psa": psa.name},
            company=name,
            user=user,
        )
    created: PsaCompany | None = None
    if pending:
        created = await _psa_company_named(psa, name)
    if created is None:
        try:
            created = await psa.create_company(name)
        except ServiceError as exc:
            if exc.rejected or not exc.sent:
                raise ActionError(f"{psa.name} refused to create {name}: {exc.message}") from exc
            created = await _psa_company_named(psa, name)  # it may have been created: look, never re-send
            if created is None:
                raise ActionError(
                    f"{psa.name} did not answer whether {name} was created ({exc.message}); "
                    "import again to look it up before anything is sent."
                ) from exc
    with store.session() as s, s.begin():
        if s.get(t.PsaCompanyRow, created.id) is None:
            s.add(t.PsaCompanyRow(id=created.id, name=created.name))
        if s.execute(
            select(t.CompanyMappingRow).where(col(t.CompanyMappingRow.psa_id) == created.id)
        ).first():
            raise ActionError(f"{created.name} ({created.id}) is already mapped to another customer.")
        s.add(t.CompanyMappingRow(vendor_id=vendor_id, psa_id=created.id))
        audit.record(
            s,
            "import_company",
            vendor_id,
            before=None,
            after={"psa_id": created.id, "psa_name": created.name, "psa": psa.name},
            company=name,
            user=user,
        )
    return created


async def _psa_company_named(psa: CreatesCompanies, name: str) -> PsaCompany | None:
    wanted = normalize_name(name)
    hits = [c for c in await psa.companies() if normalize_name(c.name) == wanted]
    return max(hits, key=lambda c: c.id) if hits else None


# --- what the console's fix dialogs read ------------------------------------------------------------


def agreements_of(store: Store, vendor_company_id: str) -> list[tuple[str, str]]:
    """The agreements of the PSA company a vendor company is mapped to, as (id, label), newest first."""
    with store.session() as s:
        psa_ids = [
            m.psa_id
            for m in s.execute(
                select(t.CompanyMappingRow).where(col(t.CompanyMappingRow.vendor_id) == vendor_company_id)
            ).scalars()
        ]
        if not psa_ids:
            return []
        rows = list(
            s.execute(
                select(t.PsaAgreementRow).where(col(t.PsaAgreementRow.company_id).in_(psa_ids))
            ).scalars()
        )
    rows.sort(key=lambda a: (a.start_date, a.id), reverse=True)
    out = []
    for a in rows:
        ends = f" – {a.end_date.isoformat()}" if a.end_date else ""
        out.append((a.id, f"{a.name} · {a.billing_period} · from {a.start_date.isoformat()}{ends}"))
    return out


def chosen_agreement(store: Store, vendor_company_id: str) -> str | None:
    with store.session() as s:
        row = s.get(t.AgreementMappingRow, vendor_company_id)
        return row.psa_agreement_id if row is not None else None


def same_sku_product(store: Store, vendor_product_id: str) -> str | None:
    """The PSA product whose SKU is the vendor product's (trimmed, case-folded), when exactly one is."""
    with store.session() as s:
        product = s.get(t.VendorProductRow, vendor_product_id)
        if product is None or not (product.sku or "").strip():
            return None
        wanted = product.sku.strip().casefold() if product.sku else ""
        hits = [
            p.id
            for p in s.execute(select(t.PsaProductRow).where(col(t.PsaProductRow.sku).is_not(None))).scalars()
            if (p.sku or "").strip().casefold() == wanted
        ]
    return hits[0] if len(hits) == 1 else None


def product_of(store: Store, subscription_id: str) -> str | None:
    with store.session() as s:
        row = s.get(t.SubscriptionRow, subscription_id)
        return row.product_id if row is not None else None


def products_of_companies(store: Store, companies: Iterable[str]) -> set[str]:
    """The vendor products these vendor companies' subscriptions use (active or cancelled: a
    cancelled one may still have lines to write). What the console's customer search narrows the
    Products screen to."""
    wanted = sorted(set(companies))
    if not wanted:
        return set()
    sub = t.SubscriptionRow
    query = select(col(sub.product_id)).where(col(sub.company_id).in_(wanted)).distinct()
    with store.session() as s:
        return {str(product) for (product,) in s.execute(query)}


# --- create the product in the PSA (product_not_bound; seed 001 "Export Product") ------------------


class CreatesProducts(Protocol):
    name: str

    async def products(self) -> list[PsaProduct]: ...

    async def create_product(self, spec: ProductSpec) -> PsaProduct: ...


def new_product_spec(
    name: str,
    sku: str,
    price: str,
    cost: str,
    *,
    recurring: bool = True,
    taxable: bool = False,
    category: str = "",
) -> ProductSpec:
    """The wizard's fields, checked: a name, money with at most 2 places and not negative."""
    clean = " ".join(name.split())
    if not clean:
        raise ActionError("The product needs a name.")
    if len(clean) > 150:
        raise ActionError(f"The name is {len(clean)} characters; 150 at most.")
    amounts = []
    for what, value in (("price", price), ("cost", cost)):
        try:
            amount = Decimal(value.strip().lstrip("$").replace(",", "") or "0")
        except InvalidOperation:
            raise ActionError(f"The {what} {value!r} is not an amount (like 12.50).") from None
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            raise ActionError(f"The {what} {value!r} must be 0 or more, with at most 2 decimal places.")
        amounts.append(amount.quantize(Decimal("0.01")))
    return ProductSpec(
        name=clean,
        sku=" ".join(sku.split()) or None,
        unit_price=amounts[0],
        unit_cost=amounts[1],
        recurring=recurring,
        taxable=taxable,
        category=" ".join(category.split()) or None,
    )


async def create_product(
    store: Store,
    psa: object,
    vendor_product_id: str,
    spec: ProductSpec,
    *,
    sub_product: str | None = None,
    user: str | None = None,
) -> PsaProduct:
    """Create the product in the PSA's catalogue and bind the vendor product to it. Journaled as
    `import_company` is: "create_product.requested" first; after a lost answer the PSA's products are
    read and one with the same SKU (else name) is taken instead of creating a second."""
    from engine.connectors.base import ServiceError

    service = str(getattr(psa, "name", "the PSA"))
    if not hasattr(psa, "create_product"):
        raise ActionError(
            f"Creating products in {service} is not supported here yet; create it in {service}, "
            "refresh, then bind it (b)."
        )
    creator: CreatesProducts = psa  # type: ignore[assignment]  # checked just above
    with store.session() as s:
        if s.get(t.VendorProductRow, vendor_product_id) is None:
            raise ActionError(f"No vendor product {vendor_product_id!r}.")
        if spec.sku:
            taken = [
                p
                for p in s.execute(select(t.PsaProductRow)).scalars()
                if (p.sku or "").strip().casefold() == spec.sku.casefold()
            ]
            if taken:
                raise ActionError(
                    f"{service} already has {taken[0].name} with SKU {spec.sku}; bind to it (b) instead."
                )
    with store.session() as s, s.begin():
        audit.record(
            s,
            "create_product.requested",
            vendor_product_id,
            after={"name": spec.name, "sku": spec.sku, "psa": service},
            user=user,
        )
    try:
        created = await creator.create_product(spec)
    except ServiceError as exc:
        if exc.rejected or not exc.sent:
            raise ActionError(f"{service} refused to create {spec.name}: {exc.message}") from exc
        found = await _psa_product_like(creator, spec)
        if found is None:
            raise ActionError(
                f"{service} did not answer whether {spec.name} was created ({exc.message}); look in "
                f"{service}, refresh, then bind it."
            ) from exc
        created = found
    with store.session() as s, s.begin():
        if s.get(t.PsaProductRow, created.id) is None:
            s.add(
                t.PsaProductRow(
                    id=created.id,
                    name=created.name,
                    sku=created.sku,
                    unit_price=created.unit_price,
                    unit_cost=created.unit_cost,
                )
            )
        audit.record(
            s,
            "create_product",
            vendor_product_id,
            after={
                "psa_product_id": created.id,
                "psa_name": created.name,
                "sku": created.sku,
                "psa": service,
            },
            user=user,
        )
    bind_product(store, vendor_product_id, created.id, sub_product=sub_product, user=user)
    return created


async def _psa_product_like(psa: CreatesProducts, spec: ProductSpec) -> PsaProduct | None:
    products = await psa.products()
    if spec.sku:
        hits = [p for p in products if (p.sku or "").strip().casefold() == spec.sku.casefold()]
    else:
        hits = [p for p in products if normalize_name(p.name) == normalize_name(spec.name)]
    return max(hits, key=lambda p: p.id) if hits else None


def product_defaults(store: Store, vendor_product_id: str) -> tuple[str, str, str, str]:
    """What the product wizard starts from: the vendor product's name and SKU, and the price and cost
    of its newest subscription (the vendor's figures; the operator edits them)."""
    with store.session() as s:
        product = s.get(t.VendorProductRow, vendor_product_id)
        if product is None:
            raise ActionError(f"No vendor product {vendor_product_id!r}.")
        sub = (
            s.execute(
                select(t.SubscriptionRow)
                .where(col(t.SubscriptionRow.product_id) == vendor_product_id)
                .order_by(col(t.SubscriptionRow.start_date).desc())
                .limit(1)
            )
            .scalars()
            .first()
        )
    price = format(sub.unit_price, "f") if sub is not None else ""
    cost = format(sub.unit_cost, "f") if sub is not None else ""
    return product.name, product.sku or "", price, cost
