"""Run by tests/engine_io/test_refresh_lock.py in a process of its own: refresh the sandbox demo's
services into the store at argv[1] (which already holds the demo's operator state) and print the
result as one JSON line. argv[2]: seconds to wait for another refresh's lock."""

from __future__ import annotations

import asyncio
import json
import sys


async def main(url: str, lock_wait: float) -> dict:
    from engine.sandbox.demo import build_demo_scenario
    from engine.store import Store
    from engine.workspace import Workspace

    workspace = Workspace.sandbox_from_scenario(build_demo_scenario())  # services + connectors (memory store)
    workspace.store = Store(url)  # … refreshing the shared store, as `trueup refresh` on a team database
    stages: list[str] = []
    try:
        result = (
            await workspace.refresh(
                lambda p: stages.append(f"{p.stage}: {p.message}"),
                full=True,
            )
            if lock_wait < 0
            else await _refresh(workspace, stages, lock_wait)
        )
    finally:
        await workspace.aclose()
    return {
        "ok": result.ok,
        "errors": result.errors,
        "waiting": [s for s in stages if s.startswith("waiting")],
    }


async def _refresh(workspace, stages, lock_wait):
    from engine.refresh import refresh

    return await refresh(
        workspace.store,
        workspace.vendor,
        workspace.psa,
        lambda p: stages.append(f"{p.stage}: {p.message}"),
        full=True,
        today=workspace.today(),
        lock_wait=lock_wait,
    )


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], float(sys.argv[2])))))
