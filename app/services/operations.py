"""What the store says about the service's health, for /metrics: read at scrape time, so every
web process on every machine reports the same figures (they live in the store, not in a process).

Cheap by design: the day's transactions are grouped by the store (one aggregate, the same one
the dashboard runs), jobs are counted without reading the done ones, the outbox by status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.bootstrap import Services
from app.services.workers import WorkerHealth, read_health
from storage.contract import UnitOfWork
from storage.models import JobGroup, JobStatus, TransactionGroup


@dataclass(frozen=True)
class Operations:
    """The store's figures at one moment."""

    now: float
    today: list[TransactionGroup]  # created since local midnight (SMSPAY_TIMEZONE)
    jobs: list[JobGroup]  # not done, by kind and status
    sms: dict[str, int]  # the outbox by status
    workers: list[WorkerHealth]

    @property
    def oldest_due_seconds(self) -> float:
        """How long the most overdue pending job has been due (0 when none is due)."""
        due = [g.oldest_run_after for g in self.jobs if g.status is JobStatus.PENDING]
        return max(0.0, self.now - min(due)) if due else 0.0


def snapshot(svc: Services) -> Operations:
    """The figures, read in one consistent snapshot of the store."""
    now = svc.clock.now()
    day = datetime.fromtimestamp(now, svc.tz)
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def read(uow: UnitOfWork) -> Operations:
        return Operations(
            now,
            uow.transaction_groups(midnight, now + 1),
            uow.job_groups(),
            uow.sms_counts(),
            read_health(svc, uow),
        )

    return svc.store.read(read)
