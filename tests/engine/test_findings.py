"""RULES.md §8: every mapping error is a finding with a code, a subject and an actionable message,
and it clears itself once its cause is gone."""

from __future__ import annotations

import pytest
from builders import (
    AGREEMENT,
    COMPANY,
    PSA_COMPANY,
    D,
    codes,
    findings,
    keys,
    plan_of,
    psa_line,
    seat_plan,
    seat_sub,
    synced,
    the_line,
)

from engine.rules.findings import CODES

RULES_CODES = {
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
}
SEAT = (("2020-01-01", 3), ("2020-09-09", 4))


def seat(**kwargs):  # type: ignore[no-untyped-def]
    return seat_plan("2020-09-15", *SEAT, **kwargs)


def test_every_rules_code_is_known_with_a_severity_and_a_hint() -> None:
    assert RULES_CODES <= set(CODES)
    for code, (severity, hint) in CODES.items():
        assert severity in ("error", "warning"), code
        assert hint.strip(), code
    assert CODES["multiple_active_agreements"][0] == "warning"
    assert CODES["credit_due"][0] == "warning"
    assert CODES["company_not_mapped"][0] == "error"


def test_company_not_mapped() -> None:
    plan = seat(company_mappings=[])
    assert plan.lines == []
    [f] = findings(plan, "company_not_mapped")
    assert (f.severity, f.subject) == ("error", {"vendor_company_id": "acme"})
    assert f.message == "Acme Dental is not mapped to a PSA company."


def test_product_not_bound() -> None:
    plan = seat(bindings=[])
    [f] = findings(plan, "product_not_bound")
    assert (f.severity, f.subject) == ("error", {"subscription_id": "S1"})
    assert f.message == "Microsoft 365 Business Basic is not bound to a PSA product."


@pytest.mark.parametrize(
    "agreement",
    [
        {**AGREEMENT, "end_date": "2020-09-30"},  # ended before E (10/1)
        {**AGREEMENT, "start_date": "2020-10-02"},  # starts after E
    ],
)
def test_no_active_agreement(agreement: dict) -> None:
    plan = seat(agreements=[agreement])
    assert plan.lines == []
    [f] = findings(plan, "no_active_agreement")
    assert (f.severity, f.subject) == ("error", {"subscription_id": "S1"})
    assert "has no agreement active on 2020-10-01" in f.message


def test_an_explicit_agreement_that_does_not_exist_is_no_active_agreement() -> None:
    plan = seat(agreement_mappings=[{"vendor_company_id": "acme", "psa_agreement_id": "gone"}])
    assert "the mapped agreement gone does not exist" in findings(plan, "no_active_agreement")[0].message


def test_multiple_active_agreements_uses_the_newest_with_a_warning() -> None:
    newer = {
        "id": "AG2",
        "company_id": "P1",
        "name": "Acme Monthly 2020",
        "start_date": "2020-01-01",
        "billing_period": "monthly",
    }
    plan = seat(agreements=[AGREEMENT, newer])
    assert the_line(plan, "S1:recurring").psa_agreement_id == "AG2"
    [f] = findings(plan, "multiple_active_agreements")
    assert (f.severity, f.subject) == ("warning", {"vendor_company_id": "acme", "psa_agreement_id": "AG2"})
    assert "using the newest, 'Acme Monthly 2020'" in f.message


def test_an_explicit_agreement_mapping_wins_without_a_warning() -> None:
    newer = {
        "id": "AG2",
        "company_id": "P1",
        "name": "Acme Monthly 2020",
        "start_date": "2020-01-01",
        "billing_period": "monthly",
    }
    plan = seat(
        agreements=[AGREEMENT, newer],
        agreement_mappings=[{"vendor_company_id": "acme", "psa_agreement_id": "AG1"}],
    )
    assert the_line(plan, "S1:recurring").psa_agreement_id == "AG1"
    assert plan.findings == []


def test_billing_period_mismatch_annual_subscription_monthly_agreement() -> None:
    sub = seat_sub("S1", ("2020-01-01", 1), term="annual", price="120.00", cost="96.00")
    plan = plan_of("2020-09-15", subs=[sub], synced_keys=[synced("S1:prorate:2020-01-01")])
    assert plan.lines == []
    [f] = findings(plan, "billing_period_mismatch")
    assert (f.severity, f.subject) == ("error", {"subscription_id": "S1"})
    assert "annual subscription" in f.message and "'Acme Monthly' (monthly)" in f.message


@pytest.mark.parametrize(
    ("companies", "mappings", "subject"),
    [
        (
            [COMPANY],
            [{"vendor_id": "acme", "psa_id": "P1"}, {"vendor_id": "acme", "psa_id": "P2"}],
            {"vendor_company_id": "acme"},
        ),
        (
            [COMPANY, {"id": "acme2", "name": "Acme Dental (old)"}],
            [{"vendor_id": "acme", "psa_id": "P1"}, {"vendor_id": "acme2", "psa_id": "P1"}],
            {"psa_company_id": "P1"},
        ),
    ],
)
def test_duplicate_mapping(companies: list, mappings: list, subject: dict) -> None:
    plan = seat(
        companies=companies,
        company_mappings=mappings,
        psa_companies=[PSA_COMPANY, {"id": "P2", "name": "Acme Dental Inc"}],
    )
    assert plan.lines == []
    [f] = findings(plan, "duplicate_mapping")
    assert (f.severity, f.subject) == ("error", subject)


def test_credit_due_is_a_warning_and_lines_still_flow() -> None:
    plan = seat_plan(
        "2020-11-20",
        ("2020-01-01", 2),
        ("2020-11-10", 3),
        billed=5,
        settings={"invoiced_through": "2021-01-31"},
    )
    assert findings(plan, "credit_due")[0].severity == "warning"
    assert "S1:recurring" in keys(plan)


def test_override_ignored_names_the_key_and_the_date_used() -> None:
    plan = seat(overrides=[{"key": "S1:prorate:2020-09-09", "effective_date": "2020-11-15"}])
    [f] = findings(plan, "override_ignored")
    assert (f.severity, f.subject) == ("warning", {"key": "S1:prorate:2020-09-09"})
    assert "2020-11-15" in f.message and "2020-10-01 is used" in f.message


def test_errors_sort_before_warnings() -> None:
    newer = {
        "id": "AG2",
        "company_id": "P1",
        "name": "Newer",
        "start_date": "2020-01-01",
        "billing_period": "monthly",
    }
    subs = [seat_sub("S1", *SEAT), seat_sub("S2", ("2020-01-01", 1), product="unbound")]
    products = [
        {"id": "seat", "name": "Seat", "kind": "seat"},
        {"id": "unbound", "name": "Other", "kind": "seat"},
    ]
    plan = plan_of(
        "2020-09-15",
        subs=subs,
        products=products,
        agreements=[AGREEMENT, newer],
        synced_keys=[synced("S1:prorate:2020-01-01")],
    )
    assert [f.code for f in plan.findings] == ["product_not_bound", "multiple_active_agreements"]


def test_the_contract_mapping_errors_in_one_scenario() -> None:
    plan = plan_of(
        "2024-06-10",
        companies=[
            {"id": "a", "name": "Alpha LLC"},
            {"id": "b", "name": "Beta Inc"},
            {"id": "c", "name": "Gamma Ltd"},
            {"id": "d", "name": "Delta Co"},
        ],
        products=[{"id": "p1", "name": "Product One"}, {"id": "p2", "name": "Product Two"}],
        subs=[
            seat_sub(f"s{i}", ("2024-01-01", 1), company=c, product=p, term=t)
            for i, (c, p, t) in enumerate(
                [
                    ("a", "p1", "monthly"),
                    ("b", "p2", "monthly"),
                    ("c", "p1", "monthly"),
                    ("d", "p1", "annual"),
                ],
                start=1,
            )
        ],
        psa_companies=[
            {"id": "B", "name": "Beta Inc"},
            {"id": "C", "name": "Gamma Ltd"},
            {"id": "D", "name": "Delta Co"},
        ],
        psa_products=[{"id": "X1", "name": "Product One"}],
        agreements=[{"id": "AD", "company_id": "D", "name": "Delta Monthly", "start_date": "2018-01-01"}],
        company_mappings=[{"vendor_id": v, "psa_id": v.upper()} for v in "bcd"],
        bindings=[{"vendor_product_id": "p1", "psa_product_id": "X1"}],
    )
    assert plan.lines == []
    assert {(f.code, tuple(f.subject.values())) for f in plan.findings} == {
        ("company_not_mapped", ("a",)),
        ("product_not_bound", ("s2",)),
        ("no_active_agreement", ("s3",)),
        ("billing_period_mismatch", ("s4",)),
    }
    assert (plan.totals.price, plan.totals.cost) == (D("0"), D("0"))


# --- errors clear themselves ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "code"),
    [
        ({"company_mappings": []}, "company_not_mapped"),
        ({"bindings": []}, "product_not_bound"),
        ({"agreements": []}, "no_active_agreement"),
    ],
)
def test_an_error_clears_itself_once_its_cause_is_gone(broken: dict, code: str) -> None:
    before = seat(**broken)
    assert code in codes(before) and before.lines == []
    after = seat()
    assert after.findings == []
    assert keys(after) == ["S1:recurring", "S1:prorate:2020-09-09"]


def test_a_finding_does_not_block_other_companies() -> None:
    other = {"id": "zeta", "name": "Zeta Labs"}
    subs = [seat_sub("S1", *SEAT), seat_sub("S2", ("2020-01-01", 3), ("2020-09-09", 4), company="zeta")]
    plan = plan_of(
        "2020-09-15",
        subs=subs,
        companies=[COMPANY, other],
        synced_keys=[synced("S1:prorate:2020-01-01"), synced("S2:prorate:2020-01-01")],
        lines=[psa_line("L1", 3, sub="S1")],
    )
    assert codes(plan) == {"company_not_mapped"}
    assert keys(plan) == ["S1:recurring", "S1:prorate:2020-09-09"]
