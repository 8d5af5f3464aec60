"""The Tasker route: an Android phone forwards each SMS as a signed JSON POST.

X-Gateway-Id: <forwarding phone id>
X-Timestamp:  <unix seconds>
X-Signature:  hex(HMAC-SHA256(gateway secret, X-Timestamp + "." + raw body))
{"from": "+91...", "body": "...", "received_at": "ISO 8601"}
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from sms.inbound import InboundSms, Route
from sms.numbers import is_e164

MAX_SKEW_SECONDS = 300
MAX_TIMESTAMP_DIGITS = 12  # unix seconds until the year 33658; longer is never a real clock


class MalformedTaskerRequest(ValueError):
    """The JSON body is not what the Tasker profile sends."""


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Signature value for a request body (the phone side computes the same)."""
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_is_valid(
    secret: bytes,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    now: float,
    max_skew: float = MAX_SKEW_SECONDS,
) -> bool:
    """Constant-time HMAC check plus the timestamp window."""
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if len(timestamp) > MAX_TIMESTAMP_DIGITS:  # before int(): no digit limit, no float overflow
        return False
    if abs(now - int(timestamp)) > max_skew:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip().lower())


def parse_body(body: bytes, gateway_id: str, received_at: float) -> InboundSms:
    """Parse the forwarded SMS; raises MalformedTaskerRequest with a short reason."""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedTaskerRequest("body is not JSON") from exc
    except RecursionError as exc:  # nested deeper than the parser goes: never a forwarded SMS
        raise MalformedTaskerRequest("body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise MalformedTaskerRequest("body is not a JSON object")
    sender, text = data.get("from"), data.get("body")
    if not isinstance(sender, str) or not is_e164(sender.strip()):
        raise MalformedTaskerRequest("'from' is not an E.164 number")
    if not isinstance(text, str):
        raise MalformedTaskerRequest("'body' is missing")
    stamp = data.get("received_at")
    if stamp is not None:
        try:
            datetime.fromisoformat(str(stamp))
        except ValueError as exc:
            raise MalformedTaskerRequest("'received_at' is not ISO 8601") from exc
    return InboundSms(
        route=Route.TASKER,
        sender=sender.strip(),
        body=text,
        received_at=received_at,
        gateway_id=gateway_id,
    )
