"""Rules for the money leaks (issue 14), in the style of shared/RULES.md. Ours; tests/margin/
test_leak_rules.py and tests/engine/test_leaks_plan.py hold each. They read the scenario (what the
vendor says now, what the PSA holds), raise findings into the plan, and propose plan lines that the
sync writes like any other (journaled, idempotent; engine.sync.executor).

For every recurring PSA line not cancelled before the end of as_of's month that carries a vendor
subscription (its source; a backup billing configuration's line is no subscription's):
1. **vendor_subscription_gone** (error) — the subscription is absent from the vendor (deleted: the
   store keeps it marked `gone` when a refresh no longer lists it), or cancelled there with no
   `cancel` row in its history (no cancellation record). Proposes the cancel: a `cancel` line
   (`<sub>:cancel`) ending the PSA line on the last day of as_of's month. A cancelled subscription
   whose cancellation the seat rules already plan (RULES §4, from its cancelled date) keeps that
   line; the finding says why it is there.
Rules 2 and 3 apply to seat products only (usage and quota lines take their prices from the
period's usage, RULES §5–6).
2. **price_below_cost** (error) — the line's unit price is below the vendor's current unit cost
   (the binding's cost override first). A finding only: no line, and it blocks nothing else.
3. **vendor_price_changed** (warning) — the vendor's unit price or cost differs from the line's
   (and the binding overrides neither): the line keeps the old price and the margin erodes. The
   setting `price_change_policy` (engine.scenario.Settings; config `billing.price_change_policy`;
   `trueup plan --price-policy`) chooses the proposal:
   - `follow_retail` (default): the vendor's retail unit price and unit cost;
   - `keep_and_warn`: none (the finding only; it stays until the operator ignores it);
   - `keep_margin`: the vendor's new cost and the price that keeps the line's margin % on it,
     round_half_up(new cost / (1 − (old price − old cost) / old price), 2) (old price 0: none).
     Under this policy only a cost change is a change (the kept price differs from retail).
   The proposal is a `price` line (`<sub>:price`, action update) of the PSA line: the new unit
   price and cost at the quantity the line holds; when the subscription's recurring update
   (quantity only, RULES §1) is in the plan too, the price line follows it in the same change set
   at that update's quantity. Its net is (new − old unit price) × quantity. In sync, and left out
   of the plan, when the PSA line holds the proposed prices.
   Example: retail $22.00 → $23.10, cost $18.70 → $19.64, line at $22.00 / $18.70 × 10:
   follow_retail proposes $23.10 / $19.64 (+$11.00 a month); keep_margin proposes
   round(19.64 / 0.85) = $23.11 / $19.64.
A line the plan cancels (RULES §4) or replaces (create new) gets no price line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from engine.keys import PlanKey
from engine.money import fmt_money, fmt_quantity, round_cents
from engine.months import last_of_month
from engine.plan import Finding, LineKind, PlanLine
from engine.rules.findings import finding
from engine.rules.seats import cancellation_date
from engine.scenario import PRICE_CHANGE_POLICIES, PriceChangePolicy, PsaLine, Scenario, Subscription


@dataclass(frozen=True, slots=True)
class Leak:
    finding: Finding
    subscription_id: str
    psa_line_id: str
    proposed_price: Decimal | None = None
    proposed_cost: Decimal | None = None
    proposed_cancel: date | None = None


def _gone(sub: Subscription | None) -> bool:
    return (
        sub is None
        or sub.gone
        or (sub.status == "cancelled" and not any(r.action == "cancel" for r in sub.history))
    )


def leak_rules(scenario: Scenario, policy: PriceChangePolicy | None = None) -> list[Leak]:
    """The leaks of a scenario; `policy` (None: the scenario's `price_change_policy` setting)."""
    policy = scenario.settings.price_change_policy if policy is None else policy
    if policy not in PRICE_CHANGE_POLICIES:
        raise ValueError(
            f"price_change_policy must be one of {', '.join(PRICE_CHANGE_POLICIES)}, not {policy!r}"
        )
    month_end = last_of_month(scenario.as_of)
    subs = {s.id: s for s in scenario.vendor.subscriptions}
    kinds = {p.id: p.kind for p in scenario.vendor.products}
    bindings = {(b.vendor_product_id, b.sub_product): b for b in scenario.mappings.products}
    # a backup billing configuration's usage line carries the configuration's id (engine.keys)
    configurations = {c.id for c in scenario.vendor.billing_configurations}
    out: list[Leak] = []
    for line in sorted(scenario.psa.lines, key=lambda item: item.id):
        sid = line.source.subscription_id if line.source is not None else None
        if sid is None or line.kind != "recurring" or sid in configurations:
            continue
        if line.cancelled_date is not None and line.cancelled_date <= month_end:
            continue
        subject = {"subscription_id": sid, "psa_line_id": line.id}
        sub = subs.get(sid)
        if sub is not None and not sub.gone and line.cancelled_date is not None:
            ends = cancellation_date(sub)
            if ends is not None and line.cancelled_date <= last_of_month(ends):
                continue  # ends when the vendor's cancellation does (RULES §4 wrote it)
        if sub is None or _gone(sub):
            why = (
                "is cancelled at the vendor with no cancellation record"
                if sub is not None and not sub.gone
                else "is gone from the vendor"
            )
            out.append(
                Leak(
                    finding(
                        "vendor_subscription_gone",
                        subject,
                        f"subscription {sid} {why}; PSA line {line.id} still bills {fmt_quantity(line.quantity)}"
                        f": proposed to end it on {month_end.isoformat()}",
                    ),
                    sid,
                    line.id,
                    proposed_cancel=month_end,
                )
            )
            continue
        if kinds.get(sub.product_id, "seat") != "seat":
            continue  # usage and quota lines take their prices from the period's usage (RULES §5, §6)
        binding = bindings.get((sub.product_id, line.source.sub_product if line.source else None))
        cost = binding.unit_cost if binding is not None and binding.unit_cost is not None else sub.unit_cost
        if line.unit_price < cost:
            out.append(
                Leak(
                    finding(
                        "price_below_cost",
                        subject,
                        f"PSA line {line.id} bills {line.unit_price} a unit, below the vendor's cost {cost}",
                    ),
                    sid,
                    line.id,
                )
            )
        if binding is not None and (binding.unit_price is not None or binding.unit_cost is not None):
            continue
        if policy == "keep_margin":
            if sub.unit_cost == line.unit_cost:
                continue  # the margin % is kept on an unchanged cost: the retail price is not followed
        elif sub.unit_price == line.unit_price and sub.unit_cost == line.unit_cost:
            continue
        proposed: Decimal | None = None
        if policy == "follow_retail":
            proposed = sub.unit_price
        elif policy == "keep_margin" and line.unit_price > 0:
            kept = (line.unit_price - line.unit_cost) / line.unit_price
            proposed = round_cents(sub.unit_cost / (1 - kept)) if kept < 1 else None
        note = (
            f"; proposed price {proposed} (cost {sub.unit_cost})"
            if proposed is not None
            else "; the PSA price is kept"
        )
        out.append(
            Leak(
                finding(
                    "vendor_price_changed",
                    subject,
                    f"the vendor's price/cost is {sub.unit_price}/{sub.unit_cost}, PSA line {line.id} holds "
                    f"{line.unit_price}/{line.unit_cost}{note}",
                ),
                sid,
                line.id,
                proposed_price=proposed,
                proposed_cost=sub.unit_cost if proposed is not None else None,
            )
        )
    return out


def leak_lines(
    scenario: Scenario,
    lines: Sequence[PlanLine],
    *,
    company_of: dict[str, str],
    blocked: set[str],
) -> tuple[list[PlanLine], list[Finding]]:
    """The plan's lines with the leaks' proposals, and the leaks' findings. `company_of`: PSA line
    id → the vendor company id its lines are listed under (for a subscription the vendor no
    longer lists); `blocked`: subscriptions the plan writes nothing for (duplicate lines)."""
    leaks = leak_rules(scenario)
    psa_lines = {line.id: line for line in scenario.psa.lines}
    out = list(lines)
    by_psa_line: dict[str, list[int]] = {}
    for index, line in enumerate(out):
        for ref in (line.psa_line_id, line.replaces_line_id):
            if ref is not None:
                by_psa_line.setdefault(ref, []).append(index)
    added: list[PlanLine] = []
    for leak in leaks:
        current = psa_lines[leak.psa_line_id]
        if leak.subscription_id in blocked:
            continue
        planned = [out[i] for i in by_psa_line.get(current.id, [])]
        company = company_of.get(current.id, current.agreement_id)
        if leak.proposed_cancel is not None:
            if not any(line.kind is LineKind.CANCEL for line in planned):
                # the recurring update of a line that goes anyway is dropped: the cancel writes it
                out = [
                    line
                    for line in out
                    if not (line.psa_line_id == current.id and line.kind is LineKind.RECURRING)
                ]
                added.append(_cancel(leak, current, company))
            continue
        if leak.proposed_price is None or leak.proposed_cost is None:
            continue
        if any(line.kind is LineKind.CANCEL or line.replaces_line_id == current.id for line in planned):
            continue
        if (leak.proposed_price, leak.proposed_cost) == (current.unit_price, current.unit_cost):
            continue
        update = next(
            (line for line in planned if line.kind is LineKind.RECURRING and line.action == "update"),
            None,
        )
        added.append(_price_line(leak, current, company, update))
    return [*out, *added], [leak.finding for leak in leaks]


def _cancel(leak: Leak, current: PsaLine, company: str) -> PlanLine:
    from engine.rules.context import money_line  # context imports the rules' findings

    assert leak.proposed_cancel is not None
    return money_line(
        key=PlanKey.cancel(leak.subscription_id).format(),
        kind=LineKind.CANCEL,
        action="cancel",
        subscription_id=leak.subscription_id,
        company_id=company,
        psa_agreement_id=current.agreement_id,
        psa_product_id=current.product_id,
        psa_line_id=current.id,
        description=current.description or current.id,
        quantity=current.quantity,
        unit_price=current.unit_price,
        unit_cost=current.unit_cost,
        effective_date=current.effective_date,
        end_date=leak.proposed_cancel,
        previous_quantity=current.quantity,
        formula=f"gone from the vendor: line ends {leak.proposed_cancel.isoformat()}",
    )


def _price_line(leak: Leak, current: PsaLine, company: str, update: PlanLine | None) -> PlanLine:
    from engine.rules.context import money_line

    assert leak.proposed_price is not None and leak.proposed_cost is not None
    # Written after the subscription's recurring update (quantity only, RULES §1) when there is
    # one: the line then holds that update's quantity.
    quantity = update.quantity if update is not None else current.quantity
    after = f" (after the update to {fmt_quantity(quantity)})" if update is not None else ""
    return money_line(
        key=PlanKey.price(leak.subscription_id).format(),
        kind=LineKind.PRICE,
        action="update",
        subscription_id=leak.subscription_id,
        company_id=update.company_id if update is not None else company,
        psa_agreement_id=current.agreement_id,
        psa_product_id=current.product_id,
        psa_line_id=current.id,
        description=current.description or (update.description if update is not None else current.id),
        quantity=quantity,
        unit_price=leak.proposed_price,
        unit_cost=leak.proposed_cost,
        effective_date=current.effective_date,
        end_date=None,
        previous_quantity=quantity,
        previous_unit_price=current.unit_price,
        previous_unit_cost=current.unit_cost,
        formula=f"{fmt_quantity(quantity)} × price {fmt_money(current.unit_price)} → "
        f"{fmt_money(leak.proposed_price)}, cost {fmt_money(current.unit_cost)} → "
        f"{fmt_money(leak.proposed_cost)} (vendor price change){after}",
    )


__all__ = ["PRICE_CHANGE_POLICIES", "Leak", "PriceChangePolicy", "leak_lines", "leak_rules"]
