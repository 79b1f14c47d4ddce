"""Arrears subscriptions (RULES.md §5): multi-product endpoint counts and usage summaries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from engine.keys import PlanKey
from engine.money import fmt_money, fmt_quantity
from engine.months import add_months, first_of_month, last_of_month, month_key
from engine.plan import LineKind, PlanLine
from engine.rules.context import Target, World, money_line, option_change
from engine.scenario import Subscription, UsageRow

ENDPOINT_AVAILABLE_DAY = 3  # billable lines for month M exist from day 3 of M+1
SUMMARY_FINAL_DAY = 5  # usage summaries for month M are final from day 5 of M+1
NO_SUB_PRODUCT = "default"


def latest_endpoint_period(as_of: date) -> date:
    """First day of the latest month whose billable endpoint counts are available on `as_of`."""
    months_back = 1 if as_of.day >= ENDPOINT_AVAILABLE_DAY else 2
    return add_months(first_of_month(as_of), -months_back)


def summary_period(as_of: date) -> tuple[date, bool]:
    """The usage-summary month billed on `as_of` (the previous month) and whether it is final."""
    return add_months(first_of_month(as_of), -1), as_of.day >= SUMMARY_FINAL_DAY


def arrears_lines(world: World, sub: Subscription, target: Target) -> list[PlanLine]:
    product = world.products[sub.product_id]
    period = latest_endpoint_period(world.as_of)
    period_key = month_key(period)
    rows = [r for r in world.usage.get(sub.id, []) if r.period == period_key]
    if not rows:
        world.raise_finding(
            "usage_pending",
            {"subscription_id": sub.id},
            f"{target.company.name} / {product.name}: no billable endpoint counts for {period_key} yet "
            f"(available from day {ENDPOINT_AVAILABLE_DAY} of the next month).",
        )
        return []
    agreement = target.agreement
    lines: list[PlanLine] = []
    seen: set[str | None] = set()
    by_sub_product: dict[str | None, UsageRow] = {}
    for row in rows:
        by_sub_product[row.sub_product] = row  # one row per sub-product and period (scenarios refuse repeats)
    for sub_product in sorted(by_sub_product, key=lambda s: s or ""):
        row = by_sub_product[sub_product]
        seen.add(sub_product)
        binding = world.binding_for(sub, sub_product)
        if binding is None:
            continue
        existing = world.claim_line(
            world.active_lines(agreement.id, binding.psa_product_id), sub.id, sub_product
        )
        label = sub_product or NO_SUB_PRODUCT
        key = PlanKey.arrears(sub.id, label).format()
        description = world.line_description(product, f" {sub_product}" if sub_product else "")
        common: dict[str, Any] = dict(
            key=key,
            kind=LineKind.ARREARS,
            subscription_id=sub.id,
            company_id=sub.company_id,
            psa_agreement_id=agreement.id,
            psa_product_id=binding.psa_product_id,
            sub_product=sub_product,
            period_start=period,
            period_end=last_of_month(period),
        )
        if existing is not None:
            options = option_change(world, existing, binding)  # issue 13: billed otherwise than bound
            if existing.quantity == row.quantity and options is None:
                continue
            lines.append(
                money_line(
                    **common,
                    **(options.fields if options else {}),
                    action="update",
                    psa_line_id=existing.id,
                    description=existing.description or description,
                    quantity=row.quantity,
                    unit_price=existing.unit_price,
                    unit_cost=existing.unit_cost,
                    effective_date=existing.effective_date,
                    end_date=None,
                    previous_quantity=existing.quantity,
                    formula=f"{period_key} snapshot {row.snapshot_date or ''}: {fmt_quantity(existing.quantity)} → "
                    f"{fmt_quantity(row.quantity)} × {fmt_money(existing.unit_price)}".replace("  ", " ")
                    + (f"; {options.note}" if options else ""),
                )
            )
        else:
            price = binding.unit_price if binding.unit_price is not None else row.unit_price
            cost = binding.unit_cost if binding.unit_cost is not None else row.unit_cost
            lines.append(
                money_line(
                    **common,
                    action="create",
                    description=description,
                    quantity=row.quantity,
                    unit_price=price,
                    unit_cost=cost,
                    effective_date=sub.start_date,
                    end_date=None,
                    formula=f"{period_key} snapshot: {fmt_quantity(row.quantity)} × {fmt_money(price)}",
                )
            )
    # A sub-product whose line exists but that has no count this period has dropped to zero.
    for line in world.lines_by_agreement.get(agreement.id, []):
        source = line.source
        if (
            source is None
            or source.subscription_id != sub.id
            or source.sub_product in seen
            or line.kind != "recurring"
            or line.quantity == 0
            or (line.cancelled_date is not None and line.cancelled_date <= world.month_end)
        ):
            continue
        label = source.sub_product or NO_SUB_PRODUCT
        lines.append(
            money_line(
                key=PlanKey.arrears(sub.id, label).format(),
                kind=LineKind.ARREARS,
                action="update",
                subscription_id=sub.id,
                company_id=sub.company_id,
                psa_agreement_id=agreement.id,
                psa_product_id=line.product_id,
                psa_line_id=line.id,
                sub_product=source.sub_product,
                description=line.description or world.line_description(product, f" {label}"),
                quantity=Decimal(0),
                unit_price=line.unit_price,
                unit_cost=line.unit_cost,
                effective_date=line.effective_date,
                end_date=None,
                previous_quantity=line.quantity,
                period_start=period,
                period_end=last_of_month(period),
                formula=f"{period_key}: no endpoints reported → 0",
            )
        )
    return lines


def usage_summary_lines(world: World, sub: Subscription, target: Target) -> list[PlanLine]:
    product = world.products[sub.product_id]
    period, final = summary_period(world.as_of)
    period_key = month_key(period)
    rows = [r for r in world.usage.get(sub.id, []) if r.period == period_key]
    label = f"{target.company.name} / {product.name}"
    if not rows:
        world.raise_finding(
            "usage_pending",
            {"subscription_id": sub.id},
            f"{label}: no usage summary for {period_key} yet.",
        )
        return []
    if not final:
        world.raise_finding(
            "usage_pending",
            {"subscription_id": sub.id},
            f"{label}: {period_key} figures are provisional until day {SUMMARY_FINAL_DAY} of the next month.",
        )
    row = rows[-1]
    charges = row.charges if row.charges is not None else row.quantity * row.unit_price
    partner_total = row.partner_total if row.partner_total is not None else row.quantity * row.unit_cost
    binding = world.binding_for(sub)
    if binding is None:
        return []
    agreement = target.agreement
    existing = world.claim_line(world.active_lines(agreement.id, binding.psa_product_id), sub.id)
    one = Decimal(1)
    common: dict[str, Any] = dict(
        key=PlanKey.usage_summary(sub.id).format(),
        kind=LineKind.USAGE_SUMMARY,
        subscription_id=sub.id,
        company_id=sub.company_id,
        psa_agreement_id=agreement.id,
        psa_product_id=binding.psa_product_id,
        quantity=one,
        unit_price=charges,
        unit_cost=partner_total,
        period_start=period,
        period_end=last_of_month(period),
        provisional=not final,
        formula=f"{period_key}: charges {fmt_money(charges)}, partner total {fmt_money(partner_total)}"
        + ("" if final else " (provisional)"),
    )
    description = world.line_description(product) + " (Usage Summary)"
    if existing is not None:
        options = option_change(world, existing, binding)  # issue 13: billed otherwise than bound
        if (
            existing.quantity == one
            and existing.unit_price == charges
            and existing.unit_cost == partner_total
            and options is None
        ):
            return []
        if options is not None:
            common = {**common, **options.fields, "formula": f"{common['formula']}; {options.note}"}
        return [
            money_line(
                **common,
                action="update",
                psa_line_id=existing.id,
                description=existing.description or description,
                effective_date=existing.effective_date,
                end_date=None,
                previous_quantity=existing.quantity,
            )
        ]
    return [
        money_line(
            **common, action="create", description=description, effective_date=sub.start_date, end_date=None
        )
    ]
