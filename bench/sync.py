"""Target 4: sync throughput against the sandbox PSAs, through the real connectors and
`engine.sync.executor.SyncExecutor(store, psa).run(lines)`.

The data: the demo MSP at a small scale (`build_demo_scenario(scale=S, psa=...)`) in the sandbox
workspace (`Workspace.sandbox_from_scenario`, a SQLite file store), refreshed in full, reconciled;
every line of the plan is synced. The sandbox has no faults.

* HaloPSA: its documented limit is 300 requests per 5 minutes — too slow to measure in real time,
  so the connector's client gets `RateBudget(300, 3.0)` instead (the same limiter, 100 times
  faster: 100 requests/s). Every request the sandbox receives is time-stamped; reported are the
  requests per second over the run and how much of the budget they used (the limiter's
  bucket holds `requests` at the start). The figure is the share of what the budget lets through
  over the run — `requests sent / (300 + 100/s × seconds from first to last request)` — and the
  busiest rolling 3-second window is set against the 300 a rolling window allows.
* Autotask: its budget is 3 requests in flight (the sandbox answers 429 to a 4th); no rate.

Duplicates: after the run every agreement's (contract's) lines are read from the sandbox itself
(`lines_for`) and their trueup keys counted: a key on two lines is a duplicate.

`python -m bench.sync [--scale S] [--min-lines N]` prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.data import DEFAULT_WORKDIR, scenario

HALO_REQUESTS, HALO_SECONDS = 300, 3.0


def _keys_in_sandbox(psa: str, sandbox: Any) -> Counter[str]:
    keys: Counter[str] = Counter()
    if psa == "halopsa":
        from engine.connectors.connectwise import KeyCodec
        from engine.connectors.halopsa import KEY_FIELD, KEY_MAX

        codec = KeyCodec(KEY_MAX)
        for agreement in sorted({line["ihid"] for line in sandbox.lines.values()}):
            for line in sandbox.lines_for(agreement):
                key = codec.decode(line.get(KEY_FIELD))
                if key:
                    keys[key] += 1
        return keys
    if psa == "connectwise":
        from engine.connectors.connectwise import SERIAL_MAX, KeyCodec

        codec = KeyCodec(SERIAL_MAX)
        for addition in sandbox.additions.values():
            key = codec.decode(addition.get("serialNumber"))
            if key:
                keys[key] += 1
        return keys
    from engine.connectors.autotask import NOTE_KEY, _note_value, key_from_marker

    contracts = {s["contractID"] for s in sandbox.tables["ContractServices"].values()}
    contracts |= {c["contractID"] for c in sandbox.tables["ContractCharges"].values()}
    for contract in sorted(contracts):
        for line in sandbox.lines_for(contract):
            key = (
                key_from_marker(line.get("internalDescription"))
                or _note_value(line.get("notes"), NOTE_KEY)
                or key_from_marker(line.get("internalPurchaseOrderNumber"))
            )
            if key:
                keys[key] += 1
    return keys


def _busiest(stamps: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def _run(psa: str, scale: int, min_lines: int, workdir: Path) -> dict[str, Any]:
    from engine.connectors.http import RateBudget
    from engine.store import Store
    from engine.sync.executor import SyncExecutor
    from engine.workspace import Workspace

    built = scenario(scale, psa=psa)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"sync-{psa}-{scale}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    ws = Workspace.sandbox_from_scenario(built, store=Store(f"sqlite:///{path}"))
    try:
        refreshed = await ws.refresh(full=True)
        assert refreshed.ok, refreshed.errors
        before = _keys_in_sandbox(psa, ws.sandboxes[psa])
        plan = ws.plan()
        lines = list(plan.lines)
        assert len(lines) >= min_lines, f"{len(lines)} plan lines; raise --scale"
        client = next(
            c
            for c in (getattr(ws.psa, a, None) for a in ("client", "_client", "http"))
            if c is not None and hasattr(c, "budget")
        )
        if psa == "halopsa":
            client.budget = RateBudget(HALO_REQUESTS, HALO_SECONDS)
        sandbox = ws.sandboxes[psa]
        stamps: list[float] = []
        statuses: Counter[int] = Counter()
        handle = sandbox.handle

        async def counted(request: Any) -> Any:
            stamps.append(time.monotonic())
            response = await handle(request)
            statuses[response.status_code] += 1
            return response

        sandbox.handle = counted
        executor = SyncExecutor(ws.store, ws.psa, today=built.as_of)
        started = time.monotonic()
        report = await executor.run(lines)
        elapsed = time.monotonic() - started
        sandbox.handle = handle
        # What landed, read back through the connector and priced as the PSA invoices it
        # (engine.verify): must equal the plan to the cent.
        from engine.verify import verify_psa

        verification = await verify_psa(ws.psa, lines)
        after = _keys_in_sandbox(psa, sandbox)
        plan_keys = {line.key for line in lines}
        duplicates = sorted(k for k, n in after.items() if n > 1 and k in plan_keys)
        span = (stamps[-1] - stamps[0]) if len(stamps) > 1 else elapsed
        out: dict[str, Any] = {
            "psa": psa,
            "budget": (
                f"{client.budget.concurrent} concurrent"
                if client.budget and client.budget.concurrent
                else "none"
            ),
            "lines": len(lines),
            "outcomes": {k: v for k, v in report.counts().items() if v},
            "requests": len(stamps),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "seconds": elapsed,
            "requests_per_s": len(stamps) / span if span else 0.0,
            "lines_per_s": len(lines) / elapsed if elapsed else 0.0,
            "duplicates": len(duplicates),
            "duplicate_keys": duplicates[:10],
            "planned": str(verification.planned_price),
            "landed": str(verification.landed_price),
            "planned_cost": str(verification.planned_cost),
            "landed_cost": str(verification.landed_cost),
            "verify_problems": len(verification.problems) + len(verification.duplicates),
            "keys_before": sum(before.values()),
            "keys_after": sum(after.values()),
        }
        if psa == "halopsa":
            limit = HALO_REQUESTS / HALO_SECONDS
            # What a rolling window lets through in `span` seconds: HALO_REQUESTS per started
            # window. The share of that which was sent is the figure.
            allowed = HALO_REQUESTS * max(1, math.ceil(span / HALO_SECONDS))
            out.update(
                {
                    "budget": f"{HALO_REQUESTS} per {HALO_SECONDS:g} s",
                    "limit_per_s": limit,
                    "allowed": allowed,
                    "budget_share": len(stamps) / allowed,
                    "busiest_window": _busiest(stamps, HALO_SECONDS),
                }
            )
        return out
    finally:
        await ws.aclose()
        ws.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync")
    parser.add_argument("--psa", choices=("halopsa", "autotask", "connectwise"), default="halopsa")
    parser.add_argument("--scale", type=int, default=1500)
    parser.add_argument("--min-lines", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.psa, args.scale, args.min_lines, args.workdir))))


if __name__ == "__main__":
    main()
