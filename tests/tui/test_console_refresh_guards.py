"""The console's refresh says what the engine's refresh guards say: who holds the store's refresh
lock while it waits, and an empty listing held back ("Pax8 returned 0 companies (was N) — keep the
store?"), with the store left as it was."""

from __future__ import annotations

from typing import Any

import httpx

from engine.sandbox.demo import build_demo_scenario
from engine.store.locks import LockHolder
from engine.workspace import Workspace
from tui.app import TrueupApp

EMPTY_PAGE = {"content": [], "page": {"size": 200, "totalElements": 0, "totalPages": 0, "number": 0}}


def notes_of(app: TrueupApp) -> list[str]:
    notes: list[str] = []
    original = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        notes.append(str(message))
        original(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return notes


async def test_the_console_shows_the_lock_holder_and_a_held_empty_listing(monkeypatch):
    workspace = Workspace.sandbox_from_scenario(build_demo_scenario())
    assert (await workspace.refresh()).ok
    companies = len(workspace.store.vendor_companies())
    pax8 = workspace.sandboxes["pax8"]
    handle = pax8.handle

    async def no_companies(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/companies"):
            return httpx.Response(200, json=EMPTY_PAGE, request=request)
        return await handle(request)

    monkeypatch.setattr(pax8, "handle", no_companies)
    held = workspace.store.locks.try_acquire("refresh")  # "another operator" is refreshing
    assert held is not None
    app = TrueupApp(workspace, refresh_interval=None)
    notes = notes_of(app)
    me = LockHolder.me()
    async with app.run_test() as pilot:
        for _ in range(500):
            if any("another refresh is running" in n for n in notes):
                break
            await pilot.pause(0.02)
        held.release()
        for _ in range(1500):
            if any("keep the store?" in n for n in notes):
                break
            await pilot.pause(0.02)
        await app.workers.wait_for_complete()
    assert any(f"another refresh is running ({me.user}@{me.host} (pid {me.pid})" in n for n in notes), notes
    assert any(f"Pax8 returned 0 companies (was {companies}) — keep the store?" in n for n in notes), notes
    assert len(workspace.store.vendor_companies()) == companies
    await workspace.aclose()
