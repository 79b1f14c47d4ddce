"""trueup's month-end performance benchmark (`uv run python -m bench --scale 50000`).

One module per measurement, each runnable on its own in a fresh interpreter
(`python -m bench.<module> ...` prints one JSON object on its last stdout line):

* `bench.data`      — the generator: `build_demo_scenario(scale=N)` (fixed seed) imported into a
                      SQLite file store, cached in the work directory;
* `bench.reconcile` — target 1: `Store(url).plan_inputs()` + `reconcile()` (load/plan split, ru_maxrss);
* `bench.refresh`   — target 2: sandbox workspace, full refresh once, then one subscription changes
                      and `Workspace.refresh()` is timed (with a cProfile summary of one run);
* `bench.console`   — target 3: the Textual console under Pilot (first paint of Unsynced, keystrokes);
* `bench.sync`      — target 4: `SyncExecutor` against the HaloPSA sandbox with a scaled-up
                      `RateBudget`, and against the Autotask sandbox (3 concurrent);
* `bench.builders`  — the demo generator and `tui.model.build` (the console's panes), timed per scale
                      (by hand, not part of `python -m bench`; figures appended to RESULTS.md);
* `bench.report`    — the table and `bench/RESULTS.md`.

Nothing here asserts a time: the figures are reported against their targets, never failed on.
"""

TARGETS = {
    "reconcile_s": 3.0,  # load + plan, seconds
    "reconcile_mb": 600.0,  # peak RSS, MB
    "refresh_ms": 100.0,  # incremental refresh after one change
    "first_paint_s": 2.0,  # launch to first paint of Unsynced
    "key_ms": 50.0,  # cursor / page down / filter keystroke
    "sync_share": 0.90,  # share of the rate budget used
}
