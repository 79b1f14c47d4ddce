"""Who has a SQLite file store open: every `Store` on a file holds a shared advisory lock on
`<file>.open` for as long as it is open; removing the file (`trueup sandbox reset`) needs the
exclusive lock, so nothing deletes a store another process has open (issue 13: `trueup sync
--dry-run` beside an open console deleted its store).

POSIX `flock` (released by the kernel when the process ends, even on SIGKILL, so a crash leaves no
stale lock). On a platform without `fcntl` the check is skipped (ASSUMED acceptable: the console
is run over SSH on Linux/macOS hosts; Windows is not a target of this build).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # no advisory locks here: the check is skipped


class StoreInUse(Exception):
    """The store file is open in another process. The message is meant for the operator as is."""


def lock_path(store_file: Path) -> Path:
    return store_file.with_name(store_file.name + ".open")


class OpenHold:
    """The shared lock one open store holds; `release()` (or the process ending) drops it."""

    def __init__(self, store_file: Path) -> None:
        self._closer: weakref.finalize[[int], OpenHold] | None = None
        if fcntl is None:
            return
        path = lock_path(store_file)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a read-only folder: the store opens unguarded (nothing could delete it there)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a reset holds it (milliseconds)
        except BaseException:
            os.close(fd)
            raise
        # closing the descriptor drops the flock: on release(), or when the Store is collected
        self._closer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        if self._closer is not None:
            self._closer()


@contextmanager
def exclusive(store_file: Path) -> Iterator[None]:
    """Hold the store file exclusively (no process has it open) or raise `StoreInUse`."""
    if fcntl is None:
        yield
        return
    path = lock_path(store_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUse(
                f"the store {store_file} is open in another trueup process (a console or a command); "
                "close it first, nothing was deleted"
            ) from None
        yield
    finally:
        os.close(fd)
