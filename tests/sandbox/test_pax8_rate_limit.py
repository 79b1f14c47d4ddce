"""Pax8's rate limit in the sandbox (1000 successful calls per rolling minute, 429 in Pax8's error
envelope) and the connector's client budget against it: the budget keeps a long refresh under the
limit, without it the service refuses."""

from __future__ import annotations

from datetime import date

import httpx

from engine.connectors.http import RateBudget
from engine.connectors.pax8 import Pax8Connector
from engine.sandbox.demo import build_demo_scenario
from engine.sandbox.pax8 import RATE_LIMIT, Pax8Sandbox


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_the_1001st_call_in_a_minute_is_429_in_the_error_envelope():
    clock = Clock()
    sandbox = Pax8Sandbox.from_scenario(build_demo_scenario(), clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(sandbox.handle), base_url="https://api.pax8.com/v1"
    ) as http:
        token = (
            await http.post(
                "/token",
                json={
                    "client_id": "sandbox",
                    "client_secret": "sandbox",
                    "audience": "https://api.pax8.com",
                    "grant_type": "client_credentials",
                },
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(RATE_LIMIT - 1):  # the token call was the first
            assert (await http.get("/companies", headers=headers)).status_code == 200
        refused = await http.get("/companies", headers=headers)
        assert refused.status_code == 429
        assert refused.json() == {
            "type": "TOO_MANY_REQUESTS",
            "message": "Too many requests hit the API quickly",
            "instance": "/public/v1/companies",
            "status": 429,
            "details": [],
        }
        assert "Retry-After" not in refused.headers
        clock.now += 59.0
        assert (await http.get("/companies", headers=headers)).status_code == 429
        clock.now += 1.0  # the first calls leave the window
        assert (await http.get("/companies", headers=headers)).status_code == 200


def _connector(sandbox: Pax8Sandbox, clock: Clock, *, budget: bool) -> Pax8Connector:
    connector = Pax8Connector(
        sandbox.client_id,
        sandbox.client_secret,
        transport=httpx.MockTransport(sandbox.handle),
        product_kinds=sandbox.product_kinds(),
        today=lambda: date(2026, 12, 1),
        sleep=clock.sleep,
    )
    window = connector.client.budget.window if connector.client.budget else None
    assert window is not None and (window.requests, window.per_seconds) == (1000, 60)
    if budget:
        window._clock, window._sleep = clock, clock.sleep
    else:
        connector.client.budget = RateBudget()
    return connector


async def test_the_connectors_budget_keeps_a_full_read_under_the_limit():
    clock = Clock()
    demo = build_demo_scenario()
    sandbox = Pax8Sandbox.from_scenario(demo, clock=clock)
    async with _connector(sandbox, clock, budget=True) as connector:
        subs = await connector.subscriptions()
        for _ in range(2):  # two more sweeps in the same minutes
            await connector.subscriptions()
    assert len(subs) == len(demo.vendor.subscriptions)
    assert len(sandbox.requests) > RATE_LIMIT  # more than a minute's worth was asked …
    assert sandbox.rate_limited == 0  # … and nothing was refused
    assert clock.now - 5000.0 >= 60.0  # the budget waited for the window


async def test_without_the_budget_the_service_refuses():
    clock = Clock()
    sandbox = Pax8Sandbox.from_scenario(build_demo_scenario(), clock=clock)
    async with _connector(sandbox, clock, budget=False) as connector:
        await connector.subscriptions()
        try:
            for _ in range(2):
                await connector.subscriptions()
        except Exception:  # noqa: BLE001 - retries may run out; what matters is the service refusing
            pass
    assert sandbox.rate_limited > 0
