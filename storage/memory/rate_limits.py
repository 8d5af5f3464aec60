"""Token buckets and sliding windows in memory (each call reads and writes its key at once)."""

from __future__ import annotations

from storage.memory.tables import Part


class RateLimitsPart(Part):
    """`RateLimits` of the contract, with the SQLite backend's arithmetic."""

    def take_tokens(
        self, bucket: str, capacity: float, per_second: float, want: int, now: float
    ) -> int:
        t = self._w()
        held = t.rate_buckets.get(bucket)
        tokens = capacity if held is None else min(capacity, held[0] + (now - held[1]) * per_second)
        granted = want if want < 0 else max(0, min(want, int(tokens)))  # want < 0: give back
        t.rate_buckets[bucket] = (min(capacity, tokens - granted), now)
        return granted

    def take_in_window(self, key: str, limit: int, window: float, want: int, now: float) -> int:
        t = self._w()
        stamps = [s for s in t.rate_windows.get(key, ()) if s > now - window]
        granted = max(-len(stamps), want) if want < 0 else max(0, min(want, limit - len(stamps)))
        stamps = stamps[:granted] if granted < 0 else stamps + [now] * granted
        t.rate_windows[key] = tuple(stamps)
        return granted
