"""A customer's synced keys, ignores and overrides, read by key range for the per-customer recompute
(`engine.store.customer_scope.read_customers`, plain SQL on the driver): exactly those of its
subscriptions, on SQLite and PostgreSQL — not a neighbour's whose id starts with the same text,
and an ignore keyed by the bare subscription id too. A key missed here is a line proposed again
(a duplicate in the PSA); a neighbour's key taken is a line never proposed."""

from __future__ import annotations

from datetime import date

from sqlmodel import col, select

from engine.sandbox.demo import build_demo_scenario
from engine.store import Store
from engine.store import tables as t
from engine.store.customer_scope import read_customers

AS_OF = date(2026, 11, 21)


def test_a_customers_keys_are_its_subscriptions_and_no_neighbours(store_url: str) -> None:
    check_scope(store_url)


def check_scope(url: str) -> None:
    scenario = build_demo_scenario(as_of=AS_OF)
    store = Store(url)
    store.import_scenario(scenario)
    subs = sorted(scenario.vendor.subscriptions, key=lambda s: s.id)
    mine = subs[0]
    other = next(s for s in subs if s.company_id != mine.company_id)
    theirs = [s.id for s in scenario.vendor.subscriptions if s.company_id == mine.company_id]
    sid = mine.id
    # keys of the customer's subscription, of another customer's, and of ids sharing its prefix
    own_keys = {f"{sid}:usage", f"{sid}:prorate:2019-01-03", f"{sid}:extra_months:2019-01"}
    strangers = {f"{sid}0:usage", f"{sid}:", f"{other.id}:prorate:2019-01-03", f"{sid}9", f"{sid};x"}
    with store.session() as s:
        for key in sorted(own_keys | strangers):
            s.add(t.SyncedKeyRow(key=key, synced_on=AS_OF))
            s.add(t.IgnoreRow(key=key, by="test", on=AS_OF, reason="scope"))
            s.add(t.OverrideRow(key=key, effective_date=date(2026, 12, 1)))
        s.add(t.IgnoreRow(key=sid, by="test", on=AS_OF, reason="the whole subscription"))
        s.add(t.OverrideRow(key=sid, effective_date=date(2027, 1, 1)))
        s.commit()

    with store.session() as s:
        synced_all, ignored_all, overridden_all = (
            set(s.exec(select(col(table.key))).all())
            for table in (t.SyncedKeyRow, t.IgnoreRow, t.OverrideRow)
        )

    scenario_part, hints = read_customers(store, {mine.company_id}, AS_OF)

    def own(keys: set[str]) -> set[str]:  # the customer's: the subject before the first `:` is theirs
        return {k for k in keys if k.split(":", 1)[0] in theirs}

    assert {s.id for s in scenario_part.vendor.subscriptions} == set(theirs)
    assert own_keys | {f"{sid}:"} <= own(synced_all)  # `<id>:` is in the id's range (no neighbour's)
    assert hints.synced_keys == own(synced_all)
    assert {i.key for i in scenario_part.ignored} == own(ignored_all)
    assert {sid, *own_keys} <= own(ignored_all)
    overrides = {o.key: o.effective_date for o in scenario_part.overrides}
    assert set(overrides) == own(overridden_all)
    assert overrides[sid] == date(2027, 1, 1)  # read whole and typed
    assert next(i for i in scenario_part.ignored if i.key == sid).reason == "the whole subscription"
    assert not (strangers - {f"{sid}:"}) & (hints.synced_keys | set(overrides))
    # the digest check's read by range too (Store.long_synced_keys)
    assert set(store.long_synced_keys(0, [sid])) == {k for k in own(synced_all) if k.split(":", 1)[0] == sid}
    store.close()
