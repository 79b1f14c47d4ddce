"""The key footer is rebuilt when the keys it shows change, and only then: a rebuild is a layout
pass of the whole screen, and Textual's Footer rebuilt itself on every new set of figures and
twice on closing a dialog (on the UI loop, while an action's figures were being computed)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets._footer import FooterKey

from tui.screens.ignore import IgnoreModal
from tui.widgets.footer import KeysFooter

SIZE = (120, 40)


def footer_keys(app: Any) -> dict[str, bool]:
    """The main screen's footer: action -> enabled."""
    footer = app.main.query_one(KeysFooter)
    return {key.action: not key.disabled for key in footer.query(FooterKey)}


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = KeysFooter.recompose

    async def counted(self: KeysFooter) -> None:
        seen.append(type(self.screen).__name__)
        await original(self)

    monkeypatch.setattr(KeysFooter, "recompose", counted)
    return seen


async def test_an_ignore_through_its_dialog_rebuilds_no_footer(
    make_app: Any, settle: Any, rebuilds: list[str]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)
        shown = footer_keys(app)
        assert shown["review"] and shown["filter"]
        rebuilds.clear()
        pane = app.main.pane("unsynced")
        before = pane.table.row_count
        await pilot.press("i")
        assert isinstance(app.screen, IgnoreModal)
        await pilot.press(*"bundle", "enter")
        await settle(app, pilot)
        assert pane.table.row_count == before - 1  # the action landed, new figures shown
        assert rebuilds == []  # the same keys before and after: nothing rebuilt
        assert footer_keys(app) == shown


async def test_the_footer_follows_its_keys_when_they_change(
    make_app: Any, settle: Any, rebuilds: list[str]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)
        rebuilds.clear()
        await pilot.press("slash")  # typing a filter: `v` is a letter of the filter, not Review
        await pilot.pause()
        assert "review" not in footer_keys(app) and footer_keys(app)["filter"]
        await pilot.press("escape")
        await pilot.pause()
        assert footer_keys(app)["review"] is True
        assert rebuilds.count("MainScreen") == 2
