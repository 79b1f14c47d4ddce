"""Operator actions: each changes the store, writes one audit event, or refuses with a message an
operator can act on and changes nothing."""

from __future__ import annotations

from datetime import date

import pytest
from builders import COMPANY, build, keys, psa_line, seat_sub, synced

from engine import actions, audit
from engine.store import Store

AS_OF = date(2020, 9, 20)
SUB = seat_sub("S1", ("2019-01-01", 270), ("2020-08-05", 282), ("2020-08-17", 283))


@pytest.fixture
def store() -> Store:
    s = Store.memory()
    s.import_scenario(
        build(
            AS_OF.isoformat(),
            subs=[SUB],
            lines=[psa_line("L1", 270, sub="S1")],
            synced_keys=[synced("S1:prorate:2019-01-01")],
            companies=[
                COMPANY,
                {"id": "beta", "name": "Beta Inc"},
                {"id": "gamma", "name": "  gamma  dental "},
                {"id": "delta", "name": "Delta Co"},
                {"id": "old", "name": "Old Customer", "status": "inactive"},
            ],
            psa_companies=[
                {"id": "P1", "name": "Acme Dental PC"},
                {"id": "PB", "name": "Beta, Inc."},
                {"id": "PG", "name": "Gamma Dental"},
                {"id": "PD", "name": "Delta Company LLC"},
                {"id": "PO", "name": "Old Customer"},
                {"id": "PX", "name": "Unrelated Holdings"},
            ],
            products=[
                {"id": "seat", "name": "Microsoft 365 Business Basic"},
                {"id": "pp", "name": "Proofpoint", "kind": "endpoint_usage", "sub_products": ["Business"]},
            ],
            psa_products=[{"id": "PP1", "name": "M365 Basic"}, {"id": "PP2", "name": "Proofpoint Business"}],
        )
    )
    yield s
    s.close()


def events(store: Store) -> list[audit.AuditEvent]:
    with store.session() as s:
        return audit.events(s)


def state(store: Store) -> str:
    return store.snapshot(AS_OF).model_dump_json()


def refused(store: Store, call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """Runs an action that must be refused; checks it changed nothing and returns its message."""
    before, n = state(store), len(events(store))
    with pytest.raises(actions.ActionError) as info:
        call(store, *args, **kwargs)
    assert state(store) == before
    assert len(events(store)) == n
    return str(info.value)


# --- ignore / restore ---------------------------------------------------------------------------------


def test_ignore_records_who_when_why_and_hides_the_line(store: Store) -> None:
    row = actions.ignore(store, "S1:prorate:2020-08-05", reason="goodwill", as_of=AS_OF, user="ann")
    assert (row.key, row.mode, row.by, row.on, row.reason) == (
        "S1:prorate:2020-08-05",
        "until_restored",
        "ann",
        AS_OF,
        "goodwill",
    )
    plan = actions.current_plan(store, AS_OF)
    assert "S1:prorate:2020-08-05" not in keys(plan)
    assert plan.totals.ignored == 1
    [event] = events(store)
    assert (event.action, event.subject, event.user, event.before) == (
        "ignore",
        "S1:prorate:2020-08-05",
        "ann",
        None,
    )
    assert event.after["reason"] == "goodwill"


def test_restore_brings_it_back_with_one_event(store: Store) -> None:
    actions.ignore(store, "S1:prorate:2020-08-05", as_of=AS_OF, user="ann")
    actions.restore(store, "S1:prorate:2020-08-05", user="bob")
    assert "S1:prorate:2020-08-05" in keys(actions.current_plan(store, AS_OF))
    assert [(e.action, e.user) for e in events(store)] == [("ignore", "ann"), ("restore", "bob")]


def test_ignore_this_change_stores_the_lines_fingerprint(store: Store) -> None:
    line = next(x for x in actions.current_plan(store, AS_OF).lines if x.key == "S1:recurring")
    row = actions.ignore(store, "S1:recurring", mode="this_change", as_of=AS_OF, user="ann")
    assert row.fingerprint == line.fingerprint
    assert "S1:recurring" not in keys(actions.current_plan(store, AS_OF))


def test_ignore_refusals(store: Store) -> None:
    assert refused(store, actions.ignore, "S9:recurring", as_of=AS_OF) == (
        "Nothing to ignore: no proposed line or subscription is called 'S9:recurring'."
    )
    assert refused(store, actions.ignore, "S1", mode="this_change", as_of=AS_OF) == (
        "'Ignore this change' applies to one line; pick a line, not a whole subscription."
    )
    assert refused(store, actions.restore, "S1:recurring") == "'S1:recurring' is not ignored."


def test_a_stale_ignore_edit_is_refused(store: Store) -> None:
    actions.ignore(store, "S1:recurring", as_of=AS_OF, user="ann")
    with pytest.raises(actions.StaleEdit):
        actions.ignore(store, "S1:recurring", as_of=AS_OF, expected_version=7)


# --- effective dates ------------------------------------------------------------------------------


def test_set_effective_date_moves_the_line_with_one_event(store: Store) -> None:
    actions.set_effective_date(store, "S1:prorate:2020-08-05", date(2020, 12, 1), as_of=AS_OF, user="ann")
    line = next(x for x in actions.current_plan(store, AS_OF).lines if x.key == "S1:prorate:2020-08-05")
    assert (line.effective_date, line.end_date) == (date(2020, 12, 1), date(2020, 12, 31))
    [event] = events(store)
    assert (event.action, event.before, event.after) == (
        "set_effective_date",
        {"effective_date": "2020-10-01"},
        {"effective_date": "2020-12-01"},
    )


def test_effective_date_refusals(store: Store) -> None:
    key = "S1:prorate:2020-08-05"
    assert refused(store, actions.set_effective_date, key, date(2020, 12, 2), as_of=AS_OF) == (
        "2020-12-02 is not the first of a month; effective dates start a month."
    )
    assert refused(store, actions.set_effective_date, key, date(2020, 9, 1), as_of=AS_OF) == (
        "2020-09-01 is before 2020-10-01, the first day not yet invoiced (invoiced through 2020-09-30)."
    )
    assert refused(store, actions.set_effective_date, "S1:recurring", date(2020, 12, 1), as_of=AS_OF) == (
        "The effective date cannot be changed when updating an existing line "
        "(S1:recurring updates PSA line L1)."
    )
    assert refused(
        store, actions.set_effective_date, "S1:prorate:1999-01-01", date(2020, 12, 1), as_of=AS_OF
    ) == ("No proposed line is called 'S1:prorate:1999-01-01'.")


def test_bulk_effective_dates_are_all_or_nothing(store: Store) -> None:
    message = refused(
        store,
        actions.set_effective_dates,
        ["S1:prorate:2020-08-05", "S1:recurring"],
        date(2020, 12, 1),
        as_of=AS_OF,
    )
    assert message.startswith("No date was changed:\nS1:recurring: The effective date cannot be changed")
    done = actions.set_effective_dates(
        store, ["S1:prorate:2020-08-05", "S1:prorate:2020-08-17"], date(2021, 1, 1), as_of=AS_OF, user="ann"
    )
    assert done == ["S1:prorate:2020-08-05", "S1:prorate:2020-08-17"]
    plan = actions.current_plan(store, AS_OF)
    assert {x.key: x.effective_date for x in plan.lines if x.kind == "prorate"} == {
        "S1:prorate:2020-08-05": date(2021, 1, 1),
        "S1:prorate:2020-08-17": date(2021, 1, 1),
    }
    assert [e.action for e in events(store)] == ["set_effective_date", "set_effective_date"]


# --- company mappings (RULES.md §9) ----------------------------------------------------------------------


def test_map_company_with_one_event(store: Store) -> None:
    actions.map_company(store, "beta", "PB", user="ann")
    assert {(m.vendor_id, m.psa_id) for m in store.snapshot(AS_OF).mappings.companies} == {
        ("acme", "P1"),
        ("beta", "PB"),
    }
    [event] = events(store)
    assert (event.action, event.subject, event.after) == (
        "map_company",
        "beta",
        {"psa_id": "PB", "psa_name": "Beta, Inc."},
    )


def test_map_company_is_one_to_one(store: Store) -> None:
    assert refused(store, actions.map_company, "acme", "PX") == (
        "Acme Dental is already mapped to PSA company P1; "
        "unmap it first (a vendor company maps to one PSA company)."
    )
    assert (
        refused(store, actions.map_company, "beta", "P1")
        == "Acme Dental PC is already mapped to Acme Dental."
    )
    assert (
        refused(store, actions.map_company, "acme", "P1")
        == "Acme Dental is already mapped to Acme Dental PC."
    )
    assert refused(store, actions.map_company, "nope", "PB") == "No vendor company 'nope'."
    assert refused(store, actions.map_company, "beta", "nope") == "No PSA company 'nope'."


def test_generate_mappings_applies_exact_names_and_only_suggests_near_ones(store: Store) -> None:
    result = actions.generate_mappings(store, user="ann")
    assert result.applied == [
        ("gamma", "PG")
    ]  # "  gamma  dental " = "Gamma Dental" after trimming and case folding
    suggested = {(s.vendor_id, s.psa_id) for s in result.suggestions}
    assert suggested == {
        ("beta", "PB"),
        ("delta", "PD"),
    }  # "Beta Inc" ~ "Beta, Inc."; "Delta Co" ~ "Delta Company LLC"
    mapped = {(m.vendor_id, m.psa_id) for m in store.snapshot(AS_OF).mappings.companies}
    assert mapped == {("acme", "P1"), ("gamma", "PG")}  # suggestions wait for a confirming keystroke
    assert ("old", "PO") not in mapped  # inactive vendor companies are left alone
    assert [(e.action, e.subject) for e in events(store)] == [("map_company", "gamma")]


def test_generate_mappings_without_apply_changes_nothing(store: Store) -> None:
    before = state(store)
    result = actions.generate_mappings(store, apply=False)
    assert result.applied == [("gamma", "PG")]
    assert state(store) == before and events(store) == []


# --- product bindings -------------------------------------------------------------------------------


def test_bind_product_with_one_event(store: Store) -> None:
    actions.bind_product(store, "pp", "PP2", sub_product="Business", user="ann")
    bindings = {
        (b.vendor_product_id, b.sub_product): b.psa_product_id
        for b in store.snapshot(AS_OF).mappings.products
    }
    assert bindings[("pp", "Business")] == "PP2"
    [event] = events(store)
    assert (event.action, event.subject) == ("bind_product", "pp/Business")


def test_bind_product_refusals(store: Store) -> None:
    assert (
        refused(store, actions.bind_product, "pp", "PP2", sub_product="Pro")
        == "Proofpoint has no sub-product 'Pro'."
    )
    assert refused(store, actions.bind_product, "nope", "PP2") == "No vendor product 'nope'."
    assert refused(store, actions.bind_product, "pp", "nope") == "No PSA product 'nope'."


def test_bulk_ignore_is_one_transaction_and_refuses_all_on_one_bad_key(store: Store) -> None:
    before = actions.current_plan(store, AS_OF)
    message = refused(store, actions.ignore_many, ["S1:prorate:2020-08-05", "nope"], as_of=AS_OF)
    assert message == "Nothing to ignore: no proposed line or subscription is called 'nope'."
    assert actions.current_plan(store, AS_OF).model_dump_json() == before.model_dump_json()
    actions.ignore_many(
        store, ["S1:prorate:2020-08-05", "S1:prorate:2020-08-17"], reason="waived", as_of=AS_OF, user="ann"
    )
    plan = actions.current_plan(store, AS_OF)
    assert not {"S1:prorate:2020-08-05", "S1:prorate:2020-08-17"} & {line.key for line in plan.lines}
    assert plan.totals.ignored == 2
    actions.restore_many(store, ["S1:prorate:2020-08-05", "S1:prorate:2020-08-17"])
    assert actions.current_plan(store, AS_OF).model_dump_json() == before.model_dump_json()
    assert [e.action for e in events(store)] == ["ignore", "ignore", "restore", "restore"]
