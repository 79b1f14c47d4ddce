"""The deterministic demo MSP (engine/sandbox/demo.py): determinism, validity, shape, and the plan
the reconciliation makes of it (every RULES.md §8 finding code, the story customers' lines)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from engine.sandbox.demo import DEMO_AS_OF, DEMO_CUSTOMERS, DEMO_STORIES, build_demo_scenario
from engine.scenario import Scenario, Subscription

RULES_CODES = (
    "company_not_mapped",
    "product_not_bound",
    "no_active_agreement",
    "multiple_active_agreements",
    "billing_period_mismatch",
    "mixed_editions",
    "locations_differ",
    "geo_redundancy_without_parent",
    "no_product_to_sync",
    "usage_pending",
    "duplicate_mapping",
    "price_missing",
    "credit_due",
)


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return build_demo_scenario()


# --- helpers --------------------------------------------------------------------------------------


def company_id(scn: Scenario, role: str) -> str:
    name = DEMO_CUSTOMERS[role]
    (cid,) = [c.id for c in scn.vendor.companies if c.name == name]
    return cid


def subscription(scn: Scenario, role: str, product_name: str) -> Subscription:
    cid = company_id(scn, role)
    products = {p.id: p.name for p in scn.vendor.products}
    (sub,) = [
        s for s in scn.vendor.subscriptions if s.company_id == cid and products[s.product_id] == product_name
    ]
    return sub


def concerns(scn: Scenario, finding, role: str) -> bool:  # noqa: ANN001
    """Whether a finding's subject points at the story customer (directly, or via a subscription or a
    billing configuration of it)."""
    cid = company_id(scn, role)
    subs = {s.id for s in scn.vendor.subscriptions if s.company_id == cid}
    configs = {c.id for c in scn.vendor.billing_configurations if c.company_id == cid}
    values = set(finding.subject.values())
    return cid in values or bool(values & subs) or bool(values & configs)


def codes_for(scn: Scenario, plan, role: str) -> set[str]:  # noqa: ANN001
    return {f.code for f in plan.findings if concerns(scn, f, role)}


def lines_of(plan, sub_id: str) -> dict[str, object]:  # noqa: ANN001
    return {line.key: line for line in plan.lines if line.subscription_id == sub_id}


# --- determinism and validity ---------------------------------------------------------------------


def test_same_seed_gives_identical_json(demo: Scenario) -> None:
    assert build_demo_scenario().model_dump_json() == demo.model_dump_json()
    assert build_demo_scenario(seed=7, as_of=DEMO_AS_OF).model_dump_json() == demo.model_dump_json()


def test_different_seed_gives_a_different_msp(demo: Scenario) -> None:
    other = build_demo_scenario(seed=8)
    assert other.model_dump_json() != demo.model_dump_json()
    assert {c.name for c in other.vendor.companies} != {c.name for c in demo.vendor.companies}
    # The story customers are there whatever the seed.
    assert set(DEMO_CUSTOMERS.values()) <= {c.name for c in other.vendor.companies}


def test_round_trips_through_validation(demo: Scenario) -> None:
    again = Scenario.model_validate(demo.model_dump())
    assert again.model_dump_json() == demo.model_dump_json()
    assert Scenario.model_validate_json(demo.model_dump_json()) == again


def test_settings_defaults_and_invoiced_through_parameter(demo: Scenario) -> None:
    assert demo.as_of == date(2026, 11, 21)
    assert demo.settings.invoiced_through is None
    assert demo.settings.psa == "connectwise"
    assert build_demo_scenario(invoiced_through=date(2026, 12, 31)).settings.invoiced_through == date(
        2026, 12, 31
    )


@pytest.mark.parametrize("psa", ["connectwise", "halopsa", "autotask"])
def test_ids_vendor_uuids_psa_integers(psa: str) -> None:
    scn = build_demo_scenario(psa=psa)
    assert scn.settings.psa == psa
    for c in scn.vendor.companies:
        assert uuid.UUID(c.id).version == 4
    for s in scn.vendor.subscriptions:
        assert uuid.UUID(s.id).version == 4
    for group in (scn.psa.companies, scn.psa.products, scn.psa.agreements, scn.psa.lines):
        ids = [x.id for x in group]
        assert all(i.isdigit() for i in ids)
        assert len(set(ids)) == len(ids)
    if psa == "connectwise":
        assert all(len(line.description) <= 50 for line in scn.psa.lines)


def test_unknown_psa_is_refused() -> None:
    with pytest.raises(ValueError):
        build_demo_scenario(psa="kaseya")


# --- shape ----------------------------------------------------------------------------------------


def test_counts_in_range(demo: Scenario) -> None:
    v = demo.vendor
    assert 35 <= len(v.companies) <= 45
    assert len(v.subscriptions) == 400
    history = sum(len(s.history) for s in v.subscriptions)
    assert 2_000 <= history <= 6_000
    assert 100 <= len(v.usage) <= 400
    assert len(v.billing_configurations) == 3
    assert {c.mode for c in v.billing_configurations} == {"average", "total", "quantity_only"}
    assert 30 <= len(demo.psa.agreements) <= 50
    assert len(demo.psa.lines) >= 300
    # most companies mapped, several not
    mapped = {m.vendor_id for m in demo.mappings.companies}
    unmapped = [c for c in v.companies if c.id not in mapped]
    assert 3 <= len(unmapped) <= 8
    assert len(mapped) >= 0.8 * len(v.companies)


def test_every_product_kind_and_quota_shape(demo: Scenario) -> None:
    products = {p.id: p for p in demo.vendor.products}
    kinds = Counter(products[s.product_id].kind for s in demo.vendor.subscriptions)
    assert set(kinds) == {"seat", "endpoint_usage", "usage_summary", "quota"}
    assert kinds["seat"] > 300
    proofpoint = [p for p in products.values() if p.kind == "endpoint_usage"]
    assert proofpoint and set(proofpoint[0].sub_products) == {"Business", "Advanced", "Pro"}
    quota = [p for p in products.values() if p.kind == "quota"]
    assert {p.service for p in quota} == {"licence", "backup_storage", "disaster_recovery", "geo_redundancy"}
    assert {p.edition for p in quota} >= {"per_workload", "per_gigabyte"}
    geo = [p for p in quota if p.service == "geo_redundancy"]
    assert geo and all(p.parent_product_id in products for p in geo)
    assert len({p.storage_location for p in quota if p.storage_location}) >= 2
    free = [b for b in demo.mappings.products if b.free]
    assert free
    # endpoint rows are day-19 snapshots; usage summaries carry charges and partner totals
    for row in demo.vendor.usage:
        kind = products[
            next(s.product_id for s in demo.vendor.subscriptions if s.id == row.subscription_id)
        ].kind
        if kind == "endpoint_usage":
            assert row.sub_product in {"Business", "Advanced", "Pro"}
            assert row.snapshot_date is not None and row.snapshot_date.day == 19
        elif kind == "usage_summary":
            assert row.charges is not None and row.partner_total is not None
            assert Decimal(0) < row.partner_total < row.charges


def test_history_is_varied_and_prices_realistic(demo: Scenario) -> None:
    rows = [r for s in demo.vendor.subscriptions for r in s.history]
    assert {r.action for r in rows} == {"initial", "increase", "decrease", "cancel"}
    days = [r.effective_date for r in rows]
    assert min(days) >= date(2025, 5, 1)
    assert max(days) <= demo.as_of
    assert any(d.day == 1 for d in days)
    assert any(d.day == 31 for d in days)
    assert any(d.month == 2 for d in days)
    assert any(d.month == 2 and d.day in (28, 29) for d in days)
    for s in demo.vendor.subscriptions:
        keys = [r.effective_date for r in s.history]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        if s.history:
            assert s.history[0].action == "initial"
            assert all(r.quantity > 0 for r in s.history if r.action != "cancel")
        if s.unit_price:
            assert Decimal(0) < s.unit_cost < s.unit_price
        assert (s.status == "cancelled") == (s.cancelled_date is not None)
    cancelled = [s for s in demo.vendor.subscriptions if s.status == "cancelled"]
    assert 2 <= len(cancelled) <= 20


def test_a_realistic_minority_is_unsynced(demo: Scenario) -> None:
    synced = {k.key for k in demo.synced}
    assert all(re.fullmatch(r"[0-9a-f-]{36}:prorate:\d{4}-\d{2}-\d{2}", k) for k in synced)
    mapped = {m.vendor_id for m in demo.mappings.companies}
    seat_ids = {p.id for p in demo.vendor.products if p.kind == "seat"}
    seats = [
        s
        for s in demo.vendor.subscriptions
        if s.product_id in seat_ids and s.company_id in mapped and s.billing_term == "monthly"
    ]
    unsynced = [
        s
        for s in seats
        if any(f"{s.id}:prorate:{r.effective_date.isoformat()}" not in synced for r in s.history)
    ]
    assert 0.08 <= len(unsynced) / len(seats) <= 0.25


def test_story_customers_and_names(demo: Scenario) -> None:
    assert set(DEMO_STORIES) == set(DEMO_CUSTOMERS)
    names = [c.name for c in demo.vendor.companies]
    assert len(set(names)) == len(names)
    assert set(DEMO_CUSTOMERS.values()) <= set(names)
    psa_names = {c.name for c in demo.psa.companies}

    def loose(name: str) -> str:
        name = re.sub(r"[^a-z0-9 ]", "", name.casefold().replace("&", "and"))
        return re.sub(r"\b(inc|llc|ltd|pc|llp|co)\b", "", name).split()  # type: ignore[return-value]

    for role in ("near_miss", "near_miss_inc", "near_miss_llc"):
        vendor_name = DEMO_CUSTOMERS[role]
        (twin,) = [p for p in psa_names if loose(p) == loose(vendor_name)]
        assert twin.strip().casefold() != vendor_name.strip().casefold()  # only a suggestion
    # one vendor company mapped to two PSA companies, nothing else
    targets = Counter(m.vendor_id for m in demo.mappings.companies)
    assert [v for v, n in targets.items() if n > 1] == [company_id(demo, "duplicate_mapping")]


def test_early_as_of_keeps_history_before_as_of() -> None:
    scn = build_demo_scenario(as_of=date(2026, 11, 3))
    for s in scn.vendor.subscriptions:
        assert all(r.effective_date <= scn.as_of for r in s.history)
        assert s.start_date <= scn.as_of
    Scenario.model_validate(scn.model_dump())


# --- scale ----------------------------------------------------------------------------------------


def test_scale_builds_the_same_shapes() -> None:
    scn = build_demo_scenario(scale=2_000)
    v = scn.vendor
    assert len(v.subscriptions) == 2_000
    assert 70 <= len(v.companies) <= 100
    assert 7 <= sum(len(s.history) for s in v.subscriptions) / len(v.subscriptions) <= 12
    assert 400 <= len(v.usage) <= 1_500
    again = Scenario.model_validate(scn.model_dump())
    assert again.model_dump_json() == scn.model_dump_json()
    assert build_demo_scenario(scale=2_000).model_dump_json() == scn.model_dump_json()


def test_scale_50000_has_month_end_shapes() -> None:
    scn = build_demo_scenario(scale=50_000)
    v = scn.vendor
    assert len(v.subscriptions) == 50_000
    assert 1_900 <= len(v.companies) <= 2_200
    assert 400_000 <= sum(len(s.history) for s in v.subscriptions) <= 600_000
    assert 12_000 <= len(v.usage) <= 30_000


def test_the_generator_does_linear_work(python_lines: Callable[[Callable[[], object]], int]) -> None:
    """Twice the subscriptions, about twice the work (quadratic would be four times): the Python
    lines `build_demo_scenario` runs at 2,000 and 4,000 subscriptions, counted, not timed (the
    generated shapes vary a little with the scale). Its time is a bench figure (`bench.builders`)."""
    work = {n: python_lines(lambda n=n: build_demo_scenario(scale=n)) for n in (2_000, 4_000)}
    assert work[4_000] <= 2.2 * work[2_000], work


def test_scale_too_small_is_refused() -> None:
    with pytest.raises(ValueError):
        build_demo_scenario(scale=20)


# --- the plan -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reconcile():  # noqa: ANN201
    module = pytest.importorskip("engine.reconcile")
    return module.reconcile


@pytest.fixture(scope="module")
def plan(demo: Scenario, reconcile):  # noqa: ANN001, ANN201
    return reconcile(demo)


def test_plan_raises_every_rules_code(plan) -> None:  # noqa: ANN001
    raised = {f.code for f in plan.findings}
    assert set(RULES_CODES) <= raised, sorted(set(RULES_CODES) - raised)


def test_plan_is_mostly_in_sync(demo: Scenario, plan) -> None:  # noqa: ANN001
    touched = {line.subscription_id for line in plan.lines}
    assert 0.08 <= len(touched) / len(demo.vendor.subscriptions) <= 0.30
    assert plan.invoiced_through == date(2026, 11, 30)


def test_story_prorates_and_threshold(demo: Scenario, plan) -> None:  # noqa: ANN001
    bb = subscription(demo, "prorate_story", "Microsoft 365 Business Basic")
    lines = lines_of(plan, bb.id)
    assert set(lines) == {f"{bb.id}:recurring", f"{bb.id}:prorate:2026-11-05", f"{bb.id}:prorate:2026-11-17"}
    rec = lines[f"{bb.id}:recurring"]
    assert (rec.action, rec.quantity, rec.previous_quantity) == ("update", 283, 270)
    p1, p2 = lines[f"{bb.id}:prorate:2026-11-05"], lines[f"{bb.id}:prorate:2026-11-17"]
    assert (p1.quantity, p1.unit_price, p1.unit_cost, p1.total_price) == (
        12,
        Decimal("5.00"),
        Decimal("4.25"),
        Decimal("60.00"),
    )
    assert (p2.quantity, p2.unit_price, p2.unit_cost) == (1, Decimal("2.60"), Decimal("2.21"))
    assert p1.effective_date == date(2026, 12, 1) and p1.end_date == date(2026, 12, 31)
    assert (p1.period_start, p1.period_end) == (date(2026, 11, 5), date(2026, 11, 30))
    bs = subscription(demo, "prorate_story", "Microsoft 365 Business Standard")
    lines = lines_of(plan, bs.id)
    assert set(lines) == {f"{bs.id}:recurring", f"{bs.id}:prorate:2026-11-20"}
    assert lines[f"{bs.id}:recurring"].quantity == 11
    threshold = lines[f"{bs.id}:prorate:2026-11-20"]
    assert (threshold.quantity, threshold.unit_price, threshold.unit_cost) == (
        1,
        Decimal("4.17"),
        Decimal("3.54"),
    )
    assert codes_for(demo, plan, "prorate_story") == set()


def test_story_new_subscription(demo: Scenario, plan) -> None:  # noqa: ANN001
    e3 = subscription(demo, "new_subscription", "Microsoft 365 E3")
    lines = lines_of(plan, e3.id)
    assert set(lines) == {f"{e3.id}:recurring", f"{e3.id}:prorate:2026-11-04", f"{e3.id}:prorate:2026-11-17"}
    rec = lines[f"{e3.id}:recurring"]
    assert (rec.action, rec.quantity, rec.total_price, rec.effective_date) == (
        "create",
        3,
        Decimal("108.00"),
        date(2026, 12, 1),
    )
    first = lines[f"{e3.id}:prorate:2026-11-04"]
    assert (first.quantity, first.unit_price, first.total_price) == (2, Decimal("31.20"), Decimal("62.40"))
    assert lines[f"{e3.id}:prorate:2026-11-17"].unit_price == Decimal("15.60")


def test_story_invoiced_in_advance_extra_months(demo: Scenario, plan) -> None:  # noqa: ANN001
    bp = subscription(demo, "invoiced_in_advance", "Microsoft 365 Business Premium")
    lines = lines_of(plan, bp.id)
    assert set(lines) == {
        f"{bp.id}:recurring",
        f"{bp.id}:prorate:2026-09-14",
        f"{bp.id}:extra_months:2026-10",
    }
    assert lines[f"{bp.id}:recurring"].quantity == 18
    prorate = lines[f"{bp.id}:prorate:2026-09-14"]
    assert (prorate.quantity, prorate.unit_price, prorate.unit_cost, prorate.total_price) == (
        3,
        Decimal("11.73"),
        Decimal("9.97"),
        Decimal("35.19"),
    )
    extra = lines[f"{bp.id}:extra_months:2026-10"]
    assert (extra.quantity, extra.months, extra.unit_price, extra.total_price, extra.total_cost) == (
        3,
        2,
        Decimal("22.00"),
        Decimal("132.00"),
        Decimal("112.20"),
    )
    assert (extra.period_start, extra.period_end) == (date(2026, 10, 1), date(2026, 11, 30))
    assert extra.effective_date == date(2026, 12, 1)


def test_story_cancellations(demo: Scenario, plan) -> None:  # noqa: ANN001
    exo = subscription(demo, "cancel_credit", "Exchange Online (Plan 1)")
    cancel = lines_of(plan, exo.id)[f"{exo.id}:cancel"]
    assert (cancel.action, cancel.end_date, cancel.quantity) == ("cancel", date(2026, 10, 31), 12)
    assert any(f.code == "credit_due" and f.subject.get("subscription_id") == exo.id for f in plan.findings)
    assert not any(line.total_price < 0 for line in plan.lines)  # never a credit line
    dfb = subscription(demo, "cancel_story", "Microsoft Defender for Business")
    cancel = lines_of(plan, dfb.id)[f"{dfb.id}:cancel"]
    assert (cancel.action, cancel.end_date) == ("cancel", date(2026, 11, 30))
    assert "credit_due" not in codes_for(demo, plan, "cancel_story")


def test_story_arrears(demo: Scenario, plan) -> None:  # noqa: ANN001
    pp = subscription(demo, "arrears_story", "Proofpoint Essentials")
    lines = lines_of(plan, pp.id)
    assert set(lines) == {f"{pp.id}:arrears:Business", f"{pp.id}:arrears:Advanced"}
    business, advanced = lines[f"{pp.id}:arrears:Business"], lines[f"{pp.id}:arrears:Advanced"]
    assert (business.action, business.quantity, business.total_price) == ("update", 17, Decimal("51.00"))
    assert (advanced.action, advanced.quantity, advanced.total_price) == ("create", 4, Decimal("18.00"))
    assert business.effective_date == advanced.effective_date == pp.start_date
    pending = subscription(demo, "usage_pending", "Proofpoint Essentials")
    assert lines_of(plan, pending.id) == {}
    assert any(
        f.code == "usage_pending" and f.subject.get("subscription_id") == pending.id for f in plan.findings
    )


def test_story_usage_summary(demo: Scenario, plan, reconcile) -> None:  # noqa: ANN001
    azure = subscription(demo, "usage_summary", "Microsoft Azure Plan")
    (line,) = lines_of(plan, azure.id).values()
    assert (line.kind, line.action, line.quantity) == ("usage_summary", "update", 1)
    assert (line.unit_price, line.unit_cost) == (Decimal("1284.37"), Decimal("1091.71"))
    assert line.description.endswith("(Usage Summary)")
    assert not line.provisional
    early = build_demo_scenario(as_of=date(2026, 11, 3))
    azure = subscription(early, "usage_summary", "Microsoft Azure Plan")
    (line,) = lines_of(reconcile(early), azure.id).values()
    assert line.provisional and line.unit_price == Decimal("1284.37")


def test_story_billing_modes(demo: Scenario, plan) -> None:  # noqa: ANN001
    ws = subscription(demo, "billing_modes", "Workstations")
    (line,) = lines_of(plan, ws.id).values()
    assert (line.kind, line.action, line.quantity) == ("usage", "update", 14)
    st = subscription(demo, "billing_modes", "Backup storage - Acronis Hosted (US2)")
    (line,) = lines_of(plan, st.id).values()
    assert (line.kind, line.action, line.quantity) == ("usage", "update", 112)
    metered = [x for x in demo.psa.lines if x.id == line.psa_line_id]
    assert metered and metered[0].metered
    for quiet in ("Servers", "Microsoft 365 seats", "Virtual machines"):
        assert lines_of(plan, subscription(demo, "billing_modes", quiet).id) == {}
    vm = subscription(demo, "billing_modes", "Virtual machines")
    assert any(
        f.code == "no_product_to_sync" and f.subject.get("subscription_id") == vm.id for f in plan.findings
    )
    assert codes_for(demo, plan, "billing_modes") == {"no_product_to_sync"}


@pytest.mark.parametrize(
    ("role", "code"),
    [
        ("mixed_editions", "mixed_editions"),
        ("locations_differ", "locations_differ"),
        ("geo_without_parent", "geo_redundancy_without_parent"),
        ("duplicate_mapping", "duplicate_mapping"),
        ("no_agreement", "no_active_agreement"),
        ("two_agreements", "multiple_active_agreements"),
        ("period_mismatch", "billing_period_mismatch"),
        ("product_not_bound", "product_not_bound"),
        ("not_mapped", "company_not_mapped"),
        ("near_miss", "company_not_mapped"),
        ("near_miss_inc", "company_not_mapped"),
        ("near_miss_llc", "company_not_mapped"),
        ("price_missing", "price_missing"),
    ],
)
def test_story_mapping_errors(demo: Scenario, plan, role: str, code: str) -> None:  # noqa: ANN001
    assert code in codes_for(demo, plan, role)


def test_story_agreements(demo: Scenario, plan) -> None:  # noqa: ANN001
    bs = subscription(demo, "two_agreements", "Microsoft 365 Business Standard")
    lines = lines_of(plan, bs.id)
    newest = [a.id for a in demo.psa.agreements if a.name == "Managed Services 2025 Renewal"]
    assert lines[f"{bs.id}:recurring"].psa_agreement_id == newest[0]
    assert lines[f"{bs.id}:recurring"].quantity == 10
    annual = company_id(demo, "annual_only")
    assert not [line for line in plan.lines if line.company_id == annual]
    assert codes_for(demo, plan, "annual_only") == set()
    for role in ("duplicate_mapping", "no_agreement", "not_mapped", "near_miss", "period_mismatch"):
        cid = company_id(demo, role)
        blocked = [
            s.id
            for s in demo.vendor.subscriptions
            if s.company_id == cid and (role != "period_mismatch" or s.billing_term == "annual")
        ]
        assert not [line for line in plan.lines if line.subscription_id in blocked], role


def test_story_billing_configurations(demo: Scenario, plan) -> None:  # noqa: ANN001
    by_name = {c.name: c for c in demo.vendor.billing_configurations}
    config_lines = {
        line.subscription_id: line
        for line in plan.lines
        if line.subscription_id in {c.id for c in by_name.values()}
    }
    assert len(config_lines) == 3
    average = config_lines[by_name["Backup licences"].id]
    assert (average.quantity, average.unit_price) == (25, Decimal("18.92"))  # (22 × 14 + 3 × 55) / 25
    total = config_lines[by_name["Cloud backup - all in"].id]
    assert (total.quantity, total.unit_price, total.unit_cost) == (1, Decimal("499.00"), Decimal("189.00"))
    quantity_only = config_lines[by_name["M365 mailbox backup"].id]
    assert (quantity_only.quantity, quantity_only.unit_price) == (26, 0)


def test_configuration_items_are_not_quota_items(demo: Scenario, plan) -> None:  # noqa: ANN001
    for role in ("billing_config", "price_missing"):
        assert "no_product_to_sync" not in codes_for(demo, plan, role)


def test_story_ignored_prorate(demo: Scenario, plan) -> None:  # noqa: ANN001
    bs = subscription(demo, "ignored_prorate", "Microsoft 365 Business Standard")
    lines = lines_of(plan, bs.id)
    assert set(lines) == {f"{bs.id}:recurring"}
    assert lines[f"{bs.id}:recurring"].quantity == 16
    assert plan.totals.ignored >= 1


def test_invoiced_in_advance_setting(reconcile) -> None:  # noqa: ANN001
    scn = build_demo_scenario(invoiced_through=date(2026, 12, 31))
    result = reconcile(scn)
    assert result.invoiced_through == date(2026, 12, 31)
    bb = subscription(scn, "prorate_story", "Microsoft 365 Business Basic")
    lines = lines_of(result, bb.id)
    extra = lines[f"{bb.id}:extra_months:2026-12"]
    assert (extra.quantity, extra.months, extra.total_price, extra.effective_date) == (
        13,
        1,
        Decimal("78.00"),
        date(2027, 1, 1),
    )
    assert lines[f"{bb.id}:prorate:2026-11-05"].effective_date == date(2027, 1, 1)
    dfb = subscription(scn, "cancel_story", "Microsoft Defender for Business")
    assert any(f.code == "credit_due" and f.subject.get("subscription_id") == dfb.id for f in result.findings)
