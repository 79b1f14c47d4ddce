"""Quota products and their billing modes (RULES.md §6, seed 004), with the checks Acronis makes
on a customer's offering items (mixed editions, storage locations, geo-redundancy)."""

from __future__ import annotations

from decimal import Decimal

from engine.keys import PlanKey
from engine.money import fmt_money, fmt_quantity
from engine.plan import LineKind, PlanLine
from engine.rules.context import Target, World, money_line
from engine.scenario import Subscription, VendorProduct

EDITION_PREFIXES = {"pw": "per workload", "pg": "per gigabyte"}


def edition_of(product: VendorProduct) -> str | None:
    if product.edition:
        return product.edition
    prefix = (product.sku or "").split("-", 1)[0].lower()
    return EDITION_PREFIXES.get(prefix)


def latest_usage(world: World, sub: Subscription) -> Decimal | None:
    current = f"{world.as_of.year:04d}-{world.as_of.month:02d}"
    rows = [r for r in world.usage.get(sub.id, []) if r.period <= current]
    if not rows:
        return None
    latest = max(r.period for r in rows)
    return [r for r in rows if r.period == latest][-1].quantity


def company_checks(world: World, company_id: str, subs: list[Subscription]) -> set[str]:
    """Customer-level errors; returns the subscriptions they block."""
    blocked: set[str] = set()
    billed = [s for s in subs if (b := world.bindings.get((s.product_id, None))) is not None and not b.free]
    editions = {e for s in billed if (e := edition_of(world.products[s.product_id]))}
    name = world.companies[company_id].name if company_id in world.companies else company_id
    if len(editions) > 1:
        world.raise_finding(
            "mixed_editions",
            {"vendor_company_id": company_id},
            f"{name}: offering items from several editions ({', '.join(sorted(editions))}); "
            "Cannot enable offering items from multiple editions simultaneously.",
        )
        blocked |= {s.id for s in billed}
    locations: dict[str, set[str]] = {}
    for s in subs:
        product = world.products[s.product_id]
        if product.service in ("backup_storage", "disaster_recovery") and product.storage_location:
            locations.setdefault(product.service, set()).add(product.storage_location)
    backup, dr = locations.get("backup_storage", set()), locations.get("disaster_recovery", set())
    if backup and dr and backup != dr:
        world.raise_finding(
            "locations_differ",
            {"vendor_company_id": company_id},
            f"{name}: Mapping failed. Backup and/or Disaster Recovery offering items are at different locations "
            f"(backup: {', '.join(sorted(backup))}; disaster recovery: {', '.join(sorted(dr))}).",
        )
        blocked |= {s.id for s in subs if world.products[s.product_id].service == "disaster_recovery"}
    return blocked


def quota_lines(world: World, sub: Subscription, target: Target) -> list[PlanLine]:
    product = world.products[sub.product_id]
    label = f"{target.company.name} / {product.name}"
    binding = world.binding_for(sub)
    if binding is None or binding.free:
        return []  # free items are never reported
    agreement = target.agreement
    lines = world.active_lines(agreement.id, binding.psa_product_id)
    if product.service == "geo_redundancy" and lines and product.parent_product_id:
        parent = world.bindings.get((product.parent_product_id, None))
        if parent is None or not world.active_lines(agreement.id, parent.psa_product_id):
            world.raise_finding(
                "geo_redundancy_without_parent",
                {"subscription_id": sub.id},
                f"{label}: the agreement bills geo-redundant storage but not its parent storage item.",
            )
            return []
    if not lines:
        world.raise_finding(
            "no_product_to_sync",
            {"subscription_id": sub.id},
            f"{label}: No product to sync — the agreement '{agreement.name}' has no line for "
            f"{world.psa_products[binding.psa_product_id].name if binding.psa_product_id in world.psa_products else binding.psa_product_id}.",
        )
        return []
    prepaid = [line for line in lines if not line.metered]
    metered = [line for line in lines if line.metered]
    if not metered:
        return []  # hard quota: the prepaid quantity stays
    usage = latest_usage(world, sub)
    if usage is None:
        world.raise_finding("usage_pending", {"subscription_id": sub.id}, f"{label}: no usage reported yet.")
        return []
    line = max(metered, key=lambda x: (x.effective_date, x.id))
    quota = sum((p.quantity for p in prepaid), Decimal(0))
    if prepaid:
        quantity = usage - quota if usage > quota else Decimal(0)
        how = (
            f"usage {fmt_quantity(usage)} − prepaid {fmt_quantity(quota)}"
            if usage > quota
            else f"usage {fmt_quantity(usage)} within prepaid {fmt_quantity(quota)}"
        )
    else:
        quantity = usage
        how = f"usage {fmt_quantity(usage)}"
    if line.quantity == quantity:
        return []
    return [
        money_line(
            key=PlanKey.usage(sub.id).format(),
            kind=LineKind.USAGE,
            action="update",
            subscription_id=sub.id,
            company_id=sub.company_id,
            psa_agreement_id=agreement.id,
            psa_product_id=binding.psa_product_id,
            psa_line_id=line.id,
            description=line.description or world.line_description(product),
            quantity=quantity,
            unit_price=line.unit_price,
            unit_cost=line.unit_cost,
            effective_date=line.effective_date,
            end_date=None,
            previous_quantity=line.quantity,
            formula=f"{how} = {fmt_quantity(quantity)} × {fmt_money(line.unit_price)}",
        )
    ]
