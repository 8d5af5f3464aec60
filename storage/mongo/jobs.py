"""The durable job outbox and the gateway webhook events already seen, in MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from storage.contract.jobs import Jobs, ProviderEvents
from storage.models import Job, JobGroup, JobStatus, ProviderEvent
from storage.mongo import documents as docs
from storage.mongo.base import MongoBase


class MongoJobs(MongoBase, Jobs):
    """`jobs`: a job's _id is its unique key, so enqueueing the same work twice keeps one job."""

    def enqueue_job(
        self, kind: str, key: str, payload: dict[str, Any], run_after: float, now: float
    ) -> bool:
        """Queue a job unless one with this key exists (one upsert); True if it was added."""
        result = self._db.jobs.update_one(
            {"_id": key},
            {
                "$setOnInsert": {
                    "kind": kind,
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "run_after": run_after,
                    "created_at": now,
                    "updated_at": now,
                    "lease_owner": None,
                    "lease_until": None,
                    "last_error": "",
                }
            },
            upsert=True,
            session=self._s,
        )
        return result.upserted_id is not None

    def claim_job(
        self, owner: str, now: float, lease_seconds: float, kinds: Sequence[str]
    ) -> Job | None:
        """Lease the most overdue job of these kinds in one atomic find-and-update."""
        d = self._db.jobs.find_one_and_update(
            {
                "kind": {"$in": list(kinds)},
                "$or": [
                    {"status": "pending", "run_after": {"$lte": now}},
                    {"status": "running", "lease_until": {"$lt": now}},
                ],
            },
            {
                "$set": {
                    "status": "running",
                    "lease_owner": owner,
                    "lease_until": now + lease_seconds,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            sort=[("run_after", ASCENDING), ("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
            session=self._s,
        )
        return docs.job(d) if d else None

    def _leased(
        self, job_id: str, owner: str, update: dict[str, Any], inc: dict[str, int] | None = None
    ) -> bool:
        """Update a running job only while `owner` holds its lease."""
        result = self._db.jobs.update_one(
            {"_id": job_id, "lease_owner": owner, "status": "running"},
            {"$set": update, **({"$inc": inc} if inc else {})},
            session=self._s,
        )
        return result.modified_count == 1

    def finish_job(self, job_id: str, owner: str, now: float) -> bool:
        """Mark a job done; False unless `owner` still holds its lease."""
        return self._leased(
            job_id, owner, {"status": "done", "lease_until": None, "updated_at": now}
        )

    def retry_job(
        self, job_id: str, owner: str, run_after: float, error: str, now: float, count: bool = True
    ) -> bool:
        """Put a job back for later (the attempt uncounted if not `count`); lease-checked."""
        return self._leased(
            job_id,
            owner,
            {
                "status": "pending",
                "run_after": run_after,
                "last_error": error,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            },
            inc={} if count else {"attempts": -1},
        )

    def bury_job(self, job_id: str, owner: str, error: str, now: float) -> bool:
        """Give up on a job (dead letter); False unless `owner` still holds its lease."""
        return self._leased(
            job_id,
            owner,
            {"status": "dead", "last_error": error, "lease_until": None, "updated_at": now},
        )

    def revive_job(self, job_id: str, now: float) -> bool:
        """Make a dead job pending again with its attempts reset; False unless it was dead."""
        result = self._db.jobs.update_one(
            {"_id": job_id, "status": "dead"},
            {"$set": {"status": "pending", "attempts": 0, "run_after": now, "updated_at": now}},
            session=self._s,
        )
        return result.modified_count == 1

    def jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Jobs (of one status, if given), oldest first."""
        query = {} if status is None else {"status": status.value}
        found = self._db.jobs.find(query, session=self._s).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [docs.job(d) for d in found.limit(limit)]

    def jobs_for_reference(self, reference: str) -> list[Job]:
        """The jobs whose payload names this transaction, oldest first."""
        found = self._db.jobs.find({"payload.reference": reference}, session=self._s)
        return [docs.job(d) for d in found.sort([("created_at", ASCENDING), ("_id", ASCENDING)])]

    def job_groups(self) -> list[JobGroup]:
        """Jobs not done, by kind and status, with each group's earliest `run_after`."""
        rows = self._db.jobs.aggregate(
            [
                {"$match": {"status": {"$in": ["pending", "running", "dead"]}}},  # the due index
                {
                    "$group": {
                        "_id": {"kind": "$kind", "status": "$status"},
                        "n": {"$sum": 1},
                        "oldest": {"$min": "$run_after"},
                    }
                },
            ],
            session=self._s,
        )
        groups = [
            JobGroup(r["_id"]["kind"], JobStatus(r["_id"]["status"]), int(r["n"]), r["oldest"])
            for r in rows
        ]
        return sorted(groups, key=lambda g: (g.kind, g.status.value))


class MongoProviderEvents(MongoBase, ProviderEvents):
    """`provider_events`: _id is provider:event id, so an event is recorded once."""

    def find_provider_event(self, provider: str, event_id: str) -> ProviderEvent | None:
        """The event already recorded under this id, or None."""
        d = self._find("provider_events", {"_id": f"{provider}:{event_id}"})
        return docs.provider_event(d) if d else None

    def insert_provider_event(self, event: ProviderEvent) -> None:
        """Record an event; DuplicateKey if (provider, event id) was recorded already."""
        self._insert("provider_events", docs.provider_event_doc(event))

    def provider_events_for(self, reference: str) -> list[ProviderEvent]:
        """The events about one transaction, by time received."""
        found = self._db.provider_events.find({"reference": reference}, session=self._s)
        order = [("received_at", ASCENDING), ("event_id", ASCENDING)]
        return [docs.provider_event(d) for d in found.sort(order)]
