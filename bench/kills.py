"""Kills: the real `trueup sync --yes` killed with SIGKILL in the middle of a sync against the sandbox
services served over HTTP (`engine.sandbox.serve`, a separate process, so the PSA keeps what reached
it), then run again until it has nothing to write. Counted per run: lines written twice
(duplicates), plan lines the PSA does not hold as planned (lost, with the dollars), and tracebacks.

One run:
1. start `python -m engine.sandbox.serve --psa P` (demo MSP, today) and wait for `ready.json`;
2. the reference plan: a copy of the seeded store, refreshed through the real connectors from the
   served sandboxes, reconciled (what the operator reviews before confirming);
3. `trueup sync --yes` in a subprocess; once the PSA server has received `target` writes (a random
   number between 1 and the plan's line count, from the run's seed), SIGKILL;
4. `trueup sync --yes` again (at most three times) until it reports nothing to write;
5. the PSA re-read through the real connector and checked with `engine.verify.verify_psa` against
   the reference plan: every line to the cent, no key twice.

`uv run python -m bench.kills [--runs 30] [--psa halopsa,autotask,connectwise] [--seed 1]` prints one
JSON line per run and a summary line; `bench/RESULTS.md` gets the summary (reliability table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PSAS = ("halopsa", "autotask", "connectwise")


@dataclass
class KillRun:
    psa: str
    seed: int
    lines: int
    target: int
    killed: bool  # False: the sync finished before it reached the target
    killed_after_writes: int
    resumes: int
    duplicates: int
    lost: int
    lost_dollars: str
    tracebacks: int
    planned: str
    landed: str
    seconds: float
    detail: str = ""


def _trueup(*args: str) -> list[str]:
    """The installed `trueup` command of this interpreter's environment (what an operator runs)."""
    script = Path(sys.executable).with_name("trueup")
    return [str(script) if script.exists() else "trueup", *args]


def _stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/__sandbox__/stats", timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


class Served:
    """`engine.sandbox.serve` in a child process, stopped on exit."""

    def __init__(self, psa: str, directory: Path) -> None:
        self.directory = directory
        self.proc = subprocess.Popen(
            # Four trueup processes start within a minute here, each with its own Pax8 budget: the
            # served Pax8 would refuse them as the real one does (serve's docstring), testing the
            # back-off instead of the kill.
            [
                sys.executable,
                "-m",
                "engine.sandbox.serve",
                "--psa",
                psa,
                "--dir",
                str(directory),
                "--no-rate-limits",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        ready = directory / "ready.json"
        deadline = time.monotonic() + 120
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sandbox server exited: {self.proc.stderr.read().decode()[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start in 120 s")
            time.sleep(0.05)
        self.ready = json.loads(ready.read_text())
        self.psa_url = self.ready["urls"][psa]
        self.env = {
            **os.environ,
            **json.loads((directory / "env.json").read_text()),
            "TRUEUP_CONFIG": str(directory / "trueup.toml"),
        }
        self.env.pop("TRUEUP_DATABASE_URL", None)  # the configuration names the store

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _workspace(served: Served, db_path: Path) -> Any:
    from engine.settings import load_config
    from engine.workspace import open_workspace

    config = load_config(Path(served.env["TRUEUP_CONFIG"]), environ=served.env)
    return open_workspace(config, db_url=f"sqlite:///{db_path}")


async def _reference_plan(served: Served) -> tuple[Any, list[Any]]:
    copy = served.directory / "reference.db"
    shutil.copyfile(served.directory / "trueup.db", copy)
    ws = _workspace(served, copy)
    await ws.refresh()
    return ws, list(ws.plan().lines)


def _with_secrets(env: dict[str, str]) -> Any:
    """The connectors read the secrets from the process environment (engine/settings.py)."""
    saved = {k: os.environ.get(k) for k in env if k.startswith("TRUEUP_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("TRUEUP_")})
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def run_once(psa: str, seed: int, workdir: Path | None = None) -> KillRun:
    """One run (see the module's docstring); everything in-process shares one event loop, since the
    connectors' HTTP clients belong to the loop that opened them."""
    return asyncio.run(_run_once(psa, seed, workdir))


def _kill_during_sync(served: Served, target: int) -> tuple[bool, int, int]:
    """Start `trueup sync --yes`, SIGKILL it once the PSA has received `target` more writes."""
    base = _stats(served.psa_url)["writes"]
    proc = subprocess.Popen(
        _trueup("sync", "--yes", "--include-provisional"),
        cwd=ROOT,
        env=served.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    killed = False
    while proc.poll() is None:
        if _stats(served.psa_url)["writes"] - base >= target:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=60)
    return killed, _stats(served.psa_url)["writes"] - base, (out + err).count(b"Traceback")


def _resume(served: Served) -> tuple[int, int, str]:
    """`trueup sync --yes` until it has nothing to write (at most three times)."""
    tracebacks = 0
    detail = ""
    for attempt in range(1, 4):
        done = subprocess.run(
            _trueup("sync", "--yes", "--include-provisional"),
            cwd=ROOT,
            env=served.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        tracebacks += done.stderr.count("Traceback") + done.stdout.count("Traceback")
        if "Nothing to write" in done.stdout:
            return attempt, tracebacks, ""
        detail = (done.stdout.strip().splitlines() or [done.stderr.strip()[-200:]])[-1]
    return 3, tracebacks, f"still writing after 3 resumes: {detail}"


async def _run_once(psa: str, seed: int, workdir: Path | None) -> KillRun:
    from engine.verify import verify_psa

    started = time.monotonic()
    rng = random.Random(seed)
    directory = Path(tempfile.mkdtemp(prefix=f"trueup-kill-{psa}-", dir=workdir))
    with Served(psa, directory) as served:
        saved = _with_secrets(served.env)
        try:
            ws, lines = await _reference_plan(served)
            try:
                target = rng.randint(1, max(1, len(lines)))
                killed, killed_after, tracebacks = await asyncio.to_thread(_kill_during_sync, served, target)
                resumes, more, detail = await asyncio.to_thread(_resume, served)
                tracebacks += more
                verification = await verify_psa(ws.psa, lines)
            finally:
                await ws.aclose()
        finally:
            _restore(saved)
    shutil.rmtree(directory, ignore_errors=True)
    problems = verification.problems
    lost_dollars = sum((-p.difference for p in problems if p.difference < 0), start=Decimal(0))
    if problems and not detail:
        detail = "; ".join(f"{p.key}: {p.status} {p.message}" for p in problems[:3])
    return KillRun(
        psa=psa,
        seed=seed,
        lines=len(lines),
        target=target,
        killed=killed,
        killed_after_writes=killed_after,
        resumes=resumes,
        duplicates=len(verification.duplicates),
        lost=len(problems),
        lost_dollars=f"{lost_dollars:.2f}",
        tracebacks=tracebacks,
        planned=f"{verification.planned_price:.2f}",
        landed=f"{verification.landed_price:.2f}",
        seconds=round(time.monotonic() - started, 1),
        detail=detail,
    )


def summarise(runs: list[KillRun]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "killed": sum(r.killed for r in runs),
        "duplicates": sum(r.duplicates for r in runs),
        "lost": sum(r.lost for r in runs),
        "tracebacks": sum(r.tracebacks for r in runs),
        "by_psa": {p: sum(r.psa == p for r in runs) for p in sorted({r.psa for r in runs})},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kills")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--psa", default="halopsa,autotask,connectwise")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    psas = [p for p in args.psa.split(",") if p]
    runs = []
    for index in range(args.runs):
        run = run_once(psas[index % len(psas)], args.seed + index)
        runs.append(run)
        print(json.dumps(asdict(run)), flush=True)
    print(json.dumps(summarise(runs)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
