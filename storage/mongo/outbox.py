"""The outbound SMS outbox in MongoDB: `outbox_sms`, ObjectId _ids in the order queued."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from storage.contract.outbox import SmsOutbox
from storage.models import OutboundSms
from storage.mongo import documents as docs
from storage.mongo.jobs import MongoJobs

CHANGEABLE = frozenset(
    {"status", "channel", "provider_id", "error", "lease_gateway", "lease_until", "attempts"}
)


class MongoSmsOutbox(MongoJobs, SmsOutbox):
    """Messages and their leases to Tasker phones; each message is sent by an `sms.send` job."""

    def enqueue_sms(self, message: OutboundSms) -> None:
        """Store a message and the job that sends it, in the caller's unit of work."""
        sms_id = str(self._insert("outbox_sms", docs.sms_doc(message)))
        at = message.created_at
        self.enqueue_job("sms.send", f"sms.send:{sms_id}", {"id": sms_id}, at, at)

    def outbox(self, limit: int = 100) -> list[OutboundSms]:
        """Messages in the order they were queued."""
        found = self._db.outbox_sms.find({}, session=self._s).sort("_id").limit(limit)
        return [docs.sms(d) for d in found]

    def get_sms(self, sms_id: str) -> OutboundSms | None:
        """The message with this id, or None (also for an id that is no ObjectId)."""
        if not ObjectId.is_valid(sms_id):  # not an id this backend makes
            return None
        d = self._find("outbox_sms", {"_id": ObjectId(sms_id)})
        return docs.sms(d) if d else None

    def find_sms_by_provider_id(self, provider_id: str) -> OutboundSms | None:
        """The message a provider knows by this id, or None."""
        d = self._find("outbox_sms", {"provider_id": provider_id})
        return docs.sms(d) if d else None

    def update_sms(self, sms_id: str, now: float, **changes: Any) -> None:
        """Change some of `CHANGEABLE`; ValueError for other fields, NotFound for an unknown id."""
        if not changes or set(changes) - CHANGEABLE:
            raise ValueError(f"cannot change {sorted(set(changes) - CHANGEABLE)}")
        self._update(
            "outbox_sms", {"_id": ObjectId(sms_id)}, {"$set": {**changes, "updated_at": now}}
        )

    def lease_sms(
        self, gateway_id: str, now: float, lease_seconds: float, limit: int, max_attempts: int
    ) -> list[OutboundSms]:
        """Lease up to `limit` Tasker-channel messages to a phone, oldest first."""
        self._db.outbox_sms.update_many(  # offered often enough and never acked: give up on it
            {
                "channel": "tasker",
                "status": "sending",
                "lease_until": {"$lt": now},
                "attempts": {"$gte": max_attempts},
            },
            {
                "$set": {
                    "status": "failed",
                    "error": "no phone acknowledged it",
                    "lease_until": None,
                    "updated_at": now,
                }
            },
            session=self._s,
        )
        if limit <= 0:
            return []
        due = {
            "channel": "tasker",
            "$or": [{"status": "pending"}, {"status": "sending", "lease_until": {"$lt": now}}],
        }
        ids = [
            d["_id"]
            for d in self._db.outbox_sms.find(due, {"_id": 1}, session=self._s)
            .sort("_id")
            .limit(limit)
        ]
        if ids:
            self._db.outbox_sms.update_many(
                {"_id": {"$in": ids}},
                {
                    "$set": {
                        "status": "sending",
                        "lease_gateway": gateway_id,
                        "lease_until": now + lease_seconds,
                        "updated_at": now,
                    },
                    "$inc": {"attempts": 1},
                },
                session=self._s,
            )
        found = self._db.outbox_sms.find({"_id": {"$in": ids}}, session=self._s).sort("_id")
        return [docs.sms(d) for d in found]

    def outbound_for_reference(self, reference: str) -> list[OutboundSms]:
        """The messages about one transaction, in the order they were queued."""
        found = self._db.outbox_sms.find({"reference": reference}, session=self._s)
        return [docs.sms(d) for d in found.sort("_id")]

    def sms_counts(self) -> dict[str, int]:
        """How many messages the outbox holds in each status."""
        rows = self._db.outbox_sms.aggregate(
            [{"$group": {"_id": "$status", "n": {"$sum": 1}}}], session=self._s
        )
        return {r["_id"]: int(r["n"]) for r in rows}
