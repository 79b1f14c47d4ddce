"""Small scenarios for the rule tests.

`build(...)` returns a validated `Scenario` over a default world: one vendor company `acme` mapped to
PSA company `P1`, which has one monthly agreement `AG1`; one seat product `seat` bound to PSA product
`PP1`. Subscriptions, PSA lines, usage, settings and operator state are passed in as plain dicts
(made with `seat_sub`, `psa_line`, `usage`…), so a test shows only what matters to it.
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

from engine.margin import DistributorInvoice, InvoiceItem
from engine.plan import Finding, Plan, PlanLine
from engine.reconcile import reconcile
from engine.scenario import Scenario
from engine.scenario_io import parse_scenario

D = Decimal

COMPANY = {"id": "acme", "name": "Acme Dental"}
SEAT_PRODUCT = {"id": "seat", "sku": "M365-BB", "name": "Microsoft 365 Business Basic", "kind": "seat"}
PSA_COMPANY = {"id": "P1", "name": "Acme Dental"}
PSA_PRODUCT = {"id": "PP1", "name": "M365 Business Basic"}
AGREEMENT = {
    "id": "AG1",
    "company_id": "P1",
    "name": "Acme Monthly",
    "start_date": "2015-01-01",
    "billing_period": "monthly",
}


def history(*changes: tuple[str, Any] | tuple[str, Any, str], sub_id: str = "S1") -> list[dict[str, Any]]:
    """`("2020-08-05", 12)` rows in order; the action (initial/increase/decrease) is inferred from the
    previous quantity unless given as a third item."""
    rows = []
    previous = D(0)
    for i, change in enumerate(changes):
        on, quantity = change[0], D(str(change[1]))
        if len(change) > 2:
            action = change[2]
        elif i == 0:
            action = "initial"
        else:
            action = "increase" if quantity > previous else "decrease"
        rows.append(
            {"id": f"{sub_id}-h{i + 1}", "action": action, "quantity": str(quantity), "effective_date": on}
        )
        previous = quantity
    return rows


def seat_sub(
    sub_id: str = "S1",
    *changes: tuple[str, Any] | tuple[str, Any, str],
    price: str = "6.00",
    cost: str = "5.00",
    company: str = "acme",
    product: str = "seat",
    term: str = "monthly",
    start: str | None = None,
    status: str = "active",
    cancelled_date: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    rows = history(*changes, sub_id=sub_id)
    return {
        "id": sub_id,
        "company_id": company,
        "product_id": product,
        "billing_term": term,
        "start_date": start or (rows[0]["effective_date"] if rows else "2020-01-01"),
        "unit_price": price,
        "unit_cost": cost,
        "status": status,
        "cancelled_date": cancelled_date,
        "history": rows,
        **extra,
    }


def psa_line(
    line_id: str = "L1",
    quantity: Any = 1,
    *,
    price: str = "6.00",
    cost: str = "5.00",
    effective: str = "2019-02-01",
    product: str = "PP1",
    agreement: str = "AG1",
    sub: str | None = None,
    sub_product: str | None = None,
    key: str | None = None,
    metered: bool = False,
    cancelled: str | None = None,
    kind: str = "recurring",
    description: str = "",
) -> dict[str, Any]:
    source = None
    if sub is not None or key is not None or sub_product is not None:
        source = {"subscription_id": sub, "sub_product": sub_product, "key": key}
    return {
        "id": line_id,
        "agreement_id": agreement,
        "product_id": product,
        "kind": kind,
        "quantity": str(quantity),
        "unit_price": price,
        "unit_cost": cost,
        "effective_date": effective,
        "cancelled_date": cancelled,
        "description": description,
        "metered": metered,
        "source": source,
    }


def usage(
    sub: str,
    period: str,
    quantity: Any,
    *,
    sub_product: str | None = None,
    price: str = "0",
    cost: str = "0",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "subscription_id": sub,
        "sub_product": sub_product,
        "period": period,
        "quantity": str(quantity),
        "unit_price": price,
        "unit_cost": cost,
        **extra,
    }


def invoice_item(
    n: int,
    sub: str | None,
    quantity: Any = 1,
    *,
    kind: str = "subscription",
    cost: str = "5.00",
    price: str = "6.00",
    start: date = date(2026, 11, 1),
    end: date = date(2026, 11, 30),
    invoice: str = "inv-nov",
    company: str = "acme",
    product_name: str = "Microsoft 365 Business Basic",
) -> InvoiceItem:
    """Item `n` of a distributor invoice (engine.margin): `quantity` × the unit cost / price."""
    q = D(str(quantity))
    return InvoiceItem(
        id=f"{invoice}-i{n}",
        invoice_id=invoice,
        type=kind,
        company_id=company,
        subscription_id=sub,
        product_id="seat",
        product_name=product_name,
        start_period=start,
        end_period=end,
        quantity=q,
        price=D(price),
        cost=D(cost),
        cost_total=q * D(cost),
        sub_total=q * D(price),
        currency="USD",
    )


def invoice_of(
    *items: InvoiceItem, invoice: str = "inv-nov", on: date = date(2026, 11, 5)
) -> DistributorInvoice:
    """A paid distributor invoice whose total is its items'."""
    return DistributorInvoice(invoice, on, "Paid", sum((i.cost_total for i in items), D(0)), "USD", items)


def synced(key: str, quantity: Any = None, on: str = "2020-01-01") -> dict[str, Any]:
    return {"key": key, "quantity": None if quantity is None else str(quantity), "synced_on": on}


def world(
    as_of: str,
    *,
    subs: list[dict[str, Any]] = (),
    lines: list[dict[str, Any]] = (),  # type: ignore[assignment]
    usage_rows: list[dict[str, Any]] = (),
    settings: dict[str, Any] | None = None,  # type: ignore[assignment]
    products: list[dict[str, Any]] | None = None,
    bindings: list[dict[str, Any]] | None = None,
    companies: list[dict[str, Any]] | None = None,
    psa_companies: list[dict[str, Any]] | None = None,
    psa_products: list[dict[str, Any]] | None = None,
    agreements: list[dict[str, Any]] | None = None,
    company_mappings: list[dict[str, Any]] | None = None,
    agreement_mappings: list[dict[str, Any]] = (),  # type: ignore[assignment]
    configurations: list[dict[str, Any]] = (),  # type: ignore[assignment]
    synced_keys: list[dict[str, Any]] = (),
    ignored: list[dict[str, Any]] = (),  # type: ignore[assignment]
    overrides: list[dict[str, Any]] = (),
) -> dict[str, Any]:  # type: ignore[assignment]
    """The scenario as the JSON a file would hold."""
    return copy.deepcopy(
        {
            "as_of": as_of,
            "settings": settings or {},
            "vendor": {
                "companies": companies if companies is not None else [COMPANY],
                "products": products if products is not None else [SEAT_PRODUCT],
                "subscriptions": list(subs),
                "usage": list(usage_rows),
                "billing_configurations": list(configurations),
            },
            "psa": {
                "companies": psa_companies if psa_companies is not None else [PSA_COMPANY],
                "products": psa_products if psa_products is not None else [PSA_PRODUCT],
                "agreements": agreements if agreements is not None else [AGREEMENT],
                "lines": list(lines),
            },
            "mappings": {
                "companies": company_mappings
                if company_mappings is not None
                else [{"vendor_id": "acme", "psa_id": "P1"}],
                "products": bindings
                if bindings is not None
                else [{"vendor_product_id": "seat", "psa_product_id": "PP1"}],
                "agreements": list(agreement_mappings),
            },
            "synced": list(synced_keys),
            "ignored": list(ignored),
            "overrides": list(overrides),
        }
    )


def build(as_of: str, **kwargs: Any) -> Scenario:
    # A rule test's world is partial (usage rows of subscriptions it leaves out…): every rule of
    # the file format but the reference check.
    return parse_scenario(world(as_of, **kwargs), "test scenario", references=False)


def plan_of(as_of: str, **kwargs: Any) -> Plan:
    return reconcile(build(as_of, **kwargs))


# --- reading plans -------------------------------------------------------------------------------


def lines_by_key(plan: Plan) -> dict[str, PlanLine]:
    return {line.key: line for line in plan.lines}


def the_line(plan: Plan, key: str) -> PlanLine:
    found = lines_by_key(plan)
    assert key in found, f"no line {key}; the plan has {sorted(found)}"
    return found[key]


def keys(plan: Plan, kind: str | None = None) -> list[str]:
    return [line.key for line in plan.lines if kind is None or line.kind == kind]


def codes(plan: Plan) -> set[str]:
    return {f.code for f in plan.findings}


def findings(plan: Plan, code: str) -> list[Finding]:
    return [f for f in plan.findings if f.code == code]


def money(line: PlanLine) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(unit price, unit cost, total price, total cost)."""
    return line.unit_price, line.unit_cost, line.total_price, line.total_cost


def seat_plan(
    as_of: str,
    *changes: tuple[str, Any] | tuple[str, Any, str],
    billed: Any = None,
    price: str = "6.00",
    cost: str = "5.00",
    line_price: str | None = None,
    line_cost: str | None = None,
    description: str = "",
    sync_initial: bool = True,
    sub: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Plan:
    """One seat subscription S1 with these history rows. `billed`: the quantity of its PSA recurring line
    L1 (none when None). The initial order's prorate is already synced unless `sync_initial` is false."""
    subscription = sub or seat_sub("S1", *changes, price=price, cost=cost)
    lines = kwargs.pop("lines", [])
    if billed is not None:
        lines = [
            psa_line(
                "L1",
                billed,
                sub="S1",
                price=line_price or price,
                cost=line_cost or cost,
                description=description,
            ),
            *lines,
        ]
    synced_keys = list(kwargs.pop("synced_keys", []))
    if sync_initial and subscription["history"]:
        synced_keys.append(synced(f"S1:prorate:{subscription['history'][0]['effective_date']}", 0))
    return plan_of(as_of, subs=[subscription], lines=lines, synced_keys=synced_keys, **kwargs)
