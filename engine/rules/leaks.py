"""Rules for the money leaks (issue 14), in the style of shared/RULES.md. Ours; tests/margin/
test_leak_rules.py holds each. They read the scenario (what the vendor says now, what the PSA
holds) and give findings with a proposal; they do not change the plan's lines (the executor writes
quantities and cancellations; a price update is the operator's, from the proposal).

For every recurring PSA line not cancelled before the end of as_of's month that carries a vendor
subscription (its source):
1. **vendor_subscription_gone** (error) — the subscription is absent from the vendor (deleted), or
   cancelled there with no `cancel` row in its history (no cancellation record): proposes the
   cancel, the line ending on the last day of as_of's month.
Rules 2 and 3 apply to seat products only (usage and quota lines take their prices from the
period's usage, RULES §5–6).
2. **price_below_cost** (error) — the line's unit price is below the vendor's current unit cost
   (the binding's cost override first).
3. **vendor_price_changed** (warning) — the vendor's unit price or cost differs from the line's
   (and the binding overrides neither): the line keeps the old price and the margin erodes. The
   setting `price_change_policy` chooses the proposal:
   - `follow_retail` (default): the vendor's retail unit price;
   - `keep_and_warn`: none (the finding only);
   - `keep_margin`: the price that keeps the line's margin % on the new cost,
     round_half_up(new cost / (1 − (old price − old cost) / old price), 2) (old price 0: none).
   Example: retail $22.00 → $23.10, cost $18.70 → $19.64, line at $22.00 / $18.70: follow_retail
   proposes $23.10; keep_margin proposes round(19.64 / 0.85) = $23.11.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from engine.money import round_cents
from engine.months import last_of_month
from engine.plan import Finding
from engine.rules.findings import finding
from engine.scenario import Scenario

PriceChangePolicy = Literal["follow_retail", "keep_and_warn", "keep_margin"]
PRICE_CHANGE_POLICIES: tuple[PriceChangePolicy, ...] = ("follow_retail", "keep_and_warn", "keep_margin")


@dataclass(frozen=True, slots=True)
class Leak:
    finding: Finding
    subscription_id: str
    psa_line_id: str
    proposed_price: Decimal | None = None
    proposed_cancel: date | None = None


def leak_rules(scenario: Scenario, policy: PriceChangePolicy = "follow_retail") -> list[Leak]:
    if policy not in PRICE_CHANGE_POLICIES:
        raise ValueError(
            f"price_change_policy must be one of {', '.join(PRICE_CHANGE_POLICIES)}, not {policy!r}"
        )
    month_end = last_of_month(scenario.as_of)
    subs = {s.id: s for s in scenario.vendor.subscriptions}
    kinds = {p.id: p.kind for p in scenario.vendor.products}
    bindings = {(b.vendor_product_id, b.sub_product): b for b in scenario.mappings.products}
    out: list[Leak] = []
    for line in sorted(scenario.psa.lines, key=lambda item: item.id):
        sid = line.source.subscription_id if line.source is not None else None
        if sid is None or line.kind != "recurring":
            continue
        if line.cancelled_date is not None and line.cancelled_date <= month_end:
            continue
        subject = {"subscription": sid, "psa_line": line.id}
        sub = subs.get(sid)
        if sub is None or (sub.status == "cancelled" and not any(r.action == "cancel" for r in sub.history)):
            why = (
                "is gone from the vendor"
                if sub is None
                else "is cancelled at the vendor with no cancellation record"
            )
            out.append(
                Leak(
                    finding(
                        "vendor_subscription_gone",
                        subject,
                        f"subscription {sid} {why}; PSA line {line.id} still bills {line.quantity}",
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
        if sub.unit_price == line.unit_price and sub.unit_cost == line.unit_cost:
            continue
        proposed: Decimal | None = None
        if policy == "follow_retail":
            proposed = sub.unit_price
        elif policy == "keep_margin" and line.unit_price > 0:
            kept = (line.unit_price - line.unit_cost) / line.unit_price
            proposed = round_cents(sub.unit_cost / (1 - kept)) if kept < 1 else None
        note = f"; proposed price {proposed}" if proposed is not None else "; the PSA price is kept"
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
            )
        )
    return out


__all__ = ["PRICE_CHANGE_POLICIES", "Leak", "PriceChangePolicy", "leak_rules"]
