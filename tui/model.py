"""What the console shows, computed from a plan and the store's snapshot: plain, frozen rows per
pane. No Textual here, so it can be tested (and reasoned about) without a screen."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.batch import gc_paused
from engine.money import fmt_money, fmt_quantity
from engine.net import (
    Net,
    NetSum,
    by_company,
    credit_of,
    fmt_net,
    fmt_pct,
    line_net,
    nets_by_kind,
    old_line_of,
)
from engine.plan import Finding, LineKind, Plan, PlanLine
from engine.psa import PSAS
from engine.rules.commitments import describe_term
from engine.scrub import clean_scenario
from tui.rows import (  # the rows, light (the first paint needs them)
    CUSTOMER_STATES,
    IGNORED_PREFIX,
    IGNORED_WIDTHS,
    PANE_TITLES,
    ZERO,
    ConsoleData,
    Row,
    column_index,
    product_key,
    row_company,
    rows_of,
    widened,
)
from tui.view import row_widths

# A price line (engine.rules.leaks) is a seat subscription's change too: it is listed with them.
UNSYNCED_KINDS = (
    LineKind.RECURRING,
    LineKind.CANCEL,
    LineKind.PRORATE,
    LineKind.EXTRA_MONTHS,
    LineKind.PRICE,
)
ARREARS_KINDS = (LineKind.ARREARS, LineKind.USAGE_SUMMARY, LineKind.USAGE)
PRORATE_KINDS = (LineKind.PRORATE, LineKind.EXTRA_MONTHS)
USAGE_PRODUCTS = ("endpoint_usage", "usage_summary")


PSA_NAMES: dict[str, str] = {name: psa.display_name for name, psa in PSAS.items()}


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
    return build(scenario, plan, today=today, acknowledged=acknowledged_of(store))


def acknowledged_of(store: Any) -> dict[str, tuple[str, str, str]]:
    """The store's acknowledged warnings (who, when, why) by finding key; none for a store double
    without an audit trail."""
    if not hasattr(store, "session"):
        return {}
    from engine.actions import acknowledgements

    return {k: (a.by, a.at, a.reason) for k, a in acknowledgements(store).items()}


ACK_WHO = 10  # the characters of who acknowledged a warning that the Errors row shows


def ack_state(ack: tuple[str, str, str] | None) -> str:
    """An Errors row's state: "open", or "ack'd by alice 12-01" (month-day, who cut to ACK_WHO: it
    fits the State column at 80 columns; the full who, when and why are in the detail)."""
    if ack is None:
        return "open"
    by, at, _ = ack
    who = by if len(by) <= ACK_WHO else by[: ACK_WHO - 1] + "…"
    return f"ack'd by {who} {at[5:10]}" if len(at) >= 10 else f"ack'd by {who}"


def _short(identifier: str) -> str:
    return identifier[:8] if len(identifier) > 12 else identifier


def _period(line: PlanLine) -> str:
    if line.period_start and line.period_end:
        return f"{line.period_start:%m/%d/%Y}–{line.period_end:%m/%d/%Y}"
    return ""


def _net_of(data: ConsoleData, lines: list[PlanLine]) -> Net:
    """The invoice change of these lines (engine.net), against the PSA lines they change."""
    total = Net()
    for line in lines:
        total += line_net(line, old_line_of(line, data.psa_lines))
    return total


def _money_text(net: Net) -> str:
    """The detail's money: net first, gross last (gross only in the detail)."""
    return (
        f"Net {fmt_net(net.monthly)}/month · one-time {fmt_money(net.one_time)} · "
        f"cost {fmt_net(net.monthly_cost)}/month + {fmt_money(net.one_time_cost)} once · "
        f"margin {fmt_net(net.margin)} ({fmt_pct(net.margin_pct)}) · gross {fmt_money(net.gross)}"
    )


def _product_name(data: ConsoleData, line: PlanLine) -> str:
    """A line's product by name: the subscription's product, else the PSA product it writes
    (backup configurations and quota items are not subscriptions), never a raw id when a name exists."""
    name = data.product_names.get(line.subscription_id)
    if name:
        return name
    return data.psa_product_names.get(line.psa_product_id) or line.description or line.subscription_id


def build(
    scenario: Any,
    plan: Plan,
    today: date | None = None,
    acknowledged: Mapping[str, tuple[str, str, str]] | None = None,
) -> ConsoleData:
    """Every pane's rows, in one linear pass per pane (tens of thousands of frozen rows: the cyclic
    garbage collector is paused meanwhile, as the store's loader does). `acknowledged`: the
    warnings acknowledged, by finding key (`acknowledged_of`)."""
    with gc_paused():
        return _build(scenario, plan, today, acknowledged)


def _build(
    scenario: Any,
    plan: Plan,
    today: date | None,
    acknowledged: Mapping[str, tuple[str, str, str]] | None = None,
) -> ConsoleData:
    data = ConsoleData(plan=plan, as_of=plan.as_of, invoiced_through=plan.invoiced_through)
    data.acknowledged = dict(acknowledged or {})
    data.psa = PSA_NAMES.get(str(scenario.settings.psa), str(scenario.settings.psa))
    data.company_names = {c.id: c.name for c in scenario.vendor.companies}
    data.psa_companies = sorted(
        ((c.id, c.name) for c in scenario.psa.companies), key=lambda c: c[1].casefold()
    )
    data.psa_company_names = dict(data.psa_companies)
    data.agreement_names = {a.id: a.name for a in scenario.psa.agreements}
    data.psa_product_names = {p.id: p.name for p in scenario.psa.products}
    data.psa_lines = {line.id: line for line in scenario.psa.lines}
    products = {p.id: p for p in scenario.vendor.products}
    subs = {s.id: s for s in scenario.vendor.subscriptions}
    data.configuration_companies = {c.id: c.company_id for c in scenario.vendor.billing_configurations}
    data.product_names = {
        s.id: products[s.product_id].name if s.product_id in products else s.product_id
        for s in scenario.vendor.subscriptions
    }
    data.ignored = {i.key: i for i in scenario.ignored}
    data.lines = {line.key: line for line in (*plan.lines, *plan.ignored_lines)}
    # Issue 15: each subscription's commitment term, shown in its detail.
    terms = {
        c.subscription_id: describe_term(c, subs[c.subscription_id].billing_term)
        for c in getattr(scenario.vendor, "commitments", ())
        if c.subscription_id in subs
    }

    def ignore_of(line: PlanLine) -> Any:
        return data.ignored.get(line.key) or data.ignored.get(line.subscription_id)

    def ignore_text(ig: Any) -> str:
        if ig is None:
            return ""
        mode = "until restored" if ig.mode == "until_restored" else "this change only"
        return f"IGNORED by {ig.by} on {ig.on.isoformat()} ({mode}): {ig.reason or 'no reason given'}"

    def line_detail(line: PlanLine) -> str:
        parts = [
            f"{line.description}",
            f"{data.company(line.company_id)} · agreement {data.agreement_names.get(line.psa_agreement_id, line.psa_agreement_id)}"
            f" · {line.action} {line.kind.value} · key {line.key}",
            f"Formula: {line.formula or '—'}",
        ]
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
                old = (
                    fmt_quantity(recurring.previous_quantity)
                    if recurring.previous_quantity is not None
                    else "—"
                )
                new = "0" if recurring.kind == LineKind.CANCEL else fmt_quantity(recurring.quantity)
                change = f"{old} → {new}"
            elif (price := next((x for x in lines if x.kind == LineKind.PRICE), None)) is not None:
                was = price.previous_unit_price
                change = f"price {fmt_money(was) if was is not None else '—'} → {fmt_money(price.unit_price)}"
            else:
                change = "one-time only"
            net = _net_of(data, lines)
            company = data.company(lines[0].company_id)
            state = "ignored" if ignored_pass else "pending"
            detail = "\n".join(
                ([ignore_text(ignore_of(lines[0]))] if ignored_pass else [])
                + [f"{company} · {data.product_names.get(sub_id, '')} · subscription {sub_id}"]
                + ([terms[sub_id]] if sub_id in terms else [])
                + [
                    f"{x.action:<6} {x.kind.value:<12} qty {fmt_quantity(x.quantity):>5}  gross {fmt_money(x.total_price):>10}"
                    f"  from {x.effective_date.isoformat()}  {x.formula}"
                    for x in lines
                ]
                + [_money_text(net)]
            )
            rows.append(
                Row(
                    key=IGNORED_PREFIX + sub_id if ignored_pass else sub_id,
                    cells=(
                        _short(sub_id),
                        company,
                        data.product_names.get(sub_id, sub_id),
                        change,
                        fmt_net(net.monthly),
                        fmt_money(net.one_time),
                        state,
                        fmt_net(net.margin),
                    ),
                    detail=detail,
                    ignored=ignored_pass,
                    line_keys=tuple(x.key for x in lines),
                    editable=any(x.action == "create" for x in lines),
                    company_id=lines[0].company_id,
                )
            )
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
                net = _net_of(data, [line])
                arrears.append(
                    Row(
                        key=line.key,
                        cells=(
                            company,
                            _product_name(data, line)
                            + (f" · {line.sub_product}" if line.sub_product else ""),
                            line.sub_product or "",
                            f"{synced} → {fmt_quantity(line.quantity)}",
                            fmt_net(net.monthly),
                            final,
                            state,
                            _period(line),
                        ),
                        detail=line_detail(line) + "\n" + _money_text(net),
                        ignored=ignored_pass,
                        line_keys=(line.key,),
                        editable=line.action == "create",
                        company_id=line.company_id,
                    )
                )
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
                extra = line.kind == LineKind.EXTRA_MONTHS
                prorates.append(
                    Row(
                        key=line.key,
                        cells=(
                            company,
                            _product_name(data, line),
                            f"extra {line.months} mo" if extra else "prorate",
                            f"+{increase}",
                            fmt_money(line.total_price),
                            "ignored" if ignored_pass else "pending",
                            line.effective_date.isoformat(),
                            during,
                            current_qty,
                            fmt_money(line.unit_price),
                            fmt_money(unit_price),
                            fmt_money(line.unit_cost),
                            fmt_money(unit_cost),
                            synced,
                            line.formula,
                        ),
                        detail=line_detail(line),
                        ignored=ignored_pass,
                        line_keys=(line.key,),
                        editable=line.action == "create",
                        company_id=line.company_id,
                    )
                )
        (data.ignored_rows if ignored_pass else data.rows)["arrears"] = arrears
        # Extra-months lines go apart from the prorates (after them), each customer's rows together:
        # the rows stay in customer order (what the incremental patch splices by).
        prorates.sort(key=_prorates_order)
        (data.ignored_rows if ignored_pass else data.rows)["prorates"] = prorates

    # --- Errors -------------------------------------------------------------------------------------
    vendors_of_psa: dict[str, list[str]] = defaultdict(list)
    for m in scenario.mappings.companies:
        vendors_of_psa[m.psa_id].append(m.vendor_id)
    data.rows["errors"] = _open_first(
        data, [_finding_row(data, f, subs, vendors_of_psa) for f in plan.findings]
    )
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
        if vid and f.code in (
            "duplicate_mapping",
            "no_active_agreement",
            "multiple_active_agreements",
            "billing_period_mismatch",
        ):
            company_errors[vid].append(f)
    agreements_of: dict[str, set[str]] = defaultdict(set)
    for line in (*plan.lines, *plan.ignored_lines):
        agreements_of[line.company_id].add(line.psa_agreement_id)
    customers = []
    nets = by_company(plan.lines, data.psa_lines)
    for c in sorted(scenario.vendor.companies, key=lambda c: c.name.casefold()):
        psa_ids = mapped.get(c.id, [])
        errors = company_errors.get(c.id, [])
        state = "not_mapped" if not psa_ids else "mapping_error" if errors else "mapped"
        status = CUSTOMER_STATES[state]
        psa_name = ", ".join(data.psa_company_names.get(p, p) for p in psa_ids) or "—"
        agreement_ids = sorted(agreements_of.get(c.id, set()))
        agreement = ", ".join(data.agreement_names.get(a, a) for a in agreement_ids) or "—"
        message = "; ".join(f.message for f in errors)
        detail = "\n".join(
            x
            for x in (
                f"{c.name} (vendor id {c.id}, {c.status})",
                f"PSA company: {psa_name}" + (f" (id {', '.join(psa_ids)})" if psa_ids else ""),
                f"Agreement: {agreement}",
                message,
            )
            if x
        )
        customers.append(
            Row(
                key=c.id,
                cells=(
                    c.name,
                    psa_name,
                    status,
                    fmt_net(nets[c.id].monthly) if c.id in nets else "",
                    fmt_money(nets[c.id].one_time) if c.id in nets else "",
                    message or "",
                    agreement,
                ),
                detail=detail + ("\n" + _money_text(nets[c.id]) if c.id in nets else ""),
                company_id=c.id,
                status=state,
            )
        )
    data.rows["customers"] = customers
    data.ignored_rows["customers"] = []

    # --- Products: vendor products (and sub-products) and what they are bound to --------------------
    data.rows["products"] = _product_rows(data, scenario, plan, subs)
    data.ignored_rows["products"] = []

    # --- Overview: the month-end checklist ----------------------------------------------------------
    data.rows["overview"] = _checklist(data, customers, today or plan.as_of)
    data.ignored_rows["overview"] = []
    data.widths = _widths(data)
    return data


def _widths(data: ConsoleData, panes: Iterable[str] | None = None) -> dict[str, list[int]]:
    """Each pane's column widths over its rows, and over its ignored rows (`ConsoleData.widths`:
    `<pane>` and `ignored:<pane>`; these `panes`, or all)."""
    names = set(data.rows) | set(data.ignored_rows) if panes is None else set(panes)
    out = {name: row_widths(data.rows.get(name, ())) for name in names}
    out |= {f"{IGNORED_WIDTHS}{name}": row_widths(data.ignored_rows.get(name, ())) for name in names}
    return out


def _prorates_order(row: Row) -> tuple[str, bool]:
    """The Prorates pane's order, shown and ignored rows alike: each customer's rows together, its
    extra-months lines after its prorates, otherwise in plan order (a stable sort)."""
    return (row.company_id or "", row.cells[_PRORATE_KIND] != "prorate")


_PRORATE_KIND = column_index("prorates", "kind")  # where the Kind column sits in a Prorates row


def _product_rows(data: ConsoleData, scenario: Any, plan: Plan, subs: dict[str, Any]) -> list[Row]:
    subs_of: dict[str, int] = defaultdict(int)
    for sub in scenario.vendor.subscriptions:
        if sub.status == "active":
            subs_of[sub.product_id] += 1
    product_of = {sid: sub.product_id for sid, sub in subs.items()}
    return product_rows(
        data,
        scenario.vendor.products,
        scenario.psa.products,
        scenario.mappings.products,
        subs_of,
        product_of,
        plan.findings,
    )


def product_rows(
    data: ConsoleData,
    products: Any,
    psa_products_: Any,
    bindings: Any,
    subs_of: Mapping[str, int],
    product_of: Mapping[str, str],
    findings: list[Finding],
) -> list[Row]:
    """The Products pane (and the PSA product names it shows): vendor products with their active
    subscriptions (`subs_of`) and the subscriptions waiting for a binding (`product_not_bound`)."""
    psa_products = sorted(psa_products_, key=lambda p: p.name.casefold())
    data.psa_product_names = {p.id: p.name for p in psa_products}
    data.psa_products = [(p.id, f"{p.name} · {p.sku}" if p.sku else p.name) for p in psa_products]
    data.bindings = {(b.vendor_product_id, b.sub_product or ""): b for b in bindings}
    unbound: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        if f.code == "product_not_bound":
            product_id = product_of.get(f.subject.get("subscription_id", ""))
            if product_id is not None:
                unbound[product_id].append(f)

    def bound_to(binding: Any) -> str:
        name = data.psa_product_names.get(binding.psa_product_id, binding.psa_product_id)
        return f"{name} (free)" if binding.free else name

    rows: list[tuple[tuple[int, int, str, str], Row]] = []
    for product in products:
        waiting = unbound.get(product.id, [])
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
            blocked = len(waiting) if sub_product is None else 0
            sku = f", SKU {product.sku}" if product.sku else ""
            detail = [
                f"{product.name}"
                + (f" · sub-product {sub_product}" if sub_product else "")
                + f" (vendor id {product.id}{sku}, {product.kind})",
                f"Bound to: {psa_name}" if own or inherited else "Not bound to a PSA product: b binds it.",
                *[f"{f.message}" for f in waiting[:2]],
            ]
            if len(waiting) > 2:
                detail.append(f"… and {len(waiting) - 2} more subscriptions")
            row = Row(
                key=product_key(product.id, sub_product),
                cells=(
                    product.name,
                    sub_product or "",
                    product.kind,
                    psa_name,
                    str(subs_of.get(product.id, 0)) if sub_product is None else "",
                    str(blocked) if blocked else "",
                    state,
                ),
                detail="\n".join(detail),
            )
            order = (
                0 if blocked else 1,
                0 if state == "NOT BOUND" else 1,
                product.name.casefold(),
                sub_product or "",
            )
            rows.append((order, row))
    rows.sort(key=lambda x: x[0])
    return [r for _, r in rows]


def finding_key(f: Finding) -> str:
    return f.code + "|" + "|".join(f"{k}={v}" for k, v in sorted(f.subject.items()))


def _open_first(data: ConsoleData, rows: list[Row]) -> list[Row]:
    """Errors rows in plan order, the acknowledged ones after the open ones (a stable sort)."""
    acked = data.acknowledged
    if not acked:
        return rows
    return sorted(rows, key=lambda r: r.key in acked)


def _finding_row(
    data: ConsoleData, f: Finding, subs: dict[str, Any], vendors_of_psa: dict[str, list[str]]
) -> Row:
    subject = f.subject
    company_id = subject.get("vendor_company_id")
    sub_id = subject.get("subscription_id")
    if company_id is None and sub_id in subs:
        company_id = subs[sub_id].company_id
    customer = data.company(company_id) if company_id else "—"
    owner = company_id  # the customer whose recompute replaces this row (engine.store.customer_scope)
    if owner is None:
        subject_id = subject.get("configuration_id") or subject.get("key", "").split(":", 1)[0]
        if subject_id in subs:
            owner = subs[subject_id].company_id
        elif subject_id in data.configuration_companies:
            owner = data.configuration_companies[subject_id]
        elif subject.get("psa_company_id") in vendors_of_psa:
            owner = min(vendors_of_psa[subject["psa_company_id"]])
    if company_id is None and owner is not None:
        customer = data.company(owner)  # e.g. price_missing names a billing configuration
    what = ", ".join(f"{k}={_short(v)}" for k, v in sorted(subject.items()))
    severity = "ERROR" if f.severity == "error" else "warning"
    key = finding_key(f)
    ack = data.acknowledged.get(key) if f.severity == "warning" else None
    detail = f"{severity}: {f.message}\nSubject: {what}\nTo clear it: {f.hint or '—'}"
    if ack is not None:
        by, at, why = ack
        detail = f"Acknowledged by {by} at {at[:16].replace('T', ' ')}: {why}\n" + detail
    return Row(
        key=key,
        cells=(severity, f.code, customer, ack_state(ack), what, f.message, f.hint),
        detail=detail,
        company_id=owner,
    )


KindFigures = tuple[int, Decimal, int]  # a line kind's (lines, total price, provisional lines)


def kind_figures(lines: list[PlanLine]) -> dict[LineKind, KindFigures]:
    """Per line kind: how many lines, their total price, how many are provisional (one pass)."""
    out: dict[LineKind, list[Any]] = {}
    for line in lines:
        acc = out.get(line.kind)
        if acc is None:
            acc = out[line.kind] = [0, ZERO, 0]
        acc[0] += 1
        acc[1] += line.total_price
        acc[2] += line.provisional
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def overview_group(kind: LineKind) -> str:
    """The Overview row whose invoice change a line kind counts in."""
    if kind in UNSYNCED_KINDS and not kind.one_time:
        return "unsynced"
    if kind in PRORATE_KINDS:
        return "prorates"
    if kind == LineKind.USAGE_SUMMARY:
        return "summaries"
    return "arrears"


def _checklist(
    data: ConsoleData,
    customers: list[Row],
    today: date,
    kinds: dict[LineKind, KindFigures] | None = None,
    kind_nets: Mapping[LineKind, Net] | None = None,
) -> list[Row]:
    """The Overview. `kinds`, `kind_nets`: the plan's figures and invoice change per line kind
    when known (the incremental plan keeps them per customer: engine.console_core.PlanParts),
    else counted here in one pass over the plan's lines."""
    plan = data.plan
    day = plan.as_of.day
    unmapped = sum(1 for r in customers if r.status == "not_mapped")
    map_errors = sum(1 for r in customers if r.status == "mapping_error")
    unbound = sum(1 for f in plan.findings if f.code == "product_not_bound")
    unsynced = data.rows.get("unsynced", [])
    figures = kinds if kinds is not None else kind_figures(plan.lines)
    none: KindFigures = (0, ZERO, 0)

    def of(*which: LineKind) -> KindFigures:
        parts = [figures.get(k, none) for k in which]
        return (sum(p[0] for p in parts), sum((p[1] for p in parts), ZERO), sum(p[2] for p in parts))

    unsynced_money = of(*UNSYNCED_KINDS)[1]
    per_kind = kind_nets if kind_nets is not None else nets_by_kind(plan.lines, data.psa_lines)
    groups: dict[str, NetSum] = {}
    total = NetSum()
    for kind, kind_net in per_kind.items():
        groups.setdefault(overview_group(kind), NetSum()).add(kind_net)
        total.add(kind_net)
    nets = {group: into.net() for group, into in groups.items()}
    net = total.net()
    credits_due = sum((credit_of(f) for f in plan.findings), ZERO)
    arrears = of(LineKind.ARREARS, LineKind.USAGE)
    summaries = of(LineKind.USAGE_SUMMARY)
    prorates = of(*PRORATE_KINDS)
    errors = [f for f in plan.findings if f.severity == "error"]
    warnings = [f for f in plan.findings if f.severity == "warning"]
    acked = sum(1 for f in warnings if finding_key(f) in data.acknowledged)

    def state(done: bool, waiting: bool = False) -> str:
        return "WAIT" if waiting else ("OK" if done else "TODO")

    items = [
        (
            "unmapped",
            state(unmapped == 0 and map_errors == 0),
            "Customers not mapped",
            f"{unmapped} not mapped, {map_errors} with mapping errors",
            "",
            "customers",
        ),
        ("unbound", state(unbound == 0), "Products not bound", f"{unbound} subscriptions", "", "products"),
        (
            "unsynced",
            state(not unsynced),
            "Unsynced subscriptions",
            f"{len(unsynced)} subscriptions",
            fmt_money(unsynced_money),
            "unsynced",
        ),
        (
            "arrears",
            state(not arrears[0], waiting=day <= 3),
            "Arrears ready (after day 3)",
            f"{arrears[0]} lines" + (" — vendor figures final after the 3rd" if day <= 3 else ""),
            fmt_money(arrears[1]),
            "arrears",
        ),
        (
            "summaries",
            state(not summaries[0], waiting=day <= 5),
            "Usage summaries final (after day 5)",
            f"{summaries[0]} lines, {summaries[2]} provisional",
            fmt_money(summaries[1]),
            "arrears",
        ),
        (
            "prorates",
            state(not prorates[0]),
            "Prorates pending",
            f"{prorates[0]} lines",
            fmt_money(prorates[1]),
            "prorates",
        ),
        (
            "errors",
            state(not errors),
            "Errors",
            f"{len(plan.findings) - acked} open, {acked} acknowledged"
            + f" ({len(errors)} errors, {len(warnings)} warnings)"
            + (f", credits due {fmt_money(credits_due)}" if credits_due else ""),
            "",
            "errors",
        ),
        (
            "total",
            state(not plan.lines),
            "Total to the PSA",
            f"{len(plan.lines)} lines, {plan.totals.ignored} ignored",
            fmt_money(plan.totals.price),
            "unsynced",
        ),
    ]
    total_margin = f"{fmt_net(net.margin)} ({fmt_pct(net.margin_pct)})"
    money_of: dict[str, tuple[str, str, str]] = {
        k: (fmt_net(n.monthly), fmt_money(n.one_time), fmt_money(n.gross)) for k, n in nets.items()
    }
    money_of["total"] = (fmt_net(net.monthly), fmt_money(net.one_time), fmt_money(net.gross))
    rows = []
    for k, s, label, count, gross, target in items:
        monthly, once, gross_text = money_of.get(k, ("", "", gross))
        if k in ("unsynced", "arrears", "summaries", "prorates") and k not in nets:
            monthly, once, gross_text = fmt_net(ZERO), fmt_money(ZERO), gross
        margin = total_margin if k == "total" else ""
        detail = f"{label}: {count}"
        if monthly or once:
            detail += f"\nNet {monthly}/month · one-time {once} · gross {gross_text}"
        if k == "total":
            detail += f" · margin {total_margin} · credits due {fmt_money(credits_due)}"
        rows.append(
            Row(
                key=k,
                cells=(s, label, count, monthly, once, margin),
                target=target,
                detail=detail + f"\nPress enter to open {PANE_TITLES[target]}.",
            )
        )
    return rows


# --- the incremental plan: one group of customers recomputed, their rows patched --------------------


def _splice(rows: list[Row], new: list[Row], companies: set[str]) -> list[Row]:
    """`rows` (in plan order, so each company's rows are one run, companies in id order) with the
    runs of `companies` replaced by their rows in `new`: found by bisection, not a scan."""
    result = list(rows)
    by_company: dict[str, list[Row]] = defaultdict(list)
    for row in new:
        by_company[row_company(row)].append(row)
    for company in sorted(companies):
        lo = bisect_left(result, company, key=row_company)
        hi = bisect_right(result, company, lo=lo, key=row_company)
        result[lo:hi] = by_company.get(company, [])
    return result


def _in_order(rows: list[Row], order: dict[str, int]) -> list[Row]:
    return sorted((r for r in rows if r.key in order), key=lambda r: order[r.key])


def patch(
    shown: ConsoleData,
    scenario: Any,
    part: Plan,
    plan: Plan,
    companies: set[str],
    topology: Any,
    today: date | None,
    kinds: dict[LineKind, KindFigures] | None = None,
    kind_nets: Mapping[LineKind, Net] | None = None,
) -> ConsoleData:
    """`shown` with the rows of `companies` replaced by those of `part` (their plan, reconciled from
    `scenario`, their own), the plan replaced by `plan` (the whole plan, `part` included): the same
    figures a full `build` of the store would give, for the cost of the customers touched.
    `kinds`, `kind_nets`: the whole plan's figures and invoice change per line kind (kept per
    customer by the core), so the Overview is not summed over every line."""
    with gc_paused():
        return _patch(shown, scenario, part, plan, companies, topology, today, kinds, kind_nets)


def _patch(
    shown: ConsoleData,
    scenario: Any,
    part: Plan,
    plan: Plan,
    companies: set[str],
    topology: Any,
    today: date | None,
    kinds: dict[LineKind, KindFigures] | None,
    kind_nets: Mapping[LineKind, Net] | None,
) -> ConsoleData:
    own = _build(scenario, part, today, shown.acknowledged)  # acknowledging reloads everything
    data = replace(
        shown,
        plan=plan,
        rows=dict(shown.rows),
        ignored_rows=dict(shown.ignored_rows),
        saved=False,
        stale=False,
        complete=True,
    )
    for name in ("company_names", "agreement_names", "product_names", "configuration_companies"):
        setattr(data, name, {**getattr(shown, name), **getattr(own, name)})
    data.psa_company_names = {**shown.psa_company_names, **own.psa_company_names}
    data.lines = shown.lines.copy()  # the group's old lines out, its new ones in (copy(): ≈ 3 ms, dict(): 9)
    for key in [
        k
        for r in (
            *rows_of(shown.rows, companies, in_plan_order=True),
            *rows_of(shown.ignored_rows, companies, in_plan_order=False),
        )
        for k in r.line_keys
    ]:
        data.lines.pop(key, None)
    data.lines.update(own.lines)
    company_of = topology.company_of_subject
    data.ignored = {
        k: x
        for k, x in shown.ignored.items()
        if company_of.get(k.split(":", 1)[0]) not in companies
        and (k not in shown.lines or shown.lines[k].company_id not in companies)
    }
    data.ignored.update(own.ignored)
    agreements = {a.id for a in scenario.psa.agreements}
    psa_companies = {p for c in companies for p in topology.psa_of_vendor.get(c, ())}
    data.psa_lines = {
        k: x
        for k, x in shown.psa_lines.items()
        if x.agreement_id not in agreements
        and topology.psa_company_of_agreement.get(x.agreement_id) not in psa_companies
        # a line sourced by one of the group's subscriptions is read with the group (customer_scope)
        and (x.source is None or company_of.get(x.source.subscription_id or "") not in companies)
    }
    data.psa_lines.update(own.psa_lines)

    for pane in ("unsynced", "arrears", "prorates"):
        data.rows[pane] = _splice(shown.rows.get(pane, []), own.rows.get(pane, []), companies)
    positions: dict[str, dict[str, int]] = {"unsynced": {}, "arrears": {}, "prorates": {}}
    for line in plan.ignored_lines:
        if line.kind in UNSYNCED_KINDS:
            positions["unsynced"].setdefault(
                IGNORED_PREFIX + line.subscription_id, len(positions["unsynced"])
            )
        if line.kind in ARREARS_KINDS:
            positions["arrears"].setdefault(line.key, len(positions["arrears"]))
        elif line.kind in PRORATE_KINDS:
            positions["prorates"].setdefault(line.key, len(positions["prorates"]))
    for pane, order in positions.items():
        kept = [r for r in shown.ignored_rows.get(pane, []) if r.company_id not in companies]
        data.ignored_rows[pane] = _in_order(kept + own.ignored_rows.get(pane, []), order)
    data.ignored_rows["prorates"].sort(key=_prorates_order)  # as `build` orders them (a stable sort)

    names = data.company_names
    customers = [r for r in shown.rows.get("customers", []) if r.key not in companies]
    for row in own.rows.get("customers", []):
        insort(customers, row, key=lambda r: (names.get(r.key, r.key).casefold(), r.key))
    data.rows["customers"] = customers

    errors = [r for r in shown.rows.get("errors", []) if r.company_id not in companies]
    data.rows["errors"] = _open_first(
        data,
        _in_order(
            errors + own.rows.get("errors", []), {finding_key(f): i for i, f in enumerate(plan.findings)}
        ),
    )
    data.rows["products"] = product_rows(
        data,
        scenario.vendor.products,
        scenario.psa.products,
        scenario.mappings.products,
        topology.active_by_product,
        topology.product_of_subject,
        plan.findings,
    )
    data.rows["overview"] = _checklist(data, customers, today or plan.as_of, kinds, kind_nets)
    # the customers' new rows widen the columns; the panes rebuilt whole are measured whole
    panes = set(data.rows) | set(data.ignored_rows)
    whole = {"products", "overview"} | {n for n in panes if n not in shown.widths}
    own_widths = _widths(own, panes - whole)
    data.widths = {
        **{n: widened(shown.widths.get(n), w) for n, w in own_widths.items()},
        **_widths(data, whole),
    }
    return data


class ConsoleView:
    """The rows and the saved-state codec, as `engine.console_core.View` asks for them."""

    @property
    def code_files(self) -> tuple[Path, ...]:
        from tui.launch import VIEW_FILES

        return VIEW_FILES

    @property
    def not_saveable(self) -> type[Exception]:
        from tui.saved_view import NotSaveable

        return NotSaveable

    def load(self, store: Any, as_of: date | None, today: date) -> ConsoleData:
        return load(store, as_of, today=today)

    def patch(
        self,
        shown: ConsoleData,
        scenario: Any,
        part: Plan,
        plan: Plan,
        companies: set[str],
        topology: Any,
        today: date | None,
        kinds: Any = None,
        nets: Mapping[LineKind, Net] | None = None,
    ) -> ConsoleData:
        return patch(shown, scenario, part, plan, companies, topology, today, kinds, nets)

    def encode_view(self, data: ConsoleData) -> bytes:
        from tui.saved_view import encode_view

        return encode_view(data)

    def decode_view(self, blob: bytes) -> ConsoleData:
        from tui.saved_view import decode_view

        return decode_view(blob)

    def encode_plan(self, data: ConsoleData) -> bytes:
        from tui.saved_view import encode_plan

        return encode_plan(data)

    def restore_plan(self, view: ConsoleData, blob: bytes) -> ConsoleData:
        from tui.saved_view import restore_plan

        return restore_plan(view, blob)


VIEW = ConsoleView()
