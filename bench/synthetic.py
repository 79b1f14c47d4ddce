"""Synthetic console data at month-end scale, built straight from plan lines (no store, no
reconciliation): for the big-pane tests (tests/tui/test_console_scale.py). `synthetic_data(50_000)` gives an
Unsynced pane of 50,000 rows in about a second; `TrueupApp(..., loader=synthetic_loader(n))` shows it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from types import SimpleNamespace as NS

from engine.batch import fast, gc_paused
from engine.plan import Finding, LineKind, Plan, PlanLine, Totals
from tui import model
from tui.rows import ConsoleData

AS_OF = date(2026, 11, 21)
INVOICED_THROUGH = date(2026, 11, 30)
_WORDS = (
    "Acme",
    "Birch",
    "Cobalt",
    "Delta",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Maple",
    "Nimbus",
    "Orchid",
    "Pioneer",
    "Quartz",
    "Raven",
    "Summit",
    "Tidal",
)


def company_name(i: int) -> str:
    return f"{_WORDS[i % len(_WORDS)]} {_WORDS[(i // len(_WORDS)) % len(_WORDS)]} {i:05d} LLC"


def subscription_id(i: int) -> str:
    return f"sub-{i:06d}"


def _line(i: int, kind: LineKind, company_id: str, quantity: int, price: Decimal) -> PlanLine:
    sub_id = subscription_id(i)
    one_time = kind == LineKind.PRORATE
    total = price * quantity if not one_time else (price * quantity / 2).quantize(Decimal("0.01"))
    return fast(
        PlanLine,
        {
            "key": f"{sub_id}:{kind.value}",
            "kind": kind,
            "action": "create" if one_time else "update",
            "subscription_id": sub_id,
            "company_id": company_id,
            "psa_agreement_id": f"agr-{company_id}",
            "psa_product_id": "psa-m365",
            "psa_line_id": None if one_time else f"line-{i:06d}",
            "description": f"Microsoft 365 Business Premium ({sub_id})",
            "quantity": Decimal(quantity),
            "unit_price": price,
            "unit_cost": price * Decimal("0.8"),
            "total_price": total,
            "total_cost": total * Decimal("0.8"),
            "effective_date": date(2026, 12, 1),
            "end_date": None,
            "period_start": date(2026, 11, 15) if one_time else None,
            "period_end": date(2026, 11, 30) if one_time else None,
            "months": None,
            "sub_product": None,
            "provisional": False,
            "formula": f"{quantity} × {price}",
            "previous_quantity": None if one_time else Decimal(quantity - 1),
            "replaces_line_id": None,
            "fingerprint": f"f{i}",
            "records": (),
            "previous_unit_price": None,
            "previous_unit_cost": None,
            "taxable": None,
            "bill_option": "billable",
            "previous_bill_option": None,
            "previous_taxable": None,
        },
    )


def synthetic_data(
    subscriptions: int = 50_000, *, companies: int | None = None, prorate_every: int = 5, as_of: date = AS_OF
) -> ConsoleData:
    """`subscriptions` Unsynced rows (one update each), a prorate for every `prorate_every`-th,
    spread over `companies` customers (default: one per 25 subscriptions)."""
    scenario, plan = synthetic_inputs(
        subscriptions, companies=companies, prorate_every=prorate_every, as_of=as_of
    )
    return model.build(scenario, plan, today=as_of)


def synthetic_inputs(
    subscriptions: int = 50_000, *, companies: int | None = None, prorate_every: int = 5, as_of: date = AS_OF
) -> tuple[NS, Plan]:
    """What `synthetic_data` builds the panes from: (scenario stand-in, plan)."""
    n_companies = companies or max(1, subscriptions // 25)
    with gc_paused():
        vendor_companies = [
            NS(id=f"vc-{c:05d}", name=company_name(c), status="active") for c in range(n_companies)
        ]
        price = Decimal("22.00")
        subs, lines = [], []
        for i in range(subscriptions):
            company_id = vendor_companies[i % n_companies].id
            subs.append(
                NS(
                    id=subscription_id(i),
                    company_id=company_id,
                    product_id="m365-bp",
                    status="active",
                    history=[],
                    unit_price=price,
                    unit_cost=price * Decimal("0.8"),
                )
            )
            quantity = 5 + i % 40
            lines.append(_line(i, LineKind.RECURRING, company_id, quantity, price))
            if prorate_every and i % prorate_every == 0:
                lines.append(_line(i, LineKind.PRORATE, company_id, 1, price))
        findings = [
            Finding(
                code="product_not_bound",
                severity="error",
                subject={"subscription_id": "sub-unbound"},
                message="Microsoft 365 Copilot is not bound to a PSA product.",
                hint="Bind the vendor product to a PSA product.",
            )
        ]
        subs.append(
            NS(
                id="sub-unbound",
                company_id=vendor_companies[0].id,
                product_id="m365-copilot",
                status="active",
                history=[],
                unit_price=price,
                unit_cost=price,
            )
        )
        scenario = NS(
            settings=NS(psa="connectwise"),
            vendor=NS(
                companies=vendor_companies,
                subscriptions=subs,
                billing_configurations=[],
                products=[
                    NS(
                        id="m365-bp",
                        name="Microsoft 365 Business Premium",
                        sku="CFQ7TTC0LCHC",
                        kind="seat",
                        sub_products=[],
                    ),
                    NS(
                        id="m365-copilot",
                        name="Microsoft 365 Copilot",
                        sku=None,
                        kind="seat",
                        sub_products=[],
                    ),
                ],
            ),
            psa=NS(
                companies=[NS(id=f"pc-{c.id}", name=c.name) for c in vendor_companies],
                agreements=[NS(id=f"agr-{c.id}", name=f"{c.name} — Managed") for c in vendor_companies],
                lines=[],
                products=[
                    NS(id="psa-m365", name="M365 Business Premium", sku="M365-BP"),
                    NS(id="psa-copilot", name="M365 Copilot", sku="M365-COP"),
                ],
            ),
            mappings=NS(
                companies=[NS(vendor_id=c.id, psa_id=f"pc-{c.id}") for c in vendor_companies],
                products=[
                    NS(vendor_product_id="m365-bp", sub_product=None, psa_product_id="psa-m365", free=False)
                ],
            ),
            ignored=[],
        )
        plan = Plan(
            as_of=as_of,
            invoiced_through=INVOICED_THROUGH,
            lines=lines,
            findings=findings,
            totals=Totals(
                price=sum((x.total_price for x in lines), Decimal("0.00")),
                cost=sum((x.total_cost for x in lines), Decimal("0.00")),
            ),
        )
    return scenario, plan


def synthetic_loader(
    subscriptions: int = 50_000, **kwargs: object
) -> Callable[[date | None, date], ConsoleData]:
    """A `TrueupApp(loader=...)`: the same synthetic data on every (re)load, built once."""
    data = synthetic_data(subscriptions, **kwargs)  # type: ignore[arg-type]

    def load(as_of: date | None, today: date) -> ConsoleData:
        return data

    return load
