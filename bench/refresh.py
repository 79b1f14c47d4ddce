"""Target 2: the incremental refresh after one subscription changes, through the sandbox workspace
(`Workspace.sandbox_from_scenario`: the Pax8 and PSA sandboxes behind the real connectors, a SQLite
file store). One full refresh first, then, `runs` times: one seat subscription's quantity changes
on the day after `as_of` (the sandbox's vendor clock is the evening of `as_of`, so the change is
newer than the last refresh) and `await ws.refresh()` is timed. One more such refresh runs under
cProfile; where its time goes is summarised (cumulative seconds of the parts of a refresh).

`python -m bench.refresh SCALE [--runs N] [--workdir DIR]` prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.data import DEFAULT_WORKDIR, scenario

# (label, file suffix, function name) of the parts of a refresh worth naming in the profile.
PARTS = (
    ("store.snapshot (read the whole store first)", "engine/store/database.py", "snapshot"),
    ("Pax8 subscriptions (every page, history of the changed)", "engine/connectors/pax8.py", "subscriptions"),
    ("Pax8 products (pages every subscription again)", "engine/connectors/pax8.py", "products"),
    ("Pax8 usage", "engine/connectors/pax8.py", "usage"),
    ("PSA read (companies, agreements, lines)", "engine/refresh.py", "_refresh_psa"),
    ("change counting (_count_changes)", "engine/refresh.py", "_count_changes"),
    ("write_vendor_refresh", "engine/store/database.py", "write_vendor_refresh"),
    ("write_psa_refresh", "engine/store/database.py", "write_psa_refresh"),
    ("HTTP mock round trips (httpx + sandbox)", "httpx/_client.py", "send"),
)


def _profile_parts(profile: cProfile.Profile) -> tuple[float, list[tuple[str, float]], list[tuple[str, float]]]:
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    parts = []
    for label, suffix, name in PARTS:
        cum = sum(v[3] for (file, _line, func), v in raw.items() if func == name and file.endswith(suffix))
        parts.append((label, round(cum, 3)))
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:8]
    own = [(f"{Path(file).name}:{line} {func}", round(v[2], 3)) for (file, line, func), v in top]
    return round(total, 3), parts, own


async def _run(scale: int, runs: int, workdir: Path) -> dict[str, Any]:
    from engine.store import Store
    from engine.workspace import Workspace

    built = scenario(scale)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"refresh-{scale}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    ws = Workspace.sandbox_from_scenario(built, store=Store(f"sqlite:///{path}"))
    try:
        started = time.perf_counter()
        first = await ws.refresh(full=True)
        full_s = time.perf_counter() - started
        assert first.ok, first.errors
        kinds = {p.id: p.kind for p in built.vendor.products}
        seats = [s for s in built.vendor.subscriptions
                 if s.status == "active" and s.history and kinds.get(s.product_id) == "seat"]
        pax8 = ws.sandboxes["pax8"]
        on = built.as_of + timedelta(days=1)
        times, changed = [], []
        for i in range(runs + 1):
            sub = seats[(i * 7919) % len(seats)]
            pax8.change_quantity(sub.id, sub.history[-1].quantity + 1 + i, on=on)
            profile = cProfile.Profile() if i == runs else None
            if profile:
                profile.enable()
            t0 = time.perf_counter()
            result = await ws.refresh()
            elapsed = time.perf_counter() - t0
            if profile:
                profile.disable()
                profiled = elapsed
            else:
                times.append(elapsed)
                changed.append(result.vendor_changed)
            assert result.ok and not result.full, result.errors
        total, parts, own = _profile_parts(profile)  # type: ignore[arg-type]
        requests = len(pax8.requests)
        return {
            "full_refresh_s": full_s,
            "incremental_ms": statistics.median(times) * 1000,
            "incremental_all_ms": [round(t * 1000, 1) for t in times],
            "vendor_changed": changed,
            "profiled_s": profiled,
            "profile_total_s": total,
            "profile_parts": parts,
            "profile_own": own,
            "pax8_requests_total": requests,
        }
    finally:
        await ws.aclose()
        ws.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh")
    parser.add_argument("scale", type=int)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.scale, args.runs, args.workdir))))


if __name__ == "__main__":
    main()
