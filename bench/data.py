"""The generator: the demo MSP at a scale, in a SQLite file store (cached by scale and kind).

`python -m bench.data SCALE [--workdir DIR] [--kind plan|console]` prepares (or reuses) the store and
prints its facts as JSON. `plan` is `build_demo_scenario(scale=N)` as is (seed 7); `console` is the
same without its PSA lines, so that every mapped seat subscription has an unsynced recurring line —
the Unsynced pane of a month where nothing was pushed yet, ≈ one row per subscription."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = Path(os.environ.get("TRUEUP_BENCH_DIR", "/tmp/trueup-bench"))
VERSION = "1"  # bump when the generated data changes shape


def scenario(scale: int, kind: str = "plan", psa: str = "connectwise") -> Any:
    from engine.sandbox.demo import build_demo_scenario

    built = build_demo_scenario(scale=scale, psa=psa)
    if kind == "console":
        built = built.model_copy(update={"psa": built.psa.model_copy(update={"lines": []})})
    return built


def facts(built: Any) -> dict[str, int]:
    subs = built.vendor.subscriptions
    return {
        "companies": len(built.vendor.companies),
        "subscriptions": len(subs),
        "history_rows": sum(len(s.history) for s in subs),
        "usage_rows": len(built.vendor.usage),
        "psa_lines": len(built.psa.lines),
    }


def prepare(scale: int, workdir: Path = DEFAULT_WORKDIR, kind: str = "plan") -> tuple[str, dict[str, Any]]:
    """(store url, facts): the store is built once per (scale, kind) and reused afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{kind}-{scale}-v{VERSION}.db"
    meta = path.with_suffix(".json")
    url = f"sqlite:///{path}"
    if path.exists() and meta.exists():
        return url, json.loads(meta.read_text())
    from engine.store import Store

    for suffix in ("", "-wal", "-shm", ".json"):
        stale = Path(str(path) + suffix) if suffix != ".json" else meta
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    built = scenario(scale, kind)
    generated = time.perf_counter()
    store = Store(url)
    store.import_scenario(built)
    store.close()
    info = {
        **facts(built),
        "as_of": built.as_of.isoformat(),
        "generate_s": round(generated - started, 2),
        "import_s": round(time.perf_counter() - generated, 2),
    }
    meta.write_text(json.dumps(info))
    return url, info


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.data")
    parser.add_argument("scale", type=int)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--kind", choices=("plan", "console"), default="plan")
    args = parser.parse_args()
    url, info = prepare(args.scale, args.workdir, args.kind)
    print(json.dumps({"url": url, **info}))


if __name__ == "__main__":
    main()
