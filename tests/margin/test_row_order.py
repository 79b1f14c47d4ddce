"""The check's rows come in one order whatever order the vendor lists its subscriptions in (the
check walks them in the vendor's order for speed): the invoice's own charges first, then every
subscription's rows by subscription id — one gone from the vendor among them — each subscription's
rows as classified (recurring before its one-time items)."""

from __future__ import annotations

from datetime import date

from builders import build, invoice_item, invoice_of, seat_sub

from engine.margin import three_way_check


def test_rows_are_in_subscription_id_order_whatever_the_vendor_order() -> None:
    invoice = invoice_of(
        invoice_item(1, "s-c", 2),
        invoice_item(2, "s-a", 2),
        invoice_item(3, "s-a", 1, kind="prorate", start=date(2026, 10, 15), end=date(2026, 10, 31)),
        invoice_item(4, None, 1, kind="service-charge", product_name="Billing fee"),
        invoice_item(5, "s-0-gone", 2),
        invoice_item(6, "s-b", 2),
    )
    orders = []
    for vendor_order in (["s-c", "s-b", "s-a"], ["s-a", "s-b", "s-c"], ["s-b", "s-c", "s-a"]):
        subs = [seat_sub(sid, ("2026-01-01", 2)) for sid in vendor_order]
        report = three_way_check(build("2026-11-21", subs=subs), [invoice], "2026-11")
        orders.append([(r.subscription_id, r.cls, r.reason.split(" ")[0]) for r in report.rows])
    assert orders[0] == orders[1] == orders[2]
    assert [sid for sid, _, _ in orders[0]] == [None, "s-0-gone", "s-a", "s-a", "s-b", "s-c"]
    # s-a: its recurring row, then its prorate
    assert orders[0][2][0:2] == ("s-a", "not_billed_onward") and orders[0][3][2] == "prorate"
