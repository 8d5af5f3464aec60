"""The SQLite store: one connection per process and thread, one transaction per unit of work.

Every sqlite3 error that means "the file cannot do it now" (disk full, I/O error, read-only,
locked beyond the busy timeout, cannot open, corrupt) leaves as StoreUnavailable, after the unit
of work's transaction is rolled back; a connection that may be left in a bad state is closed and
opened again on next use, so the process recovers once the disk has room again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from storage.errors import DuplicateKey, StoreUnavailable
from storage.sqlite import checkpoints
from storage.sqlite.group_commit import GroupCommit, Unit
from storage.sqlite.migrations import migrate, refuse_newer
from storage.sqlite.unit_of_work import SqliteUnitOfWork

T = TypeVar("T")
# Called after every batch with (units, seconds waiting for the write lock, seconds holding it,
# CPU seconds the leading thread used while holding it): app/web/metrics.py turns these into
# /metrics figures. Storage knows nothing of Prometheus.
BATCH_OBSERVERS: list[Callable[[int, float, float, float], None]] = []
BUSY_TIMEOUT_MS = 15_000
DUPLICATE_RETRIES = 3  # runs of a unit of work again after a unique key refused a write
MIN_FREE_BYTES = 1 << 20  # readiness: less room than this on the file's disk is "full"
log = logging.getLogger(__name__)

# Failures after which the connection is closed and opened again on next use: the file may
# have changed under it (permissions, a remount, a repaired disk).
_REOPEN = {
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB,
}


def unavailable(exc: BaseException) -> bool:
    """Does this error mean the store cannot do it now (rather than a bug or a refused write)?

    OperationalError: busy or locked, full, I/O, read-only, cannot open, no such table. A bare
    DatabaseError: a corrupt or unreadable file. Integrity, programming and data errors are not.
    """
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def _primary_code(exc: BaseException) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _switch_to_wal(conn: sqlite3.Connection, timeout_ms: int) -> None:
    """Put the file in WAL mode (it stays so), waiting out another process doing the same.

    Two processes switching a file at once: one gets SQLITE_BUSY at once, without the busy
    timeout's wait (SQLite avoids a deadlock), and finds the file in WAL mode when it tries again.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _rollback(conn: sqlite3.Connection) -> bool:
    """Undo the open transaction, if any; False when the connection can no longer be trusted.

    SQLite may have rolled the transaction back itself (a failed COMMIT on a full disk does), so
    ROLLBACK runs only inside one, and its own failure never hides the error being handled.
    """
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return not conn.in_transaction
    except sqlite3.Error as exc:
        log.warning("rollback failed, the connection is dropped: %s", exc)
        return False


class SqliteStore:
    """The embedded store: one file, one connection per process and thread."""

    def __init__(
        self, path: str | os.PathLike[str], busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._schema_ready = False
        self._group: GroupCommit | None = None
        self._checkpoints: checkpoints.Checkpointer | None = None
        self._group_pid = 0
        self._writer_lock: int | None = None  # fd of the `-lock` file, opened per process:
        self._writer_lock_pid = 0  # a forked child must not share its parent's (one flock)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _open(self) -> sqlite3.Connection:
        """A new connection, in WAL mode, its settings made; StoreUnavailable if impossible."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path.name}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            refuse_newer(conn, self.path.name)  # before WAL mode, which would change the file
            _switch_to_wal(conn, self.busy_timeout_ms)
            # the WAL is not synced inside COMMIT: `_sync_wal` does it after the writers' lock
            # is released and before any unit of the batch is answered (checkpoints still sync)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints.py does it, off the path
            # the writer that starts the WAL again cuts a longer one back (checkpoints.py)
            conn.execute(f"PRAGMA journal_size_limit = {checkpoints.WAL_SIZE_LIMIT}")
            conn.execute("PRAGMA foreign_keys = ON")
            # each unit of a batch runs in a SAVEPOINT, for which SQLite keeps the original of
            # every page the unit changes; past 64 KiB it would write them to a temporary file,
            # two writes a page inside the writers' lock (about 37 pages a PAY)
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot open {self.path.name}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._open()
            self._local.conn, self._local.pid = conn, os.getpid()
        if not self._schema_ready:
            self.init()
        return conn

    def _drop(self, conn: sqlite3.Connection) -> None:
        """Close a connection that may be in a bad state; the next unit of work opens another."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def _fail(self, conn: sqlite3.Connection, exc: BaseException) -> BaseException:
        """Roll back after `exc`; the error to raise (StoreUnavailable for a store failure)."""
        clean = _rollback(conn)
        failed = unavailable(exc)
        if not clean or (failed and _primary_code(exc) in _REOPEN):
            self._drop(conn)
        if failed:
            error = StoreUnavailable(f"{self.path.name}: {exc}")
            error.__cause__ = exc
            return error
        return exc

    def _begin(self, begin: str) -> sqlite3.Connection:
        conn = self._connect()
        if conn.in_transaction:
            raise RuntimeError("units of work do not nest; pass the caller's uow instead")
        try:
            conn.execute(begin)
        except BaseException as exc:
            raise self._fail(conn, exc) from exc
        return conn

    def _lock_writers(self) -> int:
        """Take the exclusive lock on the `-lock` file beside the database: the processes of
        one installation write one batch at a time, and a waiting one is woken by the kernel
        the moment the lock is free, instead of sleeping in SQLite's busy handler (1, 2, 5, 10
        ms and more). The kernel drops the lock of a process that dies."""
        if self._writer_lock is None or self._writer_lock_pid != os.getpid():
            try:
                self._writer_lock = checkpoints.open_lock_file(f"{self.path}-lock")
                self._writer_lock_pid = os.getpid()
            except OSError as exc:
                raise StoreUnavailable(f"cannot open {self.path.name}-lock: {exc}") from exc
        fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        return self._writer_lock

    def _run_batch(self, units: list[Unit[Any]]) -> None:
        """One write transaction for every unit (see group_commit.py); settles each of them."""
        self._connect()  # the directory, the file and its schema first
        asked = time.perf_counter()
        lock = self._lock_writers()
        taken, cpu = time.perf_counter(), time.thread_time()
        assert self._group is not None
        self._group.gather(units)  # what queued while the lock was another process's
        try:
            self._commit(units)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        held, cpu = time.perf_counter() - taken, time.thread_time() - cpu
        for observe in BATCH_OBSERVERS:
            observe(len(units), taken - asked, held, cpu)
        assert self._checkpoints is not None
        self._checkpoints.committed(len(units))

    def _sync_wal(self, units: list[Unit[Any]]) -> None:
        """Put the batch on disk before anyone hears of it: one fdatasync of the WAL, begun
        after the COMMIT, outside the writers' lock and after the lead passed on
        (group_commit.py), so the next batch (of any process) writes while this one waits for
        the disk. It also covers every batch committed before, so a unit that read another's
        work is answered only once that work is on disk too. StoreUnavailable if it fails: the
        data may not have reached the disk, so no unit of the batch is answered as done.

        The WAL is opened for each sync, not kept open: a descriptor kept across a WAL that
        SQLite deleted and made again would sync the old file and say nothing."""
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # no WAL yet: nothing was ever written through it
            return
        except OSError as exc:
            raise self._sync_failed(units, exc) from exc
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise self._sync_failed(units, exc) from exc
        finally:
            os.close(fd)

    def _sync_failed(self, units: list[Unit[Any]], exc: OSError) -> StoreUnavailable:
        log.error("the WAL could not be synced, %d units are not answered: %s", len(units), exc)
        return StoreUnavailable(f"{self.path.name}-wal: {exc}")

    def _commit(self, units: list[Unit[Any]]) -> None:
        conn = self._begin("BEGIN IMMEDIATE")
        try:
            if len(units) == 1:  # alone: no savepoint, its error undoes the transaction
                unit = units[0]
                unit.succeed(unit.context.run(unit.fn, SqliteUnitOfWork(conn)))
            else:
                for unit in units:
                    self._run_in_savepoint(conn, unit)
            conn.execute("COMMIT")
        except BaseException as exc:
            error = self._fail(conn, exc)
            for unit in units:  # nothing of this batch reached the disk
                if unit.error is None:
                    unit.fail(error)

    def _run_in_savepoint(self, conn: sqlite3.Connection, unit: Unit[Any]) -> None:
        """Run one unit of a batch; if it raises, undo it alone and keep its neighbours."""
        conn.execute("SAVEPOINT unit")
        try:
            value = unit.context.run(unit.fn, SqliteUnitOfWork(conn))
        except Exception as exc:
            unit.fail(StoreUnavailable(f"{self.path.name}: {exc}") if unavailable(exc) else exc)
            if unit.error is not exc:
                unit.error.__cause__ = exc  # type: ignore[union-attr]
            if not conn.in_transaction:  # SQLite gave up the whole transaction
                raise
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
            return
        conn.execute("RELEASE unit")
        unit.succeed(value)

    def atomic(self, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        """One write unit of work under SQLite's write lock, committed with the units other
        threads of this process submit at the same time (group commit: one fsync for all)."""
        if self._group is None or self._group_pid != os.getpid():
            self._group, self._group_pid = GroupCommit(self._run_batch, self._sync_wal), os.getpid()
            self._checkpoints = checkpoints.Checkpointer(self._open, f"{self.path}-lock")
        for attempt in range(DUPLICATE_RETRIES + 1):  # a refused unit is undone alone
            try:
                return self._group.submit(fn)
            except DuplicateKey:
                if attempt == DUPLICATE_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def read(self, fn: Callable[[SqliteUnitOfWork], T]) -> T:
        """A read-only snapshot (WAL readers do not block writers)."""
        conn = self._begin("BEGIN DEFERRED")
        try:
            result = fn(SqliteUnitOfWork(conn))
            conn.execute("COMMIT")
        except BaseException as exc:
            error = self._fail(conn, exc)
            if error is not exc:
                raise error from exc
            raise
        return result

    def init(self) -> None:
        """Apply the migrations the file lacks, in one transaction; a no-op when up to date."""
        self._schema_ready = True  # first: _connect calls init while this is False
        try:
            migrate(self._connect(), self.path.name)
        except BaseException as exc:
            self._schema_ready = False  # the next unit of work tries again
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                self._drop(conn)
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"cannot prepare {self.path.name}: {exc}") from exc
            raise

    def ping(self) -> None:
        """Raise StoreUnavailable unless the file can be read and its disk has room to write."""
        self.read(lambda uow: uow.get_meta("schema_version"))
        try:
            room = os.statvfs(self.path.parent)
        except OSError as exc:
            raise StoreUnavailable(f"cannot check the room left for {self.path.name}") from exc
        if room.f_bavail * room.f_frsize < MIN_FREE_BYTES:
            raise StoreUnavailable(f"the disk holding {self.path.name} is full")

    def wal_bytes(self) -> int:
        """The WAL file's size: about RESTART_FRAMES pages under steady writes (checkpoints.py);
        growing past that means the checkpoints cannot copy it (a long read holds it)."""
        try:
            return os.path.getsize(f"{self.path}-wal")
        except FileNotFoundError:  # no WAL: nothing written since the last connection closed
            return 0
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the size of {self.path.name}-wal: {exc}") from exc

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
