"""The appliance's database: SQLite through apsw, with sqlite-vec, WAL, foreign keys, migrations.

apsw rather than the standard library's sqlite3: this interpreter cannot load extensions into
sqlite3, and sqlite-vec is one. A `Database` owns one connection on one named thread (an
`appliance.workers.Worker`: `open` starts it, `aclose` stops it) and runs every piece of work
there, one at a time: a piece of work is a plain function of the connection (usually one
transaction), and the event loop only awaits its result. So the process has exactly
one writer and the loop never waits on SQLite. Other processes (`appliance calls ...`) open their
own connections with `connect`; WAL lets them read while the appliance writes.

Migrations are the files `migrations/NNNN_name.sql`, applied in order when the database opens,
each in its own transaction together with its row in `schema_version`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, Final, ParamSpec, TypeVar

import apsw
import sqlite_vec

from appliance.workers import Worker, WorkerNotRunning

__all__ = ["Database", "DatabaseError", "connect", "database_path", "migrate"]

P = ParamSpec("P")
T = TypeVar("T")

_log = logging.getLogger(__name__)
_MIGRATION: Final = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
_BUSY_TIMEOUT_MS: Final = 5000

DatabaseError = apsw.Error
"""What a failed statement raises (apsw.FullError for a full disk, and so on)."""


def database_path(url: str) -> Path:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"DATABASE_URL must look like sqlite:///path/to/file.db, not {url!r}")
    return Path(url[len(prefix) :]).expanduser()


def connect(path: Path, *, readonly: bool = False) -> apsw.Connection:
    """Open the database with sqlite-vec loaded; a writable one is created and migrated."""
    if readonly:
        flags = apsw.SQLITE_OPEN_READONLY
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    conn = apsw.Connection(str(path), flags=flags)
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    conn.set_busy_timeout(_BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # With WAL, NORMAL survives a crash of the process; a power cut may lose the last
        # transactions but never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    return conn


def _migrations() -> list[tuple[int, str, str]]:
    folder = importlib.resources.files("appliance.memory").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {[name for _, name, _ in found]}")
    return found


def migrate(conn: apsw.Connection) -> list[int]:
    """Apply the migrations this database has not had yet; returns their versions."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
    applied = []
    for version, name, sql in _migrations():
        if version in done:
            continue
        with conn:
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_version(version, name, applied) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
        _log.info("database: applied migration %s", name)
        applied.append(version)
    return applied


class Database:
    """One connection on one owner thread; `run` does a piece of work there and awaits it."""

    def __init__(self, path: Path, *, timeout: float | None = None) -> None:
        """`timeout`: seconds a caller waits for its work (None: as long as it takes)."""
        self.path = path
        self._timeout = timeout
        self._worker = Worker("memory-db")
        self._conn: apsw.Connection | None = None

    async def open(self) -> None:
        """Start the owner thread, open (create, migrate) the database there."""
        if not self._worker.running:
            self._worker.start()  # raises WorkerNotRunning once closed: open a new Database
            await self._submit(self._connect)

    def _connect(self) -> None:
        self._conn = connect(self.path)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except apsw.Error:
                _log.exception("closing the database %s failed", self.path)

    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        try:
            return asyncio.wrap_future(self._worker.submit(fn))
        except WorkerNotRunning:
            raise RuntimeError(f"the database {self.path} is not open") from None

    async def run(
        self,
        fn: Callable[Concatenate[apsw.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(connection, *args, **kwargs)` on the owner thread."""

        def work() -> T:
            assert self._conn is not None
            return fn(self._conn, *args, **kwargs)

        async with asyncio.timeout(self._timeout):
            # Shielded: work that has reached the queue finishes (and commits) even if the
            # awaiting task is cancelled; only the wait is given up.
            return await asyncio.shield(self._submit(work))

    def _stop(self) -> None:
        """The work queued so far runs, then the connection closes, then the thread exits."""
        with contextlib.suppress(WorkerNotRunning):  # never opened, or stopped already
            self._worker.submit(self._disconnect)
        self._worker.stop()

    async def aclose(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - bounds the join
        """Finish the queued work, close the connection, without blocking the loop; True once
        the thread has exited (within `timeout` seconds)."""
        self._stop()
        return await self._worker.aclose(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """`aclose` for code that is not async: this blocks up to `timeout` seconds."""
        self._stop()
        return self._worker.join(timeout)
