"""Where an action's time goes, without the UI: the console's core (`engine.console_core`) and the
panes' row views (`tui.view.RowView`) on a copy of a `bench.data --kind console` store, each phase
timed with `time.perf_counter` marks, and one action profiled with cProfile.

`python -m bench.profile_actions URL [--runs N] [--profile [ACTION ...]]` prints JSON: per action
(ignore, restore, edit_date, unmap, map — each run on another row and customer), per phase the median
and max milliseconds over the runs, wall (`perf_counter`) and CPU (`process_time`: what this process
spent, whatever the other processes on the machine take). core = `ConsoleCore.act` (validation,
store write + COMMIT, the customers' read, reconcile, rows patch, the plan reassembled); panes =
every pane's keyed patch; save_after = the saved state written after the frame (not in the 100 ms)."""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from datetime import date, datetime
from typing import Any

from bench.actions import _copy


def _panes(data: Any) -> dict[str, Any]:
    from tui.view import RowView

    views = {}
    for name in data.rows:
        view = RowView()
        view.set_rows(data.rows_for(name, False))
        view.widths()
        views[name] = view
    return views


def _patch_panes(views: dict[str, Any], data: Any, companies: frozenset[str] | None) -> None:
    """What tui.screens.main.show_data does with a change: every pane's rows set, the changed keyed
    (found the way it finds them: `company_rows`, by bisection in the line panes)."""
    from tui.rows import company_rows

    for name, view in views.items():
        rows = data.rows_for(name, False)
        changed = company_rows(data, name, companies, False) if companies is not None else rows
        view.patch_rows(rows, changed)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_actions")
    parser.add_argument("url", nargs="?")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 21))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--profile",
        nargs="*",
        metavar="ACTION",
        help="cProfile the last run's actions (these only: ignore restore edit_date unmap map), to stderr",
    )
    parser.add_argument("--profile-out", help="also write the cProfile stats to this file (pstats)")
    args = parser.parse_args()
    from engine.settings import load_config
    from engine.store.resolve import resolve_store

    url = _copy(resolve_store(args.url, load_config()).url)

    from engine.console_core import Act, ConsoleCore
    from engine.store import Store
    from tui.model import VIEW
    from tui.workspace import StoreWorkspace

    store = Store(url)
    now = datetime.combine(args.as_of, datetime.min.time()).replace(hour=9, minute=30)
    ws = StoreWorkspace(store, label="bench", sandbox=True, freshness={"vendor": now, "psa": now})
    core: ConsoleCore[Any] = ConsoleCore(ws, VIEW, as_of=lambda: args.as_of, today=lambda: now.date())
    load = os.getloadavg()
    t0 = time.perf_counter()
    data = core.load(None)
    out: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 2), "restored": data.saved}
    core.save(data)
    t0 = time.perf_counter()
    core.prepare()
    out["prepare_s"] = round(time.perf_counter() - t0, 2)
    views = _panes(core.held)
    published: list[Any] = []
    core.subscribe(published.append)

    held = core.held
    unsynced = [r for r in held.rows_for("unsynced", False) if r.line_keys]
    key_rows = unsynced[:: max(1, len(unsynced) // (args.runs + 1))][: args.runs]
    mapped = [r for r in held.rows_for("customers", False) if r.status == "mapped"]
    targets = mapped[:: max(1, len(mapped) // (args.runs + 1))][: args.runs]
    phases: dict[str, dict[str, list[float]]] = {}

    def timed(name: str, act: Act) -> None:
        published.clear()
        if profiler is not None and profiling and (not args.profile or name in args.profile):
            profiler.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        core.act(act)
        t1, c1 = time.perf_counter(), time.process_time()
        change = published[-1]
        _patch_panes(views, change.data, change.companies)
        t2, c2 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.disable()
        core.save(change.data)
        t3 = time.perf_counter()
        acc = phases.setdefault(name, {})
        for phase, ms in (
            ("core", t1 - t0),
            ("core_cpu", c1 - c0),
            ("panes", t2 - t1),
            ("panes_cpu", c2 - c1),
            ("core_plus_panes", t2 - t0),
            ("core_plus_panes_cpu", c2 - c0),
            ("save_after", t3 - t2),
        ):
            acc.setdefault(phase, []).append(ms * 1000)

    profiler = cProfile.Profile() if args.profile is not None else None  # the actions and panes, not the save
    profiling = False
    for i, (row, customer) in enumerate(zip(key_rows, targets, strict=False)):
        profiling = i == len(key_rows) - 1
        keys = tuple(row.line_keys[:1])
        timed("ignore", Act("ignore", keys=keys, reason="bench"))
        timed("restore", Act("restore", keys=keys))
        lines = core.held.lines if core.held is not None else {}
        create = next((k for k in row.line_keys if k in lines and lines[k].action == "create"), None)
        if create is not None:
            day = date(2026, 12, 1) if i % 2 == 0 else date(2027, 1, 1)
            timed("edit_date", Act("set_effective_date", keys=(create,), day=day))
        [psa_id, *_], _ = store.psa_mapping(customer.key)
        timed("unmap", Act("unmap_company", vendor_id=customer.key))
        timed("map", Act("map_company", vendor_id=customer.key, psa_id=psa_id))
    # per action and phase: the median and the max, wall (perf_counter) and CPU (process_time) ms
    out["runs"] = len(key_rows)
    out["actions_ms"] = {
        name: {
            phase: {"median": round(statistics.median(v), 1), "max": round(max(v), 1)}
            for phase, v in acc.items()
        }
        for name, acc in phases.items()
    }
    out["load_average"] = [round(x, 2) for x in load]
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(70)
        if args.profile_out:
            profiler.dump_stats(args.profile_out)


if __name__ == "__main__":
    main()
