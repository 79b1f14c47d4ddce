"""A customer's synced keys, ignores and overrides, read by key range for the per-customer recompute
(`engine.store.customer_scope.read_customers`, plain SQL on the driver): exactly those of its
subscriptions, on SQLite and PostgreSQL — not a neighbour's whose id starts with the same text,
and an ignore keyed by the bare subscription id too. A key missed here is a line proposed again
(a duplicate in the PSA); a neighbour's key taken is a line never proposed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlmodel import col, select

from engine.sandbox.demo import build_demo_scenario
from engine.store import Store
from engine.store import tables as t
from engine.store.customer_scope import read_customers

AS_OF = date(2026, 11, 21)
POSTGRES_URL = os.environ.get("TRUEUP_TEST_POSTGRES_URL")  # as tests/conftest.py reads it


def test_a_customers_keys_are_its_subscriptions_and_no_neighbours(store_url: str) -> None:
    check_scope(store_url)


@pytest.fixture
def linguistic_postgres_url() -> Iterator[str]:
    """A PostgreSQL store database whose default collation is linguistic (ICU `en-US`, as a server
    made with en_US.UTF-8 or a managed service has it): punctuation sorts apart from the bytes."""
    if not POSTGRES_URL:
        pytest.skip("TRUEUP_TEST_POSTGRES_URL is not set")
    import psycopg
    from sqlalchemy.engine import make_url

    shared = make_url(POSTGRES_URL)
    name = f"trueup_t_{uuid.uuid4().hex[:16]}"
    admin = shared.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_collation WHERE collname = 'en-US-x-icu'").fetchone():
            pytest.skip("this PostgreSQL server has no ICU collations")
        conn.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    try:
        yield shared.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_a_linguistic_postgres_collation_loses_no_key(linguistic_postgres_url: str) -> None:
    """Under en-US, `'x:recurring' >= 'x:' AND < 'x;'` is false: without the keys' "C" collation
    (migration 0010) the customer's synced keys read empty and its synced lines come back."""
    import psycopg

    with psycopg.connect(linguistic_postgres_url) as conn:  # the database really sorts linguistically
        assert not conn.execute("SELECT 'x:recurring' >= 'x:' AND 'x:recurring' < 'x;'").fetchone()[0]
    check_scope(linguistic_postgres_url)


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


def test_the_bytewise_key_migration_goes_down_and_up_again_keeping_the_keys(store_url: str) -> None:
    from alembic import command

    from engine.store.migrate import alembic_config

    store = Store(store_url)
    try:
        store.import_scenario(build_demo_scenario(as_of=AS_OF))
        with store.session() as s:
            before = set(s.exec(select(col(t.SyncedKeyRow.key))).all())

        def collations() -> set[str | None]:
            if store.engine.dialect.name != "postgresql":
                return {"bytes"}  # SQLite's BINARY: nothing to migrate
            with store.engine.connect() as conn:
                return {
                    c
                    for (c,) in conn.exec_driver_sql(
                        "SELECT collation_name FROM information_schema.columns WHERE column_name = 'key' "
                        "AND table_name IN ('synced_key', 'ignore', 'override')"
                    )
                }

        on_head = {"C"} if store.engine.dialect.name == "postgresql" else {"bytes"}
        assert collations() == on_head
        config = alembic_config(store.engine)
        command.downgrade(config, "0009_subscription_gone")
        assert collations() == ({None} if store.engine.dialect.name == "postgresql" else {"bytes"})
        command.upgrade(config, "head")
        assert collations() == on_head
        with store.session() as s:
            assert set(s.exec(select(col(t.SyncedKeyRow.key))).all()) == before
    finally:
        store.close()
