"""Operator actions at month-end scale, timed the way the operator feels them: from the key that
commits the action to the first frame showing the new plan (Textual's Pilot, headless 120×40,
frames rendered as a terminal driver would — `bench.keystrokes.FrameClock`).

The store is a copy of the `console` kind of `bench.data` (the demo at a scale without its PSA
lines: ≈ one Unsynced row per subscription). The console is launched once on it (the figures
computed in full and saved, not timed), then, `runs` times each:

* **ignore** — Unsynced, the row under the cursor, `i`, a reason, then the timed `enter`, until a
  frame where that row is gone and the pane's title shows one row fewer;
* **restore** — `t` (ignored rows shown), `G` (the ignored row), the timed `r`, until a frame
  where the row is back as pending;
* **edit date** — `e` on an Unsynced row, the new date typed, the timed `enter`, until a frame
  whose detail panel shows the line starting on that date;
* **unmap / map a customer** — Customers, `u` (the console asks "Unmap … from …?"), the timed `y`,
  until "Not mapped" shows; then `m`, the PSA company's name typed, the timed `enter`, until
  "Mapped" shows;
* **targeted refresh** — the timed `R` on an Unsynced row, until the frame shows that row's new
  quantity. The workspace's `refresh_customer` here writes what a targeted refresh writes when
  the vendor reports an increase (the subscription's history, `Store.upsert_subscriptions`); the
  HTTP part of a real targeted refresh is measured by `bench.refresh` (`incremental_ms`) and is
  not in this figure;
* **keystroke during a sweep** — `f5` starts a sweep (the stand-in writes a setting, so the store
  moved and the figures are recomputed in full in a worker thread, ≈ the CPU of a real sweep's
  recompute), and `down` keys are timed (key → frame with the cursor on the next row) while it runs.

`python -m bench.actions URL [--runs N]` prints JSON (URL: a store of `bench.data --kind console`)."""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from datetime import date, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

FRAME_WAIT = 30.0  # seconds an action's frame may take before it counts as never shown


def _copy(url: str) -> str:
    """A scratch copy of the store (the actions write to it)."""
    source = Path(url.removeprefix("sqlite:///"))
    target = Path(os.environ.get("TRUEUP_BENCH_SCRATCH", "/tmp/trueup-bench-actions")) / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"


def _workspace(store: Any, now: datetime) -> Any:
    from engine.scenario import HistoryRow
    from tui.workspace import RefreshOutcome, StoreWorkspace

    class BenchWorkspace(StoreWorkspace):
        sweeps = 0
        target: str | None = None  # the subscription the vendor reports an increase on

        async def refresh(self, progress: Any = None, *, full: bool = False) -> RefreshOutcome:
            BenchWorkspace.sweeps += 1
            self.store.set_setting("bench_sweep", BenchWorkspace.sweeps)  # the sweep found a change
            return RefreshOutcome()

        async def refresh_customer(self, company: str, progress: Any = None) -> RefreshOutcome:
            subs = [
                s
                for s in self.store.subscriptions_where(company_id=company)
                if s.status == "active" and s.history and s.id == self.target
            ]
            sub = subs[0]
            last = sub.history[-1]
            row = HistoryRow(
                id=f"{sub.id}-bench{len(sub.history)}",
                action="increase",
                quantity=last.quantity + 1,
                effective_date=max(last.effective_date, now.date().replace(day=2)),
            )
            self.store.upsert_subscriptions([sub.model_copy(update={"history": [*sub.history, row]})])
            return RefreshOutcome()

    return BenchWorkspace(store, label="SANDBOX — bench", sandbox=True, freshness={"vendor": now, "psa": now})


async def _run(url: str, as_of: date, runs: int) -> dict[str, Any]:
    import tui.cli  # noqa: F401  - what `trueup` imports
    from bench.keystrokes import FrameClock, summary
    from engine.store import Store
    from tui.app import TrueupApp
    from tui.rows import IGNORED_PREFIX, cell
    from tui.screens.main import MainScreen
    from tui.view import count

    store = Store(url)
    now = datetime.combine(as_of, datetime.min.time()).replace(hour=9, minute=30)
    app = TrueupApp(_workspace(store, now), clock=lambda: now, as_of=as_of, refresh_interval=None)
    out: dict[str, Any] = {"runs": runs}
    times: dict[str, list[float]] = {}
    missed: dict[str, int] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        t0 = time.perf_counter()
        while not (
            app.data is not None
            and app.data.complete
            and not app.data.stale
            and not any(w.is_running for w in app.workers)
        ):
            await asyncio.sleep(0.05)
        out["launch_to_figures_s"] = time.perf_counter() - t0
        print(f"figures after {out['launch_to_figures_s']:.1f} s", file=sys.stderr, flush=True)
        main = app.main
        assert main is not None
        await pilot.press("3")
        await pilot.pause()
        unsynced = main.pane("unsynced")
        out["unsynced_rows"] = len(unsynced.rows)
        out["subscriptions_in_store"] = len(store.subscription_ids())

        async def timed(clock: FrameClock, kind: str, key: str, expect: Any) -> None:
            clock.arm(expect)
            await pilot.press(key)
            until = time.perf_counter() + FRAME_WAIT
            while clock.latency is None and time.perf_counter() < until:
                await asyncio.sleep(0.002)
            if clock.latency is None:
                missed[kind] = missed.get(kind, 0) + 1
            else:
                times.setdefault(kind, []).append(clock.latency)
            print(
                f"{kind}: {clock.latency if clock.latency is not None else 'never shown'}",
                file=sys.stderr,
                flush=True,
            )
            while app._save_timer is not None or any(
                w.is_running and w.group in ("actions", "refresh-customer", "save") for w in app.workers
            ):
                await asyncio.sleep(0.01)  # the save once the operator pauses: not part of the next action
            await pilot.pause()

        with FrameClock(app) as clock:
            for i in range(runs):
                # --- ignore the row under the cursor, then restore it -------------------------------
                main.action_show_pane("unsynced")
                await pilot.pause()
                unsynced.table.move_cursor(row=min(10 + i * 7, unsynced.table.row_count - 1))
                await pilot.pause()
                row = unsynced.current
                assert row is not None
                n = len(unsynced.rows)
                await pilot.press("i", *"bench")
                await pilot.pause()
                key = row.key
                await timed(
                    clock,
                    "ignore",
                    "enter",
                    lambda text, key=key, n=n: (
                        isinstance(app.screen, MainScreen)
                        and key not in unsynced.by_key
                        and f"Unsynced — {count(n - 1)}" in text
                    ),
                )
                await pilot.press("t")
                await pilot.pause()
                unsynced.table.move_cursor(row=unsynced.view.index[IGNORED_PREFIX + key])
                await pilot.pause()
                await timed(
                    clock,
                    "restore",
                    "r",
                    lambda text, key=key, n=n: (
                        key in unsynced.by_key
                        and IGNORED_PREFIX + key not in unsynced.by_key
                        and f"Unsynced {count(n)}" in text
                    ),
                )  # the tab's count (ignored rows not counted)
                await pilot.press("t")
                await pilot.pause()

                # --- edit the effective date of the row's line ----------------------------------------
                unsynced.table.move_cursor(row=min(20 + i * 5, unsynced.table.row_count - 1))
                await pilot.pause()
                row = unsynced.current
                assert row is not None and row.editable
                line_key = next(k for k in row.line_keys if app.data and app.data.lines[k].action == "create")
                new = date(2026, 12, 1) if i % 2 == 0 else date(2027, 1, 1)
                await pilot.press("e")
                await pilot.pause()
                app.screen.query_one("#date-input").value = new.isoformat()
                await timed(
                    clock,
                    "edit_date",
                    "enter",
                    lambda text, k=line_key, new=new: (
                        isinstance(app.screen, MainScreen)
                        and app.data is not None
                        and app.data.lines[k].effective_date == new
                        and f"from {new.isoformat()}" in text
                    ),
                )

                # --- unmap, then map again, a customer -----------------------------------------------
                main.action_show_pane("customers")
                await pilot.pause()
                customers = main.pane("customers")
                mapped = [r for r in customers.rows if r.status == "mapped"]
                target = mapped[(i * 13) % len(mapped)]
                customers.table.move_cursor(row=customers.view.index[target.key])
                await pilot.pause()
                psa_name = cell(target, "customers", "psa_company")
                await pilot.press("u")  # "Unmap … from …? Its N planned line(s) leave the plan": y
                await pilot.pause()
                await timed(
                    clock,
                    "unmap",
                    "y",
                    lambda text, k=target.key, customers=customers: (  # the detail panel says so
                        customers.by_key[k].status == "not_mapped" and "PSA company: —" in text
                    ),
                )
                await pilot.press("m")
                await pilot.pause()
                await pilot.press(*psa_name)
                await pilot.pause()
                await timed(
                    clock,
                    "map",
                    "enter",
                    lambda text, k=target.key, psa=psa_name, customers=customers: (
                        isinstance(app.screen, MainScreen)
                        and customers.by_key[k].status == "mapped"
                        and f"PSA company: {psa} (id" in text
                    ),
                )

                # --- the targeted refresh of the customer under the cursor ----------------------------
                main.action_show_pane("unsynced")
                await pilot.pause()
                start = min(30 + i * 11, unsynced.table.row_count - 1)
                for index in range(start, unsynced.table.row_count):  # a subscription the vendor can raise
                    found = store.subscriptions_where(ids=[unsynced.rows[index].key])
                    # one whose raise shows on as_of: active, no cancel row, its last change not
                    # after as_of (a raise behind a future-dated change would not be in force)
                    if (
                        found
                        and found[0].status == "active"
                        and found[0].history
                        and found[0].history[-1].effective_date <= as_of
                        and all(h.action != "cancel" for h in found[0].history)
                    ):
                        break
                unsynced.table.move_cursor(row=index)
                await pilot.pause()
                row = unsynced.current
                assert row is not None
                before = cell(row, "unsynced", "change")
                app.workspace.target = row.key
                await timed(
                    clock,
                    "refresh_customer",
                    "R",
                    lambda text, k=row.key, before=before: (
                        k in unsynced.by_key
                        and cell(unsynced.by_key[k], "unsynced", "change") != before
                        and cell(unsynced.by_key[k], "unsynced", "change") in text
                    ),
                )

            # --- keystrokes while a sweep's recompute runs in a worker thread ------------------------------
            main.action_show_pane("unsynced")
            unsynced.table.move_cursor(row=0)
            await pilot.pause()
            await pilot.press("f5")
            await asyncio.sleep(0.05)
            sweep_started = time.perf_counter()
            table = unsynced.table
            while any(w.group == "refresh" and w.is_running for w in app.workers):
                target_row = min(table.cursor_row + 1, table.row_count - 1)
                ident = table.rows.row(target_row)[1][1]
                await timed(
                    clock,
                    "key_during_sweep",
                    "down",
                    lambda text, r=target_row, ident=ident: table.cursor_row == r and ident in text,
                )
            out["sweep_s"] = time.perf_counter() - sweep_started
    out["recomputed"] = [len(x) if x is not None else "all" for x in app.core.recomputed]
    for kind, values in times.items():
        out[kind] = {**summary(values), "never_shown": missed.get(kind, 0)}
    for kind, n in missed.items():
        out.setdefault(kind, {"n": 0, "never_shown": n})
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.actions")
    parser.add_argument(
        "url",
        nargs="?",
        help="the store (default: the one trueup would open: TRUEUP_DATABASE_URL, trueup.toml, the sandbox's)",
    )
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 21))
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from engine.settings import load_config
    from engine.store.resolve import resolve_store

    args.url = resolve_store(args.url, load_config()).url  # the one resolution, as trueup's
    url = _copy(args.url)
    load = os.getloadavg()
    result = asyncio.run(_run(url, args.as_of, args.runs))
    result["load_average_start"] = [round(x, 2) for x in load]
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
