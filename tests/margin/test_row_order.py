"""The check's rows come in one order whatever order the vendor lists its subscriptions in (the
check walks them in the vendor's order for speed): the invoice's own charges first, then every
subscription's rows by subscription id — one gone from the vendor among them — each subscription's
rows as classified (recurring before its one-time items)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from engine.margin import DistributorInvoice, InvoiceItem, three_way_check
from engine.scenario import Scenario

D = Decimal


def _item(n: int, sid: str | None, kind: str = "subscription") -> InvoiceItem:
    return InvoiceItem(
        id=f"i{n}",
        invoice_id="inv-nov",
        type=kind,
        company_id="c1",
        subscription_id=sid,
        product_id="p1",
        product_name="Seat",
        start_period=date(2026, 10, 15) if kind == "prorate" else date(2026, 11, 1),
        end_period=date(2026, 11, 30),
        quantity=D(2),
        price=D("20.00"),
        cost=D("15.00"),
        cost_total=D("30.00"),
        sub_total=D("40.00"),
        currency="USD",
    )


def _scenario(order: list[str]) -> Scenario:
    subs = {
        sid: {
            "id": sid,
            "company_id": "c1",
            "product_id": "p1",
            "start_date": "2026-01-01",
            "unit_price": "20.00",
            "unit_cost": "15.00",
            "history": [
                {"id": f"{sid}-h", "action": "initial", "quantity": "2", "effective_date": "2026-01-01"}
            ],
        }
        for sid in order
    }
    return Scenario.model_validate(
        {
            "as_of": "2026-11-21",
            "vendor": {
                "companies": [{"id": "c1", "name": "One"}],
                "products": [{"id": "p1", "name": "Seat"}],
                "subscriptions": [subs[sid] for sid in order],
            },
            "psa": {"companies": [], "products": [], "agreements": [], "lines": []},
            "mappings": {"companies": [], "products": []},
        }
    )


def test_rows_are_in_subscription_id_order_whatever_the_vendor_order() -> None:
    items = (
        _item(1, "s-c"),
        _item(2, "s-a"),
        _item(3, "s-a", "prorate"),
        _item(4, None, "service-charge"),
        _item(5, "s-0-gone"),
        _item(6, "s-b"),
    )
    invoice = DistributorInvoice("inv-nov", date(2026, 11, 5), "Paid", D("180.00"), "USD", items)
    orders = []
    for vendor_order in (["s-c", "s-b", "s-a"], ["s-a", "s-b", "s-c"], ["s-b", "s-c", "s-a"]):
        report = three_way_check(_scenario(vendor_order), [invoice], "2026-11")
        orders.append([(r.subscription_id, r.cls, r.reason.split(" ")[0]) for r in report.rows])
    assert orders[0] == orders[1] == orders[2]
    assert [sid for sid, _, _ in orders[0]] == [None, "s-0-gone", "s-a", "s-a", "s-b", "s-c"]
    # s-a: its recurring row, then its prorate
    assert orders[0][2][0:2] == ("s-a", "not_billed_onward") and orders[0][3][2] == "prorate"
