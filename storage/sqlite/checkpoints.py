"""WAL checkpoints off the request path.

SQLite's automatic checkpoint runs inside whichever COMMIT crosses 1,000 pages of WAL, so one
payment in a thousand waited for the copy of the WAL into the database and its fsync, holding
the write lock. The store turns that off (`PRAGMA wal_autocheckpoint = 0` on its connections)
and each process that writes runs this thread instead: woken after every EVERY_UNITS units of
work it committed (or once a second while it writes), it runs PASSIVE checkpoints on a
connection of its own. A passive checkpoint never takes the write lock nor waits for readers,
so writers go on meanwhile; when the last connection to the file closes, SQLite checkpoints the
rest itself.

The WAL must also start again from its beginning, or under steady writes it only grows (a
gigabyte in a 25-second benchmark run, every frame written to a new block of the file, which
the filesystem allocates and zeroes first). SQLite restarts it when a writer begins while every
frame has been copied, which writers that never pause do not leave time for: a passive
checkpoint copies the frames there were when it began, and by its end more were committed. So
once the WAL holds RESTART_FRAMES, a second passive round copies what came during the first,
then the thread takes the writers' lock (the `-lock` file the store's batches take,
storage/sqlite/store.py) for a last round that copies the few frames left, and the next batch,
of any process, starts the WAL again: the file stays about that long and is written over. A
WAL that grew longer meanwhile (a long read held its frames) is cut back to WAL_SIZE_LIMIT by
the writer that starts it again (`journal_size_limit`, set on every connection of the store).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EVERY_UNITS = 200  # units of work committed between checkpoints (about 1,000 pages of WAL)
RESTART_FRAMES = 8_192  # a WAL this long (32 MiB of 4 KiB pages) is made to start again
WAL_SIZE_LIMIT = 64 << 20  # bytes: a WAL that grew past this is cut back to it when it restarts
IDLE_ROUNDS = 10  # seconds without a commit after which the thread ends
log = logging.getLogger(__name__)


class Checkpointer:
    """A daemon thread per process that checkpoints the WAL when told work was committed; it
    ends after IDLE_ROUNDS quiet seconds and starts again with the next commit."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], writers_lock: str | None = None
    ) -> None:
        """`connect` opens a connection to the file; `writers_lock` is the path of the file
        whose flock the store's writers take (None: no last round under it)."""
        self._connect = connect
        self._writers_lock = writers_lock
        self._wake = threading.Event()
        self._committed = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def committed(self, units: int) -> None:
        """A batch of `units` was committed; wake the thread once enough have been."""
        with self._lock:
            self._committed += units
            due = self._committed >= EVERY_UNITS
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpoint", daemon=True
                )
                self._thread.start()
        if due:
            self._wake.set()

    def _run(self) -> None:
        quiet = 0
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            with self._lock:
                pending, self._committed = self._committed, 0
                quiet = 0 if pending else quiet + 1
                if quiet >= IDLE_ROUNDS:
                    self._thread = None
                    return
            if pending:
                self.checkpoint()

    def checkpoint(self) -> None:
        """PASSIVE checkpoints on a connection of its own, the last one holding the writers'
        lock so that the WAL starts again; a failure is logged, and the next round tries again
        (a batch waits at most for that last, short round)."""
        try:
            conn = self._connect()
        except Exception as exc:
            log.warning("WAL checkpoint: cannot open the database: %s", exc)
            return
        try:
            busy, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy or frames < RESTART_FRAMES or self._writers_lock is None:
                return  # busy: another process's checkpoint is under way
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # what came meanwhile
            with writers_locked(self._writers_lock):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # the last few
        except (sqlite3.Error, OSError) as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()


def open_lock_file(path: str) -> int:
    """Open the writers' lock file (made if missing); flock on it excludes every other open
    file of it, in this process too. OSError if it cannot be opened."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def writers_locked(path: str) -> Iterator[None]:
    """Hold the writers' lock (an exclusive flock on `path`) through an open file of its own."""
    fd = open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and with it the lock
