"""The plaintext inside an SP1 frame: `PAY|...`, `BAL|...`, `STS|...`.

    PAY|<payee>|<amount in paise>|<PIN>|<unix time>[|<note>[|<lat>,<lon>]]
    BAL|<PIN>|<unix time>
    STS|<transaction reference>|<unix time>
    TOP|<amount in paise>|<unix time>

`parse` validates with marshmallow schemas and raises `InvalidInstruction` with a short reason;
`format_*` build the same text on the phone side.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crypto.pins import PIN_PATTERN
from sms.numbers import E164, VPA

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 10
REFERENCE = re.compile(f"[{REFERENCE_ALPHABET}]{{{REFERENCE_LENGTH}}}")
MAX_AMOUNT_PAISE = 10**10  # Rs 10 crore: far above any limit, and keeps replies in one SMS
_LOCATION = re.compile(r"(-?[0-9]{1,2}(?:\.[0-9]{1,4})?),(-?[0-9]{1,3}(?:\.[0-9]{1,4})?)")


class InvalidInstruction(ValueError):
    """The decrypted text is not a well-formed instruction."""


@dataclass(frozen=True)
class Pay:
    """Pay `amount` paise to a phone number or a UPI id."""

    payee: str
    amount: int
    pin: str
    sent_at: int
    note: str = ""
    location: tuple[Decimal, Decimal] | None = None

    def __repr__(self) -> str:  # never print the PIN
        return f"Pay(payee={self.payee!r}, amount={self.amount}, sent_at={self.sent_at})"


@dataclass(frozen=True)
class Balance:
    """Ask for the wallet balance."""

    pin: str
    sent_at: int

    def __repr__(self) -> str:
        return f"Balance(sent_at={self.sent_at})"


@dataclass(frozen=True)
class Status:
    """Ask for the state of one of the sender's transactions."""

    reference: str
    sent_at: int


@dataclass(frozen=True)
class TopUp:
    """Ask for a payment link that adds `amount` paise to the wallet."""

    amount: int
    sent_at: int


Instruction = Pay | Balance | Status | TopUp

_unix_time = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


def _whole(pattern: re.Pattern[str]) -> Callable[[str], None]:
    """A validator that matches the whole value (marshmallow's Regexp anchors only the start)."""

    def check(value: str) -> None:
        if pattern.fullmatch(value) is None:
            raise ValidationError("bad format")

    return check


_pin = fields.String(required=True, validate=_whole(PIN_PATTERN))


def _digits(text: str) -> int | str:
    """Turn a field of ASCII digits into an int; leave anything else for the schema to refuse."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 13 else text


class PaySchema(Schema):
    payee = fields.String(required=True)
    amount = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_AMOUNT_PAISE)
    )
    pin = _pin
    sent_at = _unix_time
    note = fields.String(load_default="", validate=validate.Length(max=80))
    location = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        payee = data.get("payee", "")
        if not (E164.fullmatch(payee) or VPA.fullmatch(payee)):
            raise ValidationError("payee is neither an E.164 number nor a UPI id", "payee")
        loc = data.get("location")
        if loc is not None:
            m = _LOCATION.fullmatch(loc)
            if not m or abs(Decimal(m[1])) > 90 or abs(Decimal(m[2])) > 180:
                raise ValidationError("location is not lat,lon in decimal degrees", "location")


class BalanceSchema(Schema):
    pin = _pin
    sent_at = _unix_time


class StatusSchema(Schema):
    reference = fields.String(required=True, validate=_whole(REFERENCE))
    sent_at = _unix_time


class TopUpSchema(Schema):
    amount = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_AMOUNT_PAISE)
    )
    sent_at = _unix_time


_PAY, _BAL, _STS, _TOP = PaySchema(), BalanceSchema(), StatusSchema(), TopUpSchema()


def _load(schema: Schema, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema.load(raw)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {}
        field = next(iter(messages), "instruction")
        raise InvalidInstruction(f"invalid {field}") from exc
    return result


def parse(plaintext: bytes) -> Instruction:
    """Parse and validate decrypted instruction bytes."""
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInstruction("not UTF-8") from exc
    verb, *parts = text.split("|")
    if verb == "PAY" and 4 <= len(parts) <= 6:
        raw: dict[str, Any] = {
            "payee": parts[0],
            "amount": _digits(parts[1]),
            "pin": parts[2],
            "sent_at": _digits(parts[3]),
        }
        if len(parts) >= 5:
            raw["note"] = parts[4]
        if len(parts) == 6:
            raw["location"] = parts[5]
        data = _load(_PAY, raw)
        loc = data["location"]
        lat_lon = None
        if loc is not None:
            lat, lon = loc.split(",")
            lat_lon = (Decimal(lat), Decimal(lon))
        return Pay(
            data["payee"], data["amount"], data["pin"], data["sent_at"], data["note"], lat_lon
        )
    if verb == "BAL" and len(parts) == 2:
        data = _load(_BAL, {"pin": parts[0], "sent_at": _digits(parts[1])})
        return Balance(data["pin"], data["sent_at"])
    if verb == "STS" and len(parts) == 2:
        data = _load(_STS, {"reference": parts[0].upper(), "sent_at": _digits(parts[1])})
        return Status(data["reference"], data["sent_at"])
    if verb == "TOP" and len(parts) == 2:
        data = _load(_TOP, {"amount": _digits(parts[0]), "sent_at": _digits(parts[1])})
        return TopUp(data["amount"], data["sent_at"])
    raise InvalidInstruction("unknown instruction")


def format_pay(
    payee: str,
    amount: int,
    pin: str,
    sent_at: int,
    note: str = "",
    location: tuple[Decimal, Decimal] | None = None,
) -> str:
    """The plaintext of a PAY instruction (the phone side)."""
    if "|" in note:
        raise InvalidInstruction("a note may not contain '|'")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in note):
        raise InvalidInstruction("a note must be valid Unicode text")
    text = f"PAY|{payee}|{amount}|{pin}|{sent_at}"
    if note or location:
        text += f"|{note}"
    if location:
        text += f"|{location[0]},{location[1]}"
    return text


def format_balance(pin: str, sent_at: int) -> str:
    """The plaintext of a BAL instruction."""
    return f"BAL|{pin}|{sent_at}"


def format_status(reference: str, sent_at: int) -> str:
    """The plaintext of an STS instruction."""
    return f"STS|{reference}|{sent_at}"


def format_top_up(amount: int, sent_at: int) -> str:
    """The plaintext of a TOP instruction."""
    return f"TOP|{amount}|{sent_at}"


def parse_rupees(text: str) -> int:
    """'250', '250.5' or '250.00' rupees -> paise; raises ValueError for anything else."""
    if not re.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,2})?", text.strip()):
        raise ValueError(f"not an amount in rupees: {text!r}")
    return int(Decimal(text.strip()) * 100)


def format_rupees(paise: int) -> str:
    """12345 -> 'Rs 123.45' (GSM-7: no rupee sign)."""
    sign = "-" if paise < 0 else ""
    return f"Rs {sign}{abs(paise) // 100}.{abs(paise) % 100:02d}"
