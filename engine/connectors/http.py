"""What every connector shares: one `httpx.AsyncClient` per service, read retries, rate budgets,
tolerant parsing (dates, money) and errors turned into `ServiceError`.

Retry policy (shared/APIS.md §5.2): reads are retried on 429 (honouring Retry-After), 502/503/504
and timeouts, with exponential backoff and jitter. Writes are never re-sent blindly: a 429 is safe
to re-send (the service refused it before doing anything), anything else surfaces to the caller,
which resolves it by looking the line up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, StrictInt, TypeAdapter, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from engine.connectors.base import ServiceError
from engine.scrub import clean_json

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

ErrorParser = Callable[[httpx.Response], tuple[str, list[str]]]


# --- parsing -------------------------------------------------------------------------------------


def loads(text: str | bytes) -> Any:
    """JSON with every non-integer number as `Decimal` (money never passes through a float), and
    every string scrubbed of terminal control sequences (`engine.scrub.clean_json`): this is the
    boundary every service response crosses."""
    return clean_json(json.loads(text, parse_float=Decimal, parse_constant=_not_a_number))


def _not_a_number(name: str) -> Any:
    raise ValueError(f"the response is not valid JSON: {name} is not a number")


def parse_json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    return loads(response.content)


def parse_date(value: object) -> date | None:
    """A calendar date from anything the services send: `2020-12-03`, `2021-01-01T08:30:00Z`,
    `2020-12-01T13:20:13.153-0700`, `2024-01-31T15:04:05.307` (no zone). The date is taken as
    written, never shifted to another zone (shared/APIS.md §1.8)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if len(text) >= 10 and text[4] == "-" and text[7] == "-":
        return date.fromisoformat(text[:10])
    raise ValueError(f"not a date: {value!r}")


def parse_datetime(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # `-0700` (no colon) is accepted by fromisoformat on 3.11+.
    return datetime.fromisoformat(text)


def decimal_or_none(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


# --- rate budgets --------------------------------------------------------------------------------


class RollingWindow:
    """At most `requests` starts in any `per_seconds` window, as the services count them ("300
    requests per rolling 5 minute window"). A leaky bucket (aiolimiter) starts full and refills
    meanwhile, so it lets up to twice the limit through the first window — which the service answers
    with 429s; this keeps the start time of each request in the window and waits for the oldest to
    leave it."""

    def __init__(
        self,
        requests: int,
        per_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ):
        self.requests = requests
        self.per_seconds = per_seconds
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.per_seconds:
                    self._starts.popleft()
                if len(self._starts) < self.requests:
                    self._starts.append(now)
                    return
                await self._sleep(self._starts[0] + self.per_seconds - now)
                self._starts.popleft()  # waited until the oldest left the window (whatever the clock's rounding)


class RateBudget:
    """Client-side budget: at most `requests` per rolling `per_seconds`, and at most `concurrent` in
    flight.

    Halo: 300 per 300 s; Autotask: 3 concurrent; Pax8: 1000 per 60 s.
    """

    def __init__(self, requests: int | None = None, per_seconds: float = 60.0, concurrent: int | None = None):
        self.requests = requests
        self.per_seconds = per_seconds
        self.concurrent = concurrent
        self.window = RollingWindow(requests, per_seconds) if requests else None
        self._semaphore = asyncio.Semaphore(concurrent) if concurrent else None

    def slot(self) -> AbstractAsyncContextManager[Any]:
        return _Slot(self.window, self._semaphore)


class _Slot:
    def __init__(self, window: RollingWindow | None, semaphore: asyncio.Semaphore | None):
        self._window = window
        self._semaphore = semaphore

    async def __aenter__(self) -> None:
        if self._semaphore is not None:
            await self._semaphore.acquire()
        if self._window is not None:
            await self._window.acquire()

    async def __aexit__(self, *exc: object) -> None:
        if self._semaphore is not None:
            self._semaphore.release()


# --- the client ----------------------------------------------------------------------------------


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _default_error_parser(response: httpx.Response) -> tuple[str, list[str]]:
    try:
        body = parse_json(response)
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return body["message"], []
    text = response.text.strip()
    return (text[:500] or response.reason_phrase or "request failed"), []


class ServiceClient:
    """One service's HTTP client. Connectors build on `read`, `write` and `build`."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        budget: RateBudget | None = None,
        error_parser: ErrorParser | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        read_attempts: int = 5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.service = service
        self.budget = budget
        self.error_parser = error_parser or _default_error_parser
        self.read_attempts = read_attempts
        self.max_backoff = max_backoff
        self._sleep = sleep or asyncio.sleep
        self.http = httpx.AsyncClient(
            base_url=base_url, transport=transport, headers=dict(headers or {}), auth=auth, timeout=timeout
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def build(self, method: str, url: str, **kwargs: Any) -> httpx.Request:
        return self.http.build_request(method, url, **kwargs)

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        slot = self.budget.slot() if self.budget else nullcontext()
        async with slot:
            try:
                response = await self.http.send(request)
            except httpx.TimeoutException as exc:
                raise ServiceError(self.service, f"timed out ({type(exc).__name__})", retryable=True) from exc
            except httpx.TransportError as exc:
                # A connect error never reached the service; other transport errors may have.
                sent = not isinstance(exc, httpx.ConnectError)
                raise ServiceError(
                    self.service, f"connection failed: {exc}", retryable=True, sent=sent
                ) from exc
        if response.is_success:
            return response
        message, details = self.error_parser(response)
        status = response.status_code
        raise ServiceError(
            self.service,
            message,
            status=status,
            details=details,
            retryable=status in RETRYABLE_STATUS,
            sent=status != 429,
            retry_after=retry_after_seconds(response),
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ServiceError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_backoff)
        return wait_exponential_jitter(multiplier=0.5, max=self.max_backoff)(state)

    async def send(self, request: httpx.Request, *, idempotent: bool) -> httpx.Response:
        """Send with retries. Idempotent requests retry on every retryable error; others only on a
        429 (refused before anything happened)."""

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, ServiceError) or not exc.retryable:
                return False
            return idempotent or not exc.sent

        retrying = AsyncRetrying(
            retry=retry_if_exception(should_retry),
            stop=stop_after_attempt(self.read_attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.info(
                        "%s: retrying %s %s (attempt %d)",
                        self.service,
                        request.method,
                        request.url.path,
                        attempt.retry_state.attempt_number,
                    )
                return await self._send_once(request)
        raise AssertionError("unreachable")  # pragma: no cover

    async def read(self, method: str, url: str, **kwargs: Any) -> Any:
        """A read (GET, or a POST query endpoint): retried; returns the parsed JSON body."""
        response = await self.send(self.build(method, url, **kwargs), idempotent=True)
        return parse_json(response)

    async def read_response(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.send(self.build(method, url, **kwargs), idempotent=True)

    async def write(self, method: str, url: str, **kwargs: Any) -> Any:
        """A write: sent once (re-sent only after a 429); returns the parsed JSON body."""
        response = await self.send(self.build(method, url, **kwargs), idempotent=False)
        return parse_json(response)


# --- response guards (issue 11): capped listings and validated envelopes ---------------------------

MAX_LISTING_PAGES = 5_000  # 1,000,000 records at Pax8's 200 a page: far beyond any partner
MAX_LISTING_BYTES = 256 * 1024 * 1024  # one listing's response bodies, together


class ListingCap:
    """Counts one listing's pages and bytes and stops it, with a `ServiceError` naming the listing,
    once either cap is passed: a service that keeps answering "one more page" (a bug, a proxy
    looping, hostile data) must not run a refresh forever or fill the memory."""

    def __init__(
        self,
        service: str,
        what: str,
        *,
        max_pages: int = MAX_LISTING_PAGES,
        max_bytes: int = MAX_LISTING_BYTES,
    ) -> None:
        self.service = service
        self.what = what
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self.pages = 0
        self.bytes = 0

    def count(self, response: httpx.Response | int) -> None:
        """One more page (a response, or its size in bytes)."""
        self.pages += 1
        self.bytes += response if isinstance(response, int) else len(response.content)
        status = None if isinstance(response, int) else response.status_code
        if self.pages > self.max_pages:
            raise ServiceError(
                self.service,
                f"{self.what}: stopped after {self.max_pages} pages — the "
                "listing does not end; nothing was stored from it",
                status=status,
            )
        if self.bytes > self.max_bytes:
            raise ServiceError(
                self.service,
                f"{self.what}: stopped after {self.bytes:,} bytes in {self.pages} "
                f"pages (over the {self.max_bytes:,}-byte cap); nothing was stored from it",
                status=status,
            )


def json_body(service: str, what: str, response: httpx.Response) -> Any:
    """The parsed JSON body of a 2xx; an empty or garbled one is a `ServiceError`."""
    status = response.status_code
    if not response.content.strip():
        raise ServiceError(
            service, f"{what}: the service answered {status} with an empty body", status=status
        )
    try:
        return parse_json(response)
    except ValueError:
        raise ServiceError(
            service, f"{what}: the service answered {status} with a body that is not JSON", status=status
        ) from None


JsonNumber = StrictInt | Decimal  # a JSON number as `loads` reads it (never a float)


class IdRecord(BaseModel):
    """A record the connector relies on only for its integer `id` (the rest is checked where read)."""

    model_config = ConfigDict(extra="allow")
    id: StrictInt


def validated(service: str, what: str, model: Any, response: httpx.Response, body: Any = None) -> Any:
    """The parsed JSON body (`body` when the caller parsed it already), once it validates against the
    pydantic `model` (a `TypeAdapter` or a type): an empty, garbled or wrongly shaped 200 is a
    `ServiceError` naming what was wrong, never "no rows"."""
    status = response.status_code
    if body is None:
        body = json_body(service, what, response)
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        adapter.validate_python(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the body"
        raise ServiceError(
            service, f"{what}: unexpected response ({where}: {first['msg']})", status=status
        ) from None
    return body
