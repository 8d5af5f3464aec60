"""The durable job outbox (run by app/worker.py) and the gateway webhook events already seen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from storage.models import Job, JobGroup, JobStatus, ProviderEvent


class Jobs(Protocol):
    """Jobs keyed by what they do, leased to one worker at a time."""

    def enqueue_job(
        self, kind: str, key: str, payload: dict[str, Any], run_after: float, now: float
    ) -> bool:
        """Queue a job unless one with this key exists; True if it was added."""
        ...

    def claim_job(
        self, owner: str, now: float, lease_seconds: float, kinds: Sequence[str]
    ) -> Job | None:
        """Lease the most overdue job of these kinds (pending and due, or with a lapsed lease)."""
        ...

    def finish_job(self, job_id: str, owner: str, now: float) -> bool:
        """Mark a job done; False unless `owner` still holds its lease."""
        ...

    def retry_job(
        self, job_id: str, owner: str, run_after: float, error: str, now: float, count: bool = True
    ) -> bool:
        """Put a job back for later (the attempt uncounted if not `count`); lease-checked."""
        ...

    def bury_job(self, job_id: str, owner: str, error: str, now: float) -> bool:
        """Give up on a job (dead letter); False unless `owner` still holds its lease."""
        ...

    def revive_job(self, job_id: str, now: float) -> bool:
        """Make a dead job pending again with its attempts reset; False unless it was dead."""
        ...

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Jobs (of one status, if given), oldest first."""
        ...

    def jobs_for_reference(self, reference: str) -> list[Job]:
        """The jobs whose payload names this transaction, oldest first."""
        ...

    def job_groups(self) -> list[JobGroup]:
        """Jobs not done, counted by kind and status, with each group's earliest `run_after`."""
        ...


class ProviderEvents(Protocol):
    """Gateway webhook events, one per (provider, event id)."""

    def find_provider_event(self, provider: str, event_id: str) -> ProviderEvent | None:
        """The event already recorded under this id, or None."""
        ...

    def insert_provider_event(self, event: ProviderEvent) -> None:
        """Record an event; DuplicateKey if (provider, event id) was recorded already."""
        ...

    def provider_events_for(self, reference: str) -> list[ProviderEvent]:
        """The events about one transaction, by time received."""
        ...
