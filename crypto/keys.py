"""Envelope encryption: device keys and other secrets stored only wrapped under a master key.

A wrapped blob is `0x01 || master fingerprint (4 bytes) || nonce (12) || AES-256-GCM(ct || tag)`
with a label (e.g. `device-key:42`) as associated data, so a blob cannot be moved to another
record. The fingerprint says which master key wrapped it, so rotation can run while old and new
keys are both in the ring: `rewrap` moves a blob to the primary key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

WRAP_VERSION = 1
_PREFIX = struct.Struct(">B4s")
NONCE_SIZE = 12
KEY_SIZE = 32
UNWRAPPED_KEPT = 10_000  # device keys (and a few secrets) a process keeps unwrapped


class KeyManagementError(Exception):
    """Base of key-management errors."""


class UnwrapError(KeyManagementError):
    """A wrapped secret could not be opened (wrong master key, wrong label or tampered)."""


class UnknownMasterKey(UnwrapError):
    """The blob was wrapped under a master key that is not in the ring."""


def generate_key() -> bytes:
    """A fresh 256-bit key from the OS's CSPRNG."""
    return secrets.token_bytes(KEY_SIZE)


@dataclass(frozen=True)
class MasterKey:
    """One 256-bit master key, known by a fingerprint that is safe to store and log."""

    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != KEY_SIZE:
            raise ValueError("a master key is 32 bytes")

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self.fingerprint.hex()})"

    @property
    def fingerprint(self) -> bytes:
        """First 4 bytes of SHA-256 over the key: names it without revealing it."""
        return hashlib.sha256(b"smspay master key fingerprint\x00" + self.material).digest()[:4]

    @classmethod
    def from_b64(cls, text: str) -> MasterKey:
        """Parse the base64 form used in configuration and key files."""
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except (ValueError, TypeError) as exc:
            raise ValueError("a master key is 32 bytes, base64-encoded") from exc

    def to_b64(self) -> str:
        """The base64 form for key files."""
        return base64.b64encode(self.material).decode("ascii")


class KeyRing:
    """The primary master key (wraps everything new) and older keys (only unwrap).

    Unwrapped secrets are remembered by their wrapped form (at most UNWRAPPED_KEPT of them), so
    a device that pays again costs no second AES-GCM unwrap. They add nothing to what a memory
    dump of the process gives away: the master keys that unwrap everything are in it already.
    """

    def __init__(self, primary: MasterKey, others: Iterable[MasterKey] = ()) -> None:
        self.primary = primary
        self._by_fp = {k.fingerprint: k for k in others}
        self._by_fp[primary.fingerprint] = primary
        self._unwrapped: OrderedDict[tuple[bytes, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary.fingerprint.hex()}, keys={len(self._by_fp)})"

    def wrap(self, secret: bytes, label: str) -> bytes:
        """Encrypt a secret under the primary key, bound to its label."""
        nonce = os.urandom(NONCE_SIZE)
        head = _PREFIX.pack(WRAP_VERSION, self.primary.fingerprint)
        sealed = AESGCM(self.primary.material).encrypt(nonce, secret, head + label.encode())
        return head + nonce + sealed

    def unwrap(self, blob: bytes, label: str) -> bytes:
        """Decrypt a wrapped secret with whichever ring key wrapped it."""
        known = (bytes(blob), label)
        with self._lock:
            secret = self._unwrapped.get(known)
            if secret is not None:
                self._unwrapped.move_to_end(known)
                return secret
        secret = self._unwrap(known[0], label)
        with self._lock:
            self._unwrapped[known] = secret
            if len(self._unwrapped) > UNWRAPPED_KEPT:
                self._unwrapped.popitem(last=False)
        return secret

    def _unwrap(self, blob: bytes, label: str) -> bytes:
        if len(blob) < _PREFIX.size + NONCE_SIZE + 16:
            raise UnwrapError("wrapped secret is truncated")
        version, fp = _PREFIX.unpack_from(blob)
        if version != WRAP_VERSION:
            raise UnwrapError("unknown wrap version")
        key = self._by_fp.get(fp)
        if key is None:
            raise UnknownMasterKey(f"wrapped under master key {fp.hex()}, which is not configured")
        head, nonce = blob[: _PREFIX.size], blob[_PREFIX.size : _PREFIX.size + NONCE_SIZE]
        try:
            return AESGCM(key.material).decrypt(
                nonce, blob[_PREFIX.size + NONCE_SIZE :], head + label.encode()
            )
        except InvalidTag as exc:
            raise UnwrapError("wrapped secret failed authentication") from exc

    def others(self) -> list[MasterKey]:
        """The non-primary keys of the ring."""
        return [k for fp, k in self._by_fp.items() if fp != self.primary.fingerprint]

    def is_current(self, blob: bytes) -> bool:
        """Whether a blob is already wrapped under the primary key."""
        return blob[1:5] == self.primary.fingerprint

    def rewrap(self, blob: bytes, label: str) -> bytes:
        """Move a wrapped secret to the primary key (a no-op copy if it is there already)."""
        return blob if self.is_current(blob) else self.wrap(self.unwrap(blob, label), label)


def device_key_label(key_id: int) -> str:
    """Associated data for a wrapped device key."""
    return f"device-key:{key_id}"


def gateway_secret_label(gateway_id: str) -> str:
    """Associated data for a wrapped Tasker gateway secret."""
    return f"tasker-gateway:{gateway_id}"


PIN_KEY_LABEL = "pin-key"


class LastSeenKeys:
    """The wrapped key each device had when this process last read it (at most `size`), so an
    SMS can be decrypted before its unit of work; the unit checks it against the device row."""

    def __init__(self, size: int = UNWRAPPED_KEPT) -> None:
        self._size = size
        self._keys: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_id: int) -> bytes | None:
        """The wrapped key last seen for this device, or None."""
        with self._lock:
            return self._keys.get(key_id)

    def remember(self, key_id: int, wrapped: bytes) -> None:
        """Note the device's wrapped key as read in a unit of work."""
        with self._lock:
            self._keys[key_id] = bytes(wrapped)
            self._keys.move_to_end(key_id)
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)
