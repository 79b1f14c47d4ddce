"""Fault injection for the sandbox services: 429s, 5xx, lost responses and latency, from a seeded
generator (reproducible) or scripted one request at a time (for tests that need an exact fault)."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx


class Fault(StrEnum):
    NONE = "none"
    RATE_LIMITED = "429"  # refused before anything happened; carries Retry-After
    UNAVAILABLE = "503"  # refused before anything happened
    SERVER_ERROR = "500"  # the write WAS applied, then the service answered 500
    LOST_RESPONSE = "lost"  # the write WAS applied, then the connection dropped (read timeout)
    ECHO_HEADERS = "echo"  # refused with a 400 whose text reflects the request's headers (credentials too)


@dataclass
class Faults:
    """Decides, per request, whether the sandbox misbehaves.

    Rates are probabilities per request. `script` holds faults to apply to the next requests in
    order (before the random rates are consulted). `writes_only` limits random faults to writes.
    """

    seed: int = 0
    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_500_after_apply: float = 0.0
    rate_lost_response: float = 0.0
    retry_after: float = 0.0
    latency: float = 0.0
    writes_only: bool = False
    script: deque[Fault] = field(default_factory=deque)
    injected: list[tuple[str, str, Fault]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def push(self, *faults: Fault) -> None:
        self.script.extend(faults)

    def decide(self, request: httpx.Request) -> Fault:
        if self.script:
            fault = self.script.popleft()
        elif self.writes_only and request.method == "GET":
            fault = Fault.NONE
        else:
            roll = self._rng.random()
            fault = Fault.NONE
            for rate, kind in (
                (self.rate_429, Fault.RATE_LIMITED),
                (self.rate_503, Fault.UNAVAILABLE),
                (self.rate_500_after_apply, Fault.SERVER_ERROR),
                (self.rate_lost_response, Fault.LOST_RESPONSE),
            ):
                if roll < rate:
                    fault = kind
                    break
                roll -= rate
        if fault is not Fault.NONE:
            self.injected.append((request.method, request.url.path, fault))
        return fault

    def refusal(
        self,
        fault: Fault,
        request: httpx.Request,
        too_many: Callable[[httpx.Request, float], httpx.Response] | None = None,
    ) -> httpx.Response | None:
        """The response for a fault that refuses the request before it is applied, else None.
        `too_many(request, retry_after)` gives a service's own 429 (body and headers)."""
        if fault is Fault.RATE_LIMITED and too_many is not None:
            return too_many(request, self.retry_after)
        if fault is Fault.RATE_LIMITED:
            return httpx.Response(
                429,
                headers={"Retry-After": f"{self.retry_after:g}"},
                json={"message": "Too many requests"},
                request=request,
            )
        if fault is Fault.UNAVAILABLE:
            return httpx.Response(503, text="Service Unavailable", request=request)
        if fault is Fault.ECHO_HEADERS:  # a service (or a proxy before it) that reflects what it got
            echoed = "\n".join(f"{name}: {value}" for name, value in request.headers.items())
            return httpx.Response(400, text=f"Bad Request. The request carried:\n{echoed}", request=request)
        return None

    @staticmethod
    def after_apply(fault: Fault, request: httpx.Request) -> httpx.Response | None:
        """For a fault that strikes after the write was applied: a 500, or raise a lost response."""
        if fault is Fault.SERVER_ERROR:
            return httpx.Response(500, text="Internal Server Error", request=request)
        if fault is Fault.LOST_RESPONSE:
            raise httpx.ReadTimeout("the response was lost after the request was applied", request=request)
        return None

    async def serve(
        self,
        request: httpx.Request,
        route: Callable[[httpx.Request], httpx.Response],
        too_many: Callable[[httpx.Request, float], httpx.Response] | None = None,
    ) -> httpx.Response:
        """Answer `request` with `route`, misbehaving as decided: latency first, then a refusal
        (nothing applied), or the route's work followed by a 500 or a lost response."""
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self.decide(request)
        refused = self.refusal(fault, request, too_many)
        if refused is not None:
            return refused
        response = route(request)
        after = self.after_apply(fault, request) if fault is not Fault.NONE else None
        return after if after is not None else response
