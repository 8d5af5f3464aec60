"""SMS Pay Protocol v1: one AES-256-GCM frame in one GSM-7 SMS.

    SMS    = "SP1 " + base64(header || ciphertext || tag)     (no "=" padding)
    header = version (0x01) || key_id (uint32 BE) || counter (uint32 BE)
    nonce  = key_id (uint32 BE) || counter (uint64 BE)         (derived, never sent)
    aad    = header || sender phone in E.164 (ASCII)

Every way a message can fail to open raises the one opaque `InvalidMessage`; the cause is kept
on the exception for logs only, never for replies.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "SP1 "
VERSION = 1
HEADER = struct.Struct(">BII")
HEADER_SIZE = HEADER.size  # 9
TAG_SIZE = 16
KEY_SIZE = 32
MAX_SMS_CHARS = 160
# 156 base64 characters carry 117 bytes: 9 of header, 16 of tag, 92 of plaintext.
MAX_FRAME_BYTES = (MAX_SMS_CHARS - len(PREFIX)) * 6 // 8
MAX_PLAINTEXT_BYTES = MAX_FRAME_BYTES - HEADER_SIZE - TAG_SIZE
MAX_UINT32 = 2**32 - 1


class InvalidMessage(Exception):
    """The SMS is not a valid SP1 frame for this key and sender. One error for every cause."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid message")
        self.reason = reason  # for logs only; never shown to the sender


class MessageTooLong(ValueError):
    """The instruction does not fit one SMS; the encoder refuses rather than split it."""


def nonce_for(key_id: int, counter: int) -> bytes:
    """The 96-bit GCM nonce: key id and counter, so it never repeats under one key."""
    return struct.pack(">IQ", key_id, counter)


def associated_data(header: bytes, phone: str) -> bytes:
    """Bind the header and the sender's number to the ciphertext."""
    return header + phone.encode("ascii")


def _check_ids(key_id: int, counter: int) -> None:
    if not 0 <= key_id <= MAX_UINT32:
        raise ValueError("key_id must be a uint32")
    if not 1 <= counter <= MAX_UINT32:
        raise ValueError("counter must be between 1 and 2**32 - 1")


def encode(key: bytes, key_id: int, counter: int, phone: str, plaintext: str | bytes) -> str:
    """Encrypt one instruction into the text of one SMS."""
    _check_ids(key_id, counter)
    if len(key) != KEY_SIZE:
        raise ValueError("device key must be 32 bytes")
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise MessageTooLong(
            f"instruction is {len(data)} bytes; one SMS carries at most {MAX_PLAINTEXT_BYTES}"
        )
    header = HEADER.pack(VERSION, key_id, counter)
    sealed = AESGCM(key).encrypt(nonce_for(key_id, counter), data, associated_data(header, phone))
    return PREFIX + base64.b64encode(header + sealed).decode("ascii").rstrip("=")


def looks_like_frame(text: str) -> bool:
    """Whether an SMS body claims to be a frame (as opposed to plain text like HELP).

    Any case and any version ("sp1 ", "SP2 "): such a body gets the one opaque reply of a frame
    that does not decode, never the plain-text help.
    """
    head = text.lstrip()[:3]
    return head[:2].upper() == "SP" and head[2:3].isascii() and head[2:3].isdigit()


@dataclass(frozen=True)
class SealedFrame:
    """A parsed but not yet authenticated frame: the header says which key to try."""

    key_id: int
    counter: int
    header: bytes
    sealed: bytes

    @classmethod
    def parse(cls, text: str) -> SealedFrame:
        """Parse the SMS text; raises InvalidMessage for anything that is not a v1 frame."""
        body = text.strip()
        if len(body.rstrip("=")) > MAX_SMS_CHARS:  # a frame is one SMS, padding aside
            raise InvalidMessage("longer than one SMS")
        if not body.startswith(PREFIX.rstrip()):
            raise InvalidMessage("missing SP1 prefix")
        payload = body[len(PREFIX.rstrip()) :]
        if not payload[:1].isspace():
            raise InvalidMessage("missing separator after prefix")
        payload = payload.strip().rstrip("=")
        try:
            frame = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidMessage("bad base64") from exc
        if len(frame) < HEADER_SIZE + TAG_SIZE:
            raise InvalidMessage("truncated frame")
        version, key_id, counter = HEADER.unpack_from(frame)
        if version != VERSION:
            raise InvalidMessage(f"unsupported version {version}")
        if counter == 0:
            raise InvalidMessage("counter zero")
        return cls(key_id, counter, frame[:HEADER_SIZE], frame[HEADER_SIZE:])

    def open(self, key: bytes, phone: str) -> bytes:
        """Authenticate and decrypt with the device key, for this sender's number."""
        try:
            aad = associated_data(self.header, phone)
            return AESGCM(key).decrypt(nonce_for(self.key_id, self.counter), self.sealed, aad)
        except (InvalidTag, ValueError, UnicodeEncodeError) as exc:
            raise InvalidMessage("authentication failed") from exc


def decode(key: bytes, phone: str, text: str) -> tuple[SealedFrame, bytes]:
    """Parse and open in one step (the phone-side tests and tools use this)."""
    frame = SealedFrame.parse(text)
    return frame, frame.open(key, phone)
