"""PIN verification values: HMAC-SHA256 under a secret PIN key, with a per-user salt.

A 4-6 digit PIN has at most a million values, so no slow hash can protect it once the hash leaks;
only a key the attacker does not have can (and the lockout limits online guesses). The PIN key is
a random data key wrapped under the master key, so master-key rotation re-wraps it and every PIN
keeps working. See docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SALT_SIZE = 16
PIN_PATTERN = re.compile(r"[0-9]{4,6}")  # ASCII digits only: \d also matches "١٢٣٤"


def is_valid_pin(pin: str) -> bool:
    """A PIN is 4 to 6 ASCII digits."""
    return PIN_PATTERN.fullmatch(pin) is not None


def new_salt() -> bytes:
    """A fresh per-user salt."""
    return secrets.token_bytes(SALT_SIZE)


class PinHasher:
    """Computes and checks keyed PIN verification values."""

    def __init__(self, pin_key: bytes) -> None:
        if len(pin_key) < 32:
            raise ValueError("the PIN key must be at least 32 bytes")
        self._key = hashlib.sha256(b"smspay pin v1\x00" + pin_key).digest()

    def __repr__(self) -> str:
        return "PinHasher(<key hidden>)"

    def hash(self, pin: str, salt: bytes) -> bytes:
        """The verification value stored for a PIN."""
        if not is_valid_pin(pin):
            raise ValueError("a PIN is 4 to 6 digits")
        return hmac.new(self._key, salt + b"\x00" + pin.encode("ascii"), hashlib.sha256).digest()

    def verify(self, pin: str, salt: bytes, expected: bytes) -> bool:
        """Constant-time comparison of a candidate PIN against the stored value."""
        if not is_valid_pin(pin):
            return False
        return hmac.compare_digest(self.hash(pin, salt), expected)
