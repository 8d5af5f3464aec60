"""Worker heartbeats as operators see them: running, quiet (no beat for a while) or stopped.

Each worker process (app/worker.py) records a beat in the store every few seconds, also while it
has nothing to do, with its host, pid, start time and jobs done. A worker not heard from for
SMSPAY_WORKER_QUIET_SECONDS is quiet: stuck, killed without a chance to say so, or cut off from the
store. One that stopped on a signal says so on its way out. Records are dropped a day after their
last beat, so the list shows the workers of the last day.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.bootstrap import Services
from storage.contract import Workers
from storage.models import WorkerBeat

FORGET_AFTER_SECONDS = 86_400


@dataclass(frozen=True)
class WorkerHealth:
    """A worker process and whether it is heard from."""

    owner: str
    host: str
    pid: int
    started_at: float
    last_beat_at: float
    seconds_since_beat: float
    jobs_done: int
    state: str  # "running", "quiet" or "stopped"


def health(beats: list[WorkerBeat], now: float, quiet_seconds: float) -> list[WorkerHealth]:
    """Each worker record judged at `now`, in the store's order (the most recent beat first)."""
    out = []
    for b in beats:
        since = max(0.0, now - b.beat_at)
        state = "stopped" if b.stopped else "quiet" if since > quiet_seconds else "running"
        out.append(
            WorkerHealth(
                b.owner, b.host, b.pid, b.started_at, b.beat_at, since, b.jobs_done, state
            )  # fmt: skip
        )
    return out


def read_health(svc: Services, uow: Workers) -> list[WorkerHealth]:
    """The workers as the store has them, judged now (inside the caller's read)."""
    return health(uow.workers(), svc.clock.now(), svc.settings.worker_quiet_seconds)


def workers(svc: Services) -> list[WorkerHealth]:
    """The workers heard from in the last day, most recent beat first."""
    return svc.store.read(lambda uow: read_health(svc, uow))


def beat(svc: Services, worker: WorkerBeat) -> None:
    """Record a worker's beat, and drop the records of workers silent for a day."""
    forget = worker.beat_at - FORGET_AFTER_SECONDS

    def unit(uow: Workers) -> None:
        uow.beat(worker)
        uow.forget_workers(forget)

    svc.store.atomic(unit)
