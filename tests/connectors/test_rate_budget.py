"""The client-side budget counts requests in a rolling window, as HaloPSA does (300 per 5 minutes)."""

from __future__ import annotations

import asyncio

from engine.connectors.http import RollingWindow


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_no_rolling_window_ever_holds_more_than_the_limit() -> None:
    fake = FakeTime()
    window = RollingWindow(300, 300.0, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for _ in range(1000):
        await window.acquire()
        starts.append(fake.now)
        fake.now += 0.01  # the request itself
    busiest = max(sum(1 for t in starts if first <= t < first + 300.0) for first in starts)
    assert busiest == 300
    # 1000 requests at 300 per 5 minutes need three full windows of waiting, no more.
    assert 900.0 <= starts[-1] < 901.0


async def test_the_first_window_allows_exactly_the_limit_at_once() -> None:
    fake = FakeTime()
    window = RollingWindow(3, 10.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        await window.acquire()
    assert fake.slept == []
    await window.acquire()
    assert fake.slept == [10.0]


async def test_concurrent_callers_share_the_window() -> None:
    fake = FakeTime()
    window = RollingWindow(5, 60.0, clock=fake.clock, sleep=fake.sleep)
    await asyncio.gather(*(window.acquire() for _ in range(12)))
    assert fake.now == 120.0  # 5 now, 5 after a minute, 2 after two
