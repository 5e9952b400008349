"""Which appliance processes are alive: a lock file each, held for the life of the process.

A call in progress and a job being run name the process that holds them. After a crash (a power
cut, kill -9) nobody tidies up, so the next process to open the database asks whether each
holder is still alive: it is while its lock file is locked. The kernel drops the lock when the
process dies, however it dies, so there are no timeouts to guess and no false alarms while a
long job runs. Several appliance processes may share one database (`appliance serve` and an
`appliance call` beside it); each only ever recovers what the dead left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from pathlib import Path

__all__ = ["Owner", "is_alive"]


class Owner:
    """This process's lock; `id` is what the database records as the holder."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.id = uuid.uuid4().hex[:16]
        self._path = directory / f"{self.id}.lock"
        self._fd: int | None = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
            os.close(self._fd)
            self._fd = None


def is_alive(directory: Path, owner: str) -> bool:
    """Whether the process that recorded itself as `owner` still holds its lock."""
    path = directory / f"{owner}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True
    with contextlib.suppress(OSError):
        path.unlink()  # its process is gone: nobody will take this lock again
    os.close(fd)
    return False
