"""Terminal safety (issue 11): a company, product or line description carrying escape sequences
(window title OSC, clear screen, OSC 52 clipboard, bidi override) is shown without a single control
character, in every pane, the detail, the products screen and the review — even when it was stored
before the service boundary scrubbed it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.store import Store

HOSTILE = "Esc \x1b]0;PWNED\x07 \x1b[2J\x1b]52;c;cHduZWQ=\x07\u202e"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
SIZE = (120, 40)


def hostile(scenario: Any) -> Any:
    """Every shown name made hostile, without validation (as data already in a store would be)."""
    v, p = scenario.vendor, scenario.psa

    def names(items: Any, field: str = "name") -> list[Any]:
        return [x.model_copy(update={field: f"{HOSTILE} {getattr(x, field)}"}) for x in items]

    return scenario.model_copy(
        update={
            "vendor": v.model_copy(update={"companies": names(v.companies), "products": names(v.products)}),
            "psa": p.model_copy(
                update={
                    "companies": names(p.companies),
                    "products": names(p.products),
                    "agreements": names(p.agreements),
                    "lines": names(p.lines, "description"),
                }
            ),
        }
    )


@pytest.fixture
def store(scenario: Any) -> Store:  # overrides the conftest's: the demo with hostile names
    s = Store.memory()
    s.import_scenario(hostile(scenario))
    return s


def screen_text(app: Any) -> str:
    return app.export_screenshot()


def assert_clean(text: str, where: str) -> None:
    found = CONTROL.findall(text)
    assert not found, f"{where}: control characters reached the screen: {sorted(set(map(repr, found)))}"
    assert "PWNED" not in text and "cHduZWQ" not in text, f"{where}: an escape sequence's payload is shown"


def test_the_screenshot_would_show_a_control_character(make_app: Any) -> None:
    """The check can fail: an SVG export keeps a control character a widget was given."""
    from textual.app import App
    from textual.widgets import Static

    class Probe(App[None]):
        def compose(self) -> Any:
            yield Static(HOSTILE, markup=False)

    async def shot() -> str:
        app = Probe()
        async with app.run_test(size=(60, 5)):
            return app.export_screenshot()

    import asyncio

    with pytest.raises(AssertionError):
        assert_clean(asyncio.run(shot()), "probe")


async def test_a_hostile_name_reaches_no_pane_as_a_control_sequence(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        data = app.data
        assert data is not None
        assert any(name.startswith("Esc ") for name in data.company_names.values())  # the names are shown…
        for number, pane in enumerate(
            ("overview", "customers", "unsynced", "arrears", "prorates", "errors"), 1
        ):
            await pilot.press(str(number))
            await settle(app, pilot)
            assert app.main.active == pane
            rows = data.rows.get(pane, [])
            for row in rows:
                for text in (*row.cells, row.detail):
                    assert_clean(text, f"{pane} row {row.key}")
            assert_clean(screen_text(app), pane)
            if rows:
                await pilot.press("down")
                await settle(app, pilot)
                assert_clean(screen_text(app), f"{pane} (cursor moved: detail)")
        shown = "".join(
            c for pane in ("customers", "unsynced") for row in data.rows.get(pane, []) for c in row.cells
        )
        assert "Esc " in shown  # …and still there without their sequences
        await pilot.press("p")
        await settle(app, pilot)
        assert_clean(screen_text(app), "products")
        await pilot.press("escape")
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        assert_clean(screen_text(app), "review")
        for line in data.plan.lines:
            assert_clean(line.description, f"plan line {line.key}")
        for finding in data.plan.findings:
            assert_clean(finding.message, f"finding {finding.code}")
