"""The benchmark runs end to end at a small scale (no timing is asserted: the figures live in
bench/RESULTS.md, measured on purpose, never in a test on a noisy machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_produces_the_table_and_the_file(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    env = {**os.environ, "TRUEUP_BENCH_DIR": str(tmp_path / "work")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--scale",
            "2000",
            "--quick",
            "--output",
            str(output),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = proc.stdout
    assert "load+plan s" in table and "refresh ms" in table and "paint s" in table
    row = next(line for line in table.splitlines() if line.startswith("2000 "))
    assert "error" not in row
    assert "sync halopsa:" in table and "sync autotask:" in table and "error" not in table
    text = output.read_text()
    for needle in (
        "load average",
        "nproc",
        "uv run python -m bench",
        "## Targets",
        "Full reconcile",
        "Peak memory",
        "Incremental refresh",
        "first paint",
        "cursor move",
        "page down",
        "filter keystroke",
        "Sync HaloPSA",
        "Sync Autotask",
        "## Growth",
        "## Method",
    ):
        assert needle in text, needle
    targets = text.split("## Targets", 1)[1].split("## Figures", 1)[0]
    assert "error" not in targets
    assert table.count("duplicates 0") == 2  # the sandboxes hold every synced key once


def test_bench_builders_times_the_generator_and_the_panes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.builders", "--scale", "300,600", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["scale"] for r in out["rows"]] == [300, 600]
    assert [r["panes"]["plan_lines"] for r in out["rows"]] == [360, 720]  # a prorate for every fifth
    assert all(r["demo_generator"]["cpu_s"] > 0 and r["panes"]["best_s"] > 0 for r in out["rows"])
