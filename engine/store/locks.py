"""One holder at a time for work that rewrites a side of the store (the refresh), across processes.

Two operators (or a cron job and an operator) refreshing one team database at once each replace
the same rows: on PostgreSQL the second transaction's inserts collide with the first one's
(`UniqueViolation psa_company_pkey`, issue 11). A refresh therefore holds a store lock:

* **PostgreSQL**: a session-level advisory lock, `pg_try_advisory_lock(key1, key2)` on a connection
  of its own (`key1` = trueup's namespace, `key2` = the lock's name), released with
  `pg_advisory_unlock` or by PostgreSQL itself when the holder's connection ends (a `kill -9`
  frees it). The holder is written into that connection's `application_name`
  (`trueup <user>@<host> pid <pid> <unix time>`, at most 63 bytes: PostgreSQL's NAMEDATALEN), so
  another process reads who holds it from `pg_locks` joined to `pg_stat_activity` — no table is
  written, nothing to clean up after a crash.
* **SQLite file**: an exclusive `fcntl.flock` on `<database file>.<name>.lock`, the holder written
  into that file as JSON; the operating system frees the lock when the holder's process ends.
  (Where `fcntl` does not exist — Windows — the lock is a no-op; SQLite still serialises writers.)
* **SQLite in memory**: one process by definition; a process-wide lock per store.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

NAMESPACE = 0x7472_7565  # "true": the first key of every trueup advisory lock
APPLICATION_PREFIX = "trueup "


@dataclass(frozen=True)
class LockHolder:
    """Who holds a store lock: user, host, process id and since when (UTC)."""

    user: str
    host: str
    pid: int
    since: datetime | None = None

    def describe(self) -> str:
        since = f" since {self.since:%H:%M:%S} UTC" if self.since else ""
        return f"{self.user}@{self.host} (pid {self.pid}){since}"

    @classmethod
    def me(cls) -> LockHolder:
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in this environment
            user = "unknown"
        return cls(
            user=user,
            host=socket.gethostname().split(".")[0],
            pid=os.getpid(),
            since=datetime.now(UTC).replace(microsecond=0),
        )

    # PostgreSQL: `trueup alice@host pid 123 1767225600` in application_name (63 bytes at most).
    def application_name(self) -> str:
        stamp = int(self.since.timestamp()) if self.since else 0
        tail = f" pid {self.pid} {stamp}"
        who = f"{self.user}@{self.host}"[: 63 - len(APPLICATION_PREFIX) - len(tail)]
        return APPLICATION_PREFIX + who + tail

    @classmethod
    def from_application_name(cls, name: str | None) -> LockHolder | None:
        if not name or not name.startswith(APPLICATION_PREFIX):
            return None
        parts = name[len(APPLICATION_PREFIX) :].rsplit(" ", 3)
        if len(parts) != 4 or parts[1] != "pid":
            return None
        who, _, pid, stamp = parts
        user, _, host = who.partition("@")
        try:
            since = datetime.fromtimestamp(int(stamp), UTC) if int(stamp) else None
            return cls(user=user, host=host, pid=int(pid), since=since)
        except ValueError:
            return None

    def to_json(self) -> str:
        return json.dumps(
            {
                "user": self.user,
                "host": self.host,
                "pid": self.pid,
                "since": self.since.isoformat() if self.since else None,
            }
        )

    @classmethod
    def from_json(cls, text_: str) -> LockHolder | None:
        try:
            data = json.loads(text_)
            since = datetime.fromisoformat(data["since"]) if data.get("since") else None
            return cls(user=str(data["user"]), host=str(data["host"]), pid=int(data["pid"]), since=since)
        except (ValueError, KeyError, TypeError):
            return None


class HeldLock:
    """A lock this process holds; `release()` gives it back (idempotent)."""

    def __init__(self, release: Any) -> None:
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _key2(name: str) -> int:
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value >= (1 << 31) else value  # a signed int4


_memory_locks: dict[int, threading.Lock] = {}
_memory_holders: dict[int, LockHolder] = {}
_memory_guard = threading.Lock()


class StoreLocks:
    """The store's named locks (see the module doc)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name

    # --- the public face -----------------------------------------------------------------------

    def try_acquire(self, name: str) -> HeldLock | None:
        """The lock if it is free now, else None (never waits)."""
        if self.dialect == "postgresql":
            return self._pg_try(name)
        path = self._sqlite_path(name)
        if path is None:
            return self._memory_try(name)
        return self._file_try(path)

    def holder(self, name: str) -> LockHolder | None:
        """Who holds the lock now (None when it is free or the holder cannot be told)."""
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                rows = (
                    conn.execute(
                        text(
                            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :k1 AND l.objid = :k2 "
                            "AND l.objsubid = 2"
                        ),
                        {"k1": NAMESPACE, "k2": _key2(name) & 0xFFFFFFFF},
                    )
                    .scalars()
                    .all()
                )
            for value in rows:
                found = LockHolder.from_application_name(value)
                if found is not None:
                    return found
            return None
        path = self._sqlite_path(name)
        if path is None:
            return _memory_holders.get(self._memory_key(name))
        if not path.exists():
            return None
        try:
            return LockHolder.from_json(path.read_text(encoding="utf-8"))
        except OSError:
            return None

    # --- PostgreSQL ----------------------------------------------------------------------------

    def _pg_try(self, name: str) -> HeldLock | None:
        conn = self.engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k1, :k2)"), {"k1": NAMESPACE, "k2": _key2(name)}
            ).scalar()
            if not got:
                conn.rollback()
                conn.close()
                return None
            conn.execute(
                text("SELECT set_config('application_name', :v, false)"),
                {"v": LockHolder.me().application_name()},
            )
            conn.commit()  # the advisory lock is the session's: no transaction stays open meanwhile
        except BaseException:
            conn.close()
            raise

        def release() -> None:
            try:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:k1, :k2)"), {"k1": NAMESPACE, "k2": _key2(name)}
                )
                conn.execute(text("SELECT set_config('application_name', '', false)"))
                conn.commit()
            finally:
                conn.close()

        return HeldLock(release)

    # --- SQLite ----------------------------------------------------------------------------------

    def _sqlite_path(self, name: str) -> Path | None:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return None
        return Path(database).with_name(Path(database).name + f".{name}.lock")

    def _memory_key(self, name: str) -> int:
        return hash((id(self.engine), name))

    def _memory_try(self, name: str) -> HeldLock | None:
        key = self._memory_key(name)
        with _memory_guard:
            lock = _memory_locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            return None
        _memory_holders[key] = LockHolder.me()

        def release() -> None:
            _memory_holders.pop(key, None)
            lock.release()

        return HeldLock(release)

    @staticmethod
    def _file_try(path: Path) -> HeldLock | None:
        try:
            import fcntl
        except ImportError:  # no flock here (Windows): SQLite's own write lock still serialises
            return HeldLock(lambda: None)
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        handle.seek(0)
        handle.truncate()
        handle.write(LockHolder.me().to_json())
        handle.flush()

        def release() -> None:
            try:
                handle.seek(0)
                handle.truncate()
                handle.flush()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            finally:
                handle.close()

        return HeldLock(release)


def wait_for(
    locks: StoreLocks,
    name: str,
    *,
    timeout: float,
    poll: float = 0.5,
    on_wait: Any = None,
    sleep: Any = time.sleep,
) -> HeldLock:
    """Block until the lock is ours (`on_wait(holder)` once when it is not free at first); raise
    `LockBusy` after `timeout` seconds."""
    held = locks.try_acquire(name)
    if held is not None:
        return held
    holder = locks.holder(name)
    if on_wait is not None:
        on_wait(holder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sleep(poll)
        held = locks.try_acquire(name)
        if held is not None:
            return held
        holder = locks.holder(name) or holder
    raise LockBusy(name, holder, timeout)


class LockBusy(Exception):
    """Another process held the lock for longer than we would wait. The message names it."""

    def __init__(self, name: str, holder: LockHolder | None, waited: float) -> None:
        self.name = name
        self.holder = holder
        self.waited = waited
        who = holder.describe() if holder else "another process"
        super().__init__(f"another {name} is running ({who}); gave up after waiting {waited:.0f} s")
