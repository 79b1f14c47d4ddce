"""Target 3: the console with a big Unsynced pane, driven by Textual's Pilot (headless, 120×40).

The store is the `console` kind of `bench.data` (the demo at a scale without its PSA lines: about
one Unsynced row per subscription), opened with `tui.workspace.StoreWorkspace` as the console
tests do, the clock fixed on the demo's date. Three launches, each in a fresh interpreter, timed
from the start of that process (before textual and the engine are imported) to the first frame the
app writes that shows the state (`PaintClock`), with `3` pressed at once (the Unsynced pane):

* warm (`first_paint_s`): the launch before it computed and saved the figures (an operator's
  second launch; the saved state is current) — until the Unsynced pane shows its rows;
* cold (`cold_first_paint_s`, `cold_fresh_s`): no saved state (the first launch ever) — until the
  screen is painted (loading), and until the Unsynced pane shows the freshly computed rows;
* stale (`stale_first_paint_s`, `stale_fresh_s`): a write since the figures were saved — until
  the saved rows show under the stale banner, and until the fresh rows replace them.

Then, in the warm launch:
* keystrokes on the Unsynced table: `down` (cursor move), `pagedown`, and filter keystrokes (`/`
  then a company name typed and erased with backspace, repeatedly — narrowing and widening), by
  `bench.keystrokes`: each is timed from just before the key is sent until the app has written
  the frame that shows it (the headline `median_ms`/`p95_ms`); the process's CPU time per
  keystroke and Pilot's wall time with its idle waits (`wall_*`, the figure reported before; the
  `floor` is an unbound key's) are reported beside it. A kind stops early after KIND_SECONDS (the
  count `n` says how many were timed).

`python -m bench.console URL [--keys N]` prints JSON (`--phase warm|cold|stale`: one launch)."""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from datetime import date, datetime  # noqa: E402
from typing import Any  # noqa: E402


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "n": len(ordered),
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": p95 * 1000,
        "max_ms": ordered[-1] * 1000,
    }


KIND_SECONDS = 60.0  # a kind of keystroke stops early (fewer than `keys`, reported) past this


class PaintClock:
    """Time-stamps (from process start) the first frame the app writes in each launch state:
    `screen` (the main screen, whatever it shows), `stale` (a saved state's rows under the stale
    banner), `rows` (the Unsynced pane showing rows of figures taken as current), `fresh` (rows
    of figures computed or restored in full). Every frame goes through `App._display`; the headless
    driver writes nothing, so this also renders what a terminal driver would, then looks at the
    app's state and the frame's text (the first Unsynced row's id must be in it)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ansi = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
        self.marks: dict[str, float] = {}
        self.heavy: list[str] | None = None
        self.cpu: dict[str, float] = {}  # the process's CPU time (all threads) at each mark
        self._display = app._display
        app._display = self._on_display

    def _on_display(self, screen: Any, renderable: Any) -> None:
        self._display(screen, renderable)
        app = self.app
        if renderable is None or app._batch_count:
            return
        terminal = renderable.render_segments(app.console)
        now = time.perf_counter() - STARTED
        main = app.main
        if main is None:
            return
        self._mark("screen", now)
        data = app.data
        rows = data.rows.get("unsynced") if data is not None else None
        if not rows or main.active != "unsynced":
            return
        text = self.ansi.sub("", terminal)
        if rows[0].cells[0] not in text:
            return
        if data.stale:
            if "FIGURES FROM" in text:
                self._mark("stale", now)
            return
        self._mark("rows", now)
        if data.complete:
            self._mark("fresh", now)

    def _mark(self, name: str, now: float) -> None:
        if name not in self.marks:
            self.marks[name] = now
            self.cpu[name] = time.process_time()
            if name == "rows":  # which of the heavy modules were loaded when the rows were painted
                self.heavy = [m for m in ("sqlalchemy", "sqlmodel", "pydantic") if m in sys.modules]


async def _run(url: str, as_of: date, keys: int, phase: str = "warm") -> dict[str, Any]:
    # The launch is `trueup`'s (tui.app.prepare_console, what run_console runs): the entry point and
    # the app, the launch hint and the saved view read with the bare driver, then — after the first
    # frame when a saved view was painted, before it otherwise — the workspace opened as trueup
    # opens it (the secrets' scrubbing, the configuration, engine.workspace's connectors), here on
    # the bench's store with StoreWorkspace and a fixed clock.
    import tui.cli
    from tui.app import prepare_console, remember_launch

    now = datetime.combine(as_of, datetime.min.time()).replace(hour=9, minute=30)
    stores: list[Any] = []

    def opener(db_url: str | None) -> tuple[Any, Any]:
        import engine.workspace  # noqa: F401 - imported by trueup's opener (connectors, refresh)
        from engine.settings import load_config
        from engine.store import Store
        from tui.workspace import StoreWorkspace

        tui.cli.scrub_outputs(db_url)
        config = load_config()
        store = Store(url)
        stores.append(store)
        workspace = StoreWorkspace(
            store, label="SANDBOX — bench", sandbox=True, freshness={"vendor": now, "psa": now}
        )
        remember_launch(db_url, url, workspace, config)
        return workspace, config

    app, _mouse = prepare_console(
        db_url=url,
        opener=opener,
        clock=lambda: now,
        as_of=as_of,
        refresh_interval=None,
        full_refresh_on_start=False,
    )
    early = app.first_view is not None
    clock = PaintClock(app)
    out: dict[str, Any] = {"phase": phase, "painted_before_engine": early}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")

        def pane() -> Any:
            main = app.main
            return main.pane("unsynced") if main is not None else None

        wanted = "fresh" if phase in ("cold", "stale") else "rows"
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline and wanted not in clock.marks:
            await asyncio.sleep(0.005)
        marks = clock.marks
        if phase == "warm":
            out["first_paint_s"] = marks.get("rows")
            out["current"] = "stale" not in marks  # the saved state was current (as it should be)
            while time.perf_counter() < deadline and not (app.data and app.data.complete):
                await asyncio.sleep(0.005)
            out["plan_restored_s"] = time.perf_counter() - STARTED
            out["marks"] = dict(marks)
            out["cpu"] = dict(clock.cpu)
            out["first_paint_cpu_s"] = clock.cpu.get("rows")
            out["engine_loaded_s"] = app.engine_loaded_at - STARTED if app.engine_loaded_at else None
            out["heavy_at_first_paint"] = clock.heavy
        else:
            out[f"{phase}_first_paint_s"] = marks.get("stale" if phase == "stale" else "screen")
            out[f"{phase}_fresh_s"] = marks.get("fresh")
            out["marks"] = marks
            out["cpu"] = dict(clock.cpu)
            await app.workers.wait_for_complete()  # the fresh figures saved, for the next launch
            out["saved"] = app.saves
            out["unsynced_rows"] = len(app.data.rows_for("unsynced", False)) if app.data else 0
            await pilot.press("q")
            for store in stores:
                store.close()
            return out
        p = pane()
        out["unsynced_rows"] = len(app.data.rows_for("unsynced", False)) if app.data else 0
        table = p.table
        out["table_rows"] = table.row_count
        out["active_pane"] = app.main.active if app.main else None

        from bench.keystrokes import measure  # key → frame; see that module

        app._display = clock._display  # first paint is timed: one clock renders each frame from here
        out.update(await measure(app, pilot, keys, KIND_SECONDS))
    for store in stores:
        store.close()
    return out


def _phase(url: str, as_of: date, keys: int, phase: str) -> dict[str, Any]:
    """One launch in a fresh interpreter (its own process start)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.console",
            url,
            "--as-of",
            as_of.isoformat(),
            "--keys",
            str(keys),
            "--phase",
            phase,
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"bench.console --phase {phase} exited {proc.returncode}: {' | '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _launches(url: str, as_of: date, keys: int) -> dict[str, Any]:
    """Three launches, each in its own interpreter, prepared in this one (not timed):
    * cold — no saved state (first launch ever): the loading screen, then the fresh rows;
    * warm — the state the cold launch saved is current (an operator's second launch): the rows;
      then the keystrokes;
    * stale — after a write to the store (another operator, a refresh): the saved rows under the
      stale banner, then the fresh rows."""
    from engine.store import Store
    from engine.store.plan_cache import discard_state

    store = Store(url)  # migrated here, once, not in a timed launch
    discard_state(store)
    store.close()
    cold = _phase(url, as_of, 0, "cold")
    warm = _phase(url, as_of, keys, "warm")
    store = Store(url)
    store.set_setting("bench_console_write", time.time())  # any write makes the saved figures stale
    store.close()
    stale = _phase(url, as_of, 0, "stale")
    out = dict(warm)
    out.update({k: cold[k] for k in ("cold_first_paint_s", "cold_fresh_s")})
    out.update({k: stale[k] for k in ("stale_first_paint_s", "stale_fresh_s")})
    out["launches"] = {"cold": cold, "stale": stale}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument(
        "url",
        nargs="?",
        help="the store (default: the one trueup would open: TRUEUP_DATABASE_URL, trueup.toml, the sandbox's)",
    )
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 21))
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument(
        "--phase",
        choices=("cold", "warm", "stale"),
        default=None,
        help="one launch in this process (default: all three, each in a fresh interpreter)",
    )
    args = parser.parse_args()
    from engine.settings import load_config
    from engine.store.resolve import resolve_store

    args.url = resolve_store(args.url, load_config()).url  # the one resolution, as trueup's
    if args.phase is None:
        print(json.dumps(_launches(args.url, args.as_of, args.keys)))
    else:
        print(json.dumps(asyncio.run(_run(args.url, args.as_of, args.keys, args.phase))))


if __name__ == "__main__":
    main()
