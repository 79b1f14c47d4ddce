"""The two builders the tests used to time (they now count the work instead, which cannot flake):
the demo generator, `engine.sandbox.demo.build_demo_scenario(scale=N)`, and the console's panes,
`tui.model.build` over the synthetic month-end plan of `bench.synthetic` (N subscriptions, a
prorate for every fifth). `uv run python -m bench.builders [--scale 5000,10000,20000,50000]
[--runs 3]` prints one JSON object: per scale the best and median wall time and the process CPU
time of the best run, for each builder. Nothing is asserted; the figures go to bench/RESULTS.md."""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable


def _timed(build: Callable[[], object], runs: int) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(runs):
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        build()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    best = min(range(runs), key=walls.__getitem__)
    return {
        "best_s": round(walls[best], 3),
        "median_s": round(statistics.median(walls), 3),
        "cpu_s": round(cpus[best], 3),
    }


def measure(scale: int, runs: int) -> dict[str, object]:
    from bench.synthetic import AS_OF, synthetic_inputs
    from engine.sandbox.demo import build_demo_scenario
    from tui import model

    scenario, plan = synthetic_inputs(scale)
    return {
        "scale": scale,
        "demo_generator": _timed(lambda: build_demo_scenario(scale=scale), runs),
        "panes": {
            "plan_lines": len(plan.lines),
            **_timed(lambda: model.build(scenario, plan, today=AS_OF), runs),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.builders", description=__doc__)
    parser.add_argument("--scale", default="5000,10000,20000,50000", help="comma-separated subscriptions")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    scales = [int(s) for s in args.scale.split(",") if s]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = [round(x, 2) for x in os.getloadavg()]
    rows = [measure(scale, args.runs) for scale in scales]
    print(
        json.dumps(
            {
                "started": started,
                "load_average_start": load_start,
                "load_average_end": [round(x, 2) for x in os.getloadavg()],
                "nproc": os.cpu_count(),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
