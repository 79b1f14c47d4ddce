"""Target 2: the refresh after one subscription changes, through the sandbox workspace
(`Workspace.sandbox_from_scenario`: the Pax8 and PSA sandboxes behind the real connectors, a SQLite
file store). One full refresh first. Then, `runs` times: one seat subscription's quantity changes
on the day after `as_of` (the sandbox's vendor clock is the evening of `as_of`, so the change is
newer than the last refresh) and

* the **targeted refresh** of that subscription's customer, `await ws.refresh_customer(company id)`
  (Pax8 company + its subscriptions + the changed one's history + its usage; the mapped PSA
  company's agreements and lines), is timed: `incremental_ms` (the figure for the 100 ms target);
* then, `sweep_runs` times, another change and the **periodic sweep** `await ws.refresh()` (every
  Pax8 subscription listed, the PSA side read in full): `sweep_ms`, reported beside it.

One more targeted refresh and one more sweep run under cProfile; where their time goes is
summarised (cumulative seconds of the parts). Requests per targeted refresh are counted at the
sandboxes.

`python -m bench.refresh SCALE [--runs N] [--sweep-runs N] [--workdir DIR]` prints JSON."""

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

# (label, file suffix, function names) of the parts worth naming in the profiles.
TARGETED_PARTS = (
    (
        "Pax8 company + the customer's subscriptions (+ history of the changed)",
        "engine/connectors/pax8.py",
        ("company", "subscriptions"),
    ),
    ("Pax8 usage of the customer", "engine/connectors/pax8.py", ("usage",)),
    ("PSA agreements + lines of the mapped company", "", ("company_billing",)),
    (
        "store: the customer's rows read",
        "engine/store/database.py",
        (
            "subscriptions_where",
            "usage_rows",
            "psa_data",
            "vendor_products",
            "vendor_companies",
            "psa_mapping",
            "long_synced_keys",
            "find_vendor_companies",
            "billing_configuration_ids",
        ),
    ),
    ("write_vendor_scope", "engine/store/database.py", ("write_vendor_scope",)),
    ("write_psa_scope", "engine/store/database.py", ("write_psa_scope",)),
    ("HTTP mock round trips (httpx + sandbox)", "httpx/_client.py", ("send",)),
)
SWEEP_PARTS = (
    (
        "Pax8 subscriptions (every page, history of the changed)",
        "engine/connectors/pax8.py",
        ("subscriptions",),
    ),
    ("Pax8 products (the ids already listed: no second paging)", "engine/connectors/pax8.py", ("products",)),
    ("Pax8 usage", "engine/connectors/pax8.py", ("usage",)),
    ("PSA read (companies, agreements, lines)", "engine/refresh.py", ("_refresh_psa",)),
    (
        "store: lean reads for the comparison",
        "engine/store/database.py",
        (
            "subscriptions_where",
            "usage_rows",
            "psa_data",
            "vendor_products",
            "vendor_companies",
            "subscription_product_ids",
            "long_synced_keys",
        ),
    ),
    ("change counting (_count_changes)", "engine/refresh.py", ("_count_changes",)),
    ("write_vendor_refresh", "engine/store/database.py", ("write_vendor_refresh",)),
    ("write_psa_refresh", "engine/store/database.py", ("write_psa_refresh",)),
    ("HTTP mock round trips (httpx + sandbox)", "httpx/_client.py", ("send",)),
)


def _profile_parts(
    profile: cProfile.Profile, wanted: tuple[tuple[str, str, tuple[str, ...]], ...]
) -> tuple[float, list[tuple[str, float]], list[tuple[str, float]]]:
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    parts = []
    for label, suffix, names in wanted:
        cum = sum(
            v[3]
            for (file, _line, func), v in raw.items()
            if func in names and file.endswith(suffix) and (suffix or "/engine/connectors/" in file)
        )
        parts.append((label, round(cum, 4)))
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:8]
    own = [(f"{Path(file).name}:{line} {func}", round(v[2], 4)) for (file, line, func), v in top]
    return round(total, 4), parts, own


async def _run(scale: int, runs: int, sweep_runs: int, workdir: Path) -> dict[str, Any]:
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
        seats = [
            s
            for s in built.vendor.subscriptions
            if s.status == "active" and s.history and kinds.get(s.product_id) == "seat"
        ]
        pax8 = ws.sandboxes["pax8"]
        psa_box = next(box for name, box in ws.sandboxes.items() if name != "pax8")
        on = built.as_of + timedelta(days=1)
        bump = iter(range(1, 10_000))

        def change(i: int) -> Any:
            sub = seats[(i * 7919) % len(seats)]
            pax8.change_quantity(sub.id, sub.history[-1].quantity + next(bump), on=on)
            return sub

        await ws.refresh_customer(seats[0].company_id)  # warm: token, codebase, connections
        times, changed, requests = [], [], []
        profile_targeted = cProfile.Profile()
        for i in range(runs + 1):
            sub = change(i)
            before = len(pax8.requests) + len(psa_box.requests)
            profile = profile_targeted if i == runs else None
            if profile:
                profile.enable()
            t0 = time.perf_counter()
            result = await ws.refresh_customer(sub.company_id)
            elapsed = time.perf_counter() - t0
            if profile:
                profile.disable()
                profiled = elapsed
            else:
                times.append(elapsed)
                changed.append(result.vendor_changed)
                requests.append(len(pax8.requests) + len(psa_box.requests) - before)
            assert result.ok and result.vendor_changed >= 1, (result.errors, result.vendor_changed)

        sweep_times, sweep_changed = [], []
        profile_sweep = cProfile.Profile()
        for i in range(sweep_runs + 1):
            change(runs + 1 + i)
            profile = profile_sweep if i == sweep_runs else None
            if profile:
                profile.enable()
            t0 = time.perf_counter()
            result = await ws.refresh()
            elapsed = time.perf_counter() - t0
            if profile:
                profile.disable()
                sweep_profiled = elapsed
            else:
                sweep_times.append(elapsed)
                sweep_changed.append(result.vendor_changed)
            assert result.ok and not result.full, result.errors
        total, parts, own = _profile_parts(profile_targeted, TARGETED_PARTS)
        sweep_total, sweep_parts, sweep_own = _profile_parts(profile_sweep, SWEEP_PARTS)
        return {
            "full_refresh_s": full_s,
            "incremental_ms": statistics.median(times) * 1000,  # the targeted refresh (target 2)
            "incremental_all_ms": [round(t * 1000, 1) for t in times],
            "vendor_changed": changed,
            "targeted_requests": requests,
            "profiled_s": profiled,
            "profile_total_s": total,
            "profile_parts": parts,
            "profile_own": own,
            "sweep_ms": statistics.median(sweep_times) * 1000,
            "sweep_all_ms": [round(t * 1000, 1) for t in sweep_times],
            "sweep_vendor_changed": sweep_changed,
            "sweep_profiled_s": sweep_profiled,
            "sweep_profile_total_s": sweep_total,
            "sweep_profile_parts": sweep_parts,
            "sweep_profile_own": sweep_own,
            "pax8_requests_total": len(pax8.requests),
        }
    finally:
        await ws.aclose()
        ws.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh")
    parser.add_argument("scale", type=int)
    parser.add_argument("--runs", type=int, default=3, help="timed targeted refreshes")
    parser.add_argument("--sweep-runs", type=int, default=2, help="timed periodic sweeps")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.scale, args.runs, args.sweep_runs, args.workdir))))


if __name__ == "__main__":
    main()
