"""The reconciliation: scenario in, plan out. The same function serves `trueup plan`, the console
and the sync executor; it is pure (no I/O) and deterministic (same scenario, same plan)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from engine.batch import gc_paused
from engine.plan import KIND_ORDER, Finding, Plan, PlanLine, Totals
from engine.rules.arrears import arrears_lines, usage_summary_lines
from engine.rules.backup import configuration_lines
from engine.rules.commitments import commitment_findings
from engine.rules.context import Target, World, bill_options, option_change
from engine.rules.hints import PlanHints
from engine.rules.leaks import leak_lines
from engine.rules.quota import company_checks, quota_lines
from engine.rules.seats import seat_lines
from engine.scenario import Ignore, Scenario, Subscription, VendorCompany

SEVERITY_ORDER = {"error": 0, "warning": 1}
CENTS_ZERO = Decimal("0.00")


def reconcile(scenario: Scenario, hints: PlanHints | None = None) -> Plan:
    """The plan for a scenario. `hints` come with a scenario read from the store the fast way
    (`Store.plan_inputs`): the plan is the same as for the full scenario."""
    try:
        with gc_paused():
            return _reconcile(scenario, hints)
    finally:
        close = getattr(hints.load_history if hints else None, "close", None)
        if close is not None:
            close()


def _reconcile(scenario: Scenario, hints: PlanHints | None) -> Plan:
    world = World(scenario, hints)
    lines: list[PlanLine] = []
    quota_by_company: dict[str, list[Subscription]] = defaultdict(list)
    for sub in scenario.vendor.subscriptions:
        product = world.products.get(sub.product_id)
        if product is not None and product.kind == "quota" and sub.status == "active":
            quota_by_company[sub.company_id].append(sub)
    # Items billed through a backup billing configuration (RULES.md §7) are billed by that
    # configuration's line, not one by one.
    blocked: set[str] = {
        sid for config in scenario.vendor.billing_configurations for sid in config.subscription_ids
    }
    for company_id, subs in quota_by_company.items():
        blocked |= company_checks(world, company_id, subs)

    # issue 13: only a binding with its own taxable flag or bill option changes the lines it produces
    stated = any(b.taxable is not None or b.bill_option != "billable" for b in scenario.mappings.products)
    for sub in sorted(scenario.vendor.subscriptions, key=lambda s: (s.company_id, s.id)):
        if sub.id in blocked or sub.gone:
            continue  # a subscription gone from the vendor is the leak rules' (engine.rules.leaks)
        company = world.companies.get(sub.company_id)
        if company is not None and company.status == "inactive" and sub.status != "active":
            continue
        produced = _subscription_lines(world, sub)
        lines += _with_bill_options(world, sub, produced) if stated else produced
    for config in scenario.vendor.billing_configurations:
        lines += configuration_lines(world, config)
    # Leaks (issue 14): a vendor price change proposes a price line, a vanished subscription its
    # cancel; a price below cost is a finding.
    lines, leak_findings = leak_lines(
        scenario, lines, company_of=_line_companies(world), blocked=_duplicated(world)
    )
    for leak in leak_findings:
        world.raise_finding(leak.code, leak.subject, leak.message)

    shown, ignored = _apply_ignores(world, lines)
    shown.sort(key=_line_order)
    # Commitment terms (issue 15): judged on the lines the operator will write.
    commitment = commitment_findings(
        scenario, shown, quiet=world.hints.quiet, load_history=world.hints.load_history
    )
    findings = [f for f in [*world.findings, *commitment] if not _finding_ignored(world, f)]
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.code, sorted(f.subject.items())))
    return Plan(
        as_of=scenario.as_of,
        invoiced_through=world.invoiced_through,
        lines=shown,
        findings=findings,
        totals=Totals(
            price=sum((line.total_price for line in shown), CENTS_ZERO),
            cost=sum((line.total_cost for line in shown), CENTS_ZERO),
            ignored=len(ignored),
        ),
        ignored_lines=ignored,
    )


def _subscription_lines(world: World, sub: Subscription) -> list[PlanLine]:
    product = world.products.get(sub.product_id)
    subject = {"subscription_id": sub.id}
    if product is None:
        world.raise_finding(
            "product_not_bound",
            subject,
            f"Subscription {sub.id} refers to an unknown vendor product {sub.product_id}.",
        )
        return []
    if (
        product.kind == "seat"
        and sub.status == "active"
        and not sub.history
        and sub.id not in world.hints.quiet
    ):
        return []  # never ordered: nothing to bill
    duplicates = world.duplicate_lines(sub.id)
    if duplicates:
        # Issue 11: a key held by two PSA lines bills the customer twice; trueup writes nothing
        # more for the subscription (no third line, no update of one of the two) until one goes.
        for key, ids in sorted(duplicates.items()):
            world.raise_finding(
                "duplicate_line",
                {"subscription_id": sub.id, "key": key},
                f"PSA lines {', '.join(ids)} both carry {key}: the customer is billed "
                "twice for it; nothing is written for this subscription until one is ended.",
            )
        return []
    # Checked in the order an operator fixes them: customer, product, agreement (RULES.md §8).
    psa_company_id = world.psa_company_for(sub.company_id)
    if psa_company_id is None:
        return []
    binding = None
    if product.kind == "endpoint_usage":
        if not any(vendor_product == sub.product_id for vendor_product, _ in world.bindings):
            world.binding_for(sub)  # raises product_not_bound
            return []
    else:
        binding = world.binding_for(sub)
        if binding is None:
            return []
    agreement = world.agreement_for(sub.company_id, psa_company_id, sub.billing_term, subject)
    if agreement is None:
        return []
    target = Target(
        world.companies.get(sub.company_id) or VendorCompany(id=sub.company_id, name=sub.company_id),
        psa_company_id,
        agreement,
    )
    if product.kind == "endpoint_usage":
        return arrears_lines(world, sub, target) if sub.status == "active" else []
    if product.kind == "usage_summary":
        return usage_summary_lines(world, sub, target) if sub.status == "active" else []
    if product.kind == "quota":
        return quota_lines(world, sub, target) if sub.status == "active" else []
    assert binding is not None
    quiet_quantity = world.hints.quiet.get(sub.id)
    if quiet_quantity is not None:
        # No unsynced increase and not cancelled: in sync when its PSA line holds the quantity.
        line = world.seat_line(target, binding.psa_product_id, sub.id)
        # issue 13: a line billed otherwise than its binding says is not in sync (seat_lines updates it)
        if (
            line is not None
            and line.quantity == quiet_quantity
            and option_change(world, line, binding) is None
        ):
            return []
        if line is not None:
            world.claimed_lines.discard(line.id)  # seat_lines claims it again, the same way
        assert world.hints.load_history is not None
        sub = sub.model_copy(update={"history": world.hints.load_history(sub.id)})
    price = binding.unit_price if binding.unit_price is not None else sub.unit_price
    cost = binding.unit_cost if binding.unit_cost is not None else sub.unit_cost
    return seat_lines(world, sub, target, binding.psa_product_id, price, cost)


def _with_bill_options(world: World, sub: Subscription, lines: list[PlanLine]) -> list[PlanLine]:
    """Every line a binding produces carries its taxable flag and bill option (issue 13): the
    sub-product's binding, else the product's. Lines of default bindings are left as built."""
    if not lines:
        return lines
    out: list[PlanLine] = []
    for line in lines:
        binding = world.bindings.get((sub.product_id, line.sub_product))
        if binding is None and line.sub_product is not None:
            binding = world.bindings.get((sub.product_id, None))
        if binding is None or (binding.taxable is None and binding.bill_option == "billable"):
            out.append(line)
        else:
            out.append(line.model_copy(update=bill_options(binding)))
    return out


def _line_companies(world: World) -> dict[str, str]:
    """PSA line id → the vendor company its plan lines are listed under: its subscription's, else
    the one vendor company mapped to the agreement's PSA company (else that PSA company's id)."""
    out: dict[str, str] = {}
    for line in world.psa_lines:
        sid = line.source.subscription_id if line.source is not None else None
        if sid is None:
            continue
        sub = world.subscriptions.get(sid)
        if sub is not None:
            out[line.id] = sub.company_id
            continue
        agreement = world.agreements.get(line.agreement_id)
        psa_company = agreement.company_id if agreement is not None else line.agreement_id
        vendors = sorted(world.reverse_company_map.get(psa_company, []))
        out[line.id] = vendors[0] if vendors else psa_company
    return out


def _duplicated(world: World) -> set[str]:
    """Subscriptions a key of which two PSA lines hold: nothing is written for them (issue 11)."""
    return {
        line.source.subscription_id
        for line in world.psa_lines
        if line.source is not None
        and line.source.subscription_id is not None
        and world.duplicate_lines(line.source.subscription_id)
    }


def _line_order(line: PlanLine) -> tuple[str, str, int, date, str]:
    return (
        line.company_id,
        line.subscription_id,
        KIND_ORDER[line.kind],
        line.period_start or date.min,
        line.key,
    )


def _ignore_for(world: World, line: PlanLine) -> Ignore | None:
    return world.ignored.get(line.key) or world.ignored.get(line.subscription_id)


def _apply_ignores(world: World, lines: list[PlanLine]) -> tuple[list[PlanLine], list[PlanLine]]:
    shown: list[PlanLine] = []
    ignored: list[PlanLine] = []
    for line in lines:
        ignore = _ignore_for(world, line)
        if ignore is not None and (
            ignore.mode == "until_restored" or ignore.fingerprint in (None, line.fingerprint)
        ):
            ignored.append(line)
        else:
            shown.append(line)
    return shown, ignored


def _finding_ignored(world: World, finding: Finding) -> bool:
    sub_id = finding.subject.get("subscription_id")
    ignore = world.ignored.get(sub_id) if sub_id else None
    return ignore is not None and ignore.mode == "until_restored"
