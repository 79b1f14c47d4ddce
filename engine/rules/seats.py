"""Seat subscriptions: the recurring line (§1), prorates (§2), extra months (§3), cancellation (§4)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from engine.keys import PlanKey
from engine.money import fmt_money, fmt_quantity
from engine.months import first_of_month, last_of_month, month_key, next_day, us_date
from engine.plan import LineKind, PlanLine
from engine.rules.context import Target, World, money_line, option_change
from engine.rules.extra_months import gap_runs
from engine.rules.prorates import factor, factor_text, formula, prorate_unit, prorated_increases
from engine.rules.quantities import Timeline
from engine.scenario import ProductBinding, PsaLine, Subscription

ZERO = Decimal(0)


def cancellation_date(sub: Subscription) -> date | None:
    """When the vendor's cancellation takes effect, if the subscription is cancelled."""
    cancel_rows = [r.effective_date for r in sub.history if r.action == "cancel"]
    if sub.status != "cancelled" and not cancel_rows:
        return None
    if sub.cancelled_date is not None:
        return sub.cancelled_date
    if cancel_rows:
        return max(cancel_rows)
    return sub.end_date or sub.start_date


def seat_lines(
    world: World,
    sub: Subscription,
    target: Target,
    psa_product_id: str,
    unit_price: Decimal,
    unit_cost: Decimal,
) -> list[PlanLine]:
    product = world.products[sub.product_id]
    timeline = Timeline(sub.history, until=world.as_of)
    cancelled_on = cancellation_date(sub)
    agreement = target.agreement
    existing = world.seat_line(target, psa_product_id, sub.id)
    if existing is None and cancelled_on is not None:
        # A cancelled line may already carry a cancelled date this month or earlier.
        existing = world.claim_line(
            [
                line
                for line in world.lines_by_agreement.get(agreement.id, [])
                if line.product_id == psa_product_id and line.kind == "recurring"
            ],
            sub.id,
        )
    generated = world.line_description(product)
    base_description = existing.description if existing is not None and existing.description else generated
    common: dict[str, Any] = dict(
        subscription_id=sub.id,
        company_id=sub.company_id,
        psa_agreement_id=existing.agreement_id if existing is not None else agreement.id,
        psa_product_id=psa_product_id,
    )
    lines: list[PlanLine] = []
    e = world.first_unbilled

    # --- §4 cancellation, else §1 the recurring line -----------------------------------------------
    if cancelled_on is not None:
        lines += _cancel_line(world, sub, existing, cancelled_on, common, base_description)
    else:
        recurring = _recurring_line(
            world,
            sub,
            existing,
            timeline.current,
            unit_price,
            unit_cost,
            common,
            generated,
            world.bindings.get((sub.product_id, None)),
        )
        if recurring is not None:
            lines.append(recurring)

    if sub.billing_term != "monthly":
        return lines

    # --- §2 prorates for unsynced increases up to invoiced_through ---------------------------------
    counts_day = world.settings.prorate_counts_change_day
    unsynced_increase_days: list[date] = []
    zero_prorates: list[str] = []  # RULES.md §2: not plan lines; recorded with the recurring update
    for item in prorated_increases(timeline, thresholds=world.settings.threshold_prorates):
        day = item.change.on
        key = PlanKey.prorate(sub.id, day).format()
        if day > world.invoiced_through or world.is_synced(key):
            continue
        unsynced_increase_days.append(day)
        share = factor(day, counts_change_day=counts_day)
        unit_p = prorate_unit(unit_price, share)
        unit_c = prorate_unit(unit_cost, share)
        effective = world.effective_override(key, e)
        period_end = last_of_month(day)
        prorate = money_line(
            key=key,
            kind=LineKind.PRORATE,
            action="create",
            **common,
            description=f"{base_description} - Prorated for {us_date(day)}-{us_date(period_end)}",
            quantity=item.quantity,
            unit_price=unit_p,
            unit_cost=unit_c,
            effective_date=effective,
            end_date=last_of_month(effective),
            period_start=day,
            period_end=period_end,
            formula=formula(unit_price, factor_text(day, counts_change_day=counts_day), unit_p, item.quantity)
            + (
                ""
                if item.quantity == item.change.after - item.change.before
                else f" (threshold: {fmt_quantity(item.change.after - item.change.before)} added, "
                f"{fmt_quantity(item.quantity)} above the month's high-water mark)"
            ),
        )
        if prorate.record_only:
            zero_prorates.append(key)
        else:
            lines.append(prorate)

    # --- §3 extra months already invoiced at the old quantity --------------------------------------
    if unsynced_increase_days:
        billed = existing.quantity if existing is not None else ZERO
        runs = gap_runs(
            timeline,
            earliest_change=min(unsynced_increase_days),
            first_unbilled=e,
            billed=billed,
            until=first_of_month(cancelled_on) if cancelled_on else None,
        )
        credit_notes: list[str] = []
        credit_total = ZERO
        for run in runs:
            if run.gap < 0:
                amount = -run.gap * unit_price * run.months
                credit_total += amount
                credit_notes.append(
                    f"{fmt_quantity(-run.gap)} × {run.months} month(s) from {month_key(run.first_month)}"
                )
                continue
            key = PlanKey.extra_months(sub.id, run.first_month).format()
            if world.is_synced(key):
                continue
            effective = world.effective_override(key, e)
            period_end = last_of_month(run.last_month)
            lines.append(
                money_line(
                    key=key,
                    kind=LineKind.EXTRA_MONTHS,
                    action="create",
                    **common,
                    description=f"{base_description} - Extra months {us_date(run.first_month)}-{us_date(period_end)}",
                    quantity=run.gap,
                    unit_price=unit_price,
                    unit_cost=unit_cost,
                    months=run.months,
                    effective_date=effective,
                    end_date=last_of_month(effective),
                    period_start=run.first_month,
                    period_end=period_end,
                    formula=f"{fmt_quantity(run.gap)} × {fmt_money(unit_price)} × {run.months} month(s) invoiced "
                    f"at {fmt_quantity(billed)} instead of {fmt_quantity(billed + run.gap)}",
                )
            )
        if credit_notes:
            world.raise_finding(
                "credit_due",
                {"subscription_id": sub.id},
                f"{target.company.name} / {product.name}: invoiced more than was in force "
                f"({'; '.join(credit_notes)}): {fmt_money(credit_total)} to credit.",
            )
    _decrease_credit(world, sub, existing, timeline, unit_price, target, product.name, lines)
    if zero_prorates:
        _carry_zero_prorates(lines, zero_prorates)
    return lines


def _carry_zero_prorates(lines: list[PlanLine], keys: list[str]) -> None:
    """A zero-value prorate writes nothing; its key is recorded as synced when the change's
    recurring update is written (else the change's first other line). With no line to carry it,
    nothing is written for the change and the key stays unrecorded (RULES.md §2)."""
    order = (LineKind.RECURRING, LineKind.EXTRA_MONTHS, LineKind.PRORATE, LineKind.CANCEL)
    for kind in order:
        for index, line in enumerate(lines):
            if line.kind is kind:
                lines[index] = line.model_copy(update={"records": (*line.records, *keys)})
                return


def _recurring_line(
    world: World,
    sub: Subscription,
    existing: PsaLine | None,
    quantity: Decimal,
    unit_price: Decimal,
    unit_cost: Decimal,
    common: dict[str, Any],
    description: str,
    binding: ProductBinding | None,
) -> PlanLine | None:
    key = PlanKey.recurring(sub.id).format()
    override = world.overrides.get(key)
    create_new = override is not None and override.create_new and existing is not None
    if existing is not None and not create_new:
        # issue 13: a line holding the right quantity but billed otherwise than its binding says
        options = option_change(world, existing, binding)
        if existing.quantity == quantity and options is None:
            return None  # in sync
        # the same quantity billed otherwise: "34 × $12.50; bill option …"; else "33 → 34 × $12.50"
        change = (
            fmt_quantity(quantity)
            if existing.quantity == quantity
            else f"{fmt_quantity(existing.quantity)} → {fmt_quantity(quantity)}"
        )
        return money_line(
            key=key,
            kind=LineKind.RECURRING,
            action="update",
            **common,
            psa_line_id=existing.id,
            description=existing.description or description,
            quantity=quantity,
            unit_price=existing.unit_price,
            unit_cost=existing.unit_cost,
            effective_date=existing.effective_date,
            end_date=None,
            previous_quantity=existing.quantity,
            **(options.fields if options else {}),
            formula=f"{change} × {fmt_money(existing.unit_price)}" + (f"; {options.note}" if options else ""),
        )
    if quantity <= 0:
        return None
    effective = world.effective_override(key, world.first_unbilled)
    return money_line(
        key=key,
        kind=LineKind.RECURRING,
        action="create",
        **common,
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        unit_cost=unit_cost,
        effective_date=effective,
        end_date=None,
        replaces_line_id=existing.id if create_new and existing is not None else None,
        previous_quantity=existing.quantity if create_new and existing is not None else None,
        formula=f"{fmt_quantity(quantity)} × {fmt_money(unit_price)}"
        + (f"; line {existing.id} gets cancelled on the day before" if create_new and existing else ""),
    )


def _cancel_line(
    world: World,
    sub: Subscription,
    existing: PsaLine | None,
    cancelled_on: date,
    common: dict[str, Any],
    description: str,
) -> list[PlanLine]:
    if existing is None:
        return []
    end = last_of_month(cancelled_on)
    if existing.cancelled_date is not None and existing.cancelled_date <= end:
        return []  # already ends on (or before) the date the cancellation calls for
    if world.invoiced_through > end:
        months = len(_invoiced_months_after(end, world.invoiced_through))
        amount = existing.quantity * existing.unit_price * months
        world.raise_finding(
            "credit_due",
            {"subscription_id": sub.id},
            f"{world.companies[sub.company_id].name if sub.company_id in world.companies else sub.company_id}: "
            f"cancelled on {cancelled_on.isoformat()} but invoiced through {world.invoiced_through.isoformat()}: "
            f"{fmt_quantity(existing.quantity)} × {fmt_money(existing.unit_price)} × {months} month(s) = "
            f"{fmt_money(amount)} to credit.",
        )
    return [
        money_line(
            key=PlanKey.cancel(sub.id).format(),
            kind=LineKind.CANCEL,
            action="cancel",
            **common,
            psa_line_id=existing.id,
            description=existing.description or description,
            quantity=existing.quantity,
            unit_price=existing.unit_price,
            unit_cost=existing.unit_cost,
            effective_date=existing.effective_date,
            end_date=end,
            previous_quantity=existing.quantity,
            formula=f"cancelled {cancelled_on.isoformat()}: line ends {end.isoformat()}",
        )
    ]


def _decrease_credit(
    world: World,
    sub: Subscription,
    existing: PsaLine | None,
    timeline: Timeline,
    unit_price: Decimal,
    target: Target,
    product_name: str,
    lines: list[PlanLine],
) -> None:
    """A pending decrease whose months were already invoiced at the higher billed quantity."""
    if existing is None or timeline.current >= existing.quantity:
        return
    if not any(line.kind is LineKind.RECURRING and line.action == "update" for line in lines):
        return
    decreases = [c for c in timeline.changes if c.is_decrease and c.on <= world.invoiced_through]
    if not decreases:
        return
    last = decreases[-1]
    months = _invoiced_months_after(last.on, world.invoiced_through)
    over = [(m, existing.quantity - timeline.at(m)) for m in months if existing.quantity > timeline.at(m)]
    if not over:
        return
    amount = sum((q * unit_price for _, q in over), ZERO)
    world.raise_finding(
        "credit_due",
        {"subscription_id": sub.id},
        f"{target.company.name} / {product_name}: decreased to {fmt_quantity(timeline.current)} on "
        f"{last.on.isoformat()}, but {len(over)} month(s) were invoiced at {fmt_quantity(existing.quantity)}: "
        f"{fmt_money(amount)} to credit.",
    )


def _invoiced_months_after(day: date, through: date) -> list[date]:
    """First days of the months after `day`'s month, up to `through`'s month."""
    out = []
    cursor = next_day(last_of_month(day))
    while cursor <= through:
        out.append(cursor)
        cursor = next_day(last_of_month(cursor))
    return out
