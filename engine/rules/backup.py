"""Billing configurations for backup statistics (RULES.md §7, seed 002): several licences or
storage items of one customer billed as one line — average, total or quantity only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.keys import PlanKey
from engine.money import fmt_money, fmt_quantity, round_cents
from engine.plan import LineKind, PlanLine
from engine.rules.context import World, bill_options, money_line
from engine.rules.quota import latest_usage
from engine.scenario import BillingConfiguration

STORAGE = ("backup_storage", "geo_redundancy")
ZERO = Decimal(0)


def configuration_lines(world: World, config: BillingConfiguration) -> list[PlanLine]:
    subject = {"configuration_id": config.id}
    subs = [world.subscriptions[s] for s in config.subscription_ids if s in world.subscriptions]
    missing = [s for s in config.subscription_ids if s not in world.subscriptions]
    name = (
        f"{world.companies[config.company_id].name if config.company_id in world.companies else config.company_id}"
        f" / {config.name}"
    )
    if missing:
        world.raise_finding(
            "billing_mode_invalid", subject, f"{name}: unknown subscriptions {', '.join(missing)}."
        )
        return []
    services = {world.products[s.product_id].service for s in subs if s.product_id in world.products}
    if services & set(STORAGE) and (services - set(STORAGE)) and config.mode != "total":
        world.raise_finding(
            "billing_mode_invalid",
            subject,
            f"{name}: licences and storage are mixed, so only the 'total' mode is possible (not '{config.mode}').",
        )
        return []
    target = world.target_for(config.company_id, "monthly", subject)
    if target is None:
        return []
    terms: dict[str, Any] = {}
    if config.psa_product_id is not None:
        psa_product_id = config.psa_product_id
    else:
        binding = world.binding_for(subs[0])
        if binding is None:
            return []
        psa_product_id = binding.psa_product_id
        terms = bill_options(binding)  # issue 13: the line the binding produces carries them

    quantity = price_sum = cost_sum = ZERO
    for sub in subs:
        usage = latest_usage(world, sub) or ZERO
        rows = world.usage.get(sub.id, [])
        row = max(rows, key=lambda r: r.period) if rows else None
        price = row.unit_price if row else sub.unit_price
        cost = row.unit_cost if row else sub.unit_cost
        if config.mode != "quantity_only" and (price == 0 or cost == 0):
            what = " and ".join(w for w, v in (("price", price), ("cost", cost)) if v == 0)
            world.raise_finding(
                "price_missing",
                {"configuration_id": config.id, "subscription_id": sub.id},
                f"{name}: {world.products[sub.product_id].name} has no {what} configured; 0 is used.",
            )
        quantity += usage
        price_sum += usage * price
        cost_sum += usage * cost

    agreement = target.agreement
    existing = world.claim_line(world.active_lines(agreement.id, psa_product_id), config.id)
    if config.mode == "average":
        line_qty = quantity
        unit_price = round_cents(price_sum / quantity) if quantity else ZERO
        unit_cost = round_cents(cost_sum / quantity) if quantity else ZERO
        how = f"{fmt_quantity(quantity)} licences at the average {fmt_money(unit_price)}"
    elif config.mode == "total":
        line_qty = Decimal(1)
        unit_price, unit_cost = round_cents(price_sum), round_cents(cost_sum)
        how = f"total of {fmt_quantity(quantity)} units: {fmt_money(unit_price)}"
    else:
        line_qty = quantity
        if existing is not None:
            unit_price, unit_cost = existing.unit_price, existing.unit_cost
        else:
            product = world.psa_products.get(psa_product_id)
            unit_price = product.unit_price if product and product.unit_price is not None else ZERO
            unit_cost = product.unit_cost if product and product.unit_cost is not None else ZERO
            if unit_price == 0:
                world.raise_finding(
                    "price_missing",
                    {"configuration_id": config.id},
                    f"{name}: the PSA product has no price; 0 is used.",
                )
        how = f"quantity only: {fmt_quantity(quantity)}"
    common: dict[str, Any] = dict(
        key=PlanKey.usage(config.id).format(),
        kind=LineKind.USAGE,
        subscription_id=config.id,
        company_id=config.company_id,
        psa_agreement_id=agreement.id,
        psa_product_id=psa_product_id,
        quantity=line_qty,
        unit_price=unit_price,
        unit_cost=unit_cost,
        formula=how,
        **terms,
    )
    if existing is not None:
        if (existing.quantity, existing.unit_price, existing.unit_cost) == (line_qty, unit_price, unit_cost):
            return []
        return [
            money_line(
                **common,
                action="update",
                psa_line_id=existing.id,
                description=existing.description or config.name,
                effective_date=existing.effective_date,
                end_date=None,
                previous_quantity=existing.quantity,
            )
        ]
    return [
        money_line(
            **common,
            action="create",
            description=world.description(config.name),
            effective_date=world.first_unbilled,
            end_date=None,
        )
    ]
