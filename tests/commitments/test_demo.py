"""The demo MSP shows every commitment finding on a fixed date (2026-11-21, the demo's as_of), on the
story customer DEMO_CUSTOMERS["commitments"] alone, and the rest of the demo is left as it was."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from engine.plan import Plan
from engine.reconcile import reconcile
from engine.rules.commitments import renewals
from engine.sandbox.demo import DEMO_CUSTOMERS, build_demo_scenario
from engine.scenario import Scenario

AS_OF = date(2026, 11, 21)
CODES = {
    "seats_reducible_until",
    "renewal_window_open",
    "renewal_in_n_days",
    "commitment_cost_continues",
    "seats_reducible_at_renewal",
}


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return build_demo_scenario(as_of=AS_OF)


@pytest.fixture(scope="module")
def plan(demo: Scenario) -> Plan:
    return reconcile(demo)


def story_subs(demo: Scenario) -> dict[str, str]:
    """product name -> subscription id, for the commitments story customer."""
    [company] = [c for c in demo.vendor.companies if c.name == DEMO_CUSTOMERS["commitments"]]
    products = {p.id: p.name for p in demo.vendor.products}
    return {products[s.product_id]: s.id for s in demo.vendor.subscriptions if s.company_id == company.id}


def messages(plan: Plan, code: str, sub_id: str) -> list[str]:
    return [f.message for f in plan.findings if f.code == code and f.subject["subscription_id"] == sub_id]


def test_the_demo_shows_each_commitment_finding_on_its_story_customer(demo: Scenario, plan: Plan) -> None:
    subs = story_subs(demo)
    found = {f.code for f in plan.findings if f.code in CODES}
    assert found == CODES
    assert all(f.subject["subscription_id"] in subs.values() for f in plan.findings if f.code in CODES)
    [bp] = messages(plan, "seats_reducible_until", subs["Microsoft 365 Business Premium"])
    assert "2 seat(s) added 2026-11-18 14:05 UTC are reducible until 2026-11-25 14:05 UTC" in bp
    [e3] = messages(plan, "commitment_cost_continues", subs["Microsoft 365 E3"])
    # Term 2026-03-10 … 2027-03-09: periods from 12-10, 01-10, 02-10 → 3; 2 seats × $30.60 / $36.00.
    assert "the MSP still pays $183.60 over 3 month(s)" in e3
    assert "no longer be billed $216.00" in e3
    [exo] = messages(plan, "renewal_in_n_days", subs["Exchange Online (Plan 1)"])
    assert "renews automatically in 10 day(s)" in exo
    [phone] = messages(plan, "renewal_window_open", subs["Microsoft Teams Phone Standard"])
    assert "5 day(s) left" in phone
    [dfb] = messages(plan, "seats_reducible_at_renewal", subs["Microsoft Defender for Business"])
    assert "3 seat(s) more than the customer is billed" in dfb
    # Term 2025-09-01 … 2028-08-31; the window is the 7 days after it ends.
    assert "reducible at renewal on 2028-08-31 (window 2028-08-31–2028-09-07)" in dfb
    for quiet in ("Microsoft 365 Business Basic", "Microsoft 365 E5"):
        assert not [f for f in plan.findings if f.subject.get("subscription_id") == subs[quiet]]


def test_the_demo_has_monthly_annual_three_year_and_trial_terms(demo: Scenario) -> None:
    terms = {c.term for c in demo.vendor.commitments}
    assert terms == {"monthly", "annual", "three_year", "trial"}
    by_id = {s.id: s for s in demo.vendor.subscriptions}
    billed = {(c.term, by_id[c.subscription_id].billing_term) for c in demo.vendor.commitments}
    assert ("annual", "monthly") in billed and ("annual", "annual") in billed  # paid monthly / up front


def test_the_demo_renewals_soonest_closing_first(demo: Scenario) -> None:
    rows = renewals(demo, today=AS_OF, within_days=14)
    assert [(r.product, r.state, r.days_left) for r in rows] == [
        ("Microsoft Teams Phone Standard", "open", 5),
        ("Exchange Online (Plan 1)", "upcoming", 18),
    ]
    assert rows[1].quantity == Decimal(15)
