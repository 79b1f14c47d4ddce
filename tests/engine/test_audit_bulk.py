"""A bulk action looks its subjects' notes up in one query (chunked under the database's bound-
parameter limit), not one per subject: statements counted with SQLAlchemy's
`before_cursor_execute`, for a bulk ignore of 500 keys. The notes still go with each event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from builders import COMPANY, build, psa_line, seat_sub
from sqlalchemy import event

from engine import actions, audit
from engine.store import Store

AS_OF = date(2020, 9, 20)
N = 500


@pytest.fixture(scope="module")
def world() -> Any:
    return build(
        AS_OF.isoformat(),
        subs=[seat_sub(f"S{i:03d}", ("2019-01-01", 10), ("2020-08-05", 12)) for i in range(N)],
        lines=[psa_line(f"L{i:03d}", 10, sub=f"S{i:03d}") for i in range(N)],
        companies=[COMPANY],
        products=[{"id": "seat", "sku": "M365-BB", "name": "Microsoft 365 Business Basic"}],
        psa_products=[{"id": "PP1", "name": "M365 Basic", "sku": "M365-BB"}],
    )


@pytest.fixture
def store(world: Any) -> Iterator[Store]:
    s = Store.memory()
    s.import_scenario(world)
    yield s
    s.close()


def audit_selects(store: Store, call: Any) -> list[str]:
    """The SELECTs on the audit trail that `call` runs (every statement is seen)."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "audit_event" in s]
    return selects


def test_a_bulk_ignore_of_500_keys_looks_the_notes_up_once(store: Store) -> None:
    plan = actions.current_plan(store, AS_OF)
    keys = list(dict.fromkeys(line.subscription_id for line in plan.lines))
    assert len(keys) == N
    actions.add_note(store, "S007", "customer asked to hold until October", user="ann")
    line_key = next(line.key for line in plan.lines if line.subscription_id == "S123")
    actions.add_note(store, line_key, "recount first", user="ann")
    actions.add_note(store, "S042", "a note cleared again", user="ann")
    actions.add_note(store, "S042", "", user="ann")

    selects = audit_selects(
        store, lambda: actions.ignore_many(store, [*keys, line_key], reason="bulk", as_of=AS_OF, plan=plan)
    )
    notes = [s for s in selects if "IN (" in s.upper() or " IN " in s.upper()]
    assert len(notes) == 1, selects  # the 501 subjects' notes: one query (was one or two each)
    assert len(selects) == 2, selects  # … and the undone notes, once (some note was found)

    with store.session() as s:
        ignored = {e.subject: e for e in audit.events(s) if e.action == "ignore"}
    assert len(ignored) == N + 1
    assert ignored["S007"].after["note"] == "customer asked to hold until October"
    assert ignored[line_key].after["note"] == "recount first"
    assert "note" not in ignored["S042"].after  # cleared
    assert "note" not in ignored["S001"].after


def test_the_note_lookup_is_chunked_under_the_parameter_limit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "NOTE_CHUNK", 120)
    plan = actions.current_plan(store, AS_OF)
    keys = list(dict.fromkeys(line.subscription_id for line in plan.lines))
    actions.add_note(store, keys[-1], "the last chunk's", user="ann")
    selects = audit_selects(store, lambda: actions.ignore_many(store, keys, as_of=AS_OF, plan=plan))
    assert len(selects) == 5 + 1  # 500 subjects in chunks of 120, then the undone notes
    with store.session() as s:
        [last] = [e for e in audit.events(s) if e.action == "ignore" and e.subject == keys[-1]]
    assert last.after["note"] == "the last chunk's"


def test_one_action_on_a_line_is_one_note_query(store: Store) -> None:
    key = actions.current_plan(store, AS_OF).lines[0].key
    subscription = key.split(":", 1)[0]

    def record() -> None:
        with store.session() as s, s.begin():
            audit.record(s, "set_effective_date", key, after={"effective_date": "2020-10-01"})

    selects = audit_selects(store, record)
    assert len(selects) == 1, selects  # the line's key and its subscription together; no note
    actions.add_note(store, subscription, "on the subscription", user="ann")
    selects = audit_selects(store, record)
    assert len(selects) == 2, selects  # found one: the undone notes are read too
    with store.session() as s:
        last = [e for e in audit.events(s) if e.action == "set_effective_date"][-1]
    assert last.after["note"] == "on the subscription"
