"""The inbound SMS log and the processed SP1 frames, in MongoDB."""

from __future__ import annotations

from bson import ObjectId
from pymongo import DESCENDING

from storage.contract.inbound import Inbound
from storage.models import FrameRecord, InboundRecord
from storage.mongo import documents as docs
from storage.mongo.base import MongoBase


class MongoInbound(MongoBase, Inbound):
    """`inbound_sms` (ObjectId _ids, unique per route and provider id) and `frames` (TTL)."""

    def find_inbound(self, route: str, provider_message_id: str) -> InboundRecord | None:
        """The SMS a route already received under this provider id, or None."""
        d = self._find("inbound_sms", {"route": route, "provider_message_id": provider_message_id})
        return docs.inbound(d) if d else None

    def insert_inbound(self, record: InboundRecord) -> None:
        """Log an SMS; DuplicateKey if (route, provider_message_id) was logged already."""
        self._insert("inbound_sms", docs.inbound_doc(record))

    def count_redelivery(self, inbound_id: str) -> None:
        """Count one more delivery of a logged SMS; NotFound for an unknown id."""
        self._update("inbound_sms", {"_id": ObjectId(inbound_id)}, {"$inc": {"deliveries": 1}})

    def inbound_for(self, sender: str, limit: int = 50) -> list[InboundRecord]:
        """The newest SMS from one number, newest first."""
        found = self._db.inbound_sms.find({"sender": sender}, session=self._s)
        return [docs.inbound(d) for d in found.sort("_id", DESCENDING).limit(limit)]

    def inbound_for_reference(self, reference: str) -> list[InboundRecord]:
        """The SMS about one transaction, oldest first."""
        found = self._db.inbound_sms.find({"reference": reference}, session=self._s)
        return [docs.inbound(d) for d in found.sort("_id")]

    def inbound_outcomes(self, since: float, until: float) -> dict[str, int]:
        """How many SMS received in [since, until) ended in each outcome."""
        rows = self._db.inbound_sms.aggregate(
            [
                {"$match": {"received_at": {"$gte": since, "$lt": until}}},
                {"$group": {"_id": "$outcome", "n": {"$sum": 1}}},
            ],
            session=self._s,
        )
        return {r["_id"]: int(r["n"]) for r in rows}

    def find_frame(self, key_id: int, counter: int) -> FrameRecord | None:
        """The processed frame with this device key and counter, or None."""
        d = self._find("frames", {"_id": f"{key_id}:{counter}"})
        return docs.frame(d) if d else None

    def insert_frame(self, record: FrameRecord) -> None:
        """Record a processed frame; DuplicateKey if its _id (key id:counter) exists."""
        self._insert("frames", docs.frame_doc(record))
