"""Target 3: the console with a big Unsynced pane, driven by Textual's Pilot (headless, 120×40).

The store is the `console` kind of `bench.data` (the demo at a scale without its PSA lines: about
one Unsynced row per subscription), opened with `tui.workspace.StoreWorkspace` as the console
tests do, the clock fixed on the demo's date. Measured in this fresh interpreter:

* first paint: from the start of this process (before textual and the engine are imported) until
  the Unsynced pane (pressed `3` at once) holds its rows and the screen has been refreshed once
  after (`pilot.pause()`);
* keystrokes on the Unsynced table: `down` (cursor move), `pagedown`, and filter keystrokes (`/`
  then a company name typed and erased with backspace, repeatedly — narrowing and widening). Each
  is timed from the key press until Pilot has processed it and the screen has been refreshed.
  A kind stops early after KIND_SECONDS (the count `n` says how many were timed).
  Pilot's `press` waits for the app to be idle (`wait_for_idle`: 20 ms sleeps until the process
  stops using CPU), twice, and `pause()` once more, so the wall time of any keystroke has a floor
  of ≈ 60–100 ms that is the harness's, not the console's (`floor`: an unbound key, timed the
  same way). The CPU time of this single-threaded process during each keystroke — the console's
  own work — is reported beside it (`cpu_median_ms`, `cpu_p95_ms`).

`python -m bench.console URL [--keys N]` prints JSON."""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from datetime import date, datetime  # noqa: E402
from typing import Any  # noqa: E402


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"n": len(ordered), "median_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000,
            "max_ms": ordered[-1] * 1000}


KIND_SECONDS = 60.0  # a kind of keystroke stops early (fewer than `keys`, reported) past this


async def _run(url: str, as_of: date, keys: int) -> dict[str, Any]:
    from engine.store import Store
    from tui.app import TrueupApp
    from tui.workspace import StoreWorkspace

    store = Store(url)
    now = datetime.combine(as_of, datetime.min.time()).replace(hour=9, minute=30)
    workspace = StoreWorkspace(store, label="SANDBOX — bench", sandbox=True,
                               freshness={"vendor": now, "psa": now})
    app = TrueupApp(workspace, clock=lambda: now, as_of=as_of, refresh_interval=None)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")

        def pane() -> Any:
            main = app.main
            return main.pane("unsynced") if main is not None else None

        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            p = pane()
            if app.data is not None and p is not None and getattr(p, "rows", None):
                break
            await asyncio.sleep(0.005)
        await pilot.pause()
        out["first_paint_s"] = time.perf_counter() - STARTED
        p = pane()
        out["unsynced_rows"] = len(app.data.rows_for("unsynced", False)) if app.data else 0
        table = p.table
        out["table_rows"] = table.row_count
        out["active_pane"] = app.main.active if app.main else None

        cpu: dict[str, list[float]] = {}

        async def timed(key: str, kind: str = "") -> float:
            c0, t0 = time.process_time(), time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            cpu.setdefault(kind or key, []).append(time.process_time() - c0)
            return time.perf_counter() - t0

        table.focus()
        await pilot.pause()
        async def series(key: str) -> list[float]:
            times: list[float] = []
            until = time.perf_counter() + KIND_SECONDS
            while len(times) < keys and time.perf_counter() < until:
                times.append(await timed(key))
            return times

        out["cursor"] = _summary(await series("down"))
        out["pagedown"] = _summary(await series("pagedown"))
        rows = app.data.rows_for("unsynced", False) if app.data else []
        word = (rows[len(rows) // 2].cells[1] if rows else "contoso")[:6].lower()
        await pilot.press("slash")
        await pilot.pause()
        filter_times: list[float] = []
        until = time.perf_counter() + KIND_SECONDS
        while len(filter_times) < keys and time.perf_counter() < until:
            for ch in word:
                filter_times.append(await timed(ch if ch != " " else "space", "filter"))
            for _ in word:
                filter_times.append(await timed("backspace", "filter"))
        out["filter"] = _summary(filter_times)
        # The app's own work per keystroke: CPU time of this (single-threaded) process, without
        # the ≥ 3 × 20 ms idle-detection sleeps Pilot adds to the wall time of every press.
        for kind, name in (("down", "cursor"), ("pagedown", "pagedown"), ("filter", "filter")):
            out[name]["cpu_median_ms"] = _summary(cpu.get(kind, [0.0]))["median_ms"]
            out[name]["cpu_p95_ms"] = _summary(cpu.get(kind, [0.0]))["p95_ms"]
        out["floor"] = _summary(await series("f24"))  # an unbound key: Pilot's own cost of a press
        out["filter_word"] = word
        await pilot.press("escape")
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("url")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 21))
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.url, args.as_of, args.keys))))


if __name__ == "__main__":
    main()
