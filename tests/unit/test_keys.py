"""Envelope encryption under the master key, and master-key rotation (docs/security.md)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from crypto.keys import (
    PIN_KEY_LABEL,
    KeyRing,
    MasterKey,
    UnknownMasterKey,
    UnwrapError,
    device_key_label,
    gateway_secret_label,
    generate_key,
)

OLD = MasterKey(bytes(range(32)))
NEW = MasterKey(bytes(range(100, 132)))
SECRET = bytes(range(200, 232))
LABEL = device_key_label(42)


def test_generate_key_is_32_random_bytes() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(len(k) == 32 for k in keys)


def test_labels() -> None:
    assert device_key_label(42) == "device-key:42"
    assert gateway_secret_label("shop-1") == "tasker-gateway:shop-1"
    assert PIN_KEY_LABEL == "pin-key"


def test_fingerprint_layout() -> None:
    expected = hashlib.sha256(b"smspay master key fingerprint\x00" + OLD.material).digest()[:4]
    assert OLD.fingerprint == expected
    assert OLD.fingerprint != NEW.fingerprint


def test_wrap_unwrap_round_trip() -> None:
    ring = KeyRing(OLD)
    blob = ring.wrap(SECRET, LABEL)
    assert ring.unwrap(blob, LABEL) == SECRET
    assert SECRET not in blob


def test_blob_layout() -> None:
    blob = KeyRing(OLD).wrap(SECRET, LABEL)
    assert blob[0] == 1
    assert blob[1:5] == OLD.fingerprint
    assert len(blob) == 1 + 4 + 12 + len(SECRET) + 16


def test_every_wrap_uses_a_fresh_nonce() -> None:
    ring = KeyRing(OLD)
    blobs = {ring.wrap(SECRET, LABEL) for _ in range(20)}
    assert len(blobs) == 20
    assert len({b[5:17] for b in blobs}) == 20


def test_empty_and_long_secrets_round_trip() -> None:
    ring = KeyRing(OLD)
    for secret in (b"", b"x" * 1000):
        assert ring.unwrap(ring.wrap(secret, LABEL), LABEL) == secret


@pytest.mark.parametrize(
    "label", [device_key_label(43), gateway_secret_label("42"), PIN_KEY_LABEL, "", "device-key:42 "]
)
def test_wrong_label_is_rejected(label: str) -> None:
    ring = KeyRing(OLD)
    blob = ring.wrap(SECRET, LABEL)
    with pytest.raises(UnwrapError):
        ring.unwrap(blob, label)


def test_every_tampered_bit_is_rejected() -> None:
    ring = KeyRing(OLD)
    blob = ring.wrap(SECRET, LABEL)
    for i in range(len(blob) * 8):
        tampered = bytearray(blob)
        tampered[i // 8] ^= 1 << (i % 8)
        with pytest.raises(UnwrapError):
            ring.unwrap(bytes(tampered), LABEL)


def test_truncated_and_extended_blobs_are_rejected() -> None:
    ring = KeyRing(OLD)
    blob = ring.wrap(SECRET, LABEL)
    for n in range(len(blob)):
        with pytest.raises(UnwrapError):
            ring.unwrap(blob[:n], LABEL)
    with pytest.raises(UnwrapError):
        ring.unwrap(blob + b"\x00", LABEL)


def test_unknown_wrap_version_is_rejected() -> None:
    blob = bytearray(KeyRing(OLD).wrap(SECRET, LABEL))
    blob[0] = 2
    with pytest.raises(UnwrapError):
        KeyRing(OLD).unwrap(bytes(blob), LABEL)


def test_unknown_master_key() -> None:
    blob = KeyRing(OLD).wrap(SECRET, LABEL)
    with pytest.raises(UnknownMasterKey) as info:
        KeyRing(NEW).unwrap(blob, LABEL)
    assert isinstance(info.value, UnwrapError)
    assert OLD.fingerprint.hex() in str(info.value)  # names the key, safely
    assert OLD.to_b64() not in str(info.value)


def test_rotation() -> None:
    old_ring = KeyRing(OLD)
    blobs = {
        device_key_label(i): old_ring.wrap(bytes([i]) * 32, device_key_label(i)) for i in (1, 2)
    }
    pin_blob = old_ring.wrap(SECRET, PIN_KEY_LABEL)

    rotating = KeyRing(NEW, [OLD])
    assert rotating.primary is NEW
    assert rotating.others() == [OLD]
    for label, blob in blobs.items():
        assert not rotating.is_current(blob)
        assert rotating.unwrap(blob, label) == old_ring.unwrap(blob, label)  # old blobs still open

    moved = {label: rotating.rewrap(blob, label) for label, blob in blobs.items()}
    moved_pin = rotating.rewrap(pin_blob, PIN_KEY_LABEL)
    for label, blob in moved.items():
        assert rotating.is_current(blob)
        assert blob[1:5] == NEW.fingerprint
        assert rotating.rewrap(blob, label) == blob  # already current: unchanged

    new_only = KeyRing(NEW)
    for label, blob in moved.items():
        assert new_only.unwrap(blob, label) == old_ring.unwrap(blobs[label], label)
    assert new_only.unwrap(moved_pin, PIN_KEY_LABEL) == SECRET
    with pytest.raises(UnknownMasterKey):
        new_only.unwrap(pin_blob, PIN_KEY_LABEL)  # not re-wrapped: lost once OLD is gone


def test_rewrap_keeps_the_label_binding() -> None:
    rotating = KeyRing(NEW, [OLD])
    blob = KeyRing(OLD).wrap(SECRET, LABEL)
    moved = rotating.rewrap(blob, LABEL)
    with pytest.raises(UnwrapError):
        rotating.unwrap(moved, device_key_label(43))
    with pytest.raises(UnwrapError):
        rotating.rewrap(blob, device_key_label(43))


def test_new_secrets_are_wrapped_under_the_primary() -> None:
    rotating = KeyRing(NEW, [OLD])
    blob = rotating.wrap(SECRET, LABEL)
    assert rotating.is_current(blob)
    with pytest.raises(UnknownMasterKey):
        KeyRing(OLD).unwrap(blob, LABEL)


def test_primary_listed_among_others_is_not_duplicated() -> None:
    ring = KeyRing(NEW, [OLD, NEW])
    assert ring.others() == [OLD]


def test_repr_hides_key_material() -> None:
    ring = KeyRing(NEW, [OLD])
    for key in (OLD, NEW):
        forms = [
            key.to_b64(),
            key.to_b64().rstrip("="),
            key.material.hex(),
            key.material.hex().upper(),
            repr(key.material),
        ]
        for text in (repr(key), str(key), repr(ring), str(ring), f"{key!r} {ring!r}"):
            for form in forms:
                assert form not in text
    assert OLD.fingerprint.hex() in repr(OLD)
    assert NEW.fingerprint.hex() in repr(ring)


def test_b64_round_trip() -> None:
    assert MasterKey.from_b64(OLD.to_b64()) == OLD
    assert MasterKey.from_b64(" " + OLD.to_b64() + "\n") == OLD  # as read from a key file
    assert base64.b64decode(OLD.to_b64()) == OLD.material


@pytest.mark.parametrize(
    "text",
    [
        "",
        base64.b64encode(b"\x00" * 31).decode(),
        base64.b64encode(b"\x00" * 33).decode(),
        base64.b64encode(b"\x00" * 16).decode(),
        base64.b64encode(b"\x00" * 64).decode(),
        "not base64!",
        base64.b64encode(b"\x00" * 32).decode().rstrip("="),
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),
        "ñ" * 44,
    ],
)
def test_from_b64_rejects_anything_but_32_bytes(text: str) -> None:
    with pytest.raises(ValueError):
        MasterKey.from_b64(text)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_master_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError):
        MasterKey(b"\x01" * size)
