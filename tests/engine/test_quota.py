"""RULES.md §6: billing modes of quota products (seed 004), one test per row of the table."""

from __future__ import annotations

from datetime import date

from builders import D, codes, findings, keys, money, plan_of, psa_line, seat_sub, the_line, usage

STORAGE = {"id": "st", "sku": "pw-base-storage", "name": "Backup storage", "kind": "quota"}


def quota_plan(
    lines, *, used=59, free=False, rows=None, products=(STORAGE,), subs=("st",), bindings=None, **kwargs
):  # type: ignore[no-untyped-def]
    return plan_of(
        "2025-03-31",
        settings={"psa": "halopsa"},
        products=list(products),
        psa_products=[{"id": f"P-{p['id']}", "name": f"Acronis {p['name']}"} for p in products],
        bindings=bindings
        or [{"vendor_product_id": p["id"], "psa_product_id": f"P-{p['id']}", "free": free} for p in products],
        subs=[seat_sub(s, product=s, start="2025-01-01", price="0", cost="0") for s in subs],
        usage_rows=rows if rows is not None else [usage(s, "2025-03", used) for s in subs],
        lines=list(lines),
        **kwargs,
    )


def prepaid(quantity, line_id="L2"):  # type: ignore[no-untyped-def]
    return psa_line(line_id, quantity, product="P-st", price="10.00", cost="4.00", effective="2025-01-01")


def metered(quantity=0, line_id="L3"):  # type: ignore[no-untyped-def]
    return psa_line(
        line_id, quantity, product="P-st", price="10.00", cost="4.00", effective="2025-01-01", metered=True
    )


def test_free_item_without_a_line_is_never_reported() -> None:
    plan = quota_plan([], free=True)
    assert plan.lines == [] and plan.findings == []


def test_one_prepaid_line_keeps_its_quantity() -> None:
    plan = quota_plan([prepaid(50)])
    assert plan.lines == [] and plan.findings == []


def test_one_metered_line_is_written_the_usage() -> None:
    plan = quota_plan([metered(0)])
    line = the_line(plan, "st:usage")
    assert (line.kind, line.action, line.psa_line_id, line.quantity) == ("usage", "update", "L3", D(59))
    assert money(line) == (D("10.00"), D("4.00"), D("590.00"), D("236.00"))
    assert line.effective_date == date(2025, 1, 1)


def test_prepaid_and_metered_bill_the_overage_above_the_soft_quota() -> None:
    plan = quota_plan([prepaid(50), metered(0)])
    line = the_line(plan, "st:usage")
    assert (line.psa_line_id, line.quantity) == ("L3", D(9))  # 59 − 50
    assert money(line) == (D("10.00"), D("4.00"), D("90.00"), D("36.00"))


def test_prepaid_and_metered_within_the_quota_write_zero() -> None:
    plan = quota_plan([prepaid(50), metered(3)], used=40)
    line = the_line(plan, "st:usage")
    assert (line.quantity, line.previous_quantity, line.total_price) == (D(0), D(3), D("0.00"))


def test_usage_exactly_at_the_quota_writes_zero_and_is_in_sync_when_zero() -> None:
    assert quota_plan([prepaid(50), metered(0)], used=50).lines == []


def test_no_line_and_not_free_is_no_product_to_sync() -> None:
    plan = quota_plan([])
    assert plan.lines == []
    [finding] = findings(plan, "no_product_to_sync")
    assert (finding.severity, finding.subject) == ("error", {"subscription_id": "st"})
    assert "Acronis Backup storage" in finding.message


def test_a_metered_line_already_at_the_usage_is_in_sync() -> None:
    assert quota_plan([metered(59)]).lines == []


def test_the_latest_period_up_to_as_of_is_used() -> None:
    rows = [usage("st", "2025-01", 30), usage("st", "2025-02", 45), usage("st", "2025-04", 99)]
    assert the_line(quota_plan([metered(0)], rows=rows), "st:usage").quantity == D(45)


def test_metered_line_without_usage_is_usage_pending() -> None:
    plan = quota_plan([metered(0)], rows=[])
    assert plan.lines == []
    assert codes(plan) == {"usage_pending"}


# --- the customer-level checks of quota offering items --------------------------------------------

ITEMS = [
    {"id": "ws", "sku": "pw-ws", "name": "Workstations", "kind": "quota", "service": "licence"},
    {
        "id": "st",
        "sku": "pw-st",
        "name": "Backup storage",
        "kind": "quota",
        "service": "backup_storage",
        "storage_location": "US1",
    },
    {
        "id": "dr",
        "sku": "pw-dr",
        "name": "Disaster recovery",
        "kind": "quota",
        "service": "disaster_recovery",
        "storage_location": "EU2",
    },
    {
        "id": "geo",
        "sku": "pw-geo",
        "name": "Geo-redundant storage",
        "kind": "quota",
        "service": "geo_redundancy",
        "parent_product_id": "st",
    },
    {"id": "gb", "sku": "pg-st", "name": "Per-GB storage", "kind": "quota"},
]


def item_lines(*ids: str) -> list[dict]:
    return [psa_line(f"L-{i}", 0, product=f"P-{i}", metered=True) for i in ids]


def test_items_of_two_editions_are_mixed_editions_and_block_the_billed_items() -> None:
    products = [ITEMS[0], ITEMS[4]]
    plan = quota_plan(item_lines("ws", "gb"), products=products, subs=("ws", "gb"))
    assert plan.lines == []
    [mixed] = findings(plan, "mixed_editions")
    assert (mixed.severity, mixed.subject) == ("error", {"vendor_company_id": "acme"})
    assert "per gigabyte, per workload" in mixed.message


def test_a_free_item_of_another_edition_is_not_mixed() -> None:
    products = [ITEMS[0], ITEMS[4]]
    bindings = [
        {"vendor_product_id": "ws", "psa_product_id": "P-ws"},
        {"vendor_product_id": "gb", "psa_product_id": "P-gb", "free": True},
    ]
    plan = quota_plan(item_lines("ws"), products=products, subs=("ws", "gb"), bindings=bindings)
    assert "mixed_editions" not in codes(plan)
    assert keys(plan) == ["ws:usage"]


def test_backup_and_disaster_recovery_in_different_locations() -> None:
    products = [ITEMS[1], ITEMS[2]]
    plan = quota_plan(item_lines("st", "dr"), products=products, subs=("st", "dr"))
    [differ] = findings(plan, "locations_differ")
    assert differ.subject == {"vendor_company_id": "acme"}
    assert "backup: US1; disaster recovery: EU2" in differ.message
    assert keys(plan) == ["st:usage"]  # disaster recovery is blocked, backup storage still bills


def test_geo_redundancy_billed_without_its_parent_storage() -> None:
    products = [ITEMS[1], ITEMS[3]]
    plan = quota_plan(item_lines("geo"), products=products, subs=("st", "geo"))
    assert findings(plan, "geo_redundancy_without_parent")[0].subject == {"subscription_id": "geo"}
    assert "geo:usage" not in keys(plan)


def test_geo_redundancy_with_its_parent_bills_both() -> None:
    products = [ITEMS[1], ITEMS[3]]
    plan = quota_plan(item_lines("st", "geo"), products=products, subs=("st", "geo"))
    assert keys(plan) == ["geo:usage", "st:usage"]
    assert "geo_redundancy_without_parent" not in codes(plan)
