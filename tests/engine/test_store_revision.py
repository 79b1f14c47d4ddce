"""The store revision moves with every committed write the plan depends on — whichever path and
whichever store handle (another operator's console on the same database) made it — and with
nothing else; a saved state is current only for the revision, as-of, day and code it was computed
with. On SQLite always, on PostgreSQL when TRUEUP_TEST_POSTGRES_URL is set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from engine import actions
from engine.plan import LineKind
from engine.sandbox.demo import build_demo_scenario
from engine.store import Store
from engine.store import plan_cache as pc
from engine.store import tables as t
from engine.store.migrate import alembic_config, at_head, script_heads

AS_OF = date(2026, 11, 21)


@pytest.fixture(scope="module")
def scenario() -> Any:
    return build_demo_scenario(as_of=AS_OF)


@pytest.fixture
def store(store_url: str, scenario: Any) -> Iterator[Store]:
    s = Store(store_url)
    s.import_scenario(scenario)
    yield s
    s.close()


def moves(store: Store, write: Callable[[], object]) -> bool:
    before = pc.store_revision(store)
    write()
    after = pc.store_revision(store)
    assert before is not None and after is not None
    return after > before


def first_line(store: Store, *kinds: LineKind) -> Any:
    plan = actions.current_plan(store, AS_OF)
    return next(line for line in plan.lines if line.kind in kinds and line.action == "create")


def test_every_operator_action_moves_the_revision(store: Store, scenario: Any) -> None:
    recurring = first_line(store, LineKind.RECURRING)
    assert moves(store, lambda: actions.ignore(store, recurring.key, reason="test", as_of=AS_OF))
    assert moves(store, lambda: actions.restore(store, recurring.key))
    assert moves(
        store, lambda: actions.set_effective_date(store, recurring.key, date(2027, 1, 1), as_of=AS_OF)
    )
    assert moves(store, lambda: actions.clear_effective_date(store, recurring.key))
    assert moves(store, lambda: actions.set_invoiced_through(store, date(2026, 11, 30)))
    vendor, psa = scenario.vendor.companies[0].id, scenario.psa.companies[0].id
    assert moves(store, lambda: actions.unmap_company(store, vendor))
    assert moves(store, lambda: actions.map_company(store, vendor, psa))
    binding = scenario.mappings.products[0]
    assert moves(
        store,
        lambda: actions.unbind_product(store, binding.vendor_product_id, sub_product=binding.sub_product),
    )


def test_imports_refresh_writes_and_settings_move_the_revision(store: Store, scenario: Any) -> None:
    assert moves(store, lambda: store.import_scenario(scenario))
    assert moves(store, lambda: store.replace_psa(scenario.psa))
    assert moves(store, lambda: store.write_psa_refresh(scenario.psa, settings={"psa_refreshed_at": "x"}))
    assert moves(
        store,
        lambda: store.write_vendor_refresh(
            companies=scenario.vendor.companies,
            products=scenario.vendor.products,
            subscriptions=scenario.vendor.subscriptions[:3],
            usage=[],
            usage_scope=set(),
            full=False,
        ),
    )
    assert moves(store, lambda: store.upsert_subscriptions(scenario.vendor.subscriptions[:1]))
    assert moves(store, lambda: store.replace_usage(scenario.vendor.usage[:1]))
    assert moves(
        store,
        lambda: store.save_settings(
            scenario.settings.model_copy(update={"invoiced_through": date(2026, 10, 31)})
        ),
    )


def test_sync_journal_and_synced_records_move_the_revision(store: Store) -> None:
    from engine.sync.journal import Journal

    journal = Journal(store)
    line = first_line(store, LineKind.RECURRING)
    claim: dict[str, Any] = {}

    def claim_it() -> None:
        claim["c"] = journal.claim(
            key=line.key,
            fingerprint=line.fingerprint,
            batch="b1",
            psa="connectwise",
            action=line.action,
            kind=line.kind.value,
            agreement_id=line.psa_agreement_id,
            company_id=line.company_id,
            company=None,
            record_only=False,
            line=line.model_dump(mode="json"),
            request={},
            owner="o",
            user="u",
        )

    assert moves(store, claim_it)
    assert moves(
        store,
        lambda: journal.mark_done(
            claim["c"].row,
            outcome="written",
            psa_line=None,
            quantity=line.quantity,
            synced_on=AS_OF,
            user="u",
            audit_action="sync.create",
            before=None,
            after={},
        ),
    )
    with store.session() as s:
        assert s.get(t.SyncedKeyRow, line.key) is not None


def test_reads_audit_rollbacks_and_the_saved_state_leave_it_alone(store: Store) -> None:
    assert not moves(store, lambda: store.plan_inputs(AS_OF))
    assert not moves(store, lambda: store.snapshot(AS_OF))
    assert not moves(store, lambda: actions.current_plan(store, AS_OF))

    def audit_only() -> None:
        with store.session() as s, s.begin():
            s.add(t.AuditEvent(at=datetime.now(UTC), user="u", host="h", action="look", subject="x"))

    assert not moves(store, audit_only)

    def rolled_back() -> None:
        with pytest.raises(RuntimeError), store.session() as s, s.begin():
            s.merge(t.SettingRow(name="invoiced_through", value="2020-01-31"))
            s.flush()
            raise RuntimeError("abandoned")

    assert not moves(store, rolled_back)
    revision = pc.store_revision(store)
    assert not moves(
        store,
        lambda: pc.save_state(
            store, "console", revision=revision, as_of=AS_OF, today=AS_OF, code="c", view=b"v", plan=b"p"
        ),
    )


def test_a_write_by_another_store_handle_makes_the_saved_state_stale(store_url: str, store: Store) -> None:
    revision = pc.store_revision(store)
    assert pc.save_state(
        store, "console", revision=revision, as_of=AS_OF, today=AS_OF, code="c", view=b"rows", plan=b"plan"
    )
    saved = pc.load_state(store, "console")
    assert saved is not None and (saved.view, saved.plan) == (b"rows", b"plan")
    assert saved.current_for(pc.store_revision(store), AS_OF, AS_OF, "c")
    # what makes it not current: another day, another as-of, other code
    assert not saved.current_for(revision, AS_OF, date(2026, 11, 22), "c")
    assert not saved.current_for(revision, None, AS_OF, "c")
    assert not saved.current_for(revision, AS_OF, AS_OF, "other code")

    other = Store(store_url)  # another operator's console on the same database
    try:
        actions.set_invoiced_through(other, date(2026, 11, 30))
    finally:
        other.close()
    assert not saved.current_for(pc.store_revision(store), AS_OF, AS_OF, "c")


def test_a_state_from_an_older_revision_never_replaces_a_newer_one(store: Store) -> None:
    revision = pc.store_revision(store)
    assert revision is not None
    assert pc.save_state(
        store, "console", revision=revision + 5, as_of=None, today=AS_OF, code="c", view=b"newer", plan=b""
    )
    assert not pc.save_state(
        store, "console", revision=revision, as_of=None, today=AS_OF, code="c", view=b"older", plan=b""
    )
    saved = pc.load_state(store, "console", plan=False)
    assert saved is not None and saved.view == b"newer" and saved.plan is None
    pc.discard_state(store)
    assert pc.load_state(store, "console") is None


def test_a_store_without_the_revision_table_saves_nothing_and_is_never_current(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    path = tmp_path / "old.db"
    create_engine(f"sqlite:///{path}").connect().close()
    store = Store(f"sqlite:///{path}", migrate=False)
    try:
        assert pc.store_revision(store) is None
        assert not pc.save_state(
            store, "console", revision=None, as_of=None, today=AS_OF, code="c", view=b"", plan=b""
        )
        assert pc.load_state(store, "console") is None
        with store.engine.begin() as conn:  # writes still work (no hook to trip over)
            conn.execute(text("CREATE TABLE x (a int)"))
            conn.execute(text("INSERT INTO x VALUES (1)"))
    finally:
        store.close()


def test_the_migration_head_is_recognised_without_alembic(tmp_path: Path) -> None:
    assert script_heads() == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        assert at_head(store.engine)
        assert pc.store_revision(store) == 0
    finally:
        store.close()
