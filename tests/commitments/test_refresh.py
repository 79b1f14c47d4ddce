"""A refresh brings the commitment terms from Pax8 into the store (the sandbox serving the demo MSP),
so the console's plan shows the commitment findings; an incremental refresh replaces only the terms
of the subscriptions it read again."""

from __future__ import annotations

from datetime import date

from engine.sandbox.demo import build_demo_scenario
from engine.workspace import Workspace

CODES = {
    "seats_reducible_until",
    "renewal_window_open",
    "renewal_in_n_days",
    "commitment_cost_continues",
    "seats_reducible_at_renewal",
}


async def test_a_refresh_stores_the_commitments_and_the_plan_shows_them() -> None:
    demo = build_demo_scenario()
    workspace = Workspace.sandbox_from_scenario(demo)
    try:
        assert workspace.store.snapshot().vendor.commitments == []  # operator state only, before
        result = await workspace.refresh()
        assert result.errors == []
        stored = sorted(workspace.store.snapshot().vendor.commitments, key=lambda c: c.subscription_id)
        assert stored == sorted(demo.vendor.commitments, key=lambda c: c.subscription_id)
        assert CODES <= {f.code for f in workspace.plan().findings}

        # Pax8 moves one term's end; an incremental refresh reads that subscription again.
        pax8 = workspace.sandboxes["pax8"]
        phone = next(c for c in demo.vendor.commitments if c.window_days_before == 30)
        moved = phone.model_copy(update={"end_date": date(2027, 11, 25)})
        pax8.add_commitment(moved)
        pax8.subscriptions[phone.subscription_id]["updatedDate"] = "2026-11-22T08:00:00Z"
        result = await workspace.refresh()
        assert result.errors == [] and not result.full
        after = {c.subscription_id: c for c in workspace.store.snapshot().vendor.commitments}
        assert after[phone.subscription_id].end_date == date(2027, 11, 25)
        assert len(after) == len(demo.vendor.commitments)
        assert "renewal_window_open" not in {f.code for f in workspace.plan().findings}
    finally:
        await workspace.aclose()
