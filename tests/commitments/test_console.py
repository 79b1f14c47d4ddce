"""The console on the demo MSP (2026-11-21): the Renewals pane (key 7) sorted by the window closing
soonest, the term and end date in a subscription's detail, and the sync confirm dialog's warning
when a line reduces billing on a subscription whose vendor cost continues."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from engine.sandbox.demo import DEMO_CUSTOMERS, build_demo_scenario
from engine.store import Store
from tui.app import TrueupApp
from tui.screens.confirm import ConfirmModal
from tui.widgets.renewals import RenewalsPane
from tui.workspace import StoreWorkspace

AS_OF = date(2026, 11, 21)
SIZE = (120, 40)


@pytest.fixture(scope="module")
def scenario() -> Any:
    return build_demo_scenario(as_of=AS_OF)


@pytest.fixture
def app(scenario: Any) -> TrueupApp:
    store = Store.memory()
    store.import_scenario(scenario)
    workspace = StoreWorkspace(store, label="SANDBOX — test", sandbox=True)
    return TrueupApp(
        workspace,
        clock=lambda: datetime(2026, 11, 21, 9, 30),
        as_of=AS_OF,
        refresh_interval=None,
        save_delay=0,
        executor_factory=lambda ws: None,
    )


async def settle(app: TrueupApp, pilot: Any) -> None:
    for _ in range(4):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def test_the_renewals_pane_lists_windows_soonest_closing_first(app: TrueupApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("7")
        await settle(app, pilot)
        pane = app.screen.query_one(RenewalsPane)
        assert [r.cells[:3] for r in pane.rows] == [
            ("2026-11-25", "5", "open"),
            ("2026-12-08", "18", "upcoming"),
            ("2027-03-16", "116", "upcoming"),
            ("2027-07-07", "229", "upcoming"),
            ("2028-09-07", "657", "upcoming"),
        ]
        assert {r.cells[4] for r in pane.rows} == {DEMO_CUSTOMERS["commitments"]}
        assert "Renewal window 2026-10-26 – 2026-11-25: 5 day(s) left" in pane.current.detail  # type: ignore[union-attr]
        assert str(app.screen.query_one("#tabs").get_tab("tab-renewals").label) == "Renewals 5"


async def test_a_subscriptions_detail_shows_its_term_and_end_date(app: TrueupApp, scenario: Any) -> None:
    [e3] = [
        s.id
        for s in scenario.vendor.subscriptions
        if any(c.subscription_id == s.id for c in scenario.vendor.commitments) and s.unit_price == 36
    ]
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)
        pane = app.screen.pane()
        row = pane.by_key[e3]
        assert (
            "Term: Annual (paid monthly), ends 2027-03-09 · renewal window 2027-03-09–2027-03-16"
            in row.detail
        )


async def test_the_confirm_dialog_warns_that_the_vendor_cost_continues(app: TrueupApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        await pilot.press("y")
        assert isinstance(app.screen, ConfirmModal)
        warning = str(app.screen.query_one("#modal-warning").render())
        assert warning.startswith("⚠ 1 line reduces billing while the vendor cost continues:")
        assert "the MSP still pays $183.60 over 3 month(s)" in warning
        await pilot.press("n")
