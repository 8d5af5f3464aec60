"""The device bundle: what the phone app needs to send SP1 SMS, as one JSON object.

`flask devices provision` writes it (app/services/admin.py); the phone emulator (scripts/phone.py)
reads it and keeps the same object, its counter moved on, as its state file:

    {"phone": "+919876543210", "key_id": 42, "key": "<base64 of 32 bytes>",
     "service_number": "+15005550006", "next_counter": 1}

No Flask and no storage here: the phone imports this without the service.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from crypto.codec import KEY_SIZE, MAX_UINT32
from sms.numbers import is_e164

SHORT_CODE = re.compile(r"\d{3,8}")


@dataclass(frozen=True)
class DeviceBundle:
    """A phone's number, key id, key, the service number it sends to, and its next counter."""

    phone: str
    key_id: int
    key: bytes
    service_number: str
    next_counter: int = 1

    def __repr__(self) -> str:  # never print the key
        return f"Device(phone={self.phone!r}, key_id={self.key_id}, next={self.next_counter})"

    def to_json(self) -> dict[str, Any]:
        """The bundle file's JSON object (the key in base64), fields in this order."""
        return {
            "phone": self.phone,
            "key_id": self.key_id,
            "key": base64.b64encode(self.key).decode("ascii"),
            "service_number": self.service_number,
            "next_counter": self.next_counter,
        }

    @classmethod
    def from_json(cls, data: object) -> DeviceBundle:
        """Validate a bundle (or state) object; raises ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        phone, service = data.get("phone"), data.get("service_number")
        if not isinstance(phone, str) or not is_e164(phone):
            raise ValueError("phone is not an E.164 number")
        if not isinstance(service, str) or not (is_e164(service) or SHORT_CODE.fullmatch(service)):
            raise ValueError("service_number is not an E.164 number or a short code")
        key_id = _uint(data.get("key_id"), 0, MAX_UINT32, "key_id is not a uint32")
        counter = _uint(data.get("next_counter"), 1, MAX_UINT32 + 1, "next_counter is not >= 1")
        return cls(phone, key_id, _key(data.get("key")), service, counter)


def _uint(value: object, low: int, high: int, error: str) -> int:
    """An integer (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(error)
    return value


def _key(value: object) -> bytes:
    """The device key from its base64 form."""
    try:
        key = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise ValueError(f"key is not base64 of {KEY_SIZE} bytes")
    return key
