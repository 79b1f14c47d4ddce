"""`uv run python -m bench [--scale 5000,10000,20000,50000] [--quick] [--output PATH]`

Runs every measurement in a fresh interpreter per scale (see `bench/__init__.py`), prints the table
and writes RESULTS.md (default `bench/RESULTS.md`)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.data import DEFAULT_WORKDIR
from bench.report import Results, render, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_SCALES = (5000, 10000, 20000, 50000)
CONSOLE_ROWS_PER_SUB = 0.9  # Unsynced rows per subscription in the console data (unmapped, non-seat)


def _scales(values: list[str]) -> list[int]:
    out: list[int] = []
    for value in values:
        out += [int(v) for v in value.replace(" ", ",").split(",") if v]
    return sorted(set(out))


def _module(name: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run `python -m bench.<name> args` in a fresh interpreter; its last stdout line is JSON."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"bench.{name} exited {proc.returncode}: {' | '.join(tail)}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - started
    return out


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale",
        action="append",
        default=None,
        help="subscriptions; a comma-separated list or repeated (default: 5000,10000,20000,50000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer runs, keystrokes and sync lines (for CI; the figures are indicative)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the stores are cached")
    parser.add_argument("--runs", type=int, default=None, help="reconcile runs per scale (default 3)")
    parser.add_argument(
        "--keys", type=int, default=None, help="keystrokes of each kind (default 50; quick 3)"
    )
    args = parser.parse_args(argv)
    scales = _scales(args.scale) if args.scale else list(DEFAULT_SCALES)
    runs = args.runs or 3
    keys = args.keys or (3 if args.quick else 50)
    refresh_runs = 1 if args.quick else 3
    workdir = str(args.workdir)
    command = "uv run python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    results = Results.start(command=command.strip(), quick=args.quick)
    _log(f"bench: scales {scales}, load average at start {results.load_start}")

    for scale in scales:
        row: dict[str, Any] = {"scale": scale}
        _log(f"[{scale}] preparing the store")
        data = _module("data", str(scale), "--workdir", workdir)
        row["data"] = data
        if "error" not in data:
            _log(f"[{scale}] reconcile × {runs}")
            samples = [_module("reconcile", data["url"]) for _ in range(runs)]
            good = [s for s in samples if "error" not in s]
            if good:
                row["reconcile"] = {
                    k: statistics.median(s[k] for s in good)
                    for k in ("open_s", "load_s", "plan_s", "total_s", "rss_mb", "lines")
                }
                row["reconcile"]["runs"] = [round(s["total_s"], 3) for s in good]
            else:
                row["reconcile"] = samples[0]
        _log(f"[{scale}] targeted refresh × {refresh_runs}, periodic sweep × {min(refresh_runs, 2)}")
        row["refresh"] = _module(
            "refresh",
            str(scale),
            "--runs",
            str(refresh_runs),
            "--sweep-runs",
            str(min(refresh_runs, 2)),
            "--workdir",
            workdir,
        )
        console_scale = max(150, round(scale / CONSOLE_ROWS_PER_SUB))
        _log(f"[{scale}] console ({console_scale} subscriptions, no PSA lines)")
        cdata = _module("data", str(console_scale), "--workdir", workdir, "--kind", "console")
        row["console"] = (
            cdata
            if "error" in cdata
            else _module("console", cdata["url"], "--as-of", cdata["as_of"], "--keys", str(keys))
        )
        results.rows.append(row)
        _log(table(results))

    _log("sync: HaloPSA (scaled budget), Autotask (3 concurrent), ConnectWise (full run only)")
    if args.quick:
        results.sync = [
            _module("sync", "--psa", "halopsa", "--scale", "400", "--min-lines", "50", "--workdir", workdir),
            _module("sync", "--psa", "autotask", "--scale", "300", "--min-lines", "30", "--workdir", workdir),
        ]
    else:
        results.sync = [
            _module("sync", "--psa", "halopsa", "--scale", "1500", "--workdir", workdir),
            _module("sync", "--psa", "autotask", "--scale", "1000", "--workdir", workdir),
            _module("sync", "--psa", "connectwise", "--scale", "1500", "--workdir", workdir),
        ]
    results.finish()
    text = table(results)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results))
    _log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
