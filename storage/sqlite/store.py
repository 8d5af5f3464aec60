"""The SQLite store: one connection per process and thread, one transaction per unit of work."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from storage.errors import StoreUnavailable
from storage.sqlite.migrations import migrate, refuse_newer
from storage.sqlite.unit_of_work import SqliteUnitOfWork

T = TypeVar("T")
BUSY_TIMEOUT_MS = 15_000


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (it stays so), waiting out another process doing the same.

    Two processes switching a file at once: one gets SQLITE_BUSY at once, without the busy
    timeout's wait (SQLite avoids a deadlock), and finds the file in WAL mode when it tries again.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SqliteStore:
    """The embedded store: one file, one connection per process and thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path.name}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            refuse_newer(conn, self.path.name)  # before WAL mode, which would change the file
            _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot open {self.path.name}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._local.conn, self._local.pid = conn, os.getpid()
        if not self._schema_ready:
            self.init()
        return conn

    def _run(self, begin: str, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        conn = self._connect()
        if conn.in_transaction:
            raise RuntimeError("units of work do not nest; pass the caller's uow instead")
        try:
            conn.execute(begin)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        try:
            result = fn(SqliteUnitOfWork(conn))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise StoreUnavailable(str(exc)) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def atomic(self, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        """One write transaction under SQLite's write lock (BEGIN IMMEDIATE)."""
        return self._run("BEGIN IMMEDIATE", fn)

    def read(self, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        """A read-only snapshot (WAL readers do not block writers)."""
        return self._run("BEGIN DEFERRED", fn)

    def init(self) -> None:
        """Apply the migrations the file lacks, in one transaction; a no-op when up to date."""
        self._schema_ready = True  # first: _connect calls init while this is False
        try:
            migrate(self._connect(), self.path.name)
        except sqlite3.Error as exc:
            self._schema_ready = False  # the next unit of work tries again
            raise StoreUnavailable(f"cannot prepare {self.path.name}: {exc}") from exc
        except BaseException:
            self._schema_ready = False
            raise

    def ping(self) -> None:
        """Raise StoreUnavailable unless the file can be read."""
        self.read(lambda uow: uow.get_meta("schema_version"))

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
