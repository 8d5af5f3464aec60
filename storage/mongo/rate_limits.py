"""Rate limits shared by every process, in MongoDB: `rate_buckets` and `rate_windows` (TTL)."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.contract.rate_limits import RateLimits
from storage.mongo.base import MongoBase

BUCKET_TTL_SECONDS = 86_400  # an idle bucket is full again long before MongoDB drops it


class MongoRateLimits(MongoBase, RateLimits):
    """One document per key, read and replaced inside the caller's transaction."""

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
        """Take up to `want` whole tokens from a bucket (new: full); returns the grant."""
        d = self._find("rate_buckets", {"_id": bucket})
        tokens = (
            capacity if d is None else min(capacity, d["tokens"] + (now - d["at"]) * per_second)
        )
        granted = want if want < 0 else max(0, min(want, int(tokens)))  # want < 0: give back
        self._db.rate_buckets.replace_one(
            {"_id": bucket},
            {
                "tokens": min(capacity, tokens - granted),
                "at": now,
                "expires": datetime.fromtimestamp(now + BUCKET_TTL_SECONDS, UTC),
            },
            upsert=True,
            session=self._s,
        )
        return granted
