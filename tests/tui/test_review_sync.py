"""Pilot tests of the review screen's sync: the confirm dialog's total is what the PSA will invoice,
the bar never reads 100 % after a cancel, and the PSA is re-read and verified after the sync."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.money import fmt_money
from tui.screens.confirm import ConfirmModal
from tui.screens.review import ReviewScreen

SIZE = (120, 40)


def _invoiced(lines: list[Any]) -> Decimal:
    """Independently of engine.verify: quantity as written × unit price per line, cancels add nothing."""
    total = Decimal("0.00")
    for line in lines:
        if line.action == "cancel":
            continue
        quantity = line.quantity * (line.months or 1)
        total += (quantity * line.unit_price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return total


async def test_confirm_total_is_what_the_psa_will_invoice(make_app: Any, settle: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert any(line.action == "cancel" for line in review.lines)  # the plan sum would differ
        expected = _invoiced(review.lines)
        assert expected != sum(line.total_price for line in review.lines)
        await pilot.press("y")
        assert isinstance(app.screen, ConfirmModal)
        body = str(app.screen.query_one(".modal").query("Static")[1].render())
        assert f"({fmt_money(expected)})" in body, body


async def test_bar_never_reads_100_percent_after_a_cancel(make_app: Any, executor: Any, settle: Any) -> None:
    executor.delay = 0.05
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        review = app.screen
        await pilot.press("y", "y")
        await pilot.pause(0.12)
        await pilot.press("x")
        await settle(app, pilot)
        bar = review.query_one("#review-progress")
        ran = sum(1 for o in review.outcomes.values() if not o.startswith("skipped"))
        assert 0 < ran < len(review.lines)
        assert bar.progress == ran and bar.percentage < 1


class _EmptyPsa:
    name = "connectwise"

    async def lines(self, agreement_ids: Any = None) -> list[Any]:
        return []


async def test_after_the_sync_the_psa_is_verified_and_a_difference_shown(
    make_app: Any, executor: Any, settle: Any
) -> None:
    executor.psa = _EmptyPsa()  # the PSA holds nothing of what the executor reported written
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5", "space", "space", "v")
        await settle(app, pilot)
        review = app.screen
        await pilot.press("y", "y")
        await settle(app, pilot)
        totals = str(review.query_one("#review-totals").render())
        assert "Verified:" in totals and "differs by $-" in totals and "missing" in totals
        assert any(o.startswith("missing") for o in review.outcomes.values())


class _Event:
    def __init__(self, key: str, outcome: str, message: str = "") -> None:
        self.key, self.outcome, self.message = key, outcome, message


class _RefusingExecutor:
    """Like the real executor when another operator's plan holds the first line's key."""

    async def run(self, lines: list[Any], *, on_event: Any = None, cancel: Any = None) -> Any:
        from engine.sync.executor import REFUSED_MESSAGE

        outcomes = [
            _Event(
                line.key,
                "refused" if i == 0 else "written",
                f"{REFUSED_MESSAGE}: bob@host is writing this line with other values" if i == 0 else "",
            )
            for i, line in enumerate(lines)
        ]
        for event in outcomes:
            on_event(event)

        class Report:
            pass

        report = Report()
        report.outcomes = outcomes  # type: ignore[attr-defined]
        return report


async def test_a_refused_line_says_changed_since_your_review(make_app: Any, settle: Any) -> None:
    app = make_app()
    app.executor_factory = lambda ws: _RefusingExecutor()
    notes: list[str] = []
    original = app.notify
    app.notify = lambda message, **kw: (notes.append(str(message)), original(message, **kw))  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5", "space", "space", "v")
        await settle(app, pilot)
        review = app.screen
        first = review.lines[0].key
        await pilot.press("y", "y")
        await settle(app, pilot)
        assert review.outcomes[first].startswith("refused: changed since your review — refresh")
        assert any("changed since your review — refresh" in n for n in notes)
        assert "1 refused" in str(review.query_one("#review-totals").render())
