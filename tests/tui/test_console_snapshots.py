"""SVG snapshots: each pane, the review screen and the edit modal, at 80×24 and 120×40.
Regenerate deliberately: `uv run pytest tests/tui --snapshot-update`."""

from __future__ import annotations

from typing import Any

import pytest

SIZES = [(80, 24), (120, 40)]
PANES = {
    "overview": "1",
    "customers": "2",
    "unsynced": "3",
    "arrears": "4",
    "prorates": "5",
    "errors": "6",
    "renewals": "7",
}


async def _loaded(pilot: Any) -> None:
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pane", list(PANES))
def test_pane(snap_compare: Any, make_app: Any, pane: str, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press(PANES[pane])
        await _loaded(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_review(snap_compare: Any, make_app: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("5", "space", "space", "v")
        await _loaded(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_edit_date_modal_refusal(snap_compare: Any, make_app: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("5", "e")
        field = pilot.app.screen.query_one("Input")
        field.cursor_blink = False  # a blinking caret would make the picture depend on the machine's load
        field.value = "2026-12-15"
        await pilot.press("enter")
        await _loaded(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
