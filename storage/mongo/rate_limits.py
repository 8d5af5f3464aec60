"""Rate limits shared by every process, in MongoDB: `rate_buckets` and `rate_windows` (TTL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument

from storage.contract.rate_limits import RateLimits
from storage.mongo.base import MongoBase

BUCKET_TTL_SECONDS = 86_400  # an idle bucket is full again long before MongoDB drops it


class MongoRateLimits(MongoBase, RateLimits):
    """One document per key, written inside the caller's transaction."""

    def take_in_window(self, key: str, limit: int, window: float, want: int, now: float) -> int:
        """Take up to `want` of `limit` slots in the sliding window; returns the grant."""
        d = self._find("rate_windows", {"_id": key})
        stamps = [t for t in d["stamps"] if t > now - window] if d else []
        granted = max(-len(stamps), want) if want < 0 else max(0, min(want, limit - len(stamps)))
        stamps = stamps[:granted] if granted < 0 else stamps + [now] * granted
        self._db.rate_windows.replace_one(
            {"_id": key},
            {"stamps": stamps, "expires": datetime.fromtimestamp(now + window, UTC)},
            upsert=True,
            session=self._s,
        )
        return granted

    def take_tokens(
        self, bucket: str, capacity: float, per_second: float, want: int, now: float
    ) -> int:
        """Take up to `want` whole tokens from a bucket (new: full); returns the grant.

        One round trip: the refill and the take are computed by the server in an update pipeline
        (upserting a new bucket), which keeps the grant in the document for the reply.
        """
        if want < 0:  # give back: the grant is `want`, whatever the bucket holds
            grant: Any = want
        else:
            grant = {"$max": [0, {"$min": [want, {"$trunc": "$tokens"}]}]}
        refill = {"$add": ["$tokens", {"$multiply": [{"$subtract": [now, "$at"]}, per_second]}]}
        found = self._db.rate_buckets.find_one_and_update(
            {"_id": bucket},
            [
                {  # the tokens held now (a new bucket is full)
                    "$set": {
                        "tokens": {
                            "$cond": [
                                {"$eq": [{"$type": "$at"}, "missing"]},
                                capacity,
                                {"$min": [capacity, refill]},
                            ]
                        }
                    }
                },
                {"$set": {"granted": grant}},
                {
                    "$set": {
                        "tokens": {"$min": [capacity, {"$subtract": ["$tokens", "$granted"]}]},
                        "at": now,
                        "expires": datetime.fromtimestamp(now + BUCKET_TTL_SECONDS, UTC),
                    }
                },
            ],
            projection={"granted": 1},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self._s,
        )
        assert found is not None  # upserted, and returned after the update
        return int(found["granted"])
