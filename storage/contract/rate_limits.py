"""Rate limits that every process draws from, kept in the store so they hold across workers."""

from __future__ import annotations

from typing import Protocol


class RateLimits(Protocol):
    """Token buckets and sliding windows; each call reads and writes its key atomically."""

    def take_tokens(
        self, bucket: str, capacity: float, per_second: float, want: int, now: float
    ) -> int:
        """Take up to `want` whole tokens from a bucket refilled at `per_second` (new: full).

        Returns how many were granted; a negative `want` gives tokens back, up to `capacity`.
        """
        ...

    def take_in_window(self, key: str, limit: int, window: float, want: int, now: float) -> int:
        """Take up to `want` of `limit` slots in the sliding `window` seconds; returns the grant.

        A negative `want` gives back that many of the newest slots.
        """
        ...
