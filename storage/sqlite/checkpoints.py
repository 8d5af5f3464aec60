"""WAL checkpoints off the request path.

SQLite's automatic checkpoint runs inside whichever COMMIT crosses 1,000 pages of WAL, so one
payment in a thousand waited for the copy of the WAL into the database and its fsync, holding
the write lock. The store turns that off (`PRAGMA wal_autocheckpoint = 0` on its connections)
and each process that writes runs this thread instead: woken after every EVERY_UNITS units of
work it committed (or once a second while it writes), it runs a PASSIVE checkpoint on a
connection of its own. A passive checkpoint never takes the write lock nor waits for readers,
so writers go on meanwhile; when the last connection to the file closes, SQLite checkpoints the
rest itself.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

EVERY_UNITS = 200  # units of work committed between checkpoints (about 1,000 pages of WAL)
IDLE_ROUNDS = 10  # seconds without a commit after which the thread ends
log = logging.getLogger(__name__)


class Checkpointer:
    """A daemon thread per process that checkpoints the WAL when told work was committed; it
    ends after IDLE_ROUNDS quiet seconds and starts again with the next commit."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
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
        """One PASSIVE checkpoint on a connection of its own; a failure is logged, and the next
        round tries again (a writer never waits on it)."""
        try:
            conn = self._connect()
        except Exception as exc:
            log.warning("WAL checkpoint: cannot open the database: %s", exc)
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
