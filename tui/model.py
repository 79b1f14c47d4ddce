"""What the console shows, computed from a plan and the store's snapshot: plain, frozen rows per
pane. No Textual here, so it can be tested (and reasoned about) without a screen."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from engine.batch import gc_paused
from engine.money import fmt_money, fmt_quantity
from engine.plan import Finding, LineKind, Plan, PlanLine
from engine.scrub import clean_scenario

ZERO = Decimal("0.00")
IGNORED_PREFIX = "ignored:"  # an Unsynced row of ignored lines next to the same subscription's shown row
UNSYNCED_KINDS = (LineKind.RECURRING, LineKind.CANCEL, LineKind.PRORATE, LineKind.EXTRA_MONTHS)
ARREARS_KINDS = (LineKind.ARREARS, LineKind.USAGE_SUMMARY, LineKind.USAGE)
PRORATE_KINDS = (LineKind.PRORATE, LineKind.EXTRA_MONTHS)
USAGE_PRODUCTS = ("endpoint_usage", "usage_summary")

PANES = ("overview", "customers", "unsynced", "arrears", "prorates", "errors")
PANE_TITLES = {"overview": "Overview", "customers": "Customers", "unsynced": "Unsynced",
               "arrears": "Arrears", "prorates": "Prorates", "errors": "Errors", "products": "Products"}
PRODUCT_KEY_SEP = "|"  # a Products row's key: vendor product id | sub-product ("" for the product itself)


@dataclass(frozen=True)
class Row:
    """One table row: a stable key, the cells (plain strings), a detail text and its state."""

    key: str
    cells: tuple[str, ...]
    detail: str = ""
    ignored: bool = False
    target: str | None = None  # Overview: the pane enter jumps to
    line_keys: tuple[str, ...] = ()  # the plan lines this row stands for
    editable: bool = False  # a proposed `create` line whose effective date can move
    search: str = field(default="", compare=False, repr=False)  # what `/` matches (computed once)

    def __post_init__(self) -> None:
        if not self.search:  # built with the row (in the loading thread), not on a keystroke
            object.__setattr__(self, "search", "\x1f".join((self.key, *self.cells)).casefold())


@dataclass
class ConsoleData:
    plan: Plan
    as_of: date
    invoiced_through: date
    rows: dict[str, list[Row]] = field(default_factory=dict)
    ignored_rows: dict[str, list[Row]] = field(default_factory=dict)
    lines: dict[str, PlanLine] = field(default_factory=dict)
    ignored: dict[str, Any] = field(default_factory=dict)  # key -> Ignore
    company_names: dict[str, str] = field(default_factory=dict)
    psa_companies: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    psa_company_names: dict[str, str] = field(default_factory=dict)
    agreement_names: dict[str, str] = field(default_factory=dict)
    psa_lines: dict[str, Any] = field(default_factory=dict)
    product_names: dict[str, str] = field(default_factory=dict)  # subscription id -> product name
    psa_products: list[tuple[str, str]] = field(default_factory=list)  # (id, label), sorted by name
    psa_product_names: dict[str, str] = field(default_factory=dict)
    bindings: dict[tuple[str, str], Any] = field(default_factory=dict)  # (vendor product, sub-product or "")
    psa: str = "PSA"
    # Where the figures come from (engine.store.plan_cache): the store revision they were computed
    # from, when, and for which (as-of asked for, day). `stale`: a saved state that no longer matches
    # the store — shown with a banner while the fresh one is computed. `complete` False: the rows of
    # a current saved state, its plan (review, dates, restore) still being restored.
    revision: int | None = None
    computed_at: datetime | None = None
    computed_for: tuple[date | None, date] | None = None
    stale: bool = False
    complete: bool = True
    saved: bool = False  # read from, or written to, the store's saved state

    def rows_for(self, pane: str, show_ignored: bool) -> list[Row]:
        rows = list(self.rows.get(pane, []))
        if show_ignored:
            rows += self.ignored_rows.get(pane, [])
        return rows

    def company(self, vendor_company_id: str) -> str:
        return self.company_names.get(vendor_company_id, vendor_company_id)


def figures_time(data: ConsoleData) -> str:
    """When the figures shown were computed, in local time ("09:30", or "21 Nov 09:30" another day)."""
    if data.computed_at is None:
        return "earlier"
    at = data.computed_at.astimezone()
    today = datetime.now(UTC).astimezone().date()
    return at.strftime("%H:%M") if at.date() == today else at.strftime("%d %b %H:%M")


PSA_NAMES = {"connectwise": "ConnectWise", "halopsa": "HaloPSA", "autotask": "Autotask"}


def load(store: Any, as_of: date | None, today: date | None = None) -> ConsoleData:
    """Read the store once (the fast way, like every other plan), reconcile, build every pane's rows."""
    from engine.reconcile import reconcile  # the rules: not needed to paint a saved state
    if hasattr(store, "plan_inputs"):
        scenario, hints = store.plan_inputs(as_of)
        scenario = clean_scenario(scenario)  # names stored before the service boundary scrubbed them
        plan = reconcile(scenario, hints)
    else:
        scenario = clean_scenario(store.snapshot(as_of))
        plan = reconcile(scenario)
    return build(scenario, plan, today=today)


def product_key(vendor_product_id: str, sub_product: str | None) -> str:
    return f"{vendor_product_id}{PRODUCT_KEY_SEP}{sub_product or ''}"


def split_product_key(key: str) -> tuple[str, str | None]:
    product_id, _, sub_product = key.rpartition(PRODUCT_KEY_SEP)
    return product_id, sub_product or None


def _short(identifier: str) -> str:
    return identifier[:8] if len(identifier) > 12 else identifier


def _period(line: PlanLine) -> str:
    if line.period_start and line.period_end:
        return f"{line.period_start:%m/%d/%Y}–{line.period_end:%m/%d/%Y}"
    return ""


def build(scenario: Any, plan: Plan, today: date | None = None) -> ConsoleData:
    """Every pane's rows, in one linear pass per pane (tens of thousands of frozen rows: the cyclic
    garbage collector is paused meanwhile, as the store's loader does)."""
    with gc_paused():
        return _build(scenario, plan, today)


def _build(scenario: Any, plan: Plan, today: date | None) -> ConsoleData:
    data = ConsoleData(plan=plan, as_of=plan.as_of, invoiced_through=plan.invoiced_through)
    data.psa = PSA_NAMES.get(str(scenario.settings.psa), str(scenario.settings.psa))
    data.company_names = {c.id: c.name for c in scenario.vendor.companies}
    data.psa_companies = sorted(((c.id, c.name) for c in scenario.psa.companies), key=lambda c: c[1].casefold())
    data.psa_company_names = dict(data.psa_companies)
    data.agreement_names = {a.id: a.name for a in scenario.psa.agreements}
    data.psa_lines = {line.id: line for line in scenario.psa.lines}
    products = {p.id: p for p in scenario.vendor.products}
    subs = {s.id: s for s in scenario.vendor.subscriptions}
    data.product_names = {s.id: products[s.product_id].name if s.product_id in products else s.product_id
                          for s in scenario.vendor.subscriptions}
    data.ignored = {i.key: i for i in scenario.ignored}
    data.lines = {line.key: line for line in (*plan.lines, *plan.ignored_lines)}

    def ignore_of(line: PlanLine) -> Any:
        return data.ignored.get(line.key) or data.ignored.get(line.subscription_id)

    def ignore_text(ig: Any) -> str:
        if ig is None:
            return ""
        mode = "until restored" if ig.mode == "until_restored" else "this change only"
        return f"IGNORED by {ig.by} on {ig.on.isoformat()} ({mode}): {ig.reason or 'no reason given'}"

    def line_detail(line: PlanLine) -> str:
        parts = [f"{line.description}",
                 f"{data.company(line.company_id)} · agreement {data.agreement_names.get(line.psa_agreement_id, line.psa_agreement_id)}"
                 f" · {line.action} {line.kind.value} · key {line.key}",
                 f"Formula: {line.formula or '—'}"]
        ig = ignore_of(line)
        if ig is not None:
            parts.insert(0, ignore_text(ig))
        return "\n".join(parts)

    # --- Unsynced: seat-like subscriptions with lines ---------------------------------------------
    for ignored_pass, source in ((False, plan.lines), (True, plan.ignored_lines)):
        by_sub: dict[str, list[PlanLine]] = defaultdict(list)
        for line in source:
            if line.kind in UNSYNCED_KINDS:
                by_sub[line.subscription_id].append(line)
        rows = []
        for sub_id, lines in by_sub.items():
            recurring = next((x for x in lines if x.kind in (LineKind.RECURRING, LineKind.CANCEL)), None)
            if recurring is not None:
                old = fmt_quantity(recurring.previous_quantity) if recurring.previous_quantity is not None else "—"
                new = "0" if recurring.kind == LineKind.CANCEL else fmt_quantity(recurring.quantity)
                change = f"{old} → {new}"
            else:
                change = "one-time only"
            added = sum((x.total_price for x in lines), ZERO)
            company = data.company(lines[0].company_id)
            state = "ignored" if ignored_pass else "pending"
            detail = "\n".join(
                ([ignore_text(ignore_of(lines[0]))] if ignored_pass else [])
                + [f"{company} · {data.product_names.get(sub_id, '')} · subscription {sub_id}"]
                + [f"{x.action:<6} {x.kind.value:<12} qty {fmt_quantity(x.quantity):>5}  {fmt_money(x.total_price):>10}"
                   f"  from {x.effective_date.isoformat()}  {x.formula}" for x in lines])
            rows.append(Row(key=IGNORED_PREFIX + sub_id if ignored_pass else sub_id, cells=(_short(sub_id), company, data.product_names.get(sub_id, sub_id),
                                               change, fmt_money(added), state),
                            detail=detail, ignored=ignored_pass, line_keys=tuple(x.key for x in lines),
                            editable=any(x.action == "create" for x in lines)))
        (data.ignored_rows if ignored_pass else data.rows)["unsynced"] = rows

    # --- Arrears and Prorates: one row per line -------------------------------------------------
    for ignored_pass, source in ((False, plan.lines), (True, plan.ignored_lines)):
        arrears, prorates = [], []
        for line in source:
            state = "ignored" if ignored_pass else "pending"
            company = data.company(line.company_id)
            if line.kind in ARREARS_KINDS:
                synced = fmt_quantity(line.previous_quantity) if line.previous_quantity is not None else "—"
                final = "provisional" if line.provisional else "final"
                arrears.append(Row(key=line.key, cells=(
                    company, data.product_names.get(line.subscription_id, line.subscription_id),
                    line.sub_product or "", fmt_quantity(line.quantity), synced, _period(line), final,
                    fmt_money(line.total_price), state),
                    detail=line_detail(line), ignored=ignored_pass, line_keys=(line.key,),
                    editable=line.action == "create"))
            elif line.kind in PRORATE_KINDS:
                synced = "ignored" if ignored_pass else "No"
                during = _period(line)
                increase = fmt_quantity(line.quantity)
                if line.kind == LineKind.EXTRA_MONTHS:
                    during = f"{during} ({line.months} mo)"
                sub = subs.get(line.subscription_id)
                current_qty = ""
                if sub is not None and sub.history:
                    current_qty = fmt_quantity(sub.history[-1].quantity)
                unit_cost = sub.unit_cost if sub is not None else line.unit_cost
                unit_price = sub.unit_price if sub is not None else line.unit_price
                prorates.append(Row(key=line.key, cells=(
                    synced, company, line.effective_date.isoformat(), during, increase, current_qty,
                    fmt_money(line.unit_cost), fmt_money(unit_cost), fmt_money(line.unit_price),
                    fmt_money(unit_price), fmt_money(line.total_price), line.formula),
                    detail=line_detail(line), ignored=ignored_pass, line_keys=(line.key,),
                    editable=line.action == "create"))
        (data.ignored_rows if ignored_pass else data.rows)["arrears"] = arrears
        (data.ignored_rows if ignored_pass else data.rows)["prorates"] = prorates

    # --- Errors -------------------------------------------------------------------------------------
    data.rows["errors"] = [_finding_row(data, f, subs) for f in plan.findings]
    data.ignored_rows["errors"] = []

    # --- Customers ----------------------------------------------------------------------------------
    mapped: dict[str, list[str]] = defaultdict(list)
    for m in scenario.mappings.companies:
        mapped[m.vendor_id].append(m.psa_id)
    company_errors: dict[str, list[Finding]] = defaultdict(list)
    for f in plan.findings:
        vid = f.subject.get("vendor_company_id")
        if vid is None and "subscription_id" in f.subject and f.subject["subscription_id"] in subs:
            vid = subs[f.subject["subscription_id"]].company_id
        if vid and f.code in ("duplicate_mapping", "no_active_agreement", "multiple_active_agreements",
                              "billing_period_mismatch"):
            company_errors[vid].append(f)
    agreements_of: dict[str, set[str]] = defaultdict(set)
    for line in (*plan.lines, *plan.ignored_lines):
        agreements_of[line.company_id].add(line.psa_agreement_id)
    customers = []
    for c in sorted(scenario.vendor.companies, key=lambda c: c.name.casefold()):
        psa_ids = mapped.get(c.id, [])
        errors = company_errors.get(c.id, [])
        if not psa_ids:
            status = "Not mapped"
        elif errors:
            status = "Mapping error"
        else:
            status = "Mapped"
        psa_name = ", ".join(data.psa_company_names.get(p, p) for p in psa_ids) or "—"
        agreement_ids = sorted(agreements_of.get(c.id, set()))
        agreement = ", ".join(data.agreement_names.get(a, a) for a in agreement_ids) or "—"
        message = "; ".join(f.message for f in errors)
        detail = "\n".join(x for x in (f"{c.name} (vendor id {c.id}, {c.status})",
                                       f"PSA company: {psa_name}" + (f" (id {', '.join(psa_ids)})" if psa_ids else ""),
                                       f"Agreement: {agreement}", message) if x)
        customers.append(Row(key=c.id, cells=(c.name, psa_name, status, message or "", agreement), detail=detail))
    data.rows["customers"] = customers
    data.ignored_rows["customers"] = []

    # --- Products: vendor products (and sub-products) and what they are bound to --------------------
    data.rows["products"] = _product_rows(data, scenario, plan, subs)
    data.ignored_rows["products"] = []

    # --- Overview: the month-end checklist ----------------------------------------------------------
    data.rows["overview"] = _checklist(data, customers, today or plan.as_of)
    data.ignored_rows["overview"] = []
    return data


def _product_rows(data: ConsoleData, scenario: Any, plan: Plan, subs: dict[str, Any]) -> list[Row]:
    psa_products = sorted(scenario.psa.products, key=lambda p: p.name.casefold())
    data.psa_product_names = {p.id: p.name for p in psa_products}
    data.psa_products = [(p.id, f"{p.name} · {p.sku}" if p.sku else p.name) for p in psa_products]
    data.bindings = {(b.vendor_product_id, b.sub_product or ""): b for b in scenario.mappings.products}
    subs_of: dict[str, int] = defaultdict(int)
    for sub in scenario.vendor.subscriptions:
        if sub.status == "active":
            subs_of[sub.product_id] += 1
    unbound: dict[str, list[Finding]] = defaultdict(list)
    for f in plan.findings:
        if f.code == "product_not_bound":
            sub = subs.get(f.subject.get("subscription_id", ""))
            if sub is not None:
                unbound[sub.product_id].append(f)

    def bound_to(binding: Any) -> str:
        name = data.psa_product_names.get(binding.psa_product_id, binding.psa_product_id)
        return f"{name} (free)" if binding.free else name

    rows: list[tuple[tuple[int, int, str, str], Row]] = []
    for product in scenario.vendor.products:
        findings = unbound.get(product.id, [])
        for sub_product in (None, *(product.sub_products or [])):
            own = data.bindings.get((product.id, sub_product or ""))
            inherited = data.bindings.get((product.id, "")) if sub_product else None
            if own is not None:
                state, psa_name = "bound", bound_to(own)
            elif inherited is not None:
                state, psa_name = "via product", bound_to(inherited)
            elif sub_product is None and any(p == product.id and sp for p, sp in data.bindings):
                state, psa_name = "sub-products only", "—"
            else:
                state, psa_name = "NOT BOUND", "—"
            blocked = len(findings) if sub_product is None else 0
            sku = f", SKU {product.sku}" if product.sku else ""
            detail = [f"{product.name}" + (f" · sub-product {sub_product}" if sub_product else "")
                      + f" (vendor id {product.id}{sku}, {product.kind})",
                      f"Bound to: {psa_name}" if own or inherited else "Not bound to a PSA product: b binds it.",
                      *[f"{f.message}" for f in findings[:2]]]
            if len(findings) > 2:
                detail.append(f"… and {len(findings) - 2} more subscriptions")
            row = Row(key=product_key(product.id, sub_product),
                      cells=(product.name, sub_product or "", product.kind, psa_name,
                             str(subs_of.get(product.id, 0)) if sub_product is None else "",
                             str(blocked) if blocked else "", state),
                      detail="\n".join(detail))
            order = (0 if blocked else 1, 0 if state == "NOT BOUND" else 1, product.name.casefold(),
                     sub_product or "")
            rows.append((order, row))
    rows.sort(key=lambda x: x[0])
    return [r for _, r in rows]


def _finding_row(data: ConsoleData, f: Finding, subs: dict[str, Any]) -> Row:
    subject = f.subject
    company_id = subject.get("vendor_company_id")
    sub_id = subject.get("subscription_id")
    if company_id is None and sub_id in subs:
        company_id = subs[sub_id].company_id
    customer = data.company(company_id) if company_id else "—"
    what = ", ".join(f"{k}={_short(v)}" for k, v in sorted(subject.items()))
    key = f.code + "|" + "|".join(f"{k}={v}" for k, v in sorted(subject.items()))
    severity = "ERROR" if f.severity == "error" else "warning"
    return Row(key=key, cells=(severity, f.code, customer, what, f.message, f.hint),
               detail=f"{severity}: {f.message}\nSubject: {what}\nTo clear it: {f.hint or '—'}")


def _checklist(data: ConsoleData, customers: list[Row], today: date) -> list[Row]:
    plan = data.plan
    day = plan.as_of.day
    unmapped = sum(1 for r in customers if r.cells[2] == "Not mapped")
    map_errors = sum(1 for r in customers if r.cells[2] == "Mapping error")
    unbound = sum(1 for f in plan.findings if f.code == "product_not_bound")
    unsynced = data.rows.get("unsynced", [])
    unsynced_money = sum((line.total_price for line in plan.lines if line.kind in UNSYNCED_KINDS), ZERO)
    arrears = [line for line in plan.lines if line.kind in (LineKind.ARREARS, LineKind.USAGE)]
    summaries = [line for line in plan.lines if line.kind == LineKind.USAGE_SUMMARY]
    prorates = [line for line in plan.lines if line.kind in PRORATE_KINDS]
    errors = [f for f in plan.findings if f.severity == "error"]
    warnings = [f for f in plan.findings if f.severity == "warning"]

    def state(done: bool, waiting: bool = False) -> str:
        return "WAIT" if waiting else ("OK" if done else "TODO")

    items = [
        ("unmapped", state(unmapped == 0 and map_errors == 0), "Customers not mapped",
         f"{unmapped} not mapped, {map_errors} with mapping errors", "", "customers"),
        ("unbound", state(unbound == 0), "Products not bound", f"{unbound} subscriptions", "", "products"),
        ("unsynced", state(not unsynced), "Unsynced subscriptions", f"{len(unsynced)} subscriptions",
         fmt_money(unsynced_money), "unsynced"),
        ("arrears", state(not arrears, waiting=day <= 3), "Arrears ready (after day 3)",
         f"{len(arrears)} lines" + (" — vendor figures final after the 3rd" if day <= 3 else ""),
         fmt_money(sum((x.total_price for x in arrears), ZERO)), "arrears"),
        ("summaries", state(not summaries, waiting=day <= 5), "Usage summaries final (after day 5)",
         f"{len(summaries)} lines, {sum(1 for x in summaries if x.provisional)} provisional",
         fmt_money(sum((x.total_price for x in summaries), ZERO)), "arrears"),
        ("prorates", state(not prorates), "Prorates pending", f"{len(prorates)} lines",
         fmt_money(sum((x.total_price for x in prorates), ZERO)), "prorates"),
        ("errors", state(not errors), "Errors", f"{len(errors)} errors, {len(warnings)} warnings", "", "errors"),
        ("total", state(not plan.lines), "Total to the PSA", f"{len(plan.lines)} lines, {plan.totals.ignored} ignored",
         fmt_money(plan.totals.price), "unsynced"),
    ]
    return [Row(key=k, cells=(s, label, count, money), target=target,
                detail=f"{label}: {count} {money}\nPress enter to open {PANE_TITLES[target]}.")
            for k, s, label, count, money, target in items]


COLUMNS: dict[str, tuple[str, ...]] = {
    "overview": ("State", "Checklist", "Count", "Money"),
    "customers": ("Vendor company", "PSA company", "Status", "Message", "Agreement"),
    "unsynced": ("Id", "Company", "Subscription", "Quantity", "Added", "State"),
    "arrears": ("Company", "Subscription", "Sub-product", "Billable", "Synced", "Period", "Final", "Total",
                "State"),
    "prorates": ("Synced", "Company", "Effective Date", "Effective During", "Quantity Increase", "Quantity",
                 "Prorate Cost", "Unit Cost", "Prorate Price", "Unit Price", "Total to PSA", "Formula"),
    "errors": ("Severity", "Code", "Customer", "Subject", "Message", "Clears it"),
    "products": ("Vendor product", "Sub-product", "Kind", "PSA product", "Subs", "Unbound", "State"),
}


# --- the saved state (engine.store.plan_cache): what a launch paints before anything is computed ---
#
# Two parts, both plain data (never pickle: the store may be a team's shared database).
# * The view — every pane's rows and the few names the panes show — is what the first paint
#   needs, so it is laid out to decode in a fraction of a second at 50,000 rows: a JSON header,
#   then each row field of a pane as one UTF-8 string joined by a separator (decoded by one
#   `split`), rather than a JSON value per row.
# * The plan — the plan itself, ignores, PSA lines, bindings — is restored after the paint, as
#   JSON lines validated by the engine's own models, a few hundred at a time (so the screen keeps
#   answering keys meanwhile).

VIEW_FORMAT = "trueup-view/2"
PLAN_FORMAT = "trueup-plan/1"
_US, _RS = "\x1f", "\x1e"  # unit and record separators; a text holding one is not saved
_CHUNK = 500  # models validated per call while restoring the plan


class NotSaveable(ValueError):
    """A text holds a separator the saved view uses: this state is not saved (it is recomputed)."""


def _joined(values: list[str], sep: str = _US) -> str:
    for value in values:
        if _US in value or _RS in value:
            raise NotSaveable(f"a row holds a control character: {value[:40]!r}")
    return sep.join(values)


def _encode_rows(rows: list[Row]) -> tuple[dict[str, Any], list[str]]:
    width = len(rows[0].cells) if rows else 0
    if any(len(r.cells) != width for r in rows):
        raise NotSaveable("rows of one pane differ in width")
    segments = [
        _joined([r.key for r in rows]),
        _joined([c for r in rows for c in r.cells]),
        _joined([r.detail for r in rows]),
        "".join("1" if r.ignored else "0" for r in rows),
        "".join("1" if r.editable else "0" for r in rows),
        _joined([r.target or "" for r in rows]),
        _RS.join(_joined(list(r.line_keys)) for r in rows),
        _RS.join(r.search for r in rows),  # key and cells joined by _US, casefolded: saved, not redone
    ]
    return {"n": len(rows), "width": width}, segments


_new = object.__new__
_set_dict = object.__setattr__


def _decode_rows(meta: dict[str, Any], segments: list[str]) -> list[Row]:
    n, width = meta["n"], meta["width"]
    if n == 0:
        return []
    keys_s, cells_s, detail_s, ignored_s, editable_s, target_s, lines_s, search_s = segments
    keys = keys_s.split(_US)
    flat = cells_s.split(_US) if width else []
    cells = list(zip(*[iter(flat)] * width, strict=True)) if width else [()] * n
    details = detail_s.split(_US)
    targets = target_s.split(_US)
    line_keys = [tuple(x.split(_US)) if x else () for x in lines_s.split(_RS)]
    searches = search_s.split(_RS)
    if not (len(keys) == len(cells) == len(details) == len(targets) == len(line_keys) == len(ignored_s)
            == len(editable_s) == len(searches) == n):
        raise ValueError("saved view: pane columns differ in length")
    rows = []
    append = rows.append
    for key, cell, detail, ignored, editable, target, lines, search in zip(
            keys, cells, details, ignored_s, editable_s, targets, line_keys, searches, strict=True):
        row = _new(Row)  # a frozen dataclass, built without its __init__ (the same fields, checked above)
        _set_dict(row, "__dict__", {"key": key, "cells": cell, "detail": detail, "ignored": ignored == "1",
                                    "target": target or None, "line_keys": lines, "editable": editable == "1",
                                    "search": search})
        append(row)
    return rows


def encode_view(data: ConsoleData) -> bytes:
    """The saved view of `data` (raises NotSaveable when a text cannot be laid out)."""
    panes: dict[str, Any] = {}
    segments: list[bytes] = []
    for which, source in (("rows", data.rows), ("ignored", data.ignored_rows)):
        for pane, rows in source.items():
            meta, texts = _encode_rows(rows)
            encoded = [x.encode("utf-8") for x in texts]
            meta["lengths"] = [len(x) for x in encoded]
            panes[f"{which}:{pane}"] = meta
            segments += encoded
    header = json.dumps({
        "format": VIEW_FORMAT, "as_of": data.as_of.isoformat(),
        "invoiced_through": data.invoiced_through.isoformat(), "psa": data.psa,
        "company_names": data.company_names, "psa_companies": data.psa_companies,
        "agreement_names": data.agreement_names, "psa_products": data.psa_products,
        "psa_product_names": data.psa_product_names, "panes": panes,
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return len(header).to_bytes(8, "big") + header + b"".join(segments)


def decode_view(blob: bytes) -> ConsoleData:
    """The rows of a saved view, as a ConsoleData whose plan is still to be restored (`complete`
    False, `restore_plan`). Raises ValueError on anything unexpected."""
    size = int.from_bytes(blob[:8], "big")
    header = json.loads(blob[8:8 + size])
    if header.get("format") != VIEW_FORMAT:
        raise ValueError(f"saved view: unknown format {header.get('format')!r}")
    as_of = date.fromisoformat(header["as_of"])
    invoiced_through = date.fromisoformat(header["invoiced_through"])
    empty = Plan(as_of=as_of, invoiced_through=invoiced_through, lines=[], findings=[],
                 totals={"price": ZERO, "cost": ZERO})
    data = ConsoleData(plan=empty, as_of=as_of, invoiced_through=invoiced_through, psa=header["psa"],
                       complete=False)
    data.company_names = header["company_names"]
    data.psa_companies = [(a, b) for a, b in header["psa_companies"]]
    data.psa_company_names = dict(data.psa_companies)
    data.agreement_names = header["agreement_names"]
    data.psa_products = [(a, b) for a, b in header["psa_products"]]
    data.psa_product_names = header["psa_product_names"]
    offset = 8 + size
    with gc_paused():
        for name, meta in header["panes"].items():
            texts = []
            for length in meta["lengths"]:
                texts.append(blob[offset:offset + length].decode("utf-8"))
                offset += length
            which, _, pane = name.partition(":")
            (data.rows if which == "rows" else data.ignored_rows)[pane] = _decode_rows(meta, texts)
    if offset != len(blob):
        raise ValueError("saved view: trailing bytes")
    return data


def encode_plan(data: ConsoleData) -> bytes:
    """The saved plan of `data`: a JSON header line, then one JSON line per model."""
    plan = data.plan
    groups: dict[str, list[Any]] = {
        "lines": plan.lines, "ignored_lines": plan.ignored_lines, "findings": plan.findings,
        "ignored": list(data.ignored.values()), "psa_lines": list(data.psa_lines.values()),
        "bindings": list(data.bindings.values()),
    }
    header = json.dumps({
        "format": PLAN_FORMAT, "totals": plan.totals.model_dump(mode="json"),
        "counts": {k: len(v) for k, v in groups.items()}, "product_names": data.product_names,
    }, ensure_ascii=False, separators=(",", ":"))
    out = [header.encode("utf-8")]
    for models in groups.values():
        out += [m.model_dump_json().encode("utf-8") for m in models]
    return b"\n".join(out)


def restore_plan(view: ConsoleData, blob: bytes) -> ConsoleData:
    """`view` (decoded by `decode_view`) with its saved plan: a new, complete ConsoleData sharing
    the view's rows. Validated by the engine's models, a few hundred at a time."""
    from pydantic import TypeAdapter

    from engine.plan import Totals
    from engine.scenario import Ignore, ProductBinding, PsaLine

    head, *lines = blob.split(b"\n")
    header = json.loads(head)
    if header.get("format") != PLAN_FORMAT:
        raise ValueError(f"saved plan: unknown format {header.get('format')!r}")
    models = {"lines": PlanLine, "ignored_lines": PlanLine, "findings": Finding, "ignored": Ignore,
              "psa_lines": PsaLine, "bindings": ProductBinding}
    parsed: dict[str, list[Any]] = {}
    at = 0
    with gc_paused():
        for name, model in models.items():
            n = header["counts"][name]
            adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
            items: list[Any] = []
            for start in range(at, at + n, _CHUNK):
                chunk = lines[start:min(start + _CHUNK, at + n)]
                items += adapter.validate_json(b"[" + b",".join(chunk) + b"]")
            if len(items) != n:
                raise ValueError(f"saved plan: {name} truncated")
            parsed[name] = items
            at += n
    if at != len(lines):
        raise ValueError("saved plan: trailing lines")
    plan = Plan(as_of=view.as_of, invoiced_through=view.invoiced_through, lines=parsed["lines"],
                findings=parsed["findings"], totals=Totals.model_validate(header["totals"]))
    plan.ignored_lines = parsed["ignored_lines"]
    data = replace(view, plan=plan, complete=True)
    data.lines = {line.key: line for line in (*plan.lines, *plan.ignored_lines)}
    data.ignored = {i.key: i for i in parsed["ignored"]}
    data.psa_lines = {line.id: line for line in parsed["psa_lines"]}
    data.bindings = {(b.vendor_product_id, b.sub_product or ""): b for b in parsed["bindings"]}
    data.product_names = header["product_names"]
    return data
