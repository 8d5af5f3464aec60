"""Worker heartbeats: each worker process says it is alive, so operators see one that went quiet."""

from __future__ import annotations

from typing import Protocol

from storage.models import WorkerBeat


class Workers(Protocol):
    """One record per worker process, replaced at each beat; readers judge quiet by `beat_at`."""

    def beat(self, worker: WorkerBeat) -> None:
        """Record a worker's latest beat, replacing the one before (one record per owner)."""
        ...

    def workers(self) -> list[WorkerBeat]:
        """Every worker record kept, the most recent beat first."""
        ...

    def forget_workers(self, before: float) -> int:
        """Drop the records of workers whose last beat is older than `before`; how many."""
        ...
