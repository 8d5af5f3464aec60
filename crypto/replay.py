"""Per-device anti-replay window over message counters (RFC 4303 section 3.4.3).

The window remembers the highest counter accepted and which of the 63 counters below it were seen,
so SMS that arrive slightly out of order are accepted once and everything else is refused. It is
moved only after a frame's tag has verified, so a forged frame cannot push it forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

WINDOW_SIZE = 64
_MASK = (1 << WINDOW_SIZE) - 1


class Verdict(Enum):
    """What the window says of a counter."""

    FRESH = "fresh"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"


@dataclass(frozen=True)
class ReplayWindow:
    """Highest counter seen, and a bitmap where bit i means `highest - i` was seen."""

    highest: int = 0
    bitmap: int = 0

    def check(self, counter: int) -> Verdict:
        """Classify a counter without changing the window."""
        if counter <= 0:
            return Verdict.TOO_OLD
        if counter > self.highest:
            return Verdict.FRESH
        offset = self.highest - counter
        if offset >= WINDOW_SIZE:
            return Verdict.TOO_OLD
        return Verdict.DUPLICATE if self.bitmap >> offset & 1 else Verdict.FRESH

    def accept(self, counter: int) -> ReplayWindow:
        """The window after accepting a fresh counter; raises ValueError for any other."""
        if self.check(counter) is not Verdict.FRESH:
            raise ValueError("counter is not fresh")
        if counter > self.highest:
            shift = counter - self.highest
            bitmap = (self.bitmap << shift | 1) & _MASK if shift < WINDOW_SIZE else 1
            return ReplayWindow(counter, bitmap)
        return ReplayWindow(self.highest, self.bitmap | 1 << (self.highest - counter))
