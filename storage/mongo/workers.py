"""Worker heartbeats in MongoDB: `workers`, one document per worker process, _id its owner id."""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING

from storage.contract.workers import Workers
from storage.models import WorkerBeat
from storage.mongo.base import MongoBase


def _doc(w: WorkerBeat) -> dict[str, Any]:
    return {
        "host": w.host,
        "pid": w.pid,
        "started_at": w.started_at,
        "beat_at": w.beat_at,
        "jobs_done": w.jobs_done,
        "stopped": w.stopped,
    }


class MongoWorkers(MongoBase, Workers):
    """`workers`: a beat replaces its owner's document (an upsert)."""

    def beat(self, worker: WorkerBeat) -> None:
        """Record a worker's latest beat, replacing the one before (one record per owner)."""
        self._db.workers.replace_one(
            {"_id": worker.owner}, _doc(worker), upsert=True, session=self._s
        )

    def workers(self) -> list[WorkerBeat]:
        """Every worker record kept, the most recent beat first."""
        found = self._db.workers.find({}, session=self._s).sort(
            [("beat_at", DESCENDING), ("_id", 1)]
        )
        return [
            WorkerBeat(
                d["_id"],
                d["host"],
                int(d["pid"]),
                d["started_at"],
                d["beat_at"],
                int(d["jobs_done"]),
                bool(d["stopped"]),
            )  # fmt: skip
            for d in found
        ]

    def forget_workers(self, before: float) -> int:
        """Drop the records of workers whose last beat is older than `before`; how many."""
        return self._db.workers.delete_many(
            {"beat_at": {"$lt": before}}, session=self._s
        ).deleted_count
