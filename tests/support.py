"""Test helpers: a fake clock, and a phone that signs and posts SMS like Twilio and Tasker do."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from twilio.request_validator import RequestValidator

from crypto.codec import encode
from sms.instructions import format_balance, format_pay, format_status

TWILIO_TOKEN = "test-twilio-auth-token-not-real"
PUBLIC_URL = "https://pay.example.com"
SERVICE_NUMBER = "+15005550006"
ACCOUNT_SID = "AC" + "0" * 32


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float | None = None) -> None:
        self.t = float(start if start is not None else int(time.time()))

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def twilio_form(sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    """The incoming-message webhook form Twilio posts (its documented parameters)."""
    sid = sid or "SM" + secrets.token_hex(16)
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "IN",
        "To": SERVICE_NUMBER,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def twilio_signature(form: dict[str, str], url: str = PUBLIC_URL + "/sms/twilio") -> str:
    """Sign a form with the twilio SDK's own code, as Twilio's servers do."""
    return str(RequestValidator(TWILIO_TOKEN).compute_signature(url, form))


def tasker_headers(
    gateway_id: str, secret: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """Headers the Tasker profile sends: an independent HMAC over `<ts>.<body>`."""
    ts = str(int(timestamp if timestamp is not None else time.time()))
    sig = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Gateway-Id": gateway_id,
        "X-Timestamp": ts,
        "X-Signature": sig,
    }


def tasker_body(sender: str, text: str) -> bytes:
    """The JSON body the Tasker profile posts."""
    return json.dumps(
        {"from": sender, "body": text, "received_at": "2026-11-25T10:00:00+05:30"}
    ).encode()


@dataclass
class Phone:
    """A provisioned phone: encrypts instructions with its device key and counter."""

    phone: str
    key_id: int
    key: bytes
    pin: str
    next_counter: int = 1
    sent: list[str] = field(default_factory=list)

    def seal(self, plaintext: str, counter: int | None = None) -> str:
        """Encrypt one instruction (consumes a counter unless one is given)."""
        if counter is None:
            counter, self.next_counter = self.next_counter, self.next_counter + 1
        text = encode(self.key, self.key_id, counter, self.phone, plaintext)
        self.sent.append(text)
        return text

    def pay(self, payee: str, paise: int, pin: str | None = None, at: float | None = None,
            note: str = "") -> str:  # fmt: skip
        """An SP1 PAY message."""
        return self.seal(format_pay(payee, paise, pin or self.pin, int(at or time.time()), note))

    def balance(self, pin: str | None = None, at: float | None = None) -> str:
        """An SP1 BAL message."""
        return self.seal(format_balance(pin or self.pin, int(at or time.time())))

    def status(self, reference: str, at: float | None = None) -> str:
        """An SP1 STS message."""
        return self.seal(format_status(reference, int(at or time.time())))


def reply_text(twiml: bytes) -> str:
    """The <Message> text of a TwiML reply."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    msg = root.find("Message")
    return "" if msg is None else (msg.text or "")


def as_dict(obj: Any) -> dict[str, Any]:
    """JSON of a Flask test response."""
    data: dict[str, Any] = obj.get_json()
    return data
