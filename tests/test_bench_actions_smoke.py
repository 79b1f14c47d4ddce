"""bench/actions.py drives the real console through every timed action at a small scale, and each
action's frame is seen (no timing is asserted: the figures live in bench/RESULTS.md). A bench whose
keys no longer match the console's dialogs reports "never shown" and measures nothing: this holds
that, as it went unnoticed once (unmap began asking "Unmap … from …?" and the bench's timed `u`
only opened the dialog)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.data import prepare

ROOT = Path(__file__).resolve().parents[1]
# (the keystroke during a sweep is not among them: at this scale the sweep ends before a key)
ACTIONS = ("ignore", "restore", "edit_date", "unmap", "map", "refresh_customer")


def test_every_timed_action_reaches_its_frame(tmp_path: Path) -> None:
    url, _ = prepare(600, tmp_path / "data", kind="console")
    env = {**os.environ, "TRUEUP_BENCH_SCRATCH": str(tmp_path / "scratch")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.actions", url, "--runs", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for action in ACTIONS:
        assert result[action]["never_shown"] == 0, (action, proc.stderr[-3000:])
        assert result[action]["n"] >= 1, action
