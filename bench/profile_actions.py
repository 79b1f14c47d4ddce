"""Where an action's time goes, without the UI: the console's core (`engine.console_core`) and the
panes' row views (`tui.view.RowView`) on a copy of a `bench.data --kind console` store, each phase
timed with `time.perf_counter` marks, and one action profiled with cProfile.

`python -m bench.profile_actions URL [--runs N] [--profile]` prints JSON: per action, the phases'
median milliseconds (write = validation + store write + COMMIT; recompute = the customers' read,
reconcile, rows patch; panes = every pane's keyed patch)."""

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
    """What tui.screens.main.show_data does with a change: every pane's rows set, the changed keyed."""
    for name, view in views.items():
        rows = data.rows_for(name, False)
        changed = [r for r in rows if companies is not None and r.company_id in companies]
        view.patch_rows(rows, changed)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_actions")
    parser.add_argument("url", nargs="?")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 21))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one ignore + restore (to stderr)")
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

    unsynced = [r for r in core.held.rows_for("unsynced", False) if r.line_keys]
    key_rows = unsynced[:: max(1, len(unsynced) // (args.runs + 1))][: args.runs]
    phases: dict[str, dict[str, list[float]]] = {}

    def timed(name: str, act: Act) -> None:
        published.clear()
        if profiler is not None and profiling:
            profiler.enable()
        t0 = time.perf_counter()
        core.act(act)
        t1 = time.perf_counter()
        change = published[-1]
        _patch_panes(views, change.data, change.companies)
        t2 = time.perf_counter()
        if profiler is not None:
            profiler.disable()
        core.save(change.data)
        t3 = time.perf_counter()
        acc = phases.setdefault(name, {"core": [], "panes": [], "save_after": []})
        acc["core"].append((t1 - t0) * 1000)
        acc["panes"].append((t2 - t1) * 1000)
        acc["save_after"].append((t3 - t2) * 1000)

    profiler = cProfile.Profile() if args.profile else None  # the action and the panes, not the save
    profiling = False
    for i, row in enumerate(key_rows):
        keys = tuple(row.line_keys[:1])
        profiling = i == len(key_rows) - 1
        timed("ignore", Act("ignore", keys=keys, reason="bench"))
        timed("restore", Act("restore", keys=keys))
    out["actions_ms"] = {
        name: {phase: round(statistics.median(values), 1) for phase, values in acc.items()}
        | {
            "max_core_plus_panes": round(
                max(a + b for a, b in zip(acc["core"], acc["panes"], strict=True)), 1
            )
        }
        for name, acc in phases.items()
    }
    out["load_average"] = [round(x, 2) for x in load]
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(70)


if __name__ == "__main__":
    main()
