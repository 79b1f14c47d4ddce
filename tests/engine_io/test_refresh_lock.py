"""Two processes refreshing one store serialise (issue 11 item 7): on PostgreSQL through an advisory
lock, on a SQLite file through a lock file; the one that waits says who holds the lock, and one that
gives up writes nothing and names the holder. Real processes, real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.sandbox.demo import build_demo_scenario
from engine.store import Store
from engine.store.locks import LockHolder
from engine.workspace import Workspace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "refresh_worker.py"


@pytest.fixture
async def team_store(store_url: str) -> str:
    """The store with the demo's operator state and one refresh in it (what a team database holds)."""
    workspace = Workspace.sandbox_from_scenario(build_demo_scenario(), store=Store(store_url))
    result = await workspace.refresh()
    assert result.ok, result.errors
    await workspace.aclose()
    workspace.store.close()
    return store_url


def start(url: str, lock_wait: float = 600) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(lock_wait)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(process: subprocess.Popen[str]) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_processes_refreshing_one_store_both_succeed(team_store):
    before = Store(team_store).snapshot()
    for _ in range(2):
        results = [outcome(p) for p in [start(team_store), start(team_store)]]
        assert all(r["ok"] for r in results), [r["errors"] for r in results]
    after = Store(team_store).snapshot()
    assert len(after.psa.companies) == len(before.psa.companies)
    assert len(after.vendor.subscriptions) == len(before.vendor.subscriptions)
    assert len(after.psa.lines) == len(before.psa.lines)


def test_a_waiting_refresh_names_the_holder_and_one_that_gives_up_writes_nothing(team_store):
    store = Store(team_store)
    held = store.locks.try_acquire("refresh")
    assert held is not None
    me = LockHolder.me()
    holder = store.locks.holder("refresh")
    assert holder is not None and holder.pid == os.getpid() and holder.user == me.user
    stamp = store.get_setting("refresh.psa.at")
    try:
        result = outcome(start(team_store, lock_wait=2))
    finally:
        held.release()
    assert not result["ok"]
    assert len(result["errors"]) == 1
    message = result["errors"][0]
    assert f"another refresh is running ({me.user}@{me.host} (pid {os.getpid()})" in message
    assert "gave up after waiting 2 s; nothing was refreshed" in message
    assert result["waiting"] and f"(pid {os.getpid()})" in result["waiting"][0]
    assert store.get_setting("refresh.psa.at") == stamp  # nothing written
    assert store.locks.holder("refresh") is None

    assert outcome(start(team_store, lock_wait=2))["ok"]  # free again: the next one refreshes


def test_a_killed_holder_frees_the_lock(team_store):
    code = (
        "import sys, time; from engine.store import Store; s = Store(sys.argv[1]); "
        "h = s.locks.try_acquire('refresh'); print('held' if h else 'busy', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, team_store], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store = Store(team_store)
        assert store.locks.try_acquire("refresh") is None
        found = store.locks.holder("refresh")
        assert found is not None and found.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    import time

    for _ in range(50):  # PostgreSQL notices the closed connection at once; allow it a moment
        again = store.locks.try_acquire("refresh")
        if again is not None:
            again.release()
            break
        time.sleep(0.1)
    else:
        pytest.fail("the lock stayed held after its holder was killed")


def test_the_holder_round_trips_through_application_name():
    holder = LockHolder(user="a" * 80, host="h", pid=12345, since=None)
    name = holder.application_name()
    assert len(name.encode()) <= 63
    back = LockHolder.from_application_name(name)
    assert back is not None and back.pid == 12345 and back.user.startswith("aaaa")
    mine = LockHolder.me()
    assert LockHolder.from_application_name(mine.application_name()) == mine
    assert LockHolder.from_application_name("psql") is None
