"""Worker heartbeats over SQLite: the `workers` table (migration 2), one row per worker process."""

from __future__ import annotations

from storage.contract import Workers
from storage.models import WorkerBeat
from storage.sqlite.base import SqliteBase


class SqliteWorkers(SqliteBase, Workers):
    """`workers`: a beat replaces its owner's row."""

    def beat(self, worker: WorkerBeat) -> None:
        """Record a worker's latest beat, replacing the one before (one record per owner)."""
        w = worker
        self._c.execute(
            "INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (w.owner, w.host, w.pid, w.started_at, w.beat_at, w.jobs_done, int(w.stopped)),
        )

    def workers(self) -> list[WorkerBeat]:
        """Every worker record kept, the most recent beat first."""
        rows = self._c.execute("SELECT * FROM workers ORDER BY beat_at DESC, owner")
        return [WorkerBeat(**{**dict(r), "stopped": bool(r["stopped"])}) for r in rows]

    def forget_workers(self, before: float) -> int:
        """Drop the records of workers whose last beat is older than `before`; how many."""
        return self._c.execute("DELETE FROM workers WHERE beat_at < ?", (before,)).rowcount
