"""Issue 12 item 3: a cold start stops calling a subscription "quiet" when the PSA has no line for it.
Quiet, its history would be read again one subscription at a time (43,939 reads at 50k); busy, it
comes with the one streamed pass — and the plan is the same either way."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.reconcile import reconcile
from engine.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from builders import build, psa_line, seat_sub, synced  # noqa: E402


def _world(with_line: bool) -> Store:
    scenario = build(
        "2021-03-18",
        subs=[seat_sub("S1", ("2021-01-04", 3)), seat_sub("S2", ("2021-01-04", 3))],
        lines=[psa_line("L1", 3, sub="S1")] + ([psa_line("L2", 3, sub="S2")] if with_line else []),
        synced_keys=[synced("S1:prorate:2021-01-04", 3), synced("S2:prorate:2021-01-04", 3)],
    )
    store = Store.memory()
    store.import_scenario(scenario)
    return store


def test_a_seat_subscription_without_a_psa_line_is_read_with_the_pass_not_one_by_one() -> None:
    store = _world(with_line=False)
    try:
        scenario, hints = store.plan_inputs()
        assert "S1" in hints.quiet  # in sync: its PSA line holds the quantity
        assert "S2" not in hints.quiet  # no line: a line to create, its history is needed
        by_id = {s.id: s for s in scenario.vendor.subscriptions}
        assert by_id["S2"].history and not by_id["S1"].history
        asked: list[str] = []
        loader = hints.load_history
        assert loader is not None
        hints.load_history = lambda sid: asked.append(sid) or loader(sid)  # type: ignore[func-returns-value]
        fast = reconcile(scenario, hints)
        assert asked == []  # nothing read one subscription at a time
        assert fast.model_dump_json() == reconcile(store.snapshot()).model_dump_json()
        assert any(line.subscription_id == "S2" and line.action == "create" for line in fast.lines)
    finally:
        store.close()


def test_with_its_line_it_stays_quiet() -> None:
    store = _world(with_line=True)
    try:
        _, hints = store.plan_inputs()
        assert {"S1", "S2"} <= set(hints.quiet)
    finally:
        store.close()
