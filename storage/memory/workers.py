"""Worker heartbeats in memory: one record per owner, replaced at each beat."""

from __future__ import annotations

from storage.memory.tables import Part
from storage.models import WorkerBeat


class WorkersPart(Part):
    """`Workers` of the contract."""

    def beat(self, worker: WorkerBeat) -> None:
        self._w().workers[worker.owner] = worker

    def workers(self) -> list[WorkerBeat]:
        return sorted(self._t.workers.values(), key=lambda w: (-w.beat_at, w.owner))

    def forget_workers(self, before: float) -> int:
        t = self._w()
        gone = [owner for owner, w in t.workers.items() if w.beat_at < before]
        for owner in gone:
            del t.workers[owner]
        return len(gone)
