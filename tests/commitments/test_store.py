"""Commitment terms in the store (migration 0006_commitment_terms): they survive the round trip, with
their seat-addition instants in UTC, on SQLite and PostgreSQL; the migration goes down and up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import sqlalchemy as sa
from alembic import command
from builders import build, psa_line, seat_sub

from engine.reconcile import reconcile
from engine.scenario import Commitment, SeatAddition
from engine.store import Store
from engine.store.migrate import alembic_config


def scenario_with_commitment():  # type: ignore[no-untyped-def]
    scenario = build(
        "2026-11-21",
        subs=[seat_sub("S1", ("2026-07-01", 10), ("2026-11-10", 8), price="22.00", cost="18.00")],
        lines=[psa_line("L1", 10, price="22.00", cost="18.00", effective="2026-07-01", sub="S1")],
    )
    commitment = Commitment(
        subscription_id="S1",
        term="annual",
        end_date=date(2027, 6, 30),
        window_days_before=3,
        window_days_after=7,
        cancellation_fee=True,
        seat_additions=[
            SeatAddition(
                at=datetime(2026, 7, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5))), quantity=Decimal(10)
            ),
            SeatAddition(at=datetime(2026, 11, 18, 9, 30, tzinfo=UTC), quantity=Decimal("1.5")),
        ],
    )
    vendor = scenario.vendor.model_copy(update={"commitments": [commitment]})
    return scenario.model_copy(update={"vendor": vendor})


def test_commitments_survive_the_store_round_trip_with_their_instants_in_utc(store_url: str) -> None:
    scenario = scenario_with_commitment()
    store = Store(store_url)
    try:
        store.import_scenario(scenario)
        [back] = store.snapshot().vendor.commitments
        lean, _ = store.plan_inputs()
    finally:
        store.close()
    original = scenario.vendor.commitments[0]
    assert back.model_dump(exclude={"seat_additions"}) == original.model_dump(exclude={"seat_additions"})
    assert [(a.at, a.quantity) for a in back.seat_additions] == [
        (datetime(2026, 7, 1, 14, 0, tzinfo=UTC), Decimal(10)),
        (datetime(2026, 11, 18, 9, 30, tzinfo=UTC), Decimal("1.5")),
    ]
    assert [a.at.utcoffset() for a in back.seat_additions] == [timedelta(0), timedelta(0)]
    found = [f.code for f in reconcile(lean).findings]
    assert "commitment_cost_continues" in found


def test_the_migration_goes_down_and_up_again(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.import_scenario(scenario_with_commitment())
        config = alembic_config(store.engine)
        command.downgrade(config, "0005_distributor_invoices")
        assert not {"commitment_term", "seat_addition"} & set(sa.inspect(store.engine).get_table_names())
        command.upgrade(config, "head")
        assert {"commitment_term", "seat_addition"} <= set(sa.inspect(store.engine).get_table_names())
    finally:
        store.close()
