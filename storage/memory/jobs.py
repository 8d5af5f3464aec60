"""The durable job outbox and the gateway webhook events already seen, in memory.

A job's id is its key. Payloads are copied in and out as JSON, so a caller never shares one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from storage.errors import DuplicateKey
from storage.memory.tables import Part, Tables, json_copy
from storage.models import Job, JobGroup, JobStatus, ProviderEvent


def put_job(
    t: Tables, kind: str, key: str, payload: dict[str, Any], run_after: float, now: float
) -> bool:
    """Queue a job unless one with this key exists (shared with the SMS outbox)."""
    if key in t.jobs:
        return False
    t.jobs[key] = Job(key, kind, key, json_copy(payload), JobStatus.PENDING, 0, run_after, now, now)
    return True


def _out(job: Job) -> Job:
    return replace(job, payload=json_copy(job.payload))


class JobsPart(Part):
    """`Jobs` and `ProviderEvents` of the contract."""

    def enqueue_job(
        self, kind: str, key: str, payload: dict[str, Any], run_after: float, now: float
    ) -> bool:
        return put_job(self._w(), kind, key, payload, run_after, now)

    def claim_job(
        self, owner: str, now: float, lease_seconds: float, kinds: Sequence[str]
    ) -> Job | None:
        t = self._w()
        due = [
            j
            for j in t.jobs.values()
            if j.kind in kinds
            and (
                (j.status == JobStatus.PENDING and j.run_after <= now)
                or (
                    j.status == JobStatus.RUNNING
                    and j.lease_until is not None
                    and j.lease_until < now
                )
            )
        ]
        if not due:
            return None
        job = min(due, key=lambda j: (j.run_after, j.key))
        claimed = replace(
            job,
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_until=now + lease_seconds,
            attempts=job.attempts + 1,
            updated_at=now,
        )
        t.jobs[job.key] = claimed
        return _out(claimed)

    def _leased(self, job_id: str, owner: str, **changes: Any) -> bool:
        t = self._w()
        job = t.jobs.get(job_id)
        if job is None or job.lease_owner != owner or job.status != JobStatus.RUNNING:
            return False
        t.jobs[job_id] = replace(job, **changes)
        return True

    def finish_job(self, job_id: str, owner: str, now: float) -> bool:
        return self._leased(job_id, owner, status=JobStatus.DONE, lease_until=None, updated_at=now)

    def retry_job(
        self, job_id: str, owner: str, run_after: float, error: str, now: float, count: bool = True
    ) -> bool:
        job = self._t.jobs.get(job_id)
        attempts = job.attempts - (0 if count else 1) if job else 0
        return self._leased(
            job_id, owner, status=JobStatus.PENDING, run_after=run_after, last_error=error,
            lease_owner=None, lease_until=None, updated_at=now, attempts=attempts,
        )  # fmt: skip

    def bury_job(self, job_id: str, owner: str, error: str, now: float) -> bool:
        return self._leased(
            job_id, owner, status=JobStatus.DEAD, last_error=error, lease_until=None, updated_at=now
        )

    def revive_job(self, job_id: str, now: float) -> bool:
        t = self._w()
        job = t.jobs.get(job_id)
        if job is None or job.status != JobStatus.DEAD:
            return False
        t.jobs[job_id] = replace(
            job, status=JobStatus.PENDING, attempts=0, run_after=now, updated_at=now
        )
        return True

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        found = [j for j in self._t.jobs.values() if status is None or j.status == status]
        return [_out(j) for j in sorted(found, key=lambda j: (j.created_at, j.key))[:limit]]

    def jobs_for_reference(self, reference: str) -> list[Job]:
        found = [j for j in self._t.jobs.values() if j.payload.get("reference") == reference]
        return [_out(j) for j in sorted(found, key=lambda j: (j.created_at, j.key))]

    def job_groups(self) -> list[JobGroup]:
        groups: dict[tuple[str, JobStatus], JobGroup] = {}
        for j in self._t.jobs.values():
            if j.status is JobStatus.DONE:
                continue
            g = groups.get((j.kind, j.status))
            count, oldest = (g.count, g.oldest_run_after) if g else (0, j.run_after)
            groups[(j.kind, j.status)] = JobGroup(
                j.kind, j.status, count + 1, min(oldest, j.run_after)
            )
        return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1].value))]

    # provider events
    def find_provider_event(self, provider: str, event_id: str) -> ProviderEvent | None:
        return self._t.provider_events.get((provider, event_id))

    def insert_provider_event(self, event: ProviderEvent) -> None:
        t = self._w()
        if (event.provider, event.event_id) in t.provider_events:
            raise DuplicateKey(f"provider event {event.provider}:{event.event_id}")
        t.provider_events[(event.provider, event.event_id)] = event

    def provider_events_for(self, reference: str) -> list[ProviderEvent]:
        found = [e for e in self._t.provider_events.values() if e.reference == reference]
        return sorted(found, key=lambda e: (e.received_at, e.event_id))
