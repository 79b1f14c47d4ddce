"""RULES.md §7: billing configurations for backup statistics (seed 002): average, total, quantity only."""

from __future__ import annotations

from datetime import date

import pytest
from builders import D, codes, findings, keys, money, plan_of, psa_line, seat_sub, the_line, usage

ITEMS = [
    {"id": "ws", "sku": "pw-ws", "name": "Workstations", "kind": "quota", "service": "licence"},
    {"id": "srv", "sku": "pw-srv", "name": "Servers", "kind": "quota", "service": "licence"},
    {"id": "st", "sku": "pw-st", "name": "Backup storage", "kind": "quota", "service": "backup_storage"},
]
BUNDLE = {"id": "P-bk", "name": "Backup bundle", "unit_price": "7.50", "unit_cost": "3.00"}
LICENCES = [
    usage("ws", "2025-03", 3, price="12.00", cost="5.00"),
    usage("srv", "2025-03", 2, price="45.00", cost="20.00"),
]
STORAGE = [usage("st", "2025-03", 100, price="0.10", cost="0.05")]


def backup_plan(mode: str, members=("ws", "srv"), rows=LICENCES + STORAGE, lines=(), bundle=BUNDLE):  # type: ignore[no-untyped-def]
    return plan_of(
        "2025-03-31",
        products=ITEMS,
        psa_products=[{"id": f"P-{p['id']}", "name": f"Acronis {p['name']}"} for p in ITEMS] + [bundle],
        bindings=[{"vendor_product_id": p["id"], "psa_product_id": f"P-{p['id']}"} for p in ITEMS],
        subs=[seat_sub(s, product=s, start="2025-01-01", price="0", cost="0") for s in members],
        usage_rows=list(rows),
        lines=list(lines),
        configurations=[
            {
                "id": "C1",
                "company_id": "acme",
                "name": "Backup bundle",
                "mode": mode,
                "subscription_ids": list(members),
                "psa_product_id": "P-bk",
            }
        ],
    )


def test_average_bills_the_licences_at_the_average_price_and_cost() -> None:
    plan = backup_plan("average")
    line = the_line(plan, "C1:usage")
    assert (line.action, line.quantity, line.psa_product_id, line.psa_agreement_id) == (
        "create",
        D(5),
        "P-bk",
        "AG1",
    )
    # (3 × $12 + 2 × $45) / 5 = $25.20; (3 × $5 + 2 × $20) / 5 = $11.00
    assert money(line) == (D("25.20"), D("11.00"), D("126.00"), D("55.00"))
    assert (line.effective_date, line.description) == (date(2025, 4, 1), "Backup bundle")


def test_average_is_rounded_to_cents_before_it_is_multiplied() -> None:
    rows = [
        usage("ws", "2025-03", 3, price="10.00", cost="4.00"),
        usage("srv", "2025-03", 4, price="12.50", cost="5.00"),
    ]
    line = the_line(backup_plan("average", rows=rows), "C1:usage")
    # $80 / 7 = 11.428… → $11.43 × 7 = $80.01; $32 / 7 = 4.571… → $4.57 × 7 = $31.99
    assert money(line) == (D("11.43"), D("4.57"), D("80.01"), D("31.99"))


def test_total_bills_quantity_one_at_the_totals() -> None:
    line = the_line(backup_plan("total"), "C1:usage")
    assert line.quantity == D(1)
    assert money(line) == (D("126.00"), D("55.00"), D("126.00"), D("55.00"))


def test_quantity_only_uses_the_psa_products_catalogue_price() -> None:
    line = the_line(backup_plan("quantity_only"), "C1:usage")
    assert line.quantity == D(5)
    assert money(line) == (D("7.50"), D("3.00"), D("37.50"), D("15.00"))
    assert "price_missing" not in codes(backup_plan("quantity_only"))


def test_quantity_only_updates_an_existing_line_keeping_its_prices() -> None:
    existing = psa_line("LB", 4, product="P-bk", price="8.00", cost="3.20", effective="2025-01-01", sub="C1")
    line = the_line(backup_plan("quantity_only", lines=[existing]), "C1:usage")
    assert (line.action, line.psa_line_id, line.quantity, line.previous_quantity) == (
        "update",
        "LB",
        D(5),
        D(4),
    )
    assert money(line) == (D("8.00"), D("3.20"), D("40.00"), D("16.00"))


def test_a_configuration_line_already_right_is_in_sync() -> None:
    existing = psa_line("LB", 1, product="P-bk", price="126.00", cost="55.00", sub="C1")
    assert "C1:usage" not in keys(backup_plan("total", lines=[existing]))


def test_quantity_only_without_a_catalogue_price_is_price_missing() -> None:
    plan = backup_plan("quantity_only", bundle={"id": "P-bk", "name": "Backup bundle"})
    assert money(the_line(plan, "C1:usage")) == (D("0"), D("0"), D("0.00"), D("0.00"))
    assert findings(plan, "price_missing")[0].subject == {"configuration_id": "C1"}


def test_a_licence_without_a_price_counts_as_zero_with_a_warning() -> None:
    rows = [
        usage("ws", "2025-03", 3, price="12.00", cost="5.00"),
        usage("srv", "2025-03", 2, price="0", cost="20.00"),
    ]
    plan = backup_plan("average", rows=rows)
    line = the_line(plan, "C1:usage")
    assert money(line) == (D("7.20"), D("11.00"), D("36.00"), D("55.00"))  # $36 / 5; $55 / 5
    [missing] = findings(plan, "price_missing")
    assert missing.severity == "warning"
    assert missing.subject == {"configuration_id": "C1", "subscription_id": "srv"}
    assert missing.message == "Acme Dental / Backup bundle: Servers has no price configured; 0 is used."


@pytest.mark.parametrize("mode", ["average", "quantity_only"])
def test_licences_and_storage_mixed_allow_only_total(mode: str) -> None:
    plan = backup_plan(mode, members=("ws", "st"))
    assert "C1:usage" not in keys(plan)
    [invalid] = findings(plan, "billing_mode_invalid")
    assert invalid.subject == {"configuration_id": "C1"}
    assert f"only the 'total' mode is possible (not '{mode}')" in invalid.message


def test_licences_and_storage_mixed_bill_as_one_total() -> None:
    line = the_line(backup_plan("total", members=("ws", "st")), "C1:usage")
    # 3 × $12 + 100 GB × $0.10 = $46.00; 3 × $5 + 100 × $0.05 = $20.00
    assert (line.quantity, line.unit_price, line.unit_cost) == (D(1), D("46.00"), D("20.00"))


def test_items_billed_through_a_configuration_raise_no_errors_of_their_own() -> None:
    plan = backup_plan("average")
    assert keys(plan) == ["C1:usage"]
    assert plan.findings == []
