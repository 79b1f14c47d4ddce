"""Target 1: a full reconcile as the console and the CLI run it — `Store(url).plan_inputs()` then
`engine.reconcile.reconcile(scenario, hints)` — in this (fresh) interpreter, against a prepared
SQLite file store. `python -m bench.reconcile URL` prints JSON: open (Store(url), migrations
checked), load, plan, load+plan, peak RSS (ru_maxrss) and the plan's size."""

from __future__ import annotations

import json
import resource
import sys
import time


def measure(url: str) -> dict[str, float | int]:
    started = time.perf_counter()
    from engine.reconcile import reconcile
    from engine.store import Store

    imported = time.perf_counter()
    store = Store(url)
    opened = time.perf_counter()
    scenario, hints = store.plan_inputs()
    loaded = time.perf_counter()
    plan = reconcile(scenario, hints)
    planned = time.perf_counter()
    return {
        "import_s": imported - started,
        "open_s": opened - imported,
        "load_s": loaded - opened,
        "plan_s": planned - loaded,
        "total_s": planned - opened,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lines": len(plan.lines),
        "findings": len(plan.findings),
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
