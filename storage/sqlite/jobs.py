"""The durable job outbox and the gateway webhook events already seen, over SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from storage.contract import Jobs, ProviderEvents
from storage.models import Job, JobGroup, JobStatus, ProviderEvent
from storage.sqlite.base import SqliteBase, job_of


def queue_job(
    conn: sqlite3.Connection,
    kind: str,
    key: str,
    payload: dict[str, Any],
    run_after: float,
    now: float,
) -> bool:
    """Queue a job unless one with this key exists; True if it was added."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO jobs (kind, key, payload, status, run_after, created_at,"
        " updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)",
        (kind, key, json.dumps(payload, sort_keys=True), run_after, now, now),
    )
    return cur.rowcount == 1


class SqliteJobs(SqliteBase, Jobs):
    """The jobs table, keyed by what a job does; a lease names its owner and its end."""

    def enqueue_job(
        self, kind: str, key: str, payload: dict[str, Any], run_after: float, now: float
    ) -> bool:
        """Queue a job unless one with this key exists; True if it was added."""
        return queue_job(self._c, kind, key, payload, run_after, now)

    def claim_job(
        self, owner: str, now: float, lease_seconds: float, kinds: Sequence[str]
    ) -> Job | None:
        """Lease the most overdue job of these kinds (pending and due, or its lease lapsed)."""
        marks = ",".join("?" * len(kinds))
        row = self._one(
            f"SELECT key FROM jobs WHERE kind IN ({marks}) AND ((status = 'pending' AND"
            " run_after <= ?) OR (status = 'running' AND lease_until < ?))"
            " ORDER BY run_after, key LIMIT 1",
            *kinds, now, now,
        )  # fmt: skip
        if row is None:
            return None
        self._c.execute(
            "UPDATE jobs SET status = 'running', lease_owner = ?, lease_until = ?,"
            " attempts = attempts + 1, updated_at = ? WHERE key = ?",
            (owner, now + lease_seconds, now, row[0]),
        )
        claimed = self._one("SELECT * FROM jobs WHERE key = ?", row[0])
        return job_of(claimed) if claimed else None

    def _leased(self, sql: str, job_id: str, owner: str, *args: Any) -> bool:
        cur = self._c.execute(
            sql + " WHERE key = ? AND lease_owner = ? AND status = 'running'",
            (*args, job_id, owner),
        )
        return cur.rowcount == 1

    def finish_job(self, job_id: str, owner: str, now: float) -> bool:
        """Mark a job done; False unless `owner` still holds its lease."""
        return self._leased("UPDATE jobs SET status = 'done', lease_until = NULL, updated_at = ?",
                            job_id, owner, now)  # fmt: skip

    def retry_job(
        self, job_id: str, owner: str, run_after: float, error: str, now: float, count: bool = True
    ) -> bool:
        """Put a job back for later (the attempt uncounted if not `count`); lease-checked."""
        return self._leased(
            "UPDATE jobs SET status = 'pending', run_after = ?, last_error = ?,"
            " lease_owner = NULL, lease_until = NULL, updated_at = ?, attempts = attempts - ?",
            job_id, owner, run_after, error, now, 0 if count else 1,
        )  # fmt: skip

    def bury_job(self, job_id: str, owner: str, error: str, now: float) -> bool:
        """Give up on a job (dead letter); False unless `owner` still holds its lease."""
        return self._leased(
            "UPDATE jobs SET status = 'dead', last_error = ?, lease_until = NULL, updated_at = ?",
            job_id, owner, error, now,
        )  # fmt: skip

    def revive_job(self, job_id: str, now: float) -> bool:
        """Make a dead job pending again with its attempts reset; False unless it was dead."""
        cur = self._c.execute(
            "UPDATE jobs SET status = 'pending', attempts = 0, run_after = ?, updated_at = ?"
            " WHERE key = ? AND status = 'dead'",
            (now, now, job_id),
        )
        return cur.rowcount == 1

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Jobs (of one status, if given), oldest first."""
        if status is None:
            rows = self._c.execute("SELECT * FROM jobs ORDER BY created_at, key LIMIT ?", (limit,))
        else:
            rows = self._c.execute(
                "SELECT * FROM jobs WHERE status = ? ORDER BY created_at, key LIMIT ?",
                (status.value, limit),
            )
        return [job_of(r) for r in rows]

    def jobs_for_reference(self, reference: str) -> list[Job]:
        """The jobs whose payload names this transaction, oldest first."""
        rows = self._c.execute(
            "SELECT * FROM jobs WHERE json_extract(payload, '$.reference') = ?"
            " ORDER BY created_at, key",
            (reference,),
        )
        return [job_of(r) for r in rows]

    def job_groups(self) -> list[JobGroup]:
        """Jobs not done, by kind and status, with each group's earliest `run_after`."""
        # through the (status, run_after) index: done jobs, the bulk of the table, are not read
        rows = self._c.execute(
            "SELECT kind, status, COUNT(*), MIN(run_after) FROM jobs"
            " WHERE status IN ('pending', 'running', 'dead') GROUP BY kind, status"
            " ORDER BY kind, status"
        )
        return [JobGroup(r[0], JobStatus(r[1]), r[2], r[3]) for r in rows]


class SqliteProviderEvents(SqliteBase, ProviderEvents):
    """provider_events, one row per (provider, event id)."""

    def find_provider_event(self, provider: str, event_id: str) -> ProviderEvent | None:
        """The event already recorded under this id, or None."""
        row = self._one(
            "SELECT * FROM provider_events WHERE provider = ? AND event_id = ?", provider, event_id
        )
        return ProviderEvent(**dict(row)) if row else None

    def insert_provider_event(self, event: ProviderEvent) -> None:
        """Record an event; DuplicateKey if (provider, event id) was recorded already."""
        self._insert(
            "INSERT INTO provider_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            event.provider, event.event_id, event.kind, event.reference, event.status,
            event.received_at, event.outcome,
        )  # fmt: skip

    def provider_events_for(self, reference: str) -> list[ProviderEvent]:
        """The events about one transaction, by time received."""
        rows = self._c.execute(
            "SELECT * FROM provider_events WHERE reference = ? ORDER BY received_at, event_id",
            (reference,),
        )
        return [ProviderEvent(**dict(r)) for r in rows]
