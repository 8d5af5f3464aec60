"""Rate limits kept in the SQLite file, so every worker process draws from the same ones."""

from __future__ import annotations

import json

from storage.contract import RateLimits
from storage.sqlite.base import SqliteBase


class SqliteRateLimits(SqliteBase, RateLimits):
    """Token buckets (rate_buckets) and sliding windows of timestamps (rate_windows)."""

    def take_in_window(self, key: str, limit: int, window: float, want: int, now: float) -> int:
        """Take up to `want` of `limit` slots in the sliding window; negative `want` gives back."""
        row = self._one("SELECT stamps FROM rate_windows WHERE key = ?", key)
        stamps = [t for t in json.loads(row[0]) if t > now - window] if row else []
        granted = max(-len(stamps), want) if want < 0 else max(0, min(want, limit - len(stamps)))
        stamps = stamps[:granted] if granted < 0 else stamps + [now] * granted
        self._c.execute(
            "INSERT OR REPLACE INTO rate_windows VALUES (?, ?)", (key, json.dumps(stamps))
        )
        return granted

    def take_tokens(
        self, bucket: str, capacity: float, per_second: float, want: int, now: float
    ) -> int:
        """Take up to `want` whole tokens from a bucket; a negative `want` gives tokens back.

        A bucket that holds `want` tokens once refilled gives them in one conditional UPDATE
        (the same arithmetic as below, in SQL); otherwise (no row yet, too few tokens, giving
        back) its row is read, then written."""
        if want > 0:
            refilled = "min(?, tokens + (? - updated_at) * ?)"
            taken = self._c.execute(
                f"UPDATE rate_buckets SET tokens = {refilled} - ?, updated_at = ?"
                f" WHERE key = ? AND {refilled} >= ?",
                (capacity, now, per_second, want, now, bucket, capacity, now, per_second, want),
            )
            if taken.rowcount == 1:
                return want
        row = self._one("SELECT tokens, updated_at FROM rate_buckets WHERE key = ?", bucket)
        tokens = capacity if row is None else min(capacity, row[0] + (now - row[1]) * per_second)
        granted = want if want < 0 else max(0, min(want, int(tokens)))  # want < 0: give back
        self._c.execute("INSERT OR REPLACE INTO rate_buckets VALUES (?, ?, ?)",
                        (bucket, min(capacity, tokens - granted), now))  # fmt: skip
        return granted
