"""One run at a time per run directory.

A run holds an exclusive `flock` on `DIR/run.lock` for its whole life, so a second
run started on the same --out (another shell, another job on a shared filesystem)
is refused instead of appending a second copy of every record. The OS drops the
lock when the holder exits, however it exits: a kill -9 leaves nothing stale to
clean up. The file also names its holder (pid and host) for the refusal's message
and for readers (report, check) that show a run still in progress.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from harness.errors import HarnessError

LOCK_NAME = "run.lock"


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "a process that has not yet written its name"


class RunLock:
    """The exclusive lock of a run directory, held from `__enter__` to `__exit__` (or the process's end)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self._handle = None

    def __enter__(self) -> RunLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        # "a+": never truncate before holding the lock, the file may name the current holder.
        handle = open(self.dir / LOCK_NAME, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise HarnessError(f"{self.dir} is in use by a run still in progress ({holder}); wait for it to "
                               f"finish or choose another --out") from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()  # closing the file releases the lock
        self._handle = None


def lock_holder(directory: str | Path) -> str | None:
    """Who is running in `directory` ("pid N on HOST"), or None when no run holds it; never waits."""
    path = Path(directory) / LOCK_NAME
    if not path.is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(handle)
    return None
